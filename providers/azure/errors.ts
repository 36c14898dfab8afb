/**
 * The one place where what the Azure SDK throws becomes a ProviderError (pure, unit-tested).
 *
 * - An ARM answer (RestError with a status): 404 not_found; 409 conflict, except a 409 on a snapshot
 *   create whose code or message means the per-disk snapshot rate (Azure does not document which
 *   status it answers there: 429 and 409 are both treated as throttling); 429 throttled with
 *   `retryAfterMs` from Retry-After; 401/403 auth; 400 invalid; 5xx transient.
 * - No answer: a connection that failed before the request left (refused, DNS, TLS) is transient;
 *   one that broke after a mutating request was sent (reset, hang-up, timeout, cancel) is retry
 *   `uncertain` — Azure may have applied it, only a look by marker can tell.
 * - A failed long-running operation is a plain Error "The long-running operation has failed. CODE.
 *   MESSAGE" (core-lro): its code and message are parsed back out and mapped like an answer.
 * - A credential error (@azure/identity: AuthenticationError, CredentialUnavailableError) is auth.
 *
 * Every message goes through `redact`: the client secret, bearer tokens and Authorization headers
 * never reach a message, whatever the SDK put in its own.
 */
import { ProviderError, type ProviderErrorKind, type RetryClass } from '../contract.ts';
import { hideSecrets } from '../shared/hide-secrets.ts';
import { PROVIDER } from './options.ts';

export interface AzureCallInfo {
  /** What Snapvisor was doing ("create snapshot sv-… of disk …"), prefixed with the target. */
  what: string;
  /** The request may change something on Azure (PUT, PATCH, DELETE, POST actions). */
  mutating: boolean;
  /** A snapshot create: a 409 about the snapshot rate is throttling. */
  snapshotCreate?: boolean;
}

/** Longest part of Azure's message quoted in ours. */
const MESSAGE_MAX = 500;

