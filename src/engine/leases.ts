/**
 * This replica's leases on the jobs it holds (the worker's running jobs, recovery's takeovers):
 * each claim names the replica and an end (now + jobLeaseMs); while anything is held, a heartbeat
 * every jobHeartbeatMs moves the end of every lease this replica owns (one statement,
 * JobRepo.renewLeases). On a database shared by several replicas (PostgreSQL), a job whose lease
 * ran out is recovered by another replica (engine/recovery.ts); on SQLite nobody else looks.
 */
import { Counter } from 'prom-client';
import type { JobLease } from '../store/index.ts';
import type { Core } from './core.ts';
import { errSummary } from './sync.ts';

export interface LeaseKeeper {
  /** A new lease for a claim made now. */
  lease(): JobLease;
  /** Holds `jobId` (claimed with `lease`) until release: the heartbeat runs while anything is held. */
  hold(jobId: string, lease: JobLease): () => void;
  /** Whether this replica holds the job now (recovery does not take over its own jobs). */
  holds(jobId: string): boolean;
  /** One renewal now (tests, and the heartbeat). */
  renew(): Promise<void>;
  /** Ends the heartbeat: what is still held is no longer renewed (the engine stopped). */
  stop(): void;
}

interface Held {
  /** When its lease ends unless renewed (ms, engine clock). */
  until: number;
  /** Its lease ran out while renewals failed: logged once. */
  lapsed: boolean;
}

export function createLeaseKeeper(core: Core): LeaseKeeper {
  const log = core.log.child({ component: 'leases' });
  const owner = core.store.cluster.replicaId;
  const held = new Map<string, Held>();
  const failures = new Counter({
    name: 'snapvisor_job_lease_renewal_failures_total',
    help: 'Heartbeats that could not renew the leases of the jobs this replica runs (the database did not answer or refused the write)',
    registers: [core.metrics.registry],
  });
  failures.inc(0);
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let renewing: Promise<void> | null = null;
  /** When renewals started failing (engine clock, ms); null while they succeed. */
  let failingSince: number | null = null;

  const leaseFrom = (nowMs: number): JobLease => ({ owner, until: new Date(nowMs + core.settings.jobLeaseMs).toISOString() });

  const startTimer = () => {
    if (timer || stopped) return;
    // Never less often than three times per lease: settings that only shorten the lease stay safe.
    const everyMs = Math.min(core.settings.jobHeartbeatMs, core.settings.jobLeaseMs / 3);
    timer = setInterval(() => void keeper.renew(), Math.max(1, everyMs));
    timer.unref?.();
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };

  async function renewOnce(): Promise<void> {
    const nowMs = core.now().getTime();
    const next = leaseFrom(nowMs);
    try {
      await core.store.jobs.renewLeases(owner, next.until);
    } catch (err) {
      failures.inc();
      if (failingSince === null) {
        failingSince = nowMs;
        // Once per outage: the heartbeat goes on every interval, the log does not.
        log.warn({ err: errSummary(err), jobs: [...held.keys()] }, 'could not renew the leases of the jobs this replica runs; retrying at every heartbeat');
      }
      const lapsed = [...held].filter(([, h]) => !h.lapsed && h.until < nowMs);
      for (const [, h] of lapsed) h.lapsed = true;
      if (lapsed.length > 0) {
        // The jobs go on here. Another replica may now take them over (PostgreSQL): it asks the
        // hypervisor first (a create by its marker) and settles or requeues them under its own
        // claim ticket. Aborting here would not undo a call that already reached the hypervisor
        // and could leave a VM half-way (an offline create's VM shut down, not started again);
        // finishing it gives the other replica's look-up the most to find. What this replica
        // writes afterwards (checkpoint, progress, final state) names the old ticket, so it changes
        // nothing once another replica took the job over, and everything if none did.
        log.error(
          { jobs: lapsed.map(([id]) => id), failingForMs: nowMs - failingSince, leaseMs: core.settings.jobLeaseMs },
          'job leases ran out while the database could not be reached: another replica may have taken these jobs over; they go on here, and what they record counts only if none did',
        );
      }
      return;
    }
    if (failingSince !== null) {
      log.info({ failedForMs: nowMs - failingSince }, 'job leases renewed again');
      failingSince = null;
    }
    const until = Date.parse(next.until);
    for (const h of held.values()) {
      h.until = until;
      h.lapsed = false;
    }
  }

  const keeper: LeaseKeeper = {
    lease: () => leaseFrom(core.now().getTime()),
    hold(jobId, lease) {
      held.set(jobId, { until: Date.parse(lease.until), lapsed: false });
      startTimer();
      return () => {
        held.delete(jobId);
        if (held.size === 0) stopTimer();
      };
    },
    holds: (jobId) => held.has(jobId),
    renew() {
      // One renewal at a time: a slow database does not pile statements up.
      renewing ??= renewOnce().finally(() => (renewing = null));
      return renewing;
    },
    stop() {
      stopped = true;
      stopTimer();
    },
  };
  return keeper;
}
