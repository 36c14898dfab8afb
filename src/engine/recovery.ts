/**
 * Crash recovery at start: a job found `running` was left by a process that died mid-call. We
 * ask the hypervisor what really happened instead of repeating blindly:
 * - create: its marker on the hypervisor → record that snapshot, succeeded (exactly one);
 *   no marker → back to queued (the retry is idempotent by marker and looks first);
 *   an offline create whose job recorded the VM's power state before the shutdown (a checkpoint)
 *   → queued, marker or not, even when a cancel was asked: only the retry, through the provider,
 *   can start the VM again (the mode's promise), and it finds the snapshot by the marker;
 * - delete: snapshot still there → queued; gone → succeeded;
 * - revert, consolidate: queued (running them again is harmless);
 * - the hypervisor cannot be asked → queued (every retry path above is safe).
 *
 * At start, every job the store calls recoverable (SQLite: every running job, the file has one
 * daemon; PostgreSQL: those whose claim was dropped or whose lease ran out). On a store shared by
 * several replicas, a sweep repeats this every half lease: a replica that died leaves its jobs'
 * leases to run out, and one other replica takes each over (takeOver wins once) and decides the
 * same way.
 */
import { randomUUID } from 'node:crypto';
import { Counter } from 'prom-client';
import type { Job, JobResult } from '../domain/types.ts';
import type { Core } from './core.ts';
import { findByMarker, recordCreated } from './handlers.ts';
import type { LeaseKeeper } from './leases.ts';
import { errSummary, type Sync } from './sync.ts';
import { cancelledError } from './worker.ts';

export type RecoveryDecision = 'succeeded' | 'requeued' | 'cancelled';

export interface Recovery {
  /** At start: clears stale claims, then recovers every recoverable job. */
  atStart(): Promise<Array<{ jobId: string; decision: RecoveryDecision }>>;
  /** Starts the periodic sweep (a store shared by several replicas). */
  startSweep(): void;
  /** No sweep after this; resolves once a sweep in progress has ended. */
  stop(): Promise<void>;
  /** One sweep now (tests): recovers what is recoverable at this moment. */
  sweep(): Promise<Array<{ jobId: string; decision: RecoveryDecision }>>;
}