/** The secret texts to hide and the token patterns that are always hidden. */
export function redact(text: string, secrets: readonly string[] = []): string {
  // A secret of 1-3 characters would blank out common text everywhere; the patterns still apply.
  return hideSecrets(text, secrets.filter((s) => s.length >= 4))
    .replace(/(authorization["']?\s*[:=]\s*["']?)(bearer\s+)?[^\s"',}]+/gi, '$1[redacted]')
    .replace(/\bBearer\s+[A-Za-z0-9\-._~+/]+=*/g, 'Bearer [redacted]')
    .replace(/\b(client_secret|access_token|refresh_token)=([^&\s"]+)/gi, '$1=[redacted]')
    .replace(/\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[redacted-jwt]');
}

const oneLine = (text: string): string => {
  const line = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '').join(' ');
  return line.length > MESSAGE_MAX ? `${line.slice(0, MESSAGE_MAX)}…` : line;
};

/** What an ARM error answer carries, read without trusting its shape. */
export interface ArmFailure {
  status?: number;
  code?: string;
  message: string;
  /** From Retry-After (seconds or an HTTP date). */
  retryAfterMs?: number;
}

const LRO_FAILED = /^The long-running operation has failed(?:\. ([^.\s]+)\. ([\s\S]*))?$/;

/** Code and message of core-lro's "The long-running operation has failed. CODE. MESSAGE"; null for another text. */
export function parseLroFailure(message: string): { code?: string; message: string } | null {
  const m = LRO_FAILED.exec(message.trim());
  if (!m) return null;
  return m[1] === undefined ? { message: 'the operation failed without a reason' } : { code: m[1], message: m[2] ?? '' };
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

interface RestErrorLike {
  name: string;
  message: string;
  code?: string;
  statusCode?: number;
  response?: { headers?: { get(name: string): string | undefined | null }; bodyAsText?: string | null };
  details?: unknown;
}

function isRestErrorLike(e: unknown): e is RestErrorLike {
  return e instanceof Error && e.name === 'RestError';
}

/** `{error:{code,message}}` of a RestError's parsed body, when the SDK put it there. */
function armBodyError(e: RestErrorLike): { code?: string; message?: string } {
  const d = e.details as { error?: { code?: unknown; message?: unknown } } | undefined;
  const inner = d && typeof d === 'object' ? d.error : undefined;
  const out: { code?: string; message?: string } = {};
  if (inner && typeof inner.code === 'string') out.code = inner.code;
  if (inner && typeof inner.message === 'string') out.message = inner.message;
  if (out.code === undefined && e.response?.bodyAsText) {
    try {
      const body = JSON.parse(e.response.bodyAsText) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body.error?.code === 'string') out.code = body.error.code;
      if (typeof body.error?.message === 'string') out.message = body.error.message;
    } catch {
      // not JSON: the RestError's own message is used
    }
  }
  return out;
}

/** Network error codes that mean the request never left this machine: repeating it is safe. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ELOOPBACKGUARD', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** What @azure/identity throws when no token could be had (AuthenticationRequiredError: MSAL's refusal as seen through the client). */
const CREDENTIAL_ERRORS = new Set(['AuthenticationError', 'AuthenticationRequiredError', 'CredentialUnavailableError', 'AggregateAuthenticationError']);
const TOKEN_SERVICE_UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|ENETUNREACH|EHOSTUNREACH|endpoints_resolution_error|network_error|socket hang up/i;

/** A 409 (or other refusal) on a snapshot create that is Azure's per-disk snapshot rate. */
export function isSnapshotRateRefusal(f: ArmFailure): boolean {
  const text = `${f.code ?? ''} ${f.message}`;
  return /TooManyRequests|Throttl|too many (requests|snapshots)|rate limit|snapshot.*(limit|per disk)|HighCostSnapshotCreate/i.test(text);
}

/** An ARM answer (or a failed LRO's code and message) → kind. */
export function kindOfFailure(f: ArmFailure, call: AzureCallInfo): { kind: ProviderErrorKind; retry?: RetryClass } {
  const code = f.code ?? '';
  if (f.status === 429) return { kind: 'throttled' };
  if (call.snapshotCreate && (f.status === 409 || f.status === undefined) && isSnapshotRateRefusal(f)) return { kind: 'throttled' };
  if (/quota|LimitExceeded/i.test(code) || (code === 'OperationNotAllowed' && /\bquota\b/i.test(f.message))) return { kind: 'quota' };
  if (f.status === 401 || f.status === 403 || /^(AuthorizationFailed|AuthenticationFailed|InvalidAuthenticationToken|ExpiredAuthenticationToken|LinkedAuthorizationFailed)/.test(code)) return { kind: 'auth' };
  if (f.status === 404 || /NotFound$/.test(code)) return { kind: 'not_found' };
  if (f.status === 409 || /^(Conflict|OperationNotAllowed|ConflictingUserInput|PropertyChangeNotAllowed)/.test(code)) return { kind: 'conflict' };
  if (f.status === 400 || /^(InvalidParameter|BadRequest|InvalidRequestContent)/.test(code)) return { kind: 'invalid' };
  if (f.status !== undefined && f.status >= 500) return { kind: 'transient', retry: call.mutating ? 'uncertain' : 'transient' };
  if (/^(InternalServerError|InternalExecutionError|ServiceUnavailable|InternalDiskManagementError|RetryableError|OperationPreempted|GatewayTimeout)/.test(code)) {
    // A failed operation was accepted and ran: a retry of a deterministic name is safe.
    return { kind: 'transient', retry: 'transient' };
  }
  return { kind: 'internal' };
}

/** A 401 whose answer means "get a new token and try again" (not a refusal of the principal). */
export function isExpiredToken(e: unknown): boolean {
  if (!isRestErrorLike(e) || e.statusCode !== 401) return false;
  const code = e.code ?? armBodyError(e).code ?? '';
  return code === 'ExpiredAuthenticationToken' || code === 'InvalidAuthenticationToken';
}

/** What the SDK (or the credential) threw → ProviderError; `secrets` never reach the message. */
export function fromAzureError(e: unknown, call: AzureCallInfo, secrets: readonly string[] = [], signal?: AbortSignal): ProviderError {
  if (e instanceof ProviderError) return e;
  const clean = (s: string) => redact(oneLine(s), secrets);
  const what = call.what;
  const uncertainIfMutating: RetryClass = call.mutating ? 'uncertain' : 'transient';
  if (e instanceof Error && (e.name === 'AbortError' || signal?.aborted)) {
    return new ProviderError(PROVIDER, 'transient', `${what}: cancelled`, { retry: uncertainIfMutating });
  }
  if (e instanceof Error && CREDENTIAL_ERRORS.has(e.name)) {
    // The token service refused us (wrong secret, unknown client), or could not be reached.
    if (TOKEN_SERVICE_UNREACHABLE.test(e.message)) {
      return new ProviderError(PROVIDER, 'transient', `${what}: could not reach the token service: ${clean(e.message)}`, { retry: 'transient', nativeCode: e.name });
    }
    return new ProviderError(PROVIDER, 'auth', `${what}: could not get an Azure access token: ${clean(e.message)}`, { nativeCode: e.name });
  }
  if (isRestErrorLike(e)) {
    const body = armBodyError(e);
    if (e.statusCode === undefined) {
      const code = e.code ?? 'REQUEST_SEND_ERROR';
      const sent = !NOT_SENT.has(code);
      return new ProviderError(PROVIDER, 'transient', `${what}: no answer from Azure (${clean(code === 'REQUEST_SEND_ERROR' ? e.message : `${code}: ${e.message}`)})`, {
        retry: sent ? uncertainIfMutating : 'transient',
        nativeCode: code,
      });
    }
    const code = body.code ?? e.code;
    const failure: ArmFailure = { status: e.statusCode, message: body.message ?? e.message };
    if (code !== undefined) failure.code = code;
    const after = retryAfterMs(e.response?.headers?.get('retry-after'));
    if (after !== undefined) failure.retryAfterMs = after;
    const { kind, retry } = kindOfFailure(failure, call);
    return new ProviderError(PROVIDER, kind, `${what}: Azure answered ${e.statusCode}${code ? ` ${code}` : ''}: ${clean(failure.message)}`, {
      ...(retry ? { retry } : {}),
      ...(kind === 'throttled' && failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
      ...(code ? { nativeCode: code } : {}),
    });
  }
  if (e instanceof Error) {
    const lro = parseLroFailure(e.message);
    if (lro) {
      const failure: ArmFailure = { message: lro.message, ...(lro.code ? { code: lro.code } : {}) };
      const { kind, retry } = kindOfFailure(failure, call);
      return new ProviderError(PROVIDER, kind, `${what}: the operation failed${lro.code ? ` (${lro.code})` : ''}: ${clean(lro.message)}`, {
        ...(retry ? { retry } : {}),
        ...(lro.code ? { nativeCode: lro.code } : {}),
      });
    }
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      return new ProviderError(PROVIDER, 'transient', `${what}: ${clean(e.message)}`, { retry: NOT_SENT.has(code) ? 'transient' : uncertainIfMutating, nativeCode: code });
    }
    return new ProviderError(PROVIDER, 'internal', `${what}: ${clean(e.message)}`, call.mutating ? { retry: 'uncertain' } : {});
  }
  return new ProviderError(PROVIDER, 'internal', `${what}: ${clean(String(e))}`, call.mutating ? { retry: 'uncertain' } : {});
}
