/**
 * What the engine's modules share: the store, the registry joined to the store's target rows,
 * the clock, events, metrics and the instrumented provider call.
 */
import { randomUUID } from 'node:crypto';
import type { CallContext, Logger, SnapshotProvider } from '../../providers/contract.ts';
import type { ProviderRegistry, TargetSpec } from '../../providers/index.ts';
import { SnapvisorError, notFound } from '../domain/errors.ts';
import type { Target } from '../domain/types.ts';
import type { Store } from '../store/index.ts';
import type { EventBus } from './events.ts';
import { instrumented, type ProviderOperation } from './instrument.ts';
import type { EngineMetrics } from './metrics.ts';

export interface EngineSettings {
  workerPollMs: number;
  jobTimeoutMs: number;
  maxAttempts: number;
  backoff: { initialMs: number; maxMs: number };
  syncIntervalMs: number;
  /** How often a create job asks whether a snapshot that is not ready yet (a cloud copy) is ready. */
  readinessPollMs: number;
}

export const DEFAULT_SETTINGS: EngineSettings = {
  workerPollMs: 250,
  jobTimeoutMs: 30 * 60_000,
  maxAttempts: 5,
  backoff: { initialMs: 1_000, maxMs: 5 * 60_000 },
  syncIntervalMs: 60_000,
  readinessPollMs: 5_000,
};

export interface BoundTarget {
  row: Target;
  spec: TargetSpec;
  provider: SnapshotProvider;
}

export interface Core {
  store: Store;
  registry: ProviderRegistry;
  log: Logger;
  settings: EngineSettings;
  now(): Date;
  iso(): string;
  newId(): string;
  events: EventBus;
  metrics: EngineMetrics;
  /** Fires when the engine stops: background work (sync) gives up. */
  lifecycle: AbortController;
  /** Configured targets joined to their store rows (rows created on first use). */
  targets(): Promise<Map<string, BoundTarget>>;
  targetById(id: string): Promise<BoundTarget>;
  targetByName(name: string): Promise<BoundTarget>;
  call<T>(provider: SnapshotProvider, op: ProviderOperation, fn: () => Promise<T>): Promise<T>;
  /** A CallContext for background calls (sync, recovery): no progress, engine-lifetime signal + timeout. */
  backgroundContext(log: Logger, timeoutMs?: number): CallContext;
}

export function createCore(deps: {
  store: Store;
  registry: ProviderRegistry;
  log: Logger;
  settings: EngineSettings;
  now: () => Date;
  events: EventBus;
  metrics: EngineMetrics;
}): Core {
  let bound: Promise<Map<string, BoundTarget>> | null = null;
  const lifecycle = new AbortController();
  const core: Core = {
    ...deps,
    iso: () => deps.now().toISOString(),
    newId: () => randomUUID(),
    lifecycle,
    targets() {
      bound ??= (async () => {
        const map = new Map<string, BoundTarget>();
        for (const { spec, provider } of deps.registry.list()) {
          const row = await deps.store.targets.ensure({ name: spec.name, kind: spec.kind, demo: spec.demo });
          map.set(spec.name, { row, spec, provider });
        }
        return map;
      })();
      bound.catch(() => (bound = null));
      return bound;
    },
    async targetById(id) {
      for (const t of (await core.targets()).values()) if (t.row.id === id) return t;
      // A row from an earlier configuration: its VMs stay readable, but nothing can run there.
      throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_TARGET_NOT_CONFIGURED', `target of this object is no longer configured`);
    },
    async targetByName(name) {
      const t = (await core.targets()).get(name);
      if (!t) throw notFound('target', name);
      return t;
    },
    call: (provider, op, fn) => instrumented(deps.metrics, provider, op, fn),
    backgroundContext(log, timeoutMs = Math.min(deps.settings.jobTimeoutMs, 5 * 60_000)) {
      return { signal: AbortSignal.any([lifecycle.signal, AbortSignal.timeout(timeoutMs)]), progress: () => {}, log };
    },
  };
  return core;
}

/** Fresh row of a target's health etc., for views. */
export async function refreshRow(core: Core, t: BoundTarget): Promise<BoundTarget> {
  const row = await core.store.targets.getById(t.row.id);
  return row ? { ...t, row } : t;
}
