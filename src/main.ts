/**
 * The daemon: config → store → provider registry → engine → API, and a bounded shutdown that
 * lets running jobs finish within the grace period and leaves the others to the next start's
 * recovery (src/shutdown.ts). Output goes through src/logging.ts: a failing stdout never stops it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { createRegistry, type ProviderRegistry } from '../providers/index.ts';
import { buildApp } from './api/app.ts';
import { createTokenSet } from './api/plugins/auth.ts';
import { builtConsoleDir } from './api/plugins/web-console.ts';
import { ConfigError, findConfigFile, loadConfigFile, type ResolvedConfig } from './config/load.ts';
import { startDemo } from './demo.ts';
import { createEngine, DEFAULT_SETTINGS } from './engine/engine.ts';
import { createOutput } from './logging.ts';
import { createReloader } from './reload.ts';
import { createShutdown } from './shutdown.ts';
import { connectStore, DatabaseDamagedError, isPostgresUrl, StoreVersionError, type Store } from './store/index.ts';
import { acquireDatabaseLock, DatabaseLockedError, describeHolder, isMemoryDatabase, LockFileError, type DatabaseLock } from './store/lock.ts';
import { LOG_LEVELS, type LogLevel } from './config/schema.ts';
import { VERSION } from './version.ts';

async function main(): Promise<void> {
  const env = process.env;
  const cwd = process.cwd();
  const bootLevel = env.SNAPVISOR_LOG_LEVEL ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(bootLevel)) {
    process.stderr.write(`snapvisor: SNAPVISOR_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}\n`);
    process.exit(2);
  }
  const output = await createOutput({ level: bootLevel as LogLevel, env });
  const bootLog = output.log;
  // SIGHUP reloads the configuration (src/reload.ts); until that can run, it must not kill the process.
  let onSighup = () => bootLog.warn('SIGHUP during start-up ignored; send it again once the daemon listens');
  process.on('SIGHUP', () => onSighup());

  let config: ResolvedConfig;
  let demoToken: { token: string; generated: boolean } | undefined;
  try {
    const file = findConfigFile(env, cwd);
    if (file) {
      config = loadConfigFile(file, env);
    } else {
      const demo = await startDemo({ env, cwd });
      config = demo.config;
      demoToken = { token: demo.token, generated: demo.generated };
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`snapvisor: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }

  output.setLevel(config.logLevel);
  const log: PinoLogger = bootLog.child({ ...(config.demo ? { demo: true } : {}) });
  log.info({ source: config.source, version: VERSION, targets: config.targets.map((t) => `${t.name}(${t.kind})`) }, config.demo ? 'starting in DEMO mode (bundled VirtualBox simulator)' : 'starting');

  // Start-up refusals (exit 2, one line on stderr): what holds the database lock is released first.
  let lock: DatabaseLock | undefined;
  let store: Store | undefined;
  const refuse: (message: string) => never = (message) => {
    void store?.close();
    lock?.release();
    process.stderr.write(`snapvisor: ${message}\n`);
    process.exit(2);
  };

  // PostgreSQL is shared by design (several replicas): no directory and no file lock.
  if (!isMemoryDatabase(config.database) && !isPostgresUrl(config.database)) {
    const dir = path.dirname(path.resolve(config.database));
    if (!existsSync(dir)) {
      // Only the default data directory (./data, what the demo and a config without `database:` use) is made here:
      // a configured path whose directory is missing is a typo or an unmounted volume, not a place to start afresh.
      if (config.databaseFrom === 'default') mkdirSync(dir, { recursive: true });
      else refuse(`the database directory ${dir} does not exist (database ${config.database}, from ${config.databaseFrom === 'env' ? 'SNAPVISOR_DB' : `${config.source} /database`}); create it or correct the path`);
    }
    // One daemon per database, before anything reads or requeues a job (src/store/lock.ts).
    try {
      lock = acquireDatabaseLock(config.database, { command: 'daemon' });
    } catch (err) {
      if (err instanceof DatabaseLockedError) {
        refuse(`database ${err.database} is in use by ${describeHolder(err.holder)}: only one daemon may use a database (lock ${err.lockFile}); not started`);
      }
      if (err instanceof LockFileError) refuse(err.message);
      throw err;
    }
    if (lock.staleHolder) {
      const h = lock.staleHolder;
      log.warn({ lock: lock.file, stalePid: h.pid, staleHost: h.hostname, staleSince: h.startedAt }, 'database lock left by a process that is gone: taken over');
    }
  }

  try {
    store = await connectStore(config.database, { log });
  } catch (err) {
    if (err instanceof DatabaseDamagedError || err instanceof StoreVersionError) refuse(err.message.replace(/^\[snapvisor\] \[store\] /, ''));
    throw err;
  }
  const openedStore: Store = store!;
  let registry: ProviderRegistry;
  try {
    registry = await createRegistry(config.targets, { log });
  } catch (err) {
    // Adapter option errors are configuration errors: say which target and why, then stop.
    refuse(`invalid configuration in ${config.source}: ${(err as Error).message}`);
  }
  const engine = createEngine({
    store: openedStore,
    registry,
    log,
    settings: {
      workerPollMs: config.engine.workerPollMs,
      jobTimeoutMs: config.engine.jobTimeoutSec * 1000,
      maxAttempts: config.engine.maxAttempts,
      syncIntervalMs: config.engine.syncIntervalSec * 1000,
      retention: { ...DEFAULT_SETTINGS.retention, auditDays: config.retention.auditDays, jobsDays: config.retention.jobsDays },
      readiness: config.readiness,
      maxQueuedPerPrincipal: config.limits.queuedPerToken,
      scheduler: { enabled: config.scheduler.enabled, jitterMs: config.scheduler.jitterSec * 1000 },
      jobLeaseMs: config.engine.jobLeaseSec * 1000,
      jobHeartbeatMs: Math.floor((config.engine.jobLeaseSec * 1000) / 3),
    },
    webhooks: config.webhooks,
  });

  const tokens = createTokenSet(config.tokens);
  const consoleDir = config.console.enabled ? builtConsoleDir() : null;
  if (config.console.enabled && consoleDir === null) log.warn('the web console is not built (run `npm run build:ui`, or start with `npm start`); /ui answers 503');
  const reloader = createReloader({ config, registry, engine, tokens, env, log, onRegistry: (next) => (registry = next) });
  const app = await buildApp({
    engine,
    auth: { tokens },
    reload: (principal) => reloader.reload({ trigger: 'api', principal }),
    logger: log,
    bodyLimit: config.bodyLimitBytes,
    requestTimeoutMs: config.listen.requestTimeoutSec * 1000,
    demo: config.demo,
    version: VERSION,
    logLevel: output,
    metrics: [output.metrics],
    ...(config.console.enabled ? { console: { dir: consoleDir } } : {}),
    ...(config.listen.tls ? { https: config.listen.tls } : {}),
  });
  // The port first, then recovery and the worker: an instance that cannot listen stops before it
  // touches a job. /readyz answers 503 until the engine has started.
  let address: string;
  try {
    address = await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      await registry.close().catch(() => {});
      refuse(`cannot listen on ${config.listen.host}:${config.listen.port}: ${code === 'EADDRINUSE' ? 'the address is in use' : (err as Error).message}`);
    }
    throw err;
  }
  log.info({ address }, 'listening');
  // The banner as soon as the API answers: the token works from here on (jobs queue until the
  // engine has started).
  if (demoToken) {
    const shown = demoToken.generated ? demoToken.token : '(the value of SNAPVISOR_TOKEN)';
    output.print(
      `\n  Snapvisor DEMO is running at ${address} with a simulated VirtualBox host.\n` +
        `  Admin token: ${shown}\n` +
        `  Try:  curl -H "Authorization: Bearer ${demoToken.generated ? demoToken.token : '$SNAPVISOR_TOKEN'}" ${address}/v1/vms\n` +
        (config.console.enabled ? `  Web console: ${address}/ui/ (sign in with the admin token)\n` : '') +
        `  API docs: ${address}/docs\n\n`,
    );
  }
  await engine.start({ waitForSync: false });
  // Refused with a log line naming the key when the new file is invalid; the old configuration stays.
  onSighup = () => void reloader.reload({ trigger: 'SIGHUP' }).catch(() => {});

  const shutdown = createShutdown({
    graceMs: config.engine.shutdownGraceSec * 1000,
    log,
    exit: (code) => process.exit(code),
    steps: {
      closeApi: () => app.close(),
      dropConnections: () => app.server.closeAllConnections(),
      stopEngine: (graceMs) => engine.stop({ graceMs }),
      closeProviders: () => registry.close(),
      closeStore: () => {
        // The process exits right after this returns: SQLite's close runs synchronously inside close()
        // (before its first await), so the lock is released after it and before the exit — never
        // after an await the exit would cut off. PostgreSQL's pool ends with the process.
        const closed = openedStore.close();
        lock?.release();
        return closed;
      },
    },
  });
  process.on('SIGTERM', () => shutdown.onSignal('SIGTERM'));
  process.on('SIGINT', () => shutdown.onSignal('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`snapvisor: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
