/**
 * Who is signed in. The token is kept in sessionStorage only: it dies with the tab, is never
 * written to localStorage, a cookie or a URL, and is sent only as an Authorization header.
 */
import type { Scope, Whoami } from './types.ts';

const KEY = 'snapvisor.token';
type Listener = () => void;
const listeners = new Set<Listener>();
let who: Whoami | null = null;
let lastSignOutReason: string | null = null;

function emit() {
  for (const l of listeners) l();
}

export const session = {
  token(): string | null {
    return sessionStorage.getItem(KEY);
  },
  who(): Whoami | null {
    return who;
  },
  can(scope: Scope): boolean {
    return who !== null && who.scopes.includes(scope);
  },
  signedIn(token: string, identity: Whoami) {
    sessionStorage.setItem(KEY, token);
    who = identity;
    lastSignOutReason = null;
    emit();
  },
  /** Restored from sessionStorage at load, once /v1/whoami has answered. */
  restored(identity: Whoami) {
    who = identity;
    emit();
  },
  signOut(reason: string | null = null) {
    sessionStorage.removeItem(KEY);
    who = null;
    lastSignOutReason = reason;
    emit();
  },
  /** The daemon stopped accepting the token (revoked by a reload): back to sign-in, saying why. */
  expired(reason: string) {
    session.signOut(reason);
  },
  signOutReason(): string | null {
    return lastSignOutReason;
  },
  subscribe(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
