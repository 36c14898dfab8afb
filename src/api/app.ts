/**
 * The HTTP API as a Fastify instance, ready for `inject` or for main.ts to `listen`. It talks to
 * the engine only (EngineApi), never to the store or a provider.
 *
 * Validation: TypeBox's compiler, which checks bodies as sent — no type coercion, no silent
 * removal of unknown fields (they are a 400) — and converts query strings and path params
 * ("10" → 10, "true" → true) before checking them.
 */
import { randomUUID } from 'node:crypto';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpsOptions, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import type { EngineApi } from '../engine/api.ts';
import type { LogLevel } from '../config/schema.ts';
import { REDACT } from '../log-redaction.ts';
import audit from './plugins/audit.ts';
import auth, { type TokenSet, type TokenSpec } from './plugins/auth.ts';
import httpMetrics from './plugins/http-metrics.ts';
import { parseJsonBody } from './json-body.ts';
import problem, { rawProblemResponse, sendProblem, toProblem } from './plugins/problem.ts';
import swagger from './plugins/swagger.ts';
import ops from './routes/ops.ts';
import adminReload, { type ReloadFn } from './routes/v1/admin-reload.ts';
import adminBackup from './routes/v1/admin-backup.ts';
import adminLog, { type LogLevelControl, type ReportedLogLevel } from './routes/v1/admin-log.ts';
import drift from './routes/v1/drift.ts';
import events from './routes/v1/events.ts';
import jobs from './routes/v1/jobs.ts';
import snapshotGroups from './routes/v1/snapshot-groups.ts';
import policies from './routes/v1/policies.ts';
import snapshots from './routes/v1/snapshots.ts';
import targets from './routes/v1/targets.ts';
import vms from './routes/v1/vms.ts';
import whoami from './routes/v1/whoami.ts';
import webConsole from './plugins/web-console.ts';
import { strictWait } from './routes/v1/shared.ts';
import { Problem } from './schemas/common.ts';
import { SnapshotTreeNode } from './schemas/snapshots.ts';

export interface AppOptions {
  engine: EngineApi;
  /** The tokens, or a TokenSet a reload can replace while the daemon runs. */
  auth: { tokens: TokenSpec[] | TokenSet };
  /** A pino logger, `true` for a default one, `false`/absent for none. */
  logger?: FastifyBaseLogger | boolean;
  /** Largest accepted request body in bytes; default 64 KiB. */
  bodyLimit?: number;
  /** Longest a request may take to arrive, headers and body (ms); then 408 and the connection is closed. Default 30 s. */
  requestTimeoutMs?: number;
  /** Demo configuration: every response carries `X-Snapvisor-Demo: true`. */
  demo?: boolean;
  version: string;
  /** Interval of SSE heartbeat comments; default 15 s. */
  sseHeartbeatMs?: number;
  /** Memory budget for cached snapshot listings (bytes); 0 turns the cache off. Default 32 MiB. */
  listingCacheBytes?: number;
  /** Re-reads the configuration (the daemon's reload); absent, there is no POST /v1/admin/reload. */
  reload?: ReloadFn;
  /** Serve HTTPS with this PEM certificate and key (resolved secrets, never logged). */
  https?: { cert: string; key: string };
  /** What PUT /v1/admin/log-level changes; default the level of this app's own logger. */
  logLevel?: LogLevelControl;
  /** More metrics for /metrics (the daemon's output errors). */
  metrics?: Registry[];
  /** Serve the web console at /ui from this build (null: not built, /ui says so); absent: no console routes. */
  console?: { dir: string | null };
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** The request target from a request line the parser refused, when it is short enough to show. */
function rawInstance(packet: Buffer | undefined): string {
  const line = packet?.subarray(0, 2048).toString('latin1').split('\r\n')[0] ?? '';
  const target = / (\/[\x21-\x7e]*) HTTP\/1\.[01]$/.exec(line)?.[1];
  return target === undefined ? '/' : (target.split('?')[0] ?? '/');
}

/**
 * Errors Node's HTTP parser meets before Fastify has a request (header fields too large, a request
 * line it cannot parse, `requestTimeout` passed): answered as problem+json on the raw socket, as
 * every other error is, then the connection is closed.
 */
function clientErrorHandler(this: FastifyInstance, error: Error, socket: Socket): void {
  // Node's parser errors carry the bytes it read (Fastify's type describes them as JSON).
  const err = error as NodeJS.ErrnoException & { rawPacket?: Buffer };
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const id = randomUUID();
  let response: string;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    response = rawProblemResponse(408, 'request_timeout', 'SNAPVISOR_ERR_REQUEST_TIMEOUT', 'the request did not arrive in full within the time this server allows', '/', id);
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    // Node counts the request line with the headers (16 KiB by default): when the request line
    // alone is most of it (or all of what was read), the URI is what is too long.
    const packet = err.rawPacket;
    const startsWithRequestLine = packet !== undefined && /^[A-Z]+ \S/.test(packet.subarray(0, 16).toString('latin1'));
    const lineEnd = packet?.indexOf('\r\n') ?? -1;
    response = startsWithRequestLine && (lineEnd === -1 || lineEnd > 8192)
      ? rawProblemResponse(414, 'uri_too_long', 'SNAPVISOR_ERR_URI_TOO_LONG', 'the request URI is longer than this server accepts', '/', id)
      : rawProblemResponse(431, 'header_fields_too_large', 'SNAPVISOR_ERR_HEADERS_TOO_LARGE', 'the request header fields are larger than this server accepts', rawInstance(err.rawPacket), id);
  } else {
    response = rawProblemResponse(400, 'bad_request', 'SNAPVISOR_ERR_BAD_REQUEST', 'the request is not valid HTTP/1.1', rawInstance(err.rawPacket), id);
  }
  this.log.info({ code: err.code, reqId: id }, 'client error');
  if (socket.writable) socket.end(response);
  socket.destroySoon();
}

