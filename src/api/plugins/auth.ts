/**
 * Bearer-token authentication and scopes. Tokens are configured as sha256 hashes; the presented
 * token is hashed and compared in constant time against every configured hash (no early exit,
 * so timing does not tell which one matched). Only routes marked `config: { public: true }`
 * (/healthz) skip it.
 *
 * Scope needed: GET/HEAD → read, other methods → write, or the route's `config.scope`
 * (e.g. admin for a target sync). admin implies write implies read.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Registry } from 'prom-client';
import { forbidden, unauthenticated } from '../errors.ts';

export type Scope = 'read' | 'write' | 'admin';

export interface TokenSpec {
  name: string;
  /** Hex sha256 of the token value. */
  sha256: string;
  scopes: Scope[];
}

export interface Principal {
  name: string;
  scopes: ReadonlySet<Scope>;
}

/** Why a request failed authentication: the bounded label set of snapvisor_http_unauthenticated_total. */
export type AuthFailure = 'missing' | 'malformed' | 'unknown';
export const AUTH_FAILURES: readonly AuthFailure[] = ['missing', 'malformed', 'unknown'];

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** Set when the request failed authentication (401): it is counted, never audited. */
    authFailure: AuthFailure | null;
  }
  interface FastifyInstance {
    /** snapvisor_http_unauthenticated_total, appended to /metrics. */
    authMetrics: Registry;
  }
  interface FastifyContextConfig {
    /** Skip authentication (only /healthz). */
    public?: boolean;
    /** Scope this route needs instead of the one implied by its method. */
    scope?: Scope;
  }
}

const IMPLIED: Record<Scope, Scope[]> = { read: ['read'], write: ['read', 'write'], admin: ['read', 'write', 'admin'] };

export function hasScope(principal: Principal | null, needed: Scope): boolean {
  return principal !== null && principal.scopes.has(needed);
}

interface CompiledToken {
  name: string;
  digest: Buffer;
  scopes: ReadonlySet<Scope>;
}

export function compileTokens(tokens: readonly TokenSpec[]): CompiledToken[] {
  return tokens.map((t) => {
    if (!/^[0-9a-fA-F]{64}$/.test(t.sha256)) throw new Error(`token '${t.name}': sha256 must be 64 hex characters`);
    const scopes = new Set<Scope>();
    for (const scope of t.scopes) for (const implied of IMPLIED[scope]) scopes.add(implied);
    return { name: t.name, digest: Buffer.from(t.sha256, 'hex'), scopes };
  });
}

/** Finds the principal for a presented token, or null. Exported for tests. */
export function authenticate(tokens: readonly CompiledToken[], presented: string): Principal | null {
  const digest = createHash('sha256').update(presented, 'utf8').digest();
  let found: CompiledToken | null = null;
  for (const token of tokens) {
    if (timingSafeEqual(digest, token.digest) && found === null) found = token;
  }
  return found ? { name: found.name, scopes: found.scopes } : null;
}

/**
 * The configured tokens, replaceable while the daemon runs (a reload): a request is checked
 * against the set in place when it arrives, so a removed token gets 401 on its next request.
 */
export interface TokenSet {
  readonly tokens: readonly CompiledToken[];
  /** Compiles first (throws on a bad digest, leaving the set as it was), then swaps in one step. */
  replace(tokens: readonly TokenSpec[]): void;
}

export function createTokenSet(tokens: readonly TokenSpec[]): TokenSet {
  let compiled = compileTokens(tokens);
  return {
    get tokens() {
      return compiled;
    },
    replace(next) {
      compiled = compileTokens(next);
    },
  };
}

/** RFC 6750 b64token; the scheme name is case-insensitive (RFC 9110 §11.1): "bearer" works too. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function requiredScope(request: FastifyRequest): Scope {
  const configured = request.routeOptions.config?.scope;
  if (configured) return configured;
  return request.method === 'GET' || request.method === 'HEAD' ? 'read' : 'write';
}

async function authPlugin(app: FastifyInstance, options: { tokens: readonly TokenSpec[] | TokenSet }) {
  const set = 'replace' in options.tokens ? options.tokens : createTokenSet(options.tokens);
  app.decorateRequest('principal', null);
  app.decorateRequest('authFailure', null);
  // Its own registry (like http-metrics): several apps in one process (tests) do not collide.
  const registry = new Registry();
  const refused = new Counter({
    name: 'snapvisor_http_unauthenticated_total',
    help: 'Requests refused with 401: missing (no Authorization header), malformed (not "Bearer <token>"), unknown (no such token). Not written to the audit log.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of AUTH_FAILURES) refused.inc({ reason }, 0);
  app.decorate('authMetrics', registry);
  const fail = (request: FastifyRequest, reason: AuthFailure, detail: string) => {
    request.authFailure = reason;
    refused.inc({ reason });
    return reason === 'missing' ? unauthenticated(detail) : unauthenticated(detail, 'invalid_token');
  };

  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config?.public === true) return;
    const header = request.headers.authorization;
    if (header === undefined || header === '') throw fail(request, 'missing', 'send an Authorization: Bearer <token> header');
    const match = BEARER.exec(header);
    if (!match || match[1] === undefined) throw fail(request, 'malformed', 'the Authorization header must be "Bearer <token>"');
    const principal = authenticate(set.tokens, match[1]);
    if (!principal) throw fail(request, 'unknown', 'the token is not valid');
    request.principal = principal;
    const scope = requiredScope(request);
    if (!hasScope(principal, scope)) throw forbidden(scope);
  });
}

export default fp(authPlugin, { name: 'snapvisor-auth', fastify: '5.x' });
