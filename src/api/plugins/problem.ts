/**
 * The one error handler: every failure leaves as RFC 9457 application/problem+json.
 *
 * SnapvisorError (and ProviderError, which extends it) is mapped by `kind` (never by message or class name); Fastify's
 * own errors by their FST_ERR_* code. 5xx bodies say nothing specific — the original error is
 * logged with the request id, which the body carries so an operator can find it.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { DATABASE_UNAVAILABLE, INSUFFICIENT_STORAGE, SnapvisorError, type ErrorKind } from '../../domain/errors.ts';
import { HttpProblem } from '../errors.ts';
import type { ProblemBody } from '../schemas/common.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const IDEMPOTENCY_KEY_REUSED = 'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED';

const STATUS_BY_KIND: Record<ErrorKind, number> = {
  not_found: 404,
  conflict: 409,
  unsupported: 422,
  throttled: 429,
  transient: 503,
  // The *target* refused Snapvisor's credentials: a bad gateway, not the client's fault.
  auth: 502,
  quota: 507,
  invalid: 400,
  internal: 500,
};

const TITLE_BY_STATUS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  507: 'Insufficient Storage',
};

/** Fixed texts for server-side kinds: the original message may carry hypervisor details. */
const SERVER_DETAIL: Partial<Record<ErrorKind, string>> = {
  transient: 'the target did not answer in time; try again later',
  auth: "the target refused Snapvisor's credentials",
  quota: 'the target has no capacity or quota left for this request',
  internal: 'internal error',
};

