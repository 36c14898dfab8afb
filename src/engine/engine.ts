/**
 * The engine: wires store, registry, worker, reconciler, events and metrics behind EngineApi.
 * Read methods answer from the store (fast, no hypervisor call); mutations become jobs.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Logger, SnapshotProvider } from '../../providers/contract.ts';
import type { ProviderRegistry } from '../../providers/index.ts';
import { SnapvisorError, notFound } from '../domain/errors.ts';
import { buildForest } from '../domain/tree.ts';
import { isFinal, type Job } from '../domain/types.ts';
import { InvalidCursorError, type Store, type StoreWriteFailure, type VmWithStats } from '../store/index.ts';
import type { EngineApi, Page, ReadyReport, SnapshotTree, TargetView, VmView } from './api.ts';
import { createCore, DEFAULT_SETTINGS, refreshRow, type BoundTarget, type Core, type EngineSettings, type TargetLease } from './core.ts';
import { createDriftMonitor } from './drift.ts';
import { createClusterEvents } from './cluster-events.ts';
import { createEventBus } from './events.ts';
import { createLeaderDuties } from './leader.ts';
import { createGroups } from './groups.ts';
import { createMetrics } from './metrics.ts';
import { createPolicies } from './policies.ts';
import { createScheduler } from './scheduler.ts';
import type { PolicyRunPort } from './policy-port.ts';
import { createLeaseKeeper } from './leases.ts';
import { createRecovery } from './recovery.ts';
import { createRetention, type RetentionReport } from './retention.ts';
import { requestOf, submitJob } from './submit.ts';
import { createSync, errSummary, type SyncOutcome } from './sync.ts';
import { within } from '../../providers/shared/sleep.ts';
import { ABORT_WAIT_MS, cancelledError, createWorker, targetRemovedError } from './worker.ts';
import { createWebhooks, DEFAULT_WEBHOOK_SETTINGS, type WebhookSettings, type WebhookSpec } from './webhooks.ts';

export type { EngineSettings, RetentionSettings } from './core.ts';
export type { RetentionReport } from './retention.ts';
export { DEFAULT_SETTINGS } from './core.ts';
export type { WebhookSettings, WebhookSpec } from './webhooks.ts';

export interface EngineOptions {
  store: Store;
  registry: ProviderRegistry;
  log: Logger;
  settings?: Partial<EngineSettings>;
  /** Injectable clock (timestamps, backoff due times). */
  now?: () => Date;
  /** Configured webhooks (engine/webhooks.ts); none: nothing is written to the outbox. */
  webhooks?: WebhookSpec[];
  webhookSettings?: Partial<WebhookSettings>;
  /** The scheduler's longest sleep before it reads the clock again (engine/scheduler.ts; tests moving `now`: a few ms). */
  schedulerMaxSleepMs?: number;
}

export interface Engine extends EngineApi {
  /**
   * Crash recovery, first sync, then the worker loop and the periodic sync. `waitForSync: false`
   * (the daemon) returns once recovery is done and lets the first sync run in the background.
   */
  start(options?: { waitForSync?: boolean }): Promise<void>;
  /**
   * Stops claiming at once, lets running jobs finish up to graceMs (default 10 s), then aborts
   * them and every background call; an interrupted job stays `running` for the next start's
   * recovery. Returns at most about 1 s after the grace, even if a call ignores its signal.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Resolves once a worker claim round that started after the call has ended (tests wait on it instead of sleeping). */
  claimRound(): Promise<void>;
  /**
   * A reload's new registry (providers/index.ts reconfigureRegistry): new jobs and claims use it at
   * once (concurrency included); jobs running on a retired provider finish on it, and it is closed
   * once idle; queued jobs of removed targets are cancelled with the reason; added and replaced
   * targets are synced in the background. Refused (conflict) once the engine is stopping.
   */
  replaceRegistry(next: ProviderRegistry, retired: readonly SnapshotProvider[]): Promise<{ cancelledJobs: string[] }>;
  /**
   * One retention pass now (the engine also runs one shortly after start, then periodically):
   * audit entries and finished jobs older than settings.retention, by the engine's clock.
   */
  pruneRetention(): Promise<RetentionReport>;
  /** What the scheduler starts policy runs through. */
  readonly policyRuns: PolicyRunPort;
  /** Resolves once a webhook delivery round that started after the call has ended (tests wait on it). */
  webhookRound(): Promise<void>;
}

