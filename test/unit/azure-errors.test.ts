/** Azure error mapping (providers/azure/errors.ts): pure, no SDK call. */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { fromAzureError, isExpiredToken, isSnapshotRateRefusal, parseLroFailure, redact, retryAfterMs } from '../../providers/azure/errors.ts';

/** A RestError as @azure/core-rest-pipeline makes it (duck-typed by the mapper). */
function restError(statusCode: number | undefined, code: string | undefined, message: string, headers: Record<string, string> = {}): Error {
  const e = new Error(message) as Error & Record<string, unknown>;
  e.name = 'RestError';
  if (statusCode !== undefined) e.statusCode = statusCode;
  if (code !== undefined) e.code = code;
  e.details = code ? { error: { code, message } } : undefined;
  e.response = { headers: { get: (n: string) => headers[n.toLowerCase()] } };
  return e;
}

const read = { what: 'list', mutating: false };
const put = { what: 'create', mutating: true, snapshotCreate: true };

t.test('status and code → kind', async (t) => {
  const cases: Array<[number, string, string, typeof read, string]> = [
    [404, 'ResourceNotFound', "The Resource 'Microsoft.Compute/snapshots/x' under resource group 'rg' was not found.", read, 'not_found'],
    [404, 'ResourceGroupNotFound', "Resource group 'x' could not be found.", read, 'not_found'],
    [409, 'OperationNotAllowed', 'Disk is being detached.', put, 'conflict'],
    [409, 'OperationNotAllowed', 'Too many snapshots: 7 incremental snapshots per disk every 5 minutes.', put, 'throttled'],
    [409, 'OperationNotAllowed', 'Too many snapshots: the rate limit.', { what: 'swap', mutating: true }, 'conflict'],
    [429, 'SubscriptionRequestsThrottled', 'slow down', read, 'throttled'],
    [401, 'InvalidAuthenticationToken', 'The access token is invalid.', read, 'auth'],
    [403, 'AuthorizationFailed', 'no', read, 'auth'],
    [400, 'InvalidParameter', 'bad', put, 'invalid'],
    [500, 'InternalServerError', 'oops', read, 'transient'],
    [503, 'ServiceUnavailable', 'later', put, 'transient'],
    [409, 'OperationNotAllowed', 'Operation results in exceeding quota limits of Core.', put, 'quota'],
  ];
  for (const [status, code, message, call, kind] of cases) {
    const e = fromAzureError(restError(status, code, message), call);
    t.equal(e.kind, kind, `${status} ${code} ${message.slice(0, 30)} → ${kind}`);
    t.equal(e.nativeCode, code);
    t.match(e.message, /^\[snapvisor\] \[azure\] /);
  }
  t.equal(fromAzureError(restError(500, 'InternalServerError', 'x'), put).retry, 'uncertain', 'a 5xx on a write may have been applied');
  t.equal(fromAzureError(restError(500, 'InternalServerError', 'x'), read).retry, 'transient');
});

t.test('429 and Retry-After', async (t) => {
  const e = fromAzureError(restError(429, 'SubscriptionRequestsThrottled', 'x', { 'retry-after': '17' }), read);
  t.equal(e.kind, 'throttled');
  t.equal(e.retry, 'transient');
  t.equal(e.retryAfterMs, 17_000);
  t.equal(retryAfterMs('2.5'), 2500);
  t.equal(retryAfterMs(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1)), 30_000);
  t.equal(retryAfterMs('soon'), undefined);
  t.equal(retryAfterMs(null), undefined);
  t.ok(isSnapshotRateRefusal({ code: 'OperationNotAllowed', message: 'x', status: 409 }) === false);
  t.ok(isSnapshotRateRefusal({ code: 'TooManyRequests', message: 'x' }));
});

t.test('no answer: before sending transient, after sending a write uncertain; abort by the same rule', async (t) => {
  t.equal(fromAzureError(restError(undefined, 'ECONNREFUSED', 'connect ECONNREFUSED'), put).retry, 'transient');
  const reset = fromAzureError(restError(undefined, 'ECONNRESET', 'socket hang up'), put);
  t.equal(reset.kind, 'transient');
  t.equal(reset.retry, 'uncertain');
  t.equal(fromAzureError(restError(undefined, 'ECONNRESET', 'socket hang up'), read).retry, 'transient');
  const abort = new Error('The operation was aborted.');
  abort.name = 'AbortError';
  t.equal(fromAzureError(abort, put).retry, 'uncertain');
  t.equal(fromAzureError(abort, read).retry, 'transient');
});

t.test('a failed long-running operation: code and message parsed', async (t) => {
  t.same(parseLroFailure('The long-running operation has failed. InternalDiskManagementError. An internal error. Retry later.'), { code: 'InternalDiskManagementError', message: 'An internal error. Retry later.' });
  t.same(parseLroFailure('The long-running operation has failed'), { message: 'the operation failed without a reason' });
  t.equal(parseLroFailure('something else'), null);
  const e = fromAzureError(new Error('The long-running operation has failed. BadRequest. The source is wrong.'), put);
  t.equal(e.kind, 'invalid');
  t.equal(e.nativeCode, 'BadRequest');
  t.equal(fromAzureError(new Error('The long-running operation has failed. InternalDiskManagementError. x'), put).kind, 'transient');
});

t.test('credential errors are auth; an unreachable token service is transient', async (t) => {
  const e = new Error('invalid_client: AADSTS7000215: Invalid client secret provided.');
  e.name = 'AuthenticationRequiredError';
  t.equal(fromAzureError(e, read).kind, 'auth');
  const n = new Error('network_error: connect ECONNREFUSED 127.0.0.1:1');
  n.name = 'AuthenticationError';
  t.equal(fromAzureError(n, read).kind, 'transient');
  t.ok(isExpiredToken(restError(401, 'ExpiredAuthenticationToken', 'expired')));
  t.notOk(isExpiredToken(restError(401, 'AuthenticationFailed', 'no header')));
  t.notOk(isExpiredToken(restError(403, 'AuthorizationFailed', 'no')));
  t.ok(fromAzureError(new ProviderError('azure', 'conflict', 'as is'), read).message.includes('as is'), 'a ProviderError passes through');
});

t.test('messages never carry the secret, tokens or Authorization headers', async (t) => {
  const secret = 'Th1s.Is~The_Secret';
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  const text = `failed: client_secret=${secret}&x=1 Authorization: Bearer abc.def-ghi ${jwt} "authorization":"Bearer zzz" access_token=qqq and ${secret}`;
  const out = redact(text, [secret]);
  t.notMatch(out, secret);
  t.notMatch(out, 'abc.def-ghi');
  t.notMatch(out, jwt);
  t.notMatch(out, 'zzz');
  t.notMatch(out, 'qqq');
  const e = fromAzureError(restError(400, 'InvalidParameter', `bad value ${secret}`), put, [secret]);
  t.notMatch(e.message, secret);
  t.notMatch(JSON.stringify(e), secret);
  t.equal(e.cause, undefined, 'the SDK error (its request, headers) is not kept as the cause');
});
