/**
 * The guards every adapter starts its calls with: one error factory bound to the provider and the
 * target (every message starts "target '<name>': "), the cancelled-before-start check, and the
 * validation of the ids the API hands in — an id that cannot name anything on the target is
 * `not_found` before any command or request is sent (and never reaches an argv as an option).
 */
import { ProviderError, type CallContext, type ProviderErrorKind, type ProviderErrorOptions } from '../contract.ts';
import type { CallInfo } from './transport-errors.ts';

export type ErrorFactory = (kind: ProviderErrorKind, message: string, opts?: ProviderErrorOptions) => ProviderError;

export interface Guards {
  /** A ProviderError of this provider, its message prefixed with "target '<name>': ". */
  err: ErrorFactory;
  /** `transient` (safe to retry) when the call is cancelled before it started. */
  assertNotAborted(ctx: CallContext, what: string): void;
  /** The call description with the target prefix, for the transport error mappers. */
  withTarget(call: CallInfo): CallInfo;
}

export function createGuards(provider: string, target: string): Guards {
  const prefix = `target '${target}': `;
  const err: ErrorFactory = (kind, message, opts = {}) => new ProviderError(provider, kind, `${prefix}${message}`, opts);
  return {
    err,
    assertNotAborted(ctx, what) {
      if (ctx.signal.aborted) throw err('transient', `${what}: cancelled before start`, { retry: 'transient' });
    },
    withTarget: (call) => ({ ...call, what: `${prefix}${call.what}` }),
  };
}

/** What a valid id of one kind of object looks like on one hypervisor. */
export interface IdForm {
  test: RegExp;
  /** How the id is written in commands (e.g. UUIDs in lower case). */
  normalise(id: string): string;
  /** Ends the not_found message: "(<describe>)". */
  describe: string;
}

export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A UUID id (libvirt domains, VirtualBox machines and snapshots), `system` e.g. "libvirt domain". */
export function uuidIds(system: string): IdForm {
  return { test: UUID_RE, normalise: (id) => id.toLowerCase(), describe: `${system} ids are UUIDs` };
}

/** A vSphere managed object reference value: `vm-123` on vCenter, plain numbers on ESXi; no markup or whitespace. */
export const MOREF_VALUE_RE = /^[A-Za-z0-9_.:[\]-]{1,200}$/;

export function morefIds(system: string, example: string): IdForm {
  return { test: MOREF_VALUE_RE, normalise: (id) => id, describe: `${system} ids are managed object ids such as ${example}` };
}

/** Longest part of a rejected id quoted back in a message. */
const QUOTE_MAX = 80;

/** The id as the hypervisor wants it, or `not_found` naming the object and the expected form. */
export function checkId(err: ErrorFactory, form: IdForm, noun: string, id: string): string {
  if (!form.test.test(id)) throw err('not_found', `no ${noun} with id '${id.slice(0, QUOTE_MAX)}' (${form.describe})`);
  return form.normalise(id);
}