/** Why the store's write probe failed, as /readyz says it. */
const UNWRITABLE: Record<StoreWriteFailure | 'failed', string> = {
  full: 'the disk holding the database is full',
  io: 'the disk holding the database reports I/O errors',
  readonly: 'the database file is read-only',
  failed: 'a test write failed',
};

/** A follower's retry of a failed first sync when the periodic sync is off (engine.syncIntervalSec 0). */
const FOLLOWER_RETRY_MS = 30_000;

export function createEngine(options: EngineOptions): Engine {
  const settings: EngineSettings = {
    ...DEFAULT_SETTINGS,
    ...options.settings,
    backoff: { ...DEFAULT_SETTINGS.backoff, ...options.settings?.backoff },
    retention: { ...DEFAULT_SETTINGS.retention, ...options.settings?.retention },
    scheduler: { ...DEFAULT_SETTINGS.scheduler, ...options.settings?.scheduler },
  };
  const log = options.log.child({ component: 'engine' });
  const events = createEventBus(log);
  const metrics = createMetrics(options.store);
  const core = createCore({ store: options.store, registry: options.registry, log, settings, now: options.now ?? (() => new Date()), events, metrics });
  const sync = createSync(core);
  // Job leases (engine/leases.ts): the worker's claims and recovery's takeovers, renewed while held.
  const leases = createLeaseKeeper(core);
  const worker = createWorker(core, sync, leases);
  const recovery = createRecovery(core, sync, leases);
  const retention = createRetention(core);
  const groups = createGroups(core, () => worker.kick());
  // Runs submit through the engine's own submit (validation, idempotency, the worker's kick).
  const policies = createPolicies(core, { submit: (request, meta) => engine.submit(request, meta) });
  const scheduler = createScheduler({
    port: policies,
    log: log.child({ component: 'scheduler' }),
    metrics: metrics.registry,
    jitterMaxMs: settings.scheduler.jitterMs,
    clock: core.now,
    ...(options.schedulerMaxSleepMs !== undefined ? { maxSleepMs: options.schedulerMaxSleepMs } : {}),
  });
  // A created, changed or deleted policy is (re)planned at once (by the leader's scheduler: told below when it changed elsewhere).
  policies.onChange(({ policyId, origin }) => {
    void scheduler.refresh();
    if (origin === 'local') clusterEvents.publishPolicyChange(policyId);
  });
  const drift = createDriftMonitor(core, { maxChainDepthFor: (vm) => policies.maxChainDepthFor(vm) });
  const webhooks = createWebhooks(core, options.webhooks ?? [], {
    ...DEFAULT_WEBHOOK_SETTINGS,
    ...options.webhookSettings,
    backoff: { ...DEFAULT_WEBHOOK_SETTINGS.backoff, ...options.webhookSettings?.backoff },
  });
  const { store } = core;
  // ── Replicas (store/cluster.ts; engine/leader.ts, engine/cluster-events.ts) ──
  // Only the leader runs the scheduler, the periodic sync (and the drift checks after it) and
  // retention; every replica runs jobs, serves, and does one sync at its start (its readiness is
  // whether IT reaches the targets, and it runs jobs on them itself).
  const duties = createLeaderDuties({
    leadership: store.cluster.leadership,
    log,
    metrics: metrics.registry,
    async begin() {
      // Another replica led until now: lastScheduledFor as it left it, not as this one loaded it at start.
      if (store.cluster.shared) await policies.load();
      if (settings.syncIntervalMs > 0) {
        syncTimer = setInterval(() => void syncAll(), settings.syncIntervalMs);
        syncTimer.unref?.();
      }
      retention.start();
      await policies.resumeRuns();
      if (settings.scheduler.enabled) scheduler.start();
    },
    async end() {
      retention.stop();
      await scheduler.stop();
      if (syncTimer) clearInterval(syncTimer);
      syncTimer = null;
    },
  });
  const clusterEvents = createClusterEvents({
    cluster: store.cluster,
    store,
    events,
    log,
    targetView: async (name) => targetView(await core.targetByName(name)),
    policyChanged: (policyId) => policies.reload(policyId),
  });
  /**
   * A follower does not run the periodic sync, but its readiness is its own first sync: while any
   * target's last pass here failed (unreachable at start, a row race with another replica's
   * inventory), it reads again at the sync interval until it has them all.
   */
  const followerRetry = (): NodeJS.Timeout | null => {
    if (!store.cluster.shared) return null;
    const timer = setInterval(() => {
      if (duties.leading() || syncing || stopped) return;
      void core.targets().then((bound) => {
        const behind = [...bound.keys()].some((name) => synced.get(name)?.outcome.ok !== true);
        if (behind) void syncAll();
      }).catch(() => {});
    }, settings.syncIntervalMs > 0 ? settings.syncIntervalMs : FOLLOWER_RETRY_MS);
    timer.unref?.();
    return timer;
  };
  let followerTimer: NodeJS.Timeout | null = null;
  // ── end replicas ──
  let syncTimer: NodeJS.Timeout | null = null;
  let syncing: Promise<void> | null = null;
  let stopped = false;
  /** Recovery done and the worker running: until then /readyz says not ready (the daemon listens first). */
  let started = false;
  /** Each target's latest inventory outcome, with the provider it was read through (a reload's new one starts over). */
  const synced = new Map<string, { provider: SnapshotProvider; outcome: SyncOutcome }>();
  /** The last readiness logged, to log once per change. */
  let lastReadiness: string | null = null;

  /** One target's sync, holding its provider (a reload meanwhile closes a retired one only after). */
  const syncLeased = async (lease: TargetLease) => {
    const running = worker.runningVmIds();
    try {
      const outcome = await sync.syncTarget(lease.target, { skipVm: (id) => running.has(id) });
      synced.set(lease.target.spec.name, { provider: lease.target.provider, outcome });
      if (outcome.ok && duties.leading()) {
        await drift.afterPass(lease.target).catch((err: unknown) => log.warn({ target: lease.target.spec.name, err: errSummary(err) }, 'drift check failed'));
      }
      await readiness();
    } finally {
      lease.release();
    }
  };

  /** Readiness now; logs at warn when it differs from the last one computed (once per change). */
  const readiness = async (): Promise<ReadyReport> => {
    const storeAnswers = await store.healthy();
    // Answering reads is not enough: a full disk only shows when a write has to grow the file.
    const unwritable = storeAnswers ? await store.writeProbe() : null;
    const storeOk = storeAnswers && unwritable === null;
    const bound = storeAnswers ? [...(await core.targets()).values()] : [];
    const rows = storeAnswers ? new Map((await store.targets.list()).map((r) => [r.name, r])) : new Map();
    const targets: ReadyReport['targets'] = bound.map((t) => {
      const row = rows.get(t.spec.name);
      const entry = synced.get(t.spec.name);
      const outcome = entry && entry.provider === t.provider ? entry.outcome : null;
      return {
        name: t.spec.name,
        healthy: row?.healthy ?? null,
        message: row?.healthMessage ?? null,
        synced: outcome === null ? null : outcome.ok,
        reason: outcome === null || outcome.ok ? null : outcome.reason,
      };
    });
    const failing = targets.filter((x) => x.synced === false);
    const pending = targets.filter((x) => x.synced === null);
    const describe = (list: typeof targets) => list.map((x) => (x.reason ? `'${x.name}' (${x.reason})` : `'${x.name}'`)).join(', ');
    let reason: string | null = null;
    if (!storeAnswers) reason = `the database does not answer (${store.location})`;
    else if (unwritable !== null) reason = `the store is unwritable: ${UNWRITABLE[unwritable]}`;
    else if (stopped) reason = 'the daemon is stopping';
    else if (!started) reason = 'the engine is starting';
    else if (!store.cluster.hearing()) reason = 'not hearing the other replicas: its PostgreSQL connection for events is down (reconnecting)';
    else if (targets.length === 0) reason = null;
    else if (settings.readiness === 'any') {
      if (!targets.some((x) => x.synced === true)) {
        reason = [
          failing.length ? `no target could be inventoried: ${describe(failing)}` : null,
          pending.length ? `first inventory not finished: ${describe(pending)}` : null,
        ].filter(Boolean).join('; ');
      }
    } else if (failing.length || pending.length) {
      reason = [
        failing.length ? `unreachable: ${describe(failing)}` : null,
        pending.length ? `first inventory not finished: ${describe(pending)}` : null,
      ].filter(Boolean).join('; ');
    }
    const replica = { id: store.cluster.replicaId, shared: store.cluster.shared, leader: duties.leading() };
    const report: ReadyReport = { ready: reason === null, store: storeOk, readiness: settings.readiness, reason, targets, replica };
    const key = JSON.stringify([report.ready, reason]);
    if (started && key !== lastReadiness) {
      if (lastReadiness !== null || !report.ready) log.warn({ ready: report.ready, reason, readiness: settings.readiness }, report.ready ? 'daemon is ready' : 'daemon is not ready');
      lastReadiness = key;
    }
    return report;
  };

  const syncAll = (): Promise<void> => {
    // One full pass at a time; a timer tick during a slow pass is skipped.
    syncing ??= (async () => {
      for (const name of [...(await core.targets()).keys()]) {
        if (core.lifecycle.signal.aborted) break;
        const lease = await core.leaseByName(name);
        if (lease) await syncLeased(lease);
      }
    })()
      .catch((err: unknown) => log.error({ err: errSummary(err) }, 'sync pass failed'))
      .finally(() => (syncing = null));
    return syncing;
  };

  const targetView = async (t: BoundTarget): Promise<TargetView> => {
    const { row } = await refreshRow(core, t);
    return {
      name: t.spec.name,
      kind: t.spec.kind,
      demo: t.spec.demo,
      health: {
        reachable: row.healthy === true,
        ...(row.version !== null ? { version: row.version } : {}),
        message: row.healthMessage ?? (row.healthy === null ? 'not checked yet' : undefined),
        checkedAt: row.checkedAt,
      },
      capabilities: t.provider.capabilities(),
      vmCount: await store.vms.countPresentByTarget(row.id),
    };
  };

  const vmView = (v: VmWithStats): VmView => ({ ...v, disks: v.disks ?? [] });

  const requireVm = async (vmId: string) => {
    const vm = await store.vms.get(vmId);
    if (!vm) throw notFound('vm', vmId);
    return vm;
  };

  const pageOf = async <T>(fn: () => Promise<Page<T>>): Promise<Page<T>> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_INVALID_CURSOR', 'the cursor is not valid');
      throw err;
    }
  };

  const engine: Engine = {
    async start({ waitForSync = true } = {}) {
      await core.targets();
      const recovered = await recovery.atStart();
      if (recovered.length) log.info({ recovered }, 'crash recovery finished');
      // Replicas sharing the database: the jobs of one that died are recovered once their leases run out.
      if (store.cluster.shared) recovery.startSweep();
      await groups.refreshRunning();
      // The daemon serves (and queues jobs) while a slow or unreachable target is still being read.
      const firstSync = syncAll();
      if (waitForSync) await firstSync;
      worker.start();
      started = true;
      await policies.load();
      // The scheduler, periodic sync and retention: now if this replica leads (SQLite: always), else when it comes to.
      await duties.start();
      followerTimer = followerRetry();
      webhooks.start();
      await readiness();
      log.info({ targets: [...(await core.targets()).keys()] }, 'engine started');
    },

    async stop({ graceMs = 10_000 } = {}) {
      stopped = true;
      if (followerTimer) clearInterval(followerTimer);
      await duties.stop();
      policies.stop();
      let graceOverAt = Date.now();
      // No new sweep; one under way ends with the worker's grace (its hypervisor calls are aborted with it).
      const recoveryStopped = recovery.stop();
      await worker.stop(graceMs, {
        graceOver: () => {
          graceOverAt = Date.now();
          core.lifecycle.abort(new Error('engine stopping'));
        },
      });
      // A sync pass stuck in a call that ignores the signal does not hold the stop up.
      if (syncing && !(await within(syncing, graceOverAt + ABORT_WAIT_MS - Date.now()))) log.warn({}, 'inventory sync did not end when aborted');
      if (!(await within(recoveryStopped, graceOverAt + ABORT_WAIT_MS - Date.now()))) log.warn({}, 'recovery sweep did not end when aborted');
      leases.stop();
      // After the jobs: their last events are in the outbox; what is not sent yet goes after the next start.
      await webhooks.stop();
      clusterEvents.close();
      log.info({}, 'engine stopped');
    },

    claimRound: () => worker.claimRound(),
    webhookRound: () => webhooks.round(),
    pruneRetention: () => retention.prune(),

    async replaceRegistry(next, retired) {
      if (stopped) throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_STOPPING', 'the daemon is stopping');
      const before = new Map([...(await core.targets()).values()].map((t) => [t.spec.name, t.provider]));
      const map = await core.replaceRegistry(next, retired);
      const cancelledJobs: string[] = [];
      for (const job of await store.jobs.listByState('queued')) {
        const reason = core.removedByReload(job.targetId);
        if (reason === null) continue;
        // A job being claimed this instant is not cancelled here: the worker cancels it with the same reason.
        const cancelled = await store.jobs.cancelQueued(job.id, core.iso(), targetRemovedError(reason));
        if (!cancelled) continue;
        cancelledJobs.push(job.id);
        log.info({ jobId: job.id, reason }, 'queued job cancelled: its target was removed');
        metrics.jobsFinished.inc({ kind: cancelled.kind, state: 'cancelled' });
        events.emit({ type: 'job', job: cancelled });
      }
      worker.kick();
      // New and reconnected targets: health and inventory now, not at the next periodic sync.
      for (const t of map.values()) {
        if (before.get(t.spec.name) === t.provider) continue;
        void core.leaseByName(t.spec.name).then((lease) => lease && syncLeased(lease)).catch((err: unknown) => log.warn({ target: t.spec.name, err: errSummary(err) }, 'sync after reload failed'));
      }
      return { cancelledJobs };
    },

    async listTargets() {
      return Promise.all([...(await core.targets()).values()].map(targetView));
    },
    async getTarget(name) {
      return targetView(await core.targetByName(name));
    },
    async syncTarget(name) {
      const lease = await core.leaseByName(name);
      if (!lease) throw notFound('target', name);
      await syncLeased(lease);
      const view = await targetView(lease.target);
      events.emit({ type: 'target', target: view });
      return view;
    },

    async listVms(filter) {
      const targetId = filter.target === undefined ? undefined : (await core.targetByName(filter.target)).row.id;
      return pageOf(async () => {
        const page = await store.vms.list({
          ...(targetId !== undefined ? { targetId } : {}),
          ...(filter.name !== undefined ? { name: filter.name } : {}),
          includeGone: filter.includeGone ?? false,
          limit: filter.limit,
          ...(filter.cursor !== undefined ? { cursor: filter.cursor } : {}),
        });
        return { items: page.items.map(vmView), next: page.next };
      });
    },
    async getVm(vmId) {
      const vm = await store.vms.getWithStats(vmId);
      if (!vm) throw notFound('vm', vmId);
      return vmView(vm);
    },

    async listSnapshots(vmId, { includeGone }) {
      await requireVm(vmId);
      return store.snapshots.listByVm(vmId, { includeGone });
    },
    async snapshotTree(vmId): Promise<SnapshotTree> {
      await requireVm(vmId);
      const forest = buildForest(await store.snapshots.listByVm(vmId, { includeGone: false }));
      return { vmId, currentSnapshotId: forest.currentId, maxDepth: forest.maxDepth, roots: forest.roots };
    },
    async snapshotRevision(vmId) {
      const rev = await store.snapshots.revision(vmId);
      if (rev === null) throw notFound('vm', vmId);
      return rev;
    },
    async getSnapshot(snapshotId) {
      const s = await store.snapshots.get(snapshotId);
      if (!s) throw notFound('snapshot', snapshotId);
      return s;
    },

    async submit(request, meta) {
      const result = await submitJob(core, request, meta);
      if (!result.replayed) worker.kick();
      return result;
    },
    async getJob(jobId) {
      const job = await store.jobs.get(jobId);
      if (!job) throw notFound('job', jobId);
      return job;
    },
    async listJobs(filter) {
      return pageOf(() =>
        store.jobs.list({
          ...(filter.state !== undefined ? { state: filter.state } : {}),
          ...(filter.vmId !== undefined ? { vmId: filter.vmId } : {}),
          ...(filter.kind !== undefined ? { kind: filter.kind } : {}),
          ...(filter.policyId !== undefined ? { policyId: filter.policyId } : {}),
          limit: filter.limit,
          ...(filter.cursor !== undefined ? { cursor: filter.cursor } : {}),
        }),
      );
    },
    async cancelJob(jobId, principal) {
      const job = await engine.getJob(jobId);
      if (isFinal(job)) {
        throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_JOB_FINISHED', `job '${jobId}' is already ${job.state}`, { extra: { state: job.state } });
      }
      // An offline create that shut its VM down stays queued, flagged: only its next attempt can start
      // the VM again (the mode's promise), and a success then stands, as for any cancel that came late.
      const mustRestore = job.kind === 'snapshot.create' && job.checkpoint?.offline?.powerBefore === 'running';
      const cancelled = mustRestore ? null : await store.jobs.cancelQueued(jobId, core.iso(), cancelledError());
      if (cancelled) {
        log.info({ jobId, principal }, 'queued job cancelled');
        metrics.jobsFinished.inc({ kind: cancelled.kind, state: 'cancelled' });
        events.emit({ type: 'job', job: cancelled });
        return cancelled;
      }
      // Running (or claimed a moment ago): flag it in the store, fire its signal if it runs here.
      const flagged = await store.jobs.requestCancel(jobId);
      worker.abort(jobId);
      log.info({ jobId, principal }, 'cancel requested for a running job');
      return flagged ?? engine.getJob(jobId);
    },
    async retryJob(jobId, meta) {
      const job = await engine.getJob(jobId);
      if (job.state !== 'failed' && job.state !== 'cancelled') {
        throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_JOB_NOT_RETRYABLE', `job '${jobId}' is ${job.state}; only a failed or cancelled job can be retried`, { extra: { state: job.state } });
      }
      if (job.groupId !== null) {
        throw new SnapvisorError(
          'conflict',
          'SNAPVISOR_ERR_JOB_IN_GROUP',
          `job '${jobId}' belongs to snapshot group '${job.groupId}': retry the group (POST /v1/snapshot-groups/${job.groupId}/retry) so the new job stays its member`,
          { extra: { state: job.state, groupId: job.groupId } },
        );
      }
      const policy = job.policyId !== null && job.policyRunId !== null ? { policy: { policyId: job.policyId, runId: job.policyRunId } } : {};
      const result = await engine.submit(requestOf(job), { ...meta, ...policy });
      // No column records the link (that would need a migration): the log does.
      if (!result.replayed) log.info({ jobId: result.job.id, retryOf: jobId, principal: meta.principal }, 'job retried');
      return result;
    },
    async waitForJob(jobId, timeoutMs, signal) {
      // The final job as its event carried it (the row the store returned when it was settled), or
      // null when woken by the timeout or the signal.
      let wake!: (job: Job | null) => void;
      const woken = new Promise<Job | null>((resolve) => (wake = resolve));
      const unsubscribe = events.subscribe((e) => {
        if (e.type === 'job' && e.job.id === jobId && isFinal(e.job)) wake(e.job);
      });
      // Another replica's end of the job may be among the events missed: the store knows.
      const offMissed = events.onMissed(() => {
        engine.getJob(jobId).then((job) => isFinal(job) && wake(job), () => undefined);
      });
      const stop = () => wake(null);
      const timer = setTimeout(stop, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', stop, { once: true });
      try {
        // Read after subscribing: a job that ended in between is final here, one that ends later wakes us.
        const first = await engine.getJob(jobId);
        if (isFinal(first) || timeoutMs <= 0 || signal?.aborted) return first;
        return (await woken) ?? (await engine.getJob(jobId));
      } finally {
        clearTimeout(timer);
        unsubscribe();
        offMissed();
        signal?.removeEventListener('abort', stop);
      }
    },

    subscribe: (listener) => events.subscribe(listener),
    onEventsMissed: (listener) => events.onMissed(listener),

    ready: () => readiness(),
    async audit(record) {
      await store.audit.insert({ ...record, at: core.iso() });
    },
    metrics: () => metrics.render(),

    async drift({ target }) {
      const bound = target === undefined ? [...(await core.targets()).values()] : [await core.targetByName(target)];
      return Promise.all(bound.map((t) => drift.report(t)));
    },

    async backupDatabase() {
      if (store.dialect === 'postgres') {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_BACKUP_POSTGRES', 'the database is PostgreSQL: back it up with pg_dump or base backups, not through Snapvisor');
      }
      // Beside the database (same disk, same permissions), never where a client could name it.
      const base = store.location === ':memory:' || store.location === '' ? path.join(tmpdir(), 'snapvisor') : store.location;
      const file = `${base}.backup-${randomUUID()}.tmp`;
      const takenAt = core.iso();
      const report = await store.backup(file);
      log.info({ bytes: report.bytes, schemaVersion: report.schemaVersion }, 'database backup taken');
      return { file, bytes: report.bytes, schemaVersion: report.schemaVersion, takenAt, dispose: () => rm(file, { force: true }) };
    },

    createSnapshotGroup: (request, meta) => groups.createSnapshotGroup(request, meta),
    listSnapshotGroups: (filter) => groups.listSnapshotGroups(filter),
    getSnapshotGroup: (groupId) => groups.getSnapshotGroup(groupId),
    retrySnapshotGroup: (groupId, principal) => groups.retrySnapshotGroup(groupId, principal),
    revertSnapshotGroup: (groupId, principal) => groups.revertSnapshotGroup(groupId, principal),
    deleteSnapshotGroup: (groupId, principal) => groups.deleteSnapshotGroup(groupId, principal),
    policyRuns: policies,
    createPolicy: (input) => policies.create(input),
    listPolicies: () => policies.list(),
    getPolicy: (id) => policies.get(id),
    updatePolicy: (id, patch) => policies.update(id, patch),
    deletePolicy: (id) => policies.delete(id),
    planPolicy: (id, kind) => policies.plan(id, kind),
    runPolicy: (id, kind) => policies.startRun(id, kind, 'manual', null),
    listPolicyRuns: (id, query) => policies.listRuns(id, query),
    getPolicyRun: (id, runId) => policies.getRun(id, runId),
  };
  return engine;
}

export type { Core };
