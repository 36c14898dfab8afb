/**
 * The daemon: config → store → provider registry → engine → API, and a bounded shutdown that
 * lets running jobs finish within the grace period and leaves the others to the next start's
 * recovery (src/shutdown.ts). Output goes through src/logging.ts: a failing stdout never stops it.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger as PinoLogger } from 'pino';
import { createRegistry, type ProviderRegistry } from '../providers/index.ts';
import { buildApp } from './api/app.ts';
import { createTokenSet } from './api/plugins/auth.ts';
import { ConfigError, findConfigFile, loadConfigFile, type ResolvedConfig } from './config/load.ts';
import { startDemo } from './demo.ts';
import { createEngine, DEFAULT_SETTINGS } from './engine/engine.ts';
import { createOutput } from './logging.ts';
import { createReloader } from './reload.ts';
import { createShutdown } from './shutdown.ts';
import { openStore } from './store/index.ts';
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

  mkdirSync(path.dirname(config.database), { recursive: true });
  const store = openStore(config.database, { log });
  let registry: ProviderRegistry;
  try {
    registry = await createRegistry(config.targets, { log });
  } catch (err) {
    // Adapter option errors are configuration errors: say which target and why, then stop.
    process.stderr.write(`snapvisor: invalid configuration in ${config.source}: ${(err as Error).message}\n`);
    store.close();
    process.exit(2);
  }
  const engine = createEngine({
    store,
    registry,
    log,
    settings: {
      workerPollMs: config.engine.workerPollMs,
      jobTimeoutMs: config.engine.jobTimeoutSec * 1000,
      maxAttempts: config.engine.maxAttempts,
      syncIntervalMs: config.engine.syncIntervalSec * 1000,
      retention: { ...DEFAULT_SETTINGS.retention, auditDays: config.retention.auditDays, jobsDays: config.retention.jobsDays },
      readiness: config.readiness,
    },
  });
  await engine.start({ waitForSync: false });

  const tokens = createTokenSet(config.tokens);
  const reloader = createReloader({ config, registry, engine, tokens, env, log, onRegistry: (next) => (registry = next) });
  const app = await buildApp({
    engine,
    auth: { tokens },
    reload: (principal) => reloader.reload({ trigger: 'api', principal }),
    logger: log,
    bodyLimit: config.bodyLimitBytes,
    demo: config.demo,
    version: VERSION,
    logLevel: output,
    metrics: [output.metrics],
    ...(config.listen.tls ? { https: config.listen.tls } : {}),
  });
  const address = await app.listen({ host: config.listen.host, port: config.listen.port });
  log.info({ address }, 'listening');
  // Refused with a log line naming the key when the new file is invalid; the old configuration stays.
  onSighup = () => void reloader.reload({ trigger: 'SIGHUP' }).catch(() => {});
  if (demoToken) {
    const shown = demoToken.generated ? demoToken.token : '(the value of SNAPVISOR_TOKEN)';
    output.print(
      `\n  Snapvisor DEMO is running at ${address} with a simulated VirtualBox host.\n` +
        `  Admin token: ${shown}\n` +
        `  Try:  curl -H "Authorization: Bearer ${demoToken.generated ? demoToken.token : '$SNAPVISOR_TOKEN'}" ${address}/v1/vms\n` +
        `  API docs: ${address}/docs\n\n`,
    );
  }

  const shutdown = createShutdown({
    graceMs: config.engine.shutdownGraceSec * 1000,
    log,
    exit: (code) => process.exit(code),
    steps: {
      closeApi: () => app.close(),
      dropConnections: () => app.server.closeAllConnections(),
      stopEngine: (graceMs) => engine.stop({ graceMs }),
      closeProviders: () => registry.close(),
      closeStore: () => store.close(),
    },
  });
  process.on('SIGTERM', () => shutdown.onSignal('SIGTERM'));
  process.on('SIGINT', () => shutdown.onSignal('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`snapvisor: fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