function loggerOptions(logger: AppOptions['logger']): Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> {
  if (logger === undefined || logger === false) return { logger: false };
  if (logger === true) return { logger: { level: 'info', redact: REDACT } };
  return { loggerInstance: logger.child({}, { redact: REDACT }) };
}

/** At info, one line per request ('request completed', which names the request); 'incoming request' at debug. */
class OneLinePerRequest extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }
}

function ownLogLevel(log: FastifyBaseLogger): LogLevelControl {
  // Without a logger Fastify's stand-in has no level at all (undefined broke the answer's schema: a 500).
  const current = (): ReportedLogLevel => (log.level as LogLevel | undefined) ?? 'silent';
  return {
    level: current,
    setLevel(level) {
      const previous = current();
      log.level = level;
      return { previous, level };
    },
  };
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node checks for timed-out requests every connectionsCheckingInterval (30 s by default): checked
  // more often, a request is cut off close to its timeout rather than up to 30 s after it.
  // requestTimeout goes to Node's constructor too: set only afterwards (as Fastify does), Node never
  // cuts off a request whose headers have arrived but whose body trickles in.
  const serverOptions = { requestTimeout, connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(requestTimeout / 4))) };
  // `http`: the options of Node's http.createServer (Fastify's HTTP overload).
  const settings: FastifyServerOptions & { http: typeof serverOptions } = {
    ...loggerOptions(options.logger),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    requestTimeout,
    http: serverOptions,
    clientErrorHandler,
    // Errors the router meets before a route is chosen (bad percent-encoding, an over-long path
    // parameter): problem+json like everything else. onRequest hooks do not run, so the id header is set here.
    frameworkErrors: (err, request, reply) => {
      reply.header('x-request-id', String(request.id));
      if (options.demo === true) reply.header('x-snapvisor-demo', 'true');
      request.log.info({ code: err.code }, 'request refused');
      return sendProblem(reply, toProblem(err, request));
    },
    genReqId: () => randomUUID(),
    logController: new OneLinePerRequest(),
    // Ids come from us, not from a client-supplied header that could forge log correlation.
    requestIdHeader: false,
    // Redirects and 404s for "/v1/vms/" would only confuse clients.
    routerOptions: { ignoreTrailingSlash: true },
  };
  // The HTTPS overload changes the server type parameter; the API is the same either way.
  const base = (options.https ? Fastify({ ...settings, https: { ...serverOptions, ...options.https } } as FastifyHttpsOptions<HttpsServer>) : Fastify(settings)) as unknown as FastifyInstance;
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Only JSON bodies: anything else is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);
  app.addSchema(Problem);
  app.addSchema(SnapshotTreeNode);

  const demo = options.demo === true;
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', String(request.id));
    if (demo) reply.header('x-snapvisor-demo', 'true');
  });

  // Order matters: the problem plugin records routes (for 405) as they are added.
  await app.register(problem);
  await app.register(httpMetrics);
  await app.register(auth, { tokens: options.auth.tokens });
  await app.register(audit, { engine: options.engine });
  await app.register(swagger, { version: options.version });

  const { engine } = options;
  await app.register(ops, { engine, metrics: options.metrics ?? [] });
  if (options.console) await app.register(webConsole, options.console);
  await app.register(
    async (v1) => {
      v1.addHook('preValidation', strictWait);
      await v1.register(targets, { engine });
      await v1.register(vms, { engine, listingCacheBytes: options.listingCacheBytes ?? 32 * 1024 * 1024 });
      await v1.register(snapshots, { engine });
      await v1.register(jobs, { engine });
      await v1.register(policies, { engine });
      await v1.register(events, { engine, heartbeatMs: options.sseHeartbeatMs ?? 15_000, demo });
      if (options.reload) await v1.register(adminReload, { reload: options.reload });
      await v1.register(adminBackup, { engine });
      await v1.register(adminLog, { control: options.logLevel ?? ownLogLevel(app.log) });
      await v1.register(snapshotGroups, { engine });
      await v1.register(drift, { engine });
      await v1.register(whoami);
    },
    { prefix: '/v1' },
  );
  return app as unknown as FastifyInstance;
}
