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
  /** Background pruning of the audit log and of finished jobs (engine/retention.ts). */
  retention: RetentionSettings;
  /**
   * When /readyz is 200 (besides a working store and a started engine): `all` once every target's
   * latest inventory pass read it; `any` once at least one target's did. No targets: ready.
   */
  readiness: 'all' | 'any';
  /** Most queued jobs one principal (token) may have; a submission beyond it is refused (429). */
  maxQueuedPerPrincipal: number;
  /** Policy runs at their cron slots (engine/scheduler.ts); off: policies run only when asked. */
  scheduler: { enabled: boolean; jitterMs: number };
  /**
   * How long a claimed job's lease lasts unless renewed: on a database shared by several replicas
   * (PostgreSQL), a running job whose lease ran out is recovered by another replica (its own died).
   */
  jobLeaseMs: number;
  /** How often this replica renews the leases of the jobs it holds (at least three times per jobLeaseMs). */
  jobHeartbeatMs: number;
}

export interface RetentionSettings {
  /** Audit entries older than this many days are deleted. */
  auditDays: number;
  /** Finished jobs (succeeded, failed, cancelled) that ended more than this many days ago are deleted. */
  jobsDays: number;
  /** First pass this long after start; 0 turns background pruning off. */
  firstDelayMs: number;
  /** Then every intervalMs. */
  intervalMs: number;
  /** Rows deleted per statement (transaction); the event loop is yielded between batches. */
  batchSize: number;
}

export const DEFAULT_SETTINGS: EngineSettings = {
  workerPollMs: 250,
  jobTimeoutMs: 30 * 60_000,
  maxAttempts: 5,
  backoff: { initialMs: 1_000, maxMs: 5 * 60_000 },
  syncIntervalMs: 60_000,
  readinessPollMs: 5_000,
  retention: { auditDays: 90, jobsDays: 90, firstDelayMs: 60_000, intervalMs: 60 * 60_000, batchSize: 500 },
  readiness: 'all',
  maxQueuedPerPrincipal: 1000,
  scheduler: { enabled: true, jitterMs: 30_000 },
  jobLeaseMs: 30_000,
  jobHeartbeatMs: 10_000,
};

export interface BoundTarget {
  row: Target;
  spec: TargetSpec;
  provider: SnapshotProvider;
}

/** A target held for a job or a sync: its provider is not closed (after a reload retired it) before release. */
export interface TargetLease {
  target: BoundTarget;
  release(): void;
}

export interface Core {
  store: Store;
  /** The registry in use; a reload replaces it (replaceRegistry). */
  readonly registry: ProviderRegistry;
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
  /** The configured target of a store row, known once targets() has run; undefined when not configured. */
  boundById(id: string): BoundTarget | undefined;
  /** targetById, held until release: a job's or a sync's provider stays open while it works. */
  leaseById(id: string): Promise<TargetLease>;
  /** The target by name, held until release; null when it is not configured (any more). */
  leaseByName(name: string): Promise<TargetLease | null>;
  /**
   * Switches to a new registry (a reload): later lookups and claims see it at once; each retired
   * provider is closed as soon as no lease holds it. Returns the new targets.
   */
  replaceRegistry(next: ProviderRegistry, retired: readonly SnapshotProvider[]): Promise<Map<string, BoundTarget>>;
  /** Why a target row is no longer configured when a reload removed it, else null. */
  removedByReload(id: string): string | null;
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
  let registry = deps.registry;
  let bound: Promise<Map<string, BoundTarget>> | null = null;
  /** The map `bound` resolved to; read synchronously so a lease never takes a provider already retired. */
  let current: Map<string, BoundTarget> | null = null;
  /** Row id → why: targets a reload removed (a re-added one is taken out). */
  const removed = new Map<string, string>();
  const users = new Map<SnapshotProvider, number>();
  const retiring = new Set<SnapshotProvider>();
  const lifecycle = new AbortController();

  const bind = async (reg: ProviderRegistry) => {
    const map = new Map<string, BoundTarget>();
    for (const { spec, provider } of reg.list()) {
      const row = await deps.store.targets.ensure({ name: spec.name, kind: spec.kind, demo: spec.demo });
      map.set(spec.name, { row, spec, provider });
    }
    return map;
  };
  const closeRetired = (provider: SnapshotProvider) => {
    retiring.delete(provider);
    deps.log.info({ target: provider.target }, 'provider of a reconfigured or removed target closed');
    provider.close().catch((err: unknown) => deps.log.warn({ target: provider.target, err: String(err) }, 'closing a retired provider failed'));
  };
  const hold = (target: BoundTarget): TargetLease => {
    const { provider } = target;
    users.set(provider, (users.get(provider) ?? 0) + 1);
    let released = false;
    return {
      target,
      release() {
        if (released) return;
        released = true;
        const left = (users.get(provider) ?? 1) - 1;
        if (left > 0) users.set(provider, left);
        else {
          users.delete(provider);
          if (retiring.has(provider)) closeRetired(provider);
        }
      },
    };
  };
  const notConfigured = () =>
    // A row from an earlier configuration: its VMs stay readable, but nothing can run there.
    new SnapvisorError('conflict', 'SNAPVISOR_ERR_TARGET_NOT_CONFIGURED', `target of this object is no longer configured`);
  const findById = (map: Map<string, BoundTarget>, id: string) => {
    for (const t of map.values()) if (t.row.id === id) return t;
    return undefined;
  };

  const core: Core = {
    ...deps,
    get registry() {
      return registry;
    },
    iso: () => deps.now().toISOString(),
    newId: () => randomUUID(),
    lifecycle,
    targets() {
      if (!bound) {
        const building = bind(registry);
        bound = building;
        building.then(
          (map) => {
            if (bound === building) current = map;
          },
          () => {
            if (bound === building) bound = null;
          },
        );
      }
      return bound;
    },
    async targetById(id) {
      const t = findById(await core.targets(), id);
      if (!t) throw notConfigured();
      return t;
    },
    async targetByName(name) {
      const t = (await core.targets()).get(name);
      if (!t) throw notFound('target', name);
      return t;
    },
    boundById: (id) => (current ? findById(current, id) : undefined),
    async leaseById(id) {
      await core.targets();
      // `current`, not the awaited map: a reload may have replaced it while we waited.
      const t = core.boundById(id);
      if (!t) throw notConfigured();
      return hold(t);
    },
    async leaseByName(name) {
      await core.targets();
      const t = current?.get(name);
      return t ? hold(t) : null;
    },
    async replaceRegistry(next, retired) {
      const map = await bind(next);
      const before = current ?? (await core.targets());
      // From here on, synchronously: no lookup sees a mix of the two.
      registry = next;
      bound = Promise.resolve(map);
      current = map;
      const kept = new Set([...map.values()].map((t) => t.row.id));
      for (const t of before.values()) {
        if (!kept.has(t.row.id)) removed.set(t.row.id, `target '${t.spec.name}' was removed from the configuration by a reload`);
      }
      for (const id of kept) removed.delete(id);
      for (const provider of retired) {
        if (users.has(provider)) retiring.add(provider);
        else closeRetired(provider);
      }
      return map;
    },
    removedByReload: (id) => removed.get(id) ?? null,
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
