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
import type { Registry } from 'prom-client';
import type { EngineApi } from '../engine/api.ts';
import type { LogLevel } from '../config/schema.ts';
import { REDACT } from '../log-redaction.ts';
import audit from './plugins/audit.ts';
import auth, { type TokenSet, type TokenSpec } from './plugins/auth.ts';
import httpMetrics from './plugins/http-metrics.ts';
import problem from './plugins/problem.ts';
import swagger from './plugins/swagger.ts';
import ops from './routes/ops.ts';
import adminReload, { type ReloadFn } from './routes/v1/admin-reload.ts';
import adminBackup from './routes/v1/admin-backup.ts';
import adminLog, { type LogLevelControl } from './routes/v1/admin-log.ts';
import events from './routes/v1/events.ts';
import jobs from './routes/v1/jobs.ts';
import snapshots from './routes/v1/snapshots.ts';
import targets from './routes/v1/targets.ts';
import vms from './routes/v1/vms.ts';
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
}

export const DEFAULT_BODY_LIMIT = 64 * 1024;

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
  return {
    level: () => log.level as LogLevel,
    setLevel(level) {
      const previous = log.level as LogLevel;
      log.level = level;
      return { previous, level };
    },
  };
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const settings: FastifyServerOptions = {
    ...loggerOptions(options.logger),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    genReqId: () => randomUUID(),
    logController: new OneLinePerRequest(),
    // Ids come from us, not from a client-supplied header that could forge log correlation.
    requestIdHeader: false,
    // Redirects and 404s for "/v1/vms/" would only confuse clients.
    routerOptions: { ignoreTrailingSlash: true },
  };
  // The HTTPS overload changes the server type parameter; the API is the same either way.
  const base = (options.https ? Fastify({ ...settings, https: options.https } as FastifyHttpsOptions<HttpsServer>) : Fastify(settings)) as unknown as FastifyInstance;
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Only JSON bodies: anything else is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
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
  await app.register(
    async (v1) => {
      await v1.register(targets, { engine });
      await v1.register(vms, { engine, listingCacheBytes: options.listingCacheBytes ?? 32 * 1024 * 1024 });
      await v1.register(snapshots, { engine });
      await v1.register(jobs, { engine });
      await v1.register(events, { engine, heartbeatMs: options.sseHeartbeatMs ?? 15_000, demo });
      if (options.reload) await v1.register(adminReload, { reload: options.reload });
      await v1.register(adminBackup, { engine });
      await v1.register(adminLog, { control: options.logLevel ?? ownLogLevel(app.log) });
    },
    { prefix: '/v1' },
  );
  return app as unknown as FastifyInstance;
}