/** Fields a SnapvisorError's `extra` may not overwrite. */
const RESERVED = new Set(['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'errors']);

export interface Problem {
  body: ProblemBody & Record<string, unknown>;
  headers: Record<string, string>;
  /** What to log: the original error for 5xx, nothing for expected client errors. */
  logError: unknown;
}

interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  schemaPath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Turns a validation error list into `[{path, message}]`, one entry per offending field. */
export function validationErrors(context: string | undefined, issues: readonly ValidationIssue[]): Array<{ path: string; message: string }> {
  const prefix = context ?? 'body';
  const out: Array<{ path: string; message: string }> = [];
  const seen = new Set<string>();
  for (const issue of issues) {
    let path = issue.instancePath ?? '';
    let message = issue.message ?? 'is invalid';
    if (issue.keyword === 'additionalProperties') {
      const extra = issue.params?.['additionalProperties'];
      const names = Array.isArray(extra) ? extra.map(String) : [];
      for (const name of names) push(`${path}/${name}`, 'unknown field');
      if (names.length > 0) continue;
    }
    // TypeBox reports an unknown field twice: once as `additionalProperties: false` applied to it.
    if (issue.keyword === 'boolean' && issue.schemaPath?.endsWith('additionalProperties')) {
      message = 'unknown field';
    }
    if (issue.keyword === 'required') {
      const missing = issue.params?.['requiredProperties'] ?? issue.params?.['missingProperty'];
      const names = Array.isArray(missing) ? missing.map(String) : typeof missing === 'string' ? [missing] : [];
      for (const name of names) push(`${path}/${name}`, 'is required');
      if (names.length > 0) continue;
    }
    push(path, message);
  }
  return out;

  function push(path: string, message: string) {
    const full = `${prefix}${path}`;
    const key = `${full}\u0000${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ path: full, message });
  }
}

function base(status: number, kind: string, code: string, detail: string, request: FastifyRequest, title?: string): ProblemBody & Record<string, unknown> {
  return {
    type: `urn:snapvisor:problem:${kind}`,
    title: title ?? TITLE_BY_STATUS[status] ?? 'Error',
    status,
    detail,
    instance: request.url.split('?')[0] ?? request.url,
    code,
    requestId: String(request.id),
  };
}

function fromKind(kind: ErrorKind, code: string, message: string, extra: Record<string, unknown>, retryAfterMs: number | undefined, err: unknown, request: FastifyRequest): Problem {
  let status = STATUS_BY_KIND[kind] ?? 500;
  if (kind === 'invalid' && code === IDEMPOTENCY_KEY_REUSED) status = 422;
  const detail = status >= 500 ? (SERVER_DETAIL[kind] ?? 'internal error') : message;
  const body = base(status, kind, code, detail, request);
  const headers: Record<string, string> = {};
  if (status < 500) {
    for (const [key, value] of Object.entries(extra)) if (!RESERVED.has(key) && value !== undefined) body[key] = value;
  }
  if (kind === 'throttled') {
    const seconds = Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000));
    body.retryAfter = seconds;
    headers['retry-after'] = String(seconds);
  }
  return { body, headers, logError: status >= 500 ? err : undefined };
}

/** Pure mapping from anything thrown to a problem. Exported for tests. */
export function toProblem(err: unknown, request: FastifyRequest): Problem {
  if (err instanceof HttpProblem) {
    return { body: base(err.status, err.kind, err.code, err.message, request, err.title), headers: err.headers, logError: undefined };
  }
  // The engine's own errors and the providers' share one base: mapped by kind, never by class.
  if (err instanceof SnapvisorError && err.code === INSUFFICIENT_STORAGE) {
    // Snapvisor's own disk, not the target's quota: an operator must free space. Logged as a 5xx.
    const body = base(507, 'insufficient_storage', INSUFFICIENT_STORAGE, 'the disk holding the daemon\'s database is full: nothing was recorded; try again once an operator has freed space', request);
    return { body, headers: {}, logError: err };
  }
  if (err instanceof SnapvisorError && err.code === DATABASE_UNAVAILABLE) {
    // PostgreSQL restarting or failing over: the client retries (with its Idempotency-Key: the
    // write may have committed before the connection went).
    const body = base(503, 'unavailable', DATABASE_UNAVAILABLE, 'the database did not answer: retry the request (with the same Idempotency-Key) in a moment', request);
    body.retryAfter = 2;
    return { body, headers: { 'retry-after': '2' }, logError: err };
  }
  if (err instanceof SnapvisorError) return fromKind(err.kind, err.code, err.message, err.extra, err.retryAfterMs, err, request);
  const fe = err as Partial<FastifyError> & { validation?: ValidationIssue[]; validationContext?: string };
  if (fe && typeof fe === 'object' && Array.isArray(fe.validation)) {
    const errors = validationErrors(fe.validationContext, fe.validation);
    const detail = errors.map((e) => `${e.path} ${e.message}`).join('; ') || 'the request is invalid';
    const body = base(400, 'validation', 'SNAPVISOR_ERR_VALIDATION', detail, request);
    body.errors = errors;
    return { body, headers: {}, logError: undefined };
  }
  switch (fe?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
        return clientProblem(415, 'unsupported_media_type', 'SNAPVISOR_ERR_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json', request);
      }
      return clientProblem(400, 'malformed_body', 'SNAPVISOR_ERR_MALFORMED_BODY', 'the Content-Length header does not match the body', request);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return clientProblem(413, 'body_too_large', 'SNAPVISOR_ERR_BODY_TOO_LARGE', 'the request body is larger than this server accepts', request);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return clientProblem(400, 'malformed_body', 'SNAPVISOR_ERR_MALFORMED_BODY', 'the body is empty but Content-Type is application/json', request);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return clientProblem(400, 'malformed_body', 'SNAPVISOR_ERR_MALFORMED_BODY', 'the body is not valid JSON', request);
    case 'SNAPVISOR_ERR_MALFORMED_BODY':
      // Our JSON parser's own refusals (invalid UTF-8, __proto__ keys): their message is precise.
      return clientProblem(400, 'malformed_body', 'SNAPVISOR_ERR_MALFORMED_BODY', String(fe.message), request);
    case 'FST_ERR_BAD_URL':
      return clientProblem(400, 'bad_url', 'SNAPVISOR_ERR_BAD_URL', 'the path has an invalid percent-encoding', request);
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return clientProblem(414, 'uri_too_long', 'SNAPVISOR_ERR_URI_TOO_LONG', 'a path segment is longer than this server accepts', request);
    default:
      break;
  }
  // JSON.parse failures (Fastify passes the SyntaxError through with statusCode 400).
  if (err instanceof SyntaxError || (fe?.statusCode === 400 && fe.name === 'SyntaxError')) {
    return clientProblem(400, 'malformed_body', 'SNAPVISOR_ERR_MALFORMED_BODY', 'the body is not valid JSON', request);
  }
  const status = typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500;
  if (status < 500) {
    // Some other Fastify client error (e.g. a bad header): its message is about the request only.
    return clientProblem(status, 'bad_request', 'SNAPVISOR_ERR_BAD_REQUEST', typeof fe?.message === 'string' ? fe.message : 'bad request', request);
  }
  return { body: base(500, 'internal', 'SNAPVISOR_ERR_INTERNAL', 'internal error', request), headers: {}, logError: err };
}

function clientProblem(status: number, kind: string, code: string, detail: string, request: FastifyRequest): Problem {
  return { body: base(status, kind, code, detail, request), headers: {}, logError: undefined };
}

export function sendProblem(reply: FastifyReply, problem: Problem): FastifyReply {
  reply.request.problemCode = problem.body.code;
  return reply
    .code(problem.body.status)
    .headers(problem.headers)
    .header('content-type', PROBLEM_CONTENT_TYPE)
    // Serialised here: a route's response schema must not reshape (or strip) a problem body.
    .serializer((payload: unknown) => JSON.stringify(payload))
    .send(problem.body);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The problem code of a refused request, for the audit log. */
    problemCode?: string;
  }
}

interface Route {
  method: string;
  pattern: RegExp;
}

function routePattern(url: string): RegExp {
  const escaped = url
    .split('/')
    .map((part) => (part.startsWith(':') ? '[^/]+' : part === '*' ? '.*' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${escaped}/?$`);
}

async function problemPlugin(app: FastifyInstance) {
  const routes: Route[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) routes.push({ method, pattern: routePattern(route.url) });
  });

  app.setErrorHandler((err, request, reply) => {
    const problem = toProblem(err, request);
    if (problem.logError !== undefined) request.log.error({ err: problem.logError, reqId: request.id }, 'request failed');
    else request.log.info({ code: problem.body.code, status: problem.body.status }, 'request refused');
    return sendProblem(reply, problem);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? request.url;
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))];
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return sendProblem(reply, {
        body: base(405, 'method_not_allowed', 'SNAPVISOR_ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}`, request),
        headers: { allow: allowed.join(', ') },
        logError: undefined,
      });
    }
    return sendProblem(reply, {
      body: base(404, 'route_not_found', 'SNAPVISOR_ERR_ROUTE_NOT_FOUND', `no route ${request.method} ${path}`, request),
      headers: {},
      logError: undefined,
    });
  });
}

export default fp(problemPlugin, { name: 'snapvisor-problem', fastify: '5.x' });

/**
 * A problem written straight onto a socket, for the errors Node's HTTP parser answers before any
 * request exists (header fields too large, a malformed request line, a request that took longer
 * than `requestTimeout`): Fastify's `clientErrorHandler` calls this. `Connection: close` — the
 * parser's state is unknown, so the connection is not reused.
 */
export function rawProblemResponse(status: number, kind: string, code: string, detail: string, instance: string, requestId: string): string {
  const title = TITLE_BY_STATUS[status] ?? 'Error';
  const body = JSON.stringify({ type: `urn:snapvisor:problem:${kind}`, title, status, detail, instance, code, requestId });
  return (
    `HTTP/1.1 ${status} ${title}\r\n` +
    `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}