export function createRecovery(core: Core, sync: Sync, leases: LeaseKeeper): Recovery {
  const recovered = new Counter({
    name: 'snapvisor_jobs_recovered_total',
    help: 'Running jobs taken over by recovery (left by a crash, a stop, or a replica whose lease ran out), by decision',
    labelNames: ['decision'] as const,
    registers: [core.metrics.registry],
  });
  for (const decision of ['succeeded', 'requeued', 'cancelled'] as const) recovered.inc({ decision }, 0);
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let sweeping: Promise<unknown> | null = null;

  async function recoverAll(): Promise<Array<{ jobId: string; decision: RecoveryDecision }>> {
    const out: Array<{ jobId: string; decision: RecoveryDecision }> = [];
    for (const job of await core.store.jobs.recoverable(core.iso())) {
      if (stopped) break;
      // Its lease ran out while renewals failed, but it still runs here: taking it over from
      // ourselves would run it twice; the heartbeat renews it once the database answers again.
      if (leases.holds(job.id)) continue;
      const decision = await recoverJob(job);
      if (decision !== null) out.push({ jobId: job.id, decision });
    }
    return out;
  }

  /** Takes one job over (null: another replica got it first) and settles it from what the hypervisor says. */
  async function recoverJob(job: Job): Promise<RecoveryDecision | null> {
    const ticket = randomUUID();
    const lease = leases.lease();
    const owned = await core.store.jobs.takeOver(job.id, ticket, core.iso(), lease);
    if (!owned) return null;
    // Renewed while the hypervisor is asked: a slow look-up is not taken over again meanwhile.
    const release = leases.hold(job.id, lease);
    try {
      return await decide(owned, ticket);
    } finally {
      release();
    }
  }

  async function decide(owned: Job, ticket: string): Promise<RecoveryDecision> {
    const log = core.log.child({ jobId: owned.id, kind: owned.kind });
    let decision: RecoveryDecision;
    let settled: Job | null;
    try {
      const found = await lookUp(core, sync, owned, log);
      if (!found.done && found.restore) {
        settled = await core.store.jobs.requeue(owned.id, ticket, { nextAttemptAt: core.iso(), error: null });
        decision = 'requeued';
        log.info({ reason: found.reason }, 'recovery: the VM was shut down by the job; requeued to start it again');
      } else if (found.done) {
        settled = await core.store.jobs.finish(owned.id, ticket, { state: 'succeeded', result: found.result, error: null, at: core.iso() });
        decision = 'succeeded';
        log.info({ result: found.result, reason: found.reason }, 'recovery: job had completed on the hypervisor; marked succeeded');
      } else if (owned.cancelRequested) {
        settled = await core.store.jobs.finish(owned.id, ticket, { state: 'cancelled', error: cancelledError(), at: core.iso() });
        decision = 'cancelled';
        log.info({ reason: found.reason }, 'recovery: job was being cancelled and had not completed; marked cancelled');
      } else {
        settled = await core.store.jobs.requeue(owned.id, ticket, { nextAttemptAt: core.iso(), error: null });
        decision = 'requeued';
        log.info({ reason: found.reason }, 'recovery: job had not completed; requeued');
      }
    } catch (err) {
      settled = await core.store.jobs.requeue(owned.id, ticket, { nextAttemptAt: core.iso(), error: null });
      decision = 'requeued';
      log.warn({ err: errSummary(err) }, 'recovery: could not ask the hypervisor; requeued (the retry is safe)');
    }
    if (settled) {
      core.events.emit({ type: 'job', job: settled });
      if (decision !== 'requeued') core.metrics.jobsFinished.inc({ kind: settled.kind, state: settled.state });
      recovered.inc({ decision });
    }
    return decision;
  }

  /** Every half lease, jittered (replicas started together do not sweep together). */
  const scheduleSweep = () => {
    if (stopped) return;
    const halfLease = core.settings.jobLeaseMs / 2;
    timer = setTimeout(() => {
      timer = null;
      sweeping = recovery
        .sweep()
        .then((out) => out.length > 0 && core.log.info({ recovered: out }, 'recovery: jobs of a replica whose lease ran out recovered'))
        .catch((err: unknown) => core.log.warn({ err: errSummary(err) }, 'recovery sweep failed; trying again at the next one'))
        .finally(() => {
          sweeping = null;
          scheduleSweep();
        });
    }, halfLease * (0.75 + Math.random() / 2));
    timer.unref?.();
  };

  const recovery: Recovery = {
    async atStart() {
      const stale = await core.store.jobs.clearStaleClaims();
      if (stale > 0) core.log.info({ count: stale }, 'recovery: cleared stale claims on queued jobs');
      return recoverAll();
    },
    startSweep() {
      if (timer || stopped) return;
      scheduleSweep();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await sweeping;
    },
    sweep: () => recoverAll(),
  };
  return recovery;
}

/** `restore`: not done until the retry restored the VM's power state (never settled as cancelled here). */
type LookUp = { done: true; result: JobResult; reason: string } | { done: false; reason: string; restore?: true };

async function lookUp(core: Core, sync: Sync, job: Job, log: Core['log']): Promise<LookUp> {
  if (job.kind !== 'snapshot.create' && job.kind !== 'snapshot.delete') {
    return { done: false, reason: `${job.kind} is safe to run again` };
  }
  if (job.kind === 'snapshot.create' && job.checkpoint?.offline?.powerBefore === 'running') {
    // Asking the hypervisor first would change nothing: the snapshot may exist, the VM may be off.
    return { done: false, restore: true, reason: 'offline create: the VM was running before the job shut it down' };
  }
  const target = await core.targetById(job.targetId);
  const vm = await core.store.vms.get(job.vmId);
  if (!vm) return { done: false, reason: 'VM row missing' };
  const ctx = core.backgroundContext(log);
  if (job.kind === 'snapshot.create') {
    const made = await findByMarker({ core, target, vm, ctx, jobId: job.id });
    if (!made) return { done: false, reason: 'no snapshot carries the job marker' };
    if (!made.ready) {
      // Recorded now, waited for by the job itself (its retry finds the snapshot by the marker).
      await recordCreated({ core, sync, vm }, made);
      return { done: false, reason: 'snapshot with the job marker found, not ready yet' };
    }
    return { done: true, result: await recordCreated({ core, sync, vm }, made), reason: 'snapshot with the job marker found' };
  }
  const snapshot = job.snapshotId === null ? null : await core.store.snapshots.get(job.snapshotId);
  if (!snapshot) return { done: false, reason: 'snapshot row missing' };
  const list = await core.call(target.provider, 'listSnapshots', () => target.provider.listSnapshots(vm.providerVmId, ctx));
  if (list.some((s) => s.providerRef === snapshot.providerRef)) return { done: false, reason: 'snapshot still on the hypervisor' };
  await sync.syncVm(target, vm);
  return { done: true, result: { snapshotId: snapshot.id, snapshotIds: [snapshot.id] }, reason: 'snapshot no longer on the hypervisor' };
}
