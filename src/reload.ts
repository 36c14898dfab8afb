/**
 * Reload: SIGHUP and POST /v1/admin/reload re-read the configuration file through this one
 * function. Everything is loaded and checked first — the file (ConfigError), each new or changed
 * target's options (its adapter's factory), the tokens — and any problem refuses the whole reload
 * with the key and the reason, leaving the running configuration exactly as it was. Then targets
 * and tokens are swapped: unchanged targets keep their provider (no reconnection), jobs in flight
 * are kept (engine.replaceRegistry), a removed token is refused from its next request.
 *
 * Settings the running process cannot change (listen address, TLS, database, body limit, engine
 * timings, log level) are not applied: the reload goes on and reports them in `restartRequired`.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../providers/contract.ts';
import { reconfigureRegistry, TargetSetupError, type ProviderRegistry } from '../providers/index.ts';
import { compileTokens, type TokenSet } from './api/plugins/auth.ts';
import type { ReloadReport } from './api/routes/v1/admin-reload.ts';
import { ConfigError, loadConfigFile, type ConfigProblem, type ResolvedConfig, type ResolvedToken } from './config/load.ts';
import { SnapvisorError } from './domain/errors.ts';
import type { Engine } from './engine/engine.ts';

export interface ReloaderDeps {
  /** The configuration the daemon started with. */
  config: ResolvedConfig;
  registry: ProviderRegistry;
  engine: Engine;
  tokens: TokenSet;
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Told the registry in use after each applied reload (the daemon closes that one at shutdown). */
  onRegistry?: (registry: ProviderRegistry) => void;
}

export interface Reloader {
  /** Re-reads and applies the file; throws SnapvisorError `invalid` (problems in `extra.problems`) or `conflict`. */
  reload(by: { trigger: 'SIGHUP' | 'api'; principal?: string }): Promise<ReloadReport>;
}

/** Keys read once at start, with the part of the resolved configuration each one is. */
const RESTART_ONLY: ReadonlyArray<[string, (c: ResolvedConfig) => unknown]> = [
  ['/listen/host', (c) => c.listen.host],
  ['/listen/port', (c) => c.listen.port],
  ['/listen/tls', (c) => c.listen.tls],
  ['/listen/requestTimeoutSec', (c) => c.listen.requestTimeoutSec],
  ['/database', (c) => c.database],
  ['/bodyLimitBytes', (c) => c.bodyLimitBytes],
  ['/logLevel', (c) => c.logLevel],
  ['/retention', (c) => c.retention],
  ['/readiness', (c) => c.readiness],
  ['/limits', (c) => c.limits],
  ['/scheduler', (c) => c.scheduler],
  ['/webhooks', (c) => c.webhooks],
  ['/console', (c) => c.console],
  ...(['workerPollMs', 'jobTimeoutSec', 'maxAttempts', 'syncIntervalSec', 'shutdownGraceSec', 'jobLeaseSec'] as const).map(
    (k): [string, (c: ResolvedConfig) => unknown] => [`/engine/${k}`, (c) => c.engine[k]],
  ),
];

export function createReloader(deps: ReloaderDeps): Reloader {
  const log = deps.log.child({ component: 'reload' });
  let config = deps.config;
  let registry = deps.registry;
  /** One reload at a time: a second one waits, then reads the file again. */
  let queue: Promise<unknown> = Promise.resolve();

  const refuse = (source: string, problems: ConfigProblem[]) =>
    new SnapvisorError(
      'invalid',
      'SNAPVISOR_ERR_CONFIG_INVALID',
      `the configuration in ${source} is invalid; the running configuration is unchanged: ${problems.map((p) => `${p.path || '/'}: ${p.message}`).join('; ')}`,
      { extra: { source, problems } },
    );

  async function apply(by: { trigger: 'SIGHUP' | 'api'; principal?: string }): Promise<ReloadReport> {
    if (config.demo) {
      throw new SnapvisorError(
        'conflict',
        'SNAPVISOR_ERR_RELOAD_DEMO',
        'the daemon runs the bundled demo configuration (no configuration file), so there is nothing to re-read; start it with a configuration file to use reload',
      );
    }
    let next: ResolvedConfig;
    try {
      next = loadConfigFile(config.source, deps.env);
    } catch (err) {
      if (err instanceof ConfigError) throw refuse(config.source, err.problems);
      throw err;
    }
    try {
      compileTokens(next.tokens);
    } catch (err) {
      throw refuse(config.source, [{ path: '/tokens', message: (err as Error).message }]);
    }
    let change;
    try {
      change = await reconfigureRegistry(registry, next.targets, { log: deps.log });
    } catch (err) {
      if (err instanceof TargetSetupError) throw refuse(config.source, [{ path: `/targets/${err.index}`, message: err.message }]);
      throw err;
    }
    let cancelledJobs: string[];
    try {
      ({ cancelledJobs } = await deps.engine.replaceRegistry(change.registry, change.retired.map((r) => r.provider)));
    } catch (err) {
      await change.discard();
      throw err;
    }
    deps.tokens.replace(next.tokens);
    const report: ReloadReport = {
      source: config.source,
      targets: { added: change.added, changed: change.changed, removed: change.removed, unchanged: change.unchanged },
      tokens: { count: next.tokens.length, ...tokenChanges(config.tokens, next.tokens) },
      cancelledJobs,
      restartRequired: RESTART_ONLY.filter(([, get]) => !isDeepStrictEqual(get(config), get(next))).map(([key]) => key),
    };
    registry = change.registry;
    // Restart-only settings keep their running values, so the next reload compares against those.
    config = { ...config, tokens: next.tokens, targets: next.targets };
    deps.onRegistry?.(registry);
    log.info({ trigger: by.trigger, ...(by.principal ? { principal: by.principal } : {}), ...report }, 'configuration reloaded');
    if (report.restartRequired.length > 0) {
      log.warn({ keys: report.restartRequired }, 'changed settings take effect only after a restart; they keep their running values');
    }
    return report;
  }

  return {
    reload(by) {
      const run = queue.then(() => apply(by));
      queue = run.catch(() => {});
      return run.catch((err: unknown) => {
        const problems = err instanceof SnapvisorError ? err.extra['problems'] : undefined;
        log.warn(
          { trigger: by.trigger, ...(by.principal ? { principal: by.principal } : {}), ...(problems ? { problems } : {}), reason: (err as Error).message },
          'configuration reload refused; the running configuration is unchanged',
        );
        throw err;
      });
    },
  };
}

function tokenChanges(before: readonly ResolvedToken[], after: readonly ResolvedToken[]): { added: string[]; changed: string[]; removed: string[] } {
  const old = new Map(before.map((t) => [t.name, t]));
  const names = new Set(after.map((t) => t.name));
  return {
    added: after.filter((t) => !old.has(t.name)).map((t) => t.name),
    changed: after.filter((t) => old.has(t.name) && !isDeepStrictEqual(old.get(t.name), t)).map((t) => t.name),
    removed: before.filter((t) => !names.has(t.name)).map((t) => t.name),
  };
}
