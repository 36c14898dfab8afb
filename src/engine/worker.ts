/**
 * The worker loop: claims due jobs (one running job per VM, at most `concurrency` per target,
 * both enforced inside the claim itself; a target's free slots go round-robin across principals
 * and their VMs, domain/fair-claim.ts), runs each with a CallContext whose signal fires on
 * cancel, on the per-attempt timeout and on shutdown, and settles the row by what happened.
 * Each claim holds a lease for this replica, renewed while the job runs (engine/leases.ts).
 */
import { randomUUID } from 'node:crypto';
import type { CallContext, CreateRateLimit, DiskInfo } from '../../providers/contract.ts';
import { budgetGuards, budgetWaitMessage, decideCreateBudget, longestWindowMs, type BudgetGuard } from '../domain/create-budget.ts';
import { fairClaimOrder } from '../domain/fair-claim.ts';
import { INSUFFICIENT_STORAGE, SnapvisorError } from '../domain/errors.ts';
import type { Job, JobError } from '../domain/types.ts';
import { storeWriteFailure, type FairJobCandidate, type JobCandidate } from '../store/index.ts';
import { sleep, within } from '../../providers/shared/sleep.ts';
import { backoffDelayMs, decideAfterError } from './backoff.ts';
import type { BoundTarget, Core, TargetLease } from './core.ts';
import { runHandler } from './handlers.ts';
import type { LeaseKeeper } from './leases.ts';
import { errSummary, type Sync } from './sync.ts';

interface Running {
  job: Job;
  ticket: string;
  controller: AbortController;
  /** Why the signal fired, when it did. */
  reason: 'cancel' | 'stop' | 'timeout' | null;
  /** The provider's final progress message (100 %), written with the job's final state. */
  finalMessage?: string;
  done: Promise<void>;
}

export interface Worker {
  start(): void;
  /** Runs one claim round now (tests, and after submit). */
  kick(): void;
  /** Resolves once a claim round that started after this call has ended (tests wait on it instead of sleeping). */
  claimRound(): Promise<void>;
  /**
   * Stops claiming at once; waits for running jobs up to graceMs; then calls `graceOver`, fires
   * their signals and waits up to `abortWaitMs` (default 1 s) for them to end. A job interrupted
   * this way is left for the next start's recovery ({@link shutdownUncertainError}), whether its
   * handler noticed the signal or not: it may have reached the hypervisor.
   */
  stop(graceMs: number, options?: { abortWaitMs?: number; graceOver?: () => void }): Promise<void>;
  /** Fires the signal of a job running here; false when it does not run here. */
  abort(jobId: string): boolean;
  runningVmIds(): Set<string>;
}

const CLAIM_BATCH = 50;
/**
 * Candidates read per principal beyond a target's free slots: a few may be deferred by the create
 * budget or lose their claim, and the round should still fill the target.
 */
const CANDIDATE_SLACK = 8;
/** Create budget events older than every declared window are deleted at most this often. */
const BUDGET_PRUNE_INTERVAL_MS = 60_000;
const PROGRESS_INTERVAL_MS = 250;
/** After aborting at shutdown, how long to wait for handlers to notice before leaving them to recovery. */
export const ABORT_WAIT_MS = 1_000;
/** A job's settlement the store refused (a full disk) is written again after this, doubling up to the cap. */
const SETTLE_RETRY_INITIAL_MS = 250;
const SETTLE_RETRY_MAX_MS = 15_000;

export function createWorker(core: Core, sync: Sync, leases: LeaseKeeper): Worker {
  const running = new Map<string, Running>();
  let timer: NodeJS.Timeout | null = null;
  let started = false;
  let stopping = false;
  /** Aborted when stop()'s grace is over: settlements still being retried are left to recovery. */
  let halt = new AbortController();
  let ticking = false;
  let again = false;
  /** A round asked for by a finished job, not started yet: jobs ending in one turn share it. */
  let kicked = false;
  const kickSoon = () => {
    if (kicked || stopping || !started) return;
    kicked = true;
    setImmediate(() => {
      kicked = false;
      void tick();
    });
  };
  /** claimRound() callers waiting for the next round to end. */
  let roundWaiters: Array<() => void> = [];
  const releaseWaiters = (waiters: Array<() => void>) => {
    for (const w of waiters) w();
  };

  const schedule = (ms: number) => {
    if (stopping || !started) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void tick(), ms);
    timer.unref?.();
  };

  async function tick(): Promise<void> {
    if (stopping) return;
    if (ticking) {
      again = true;
      return;
    }
    ticking = true;
    try {
      do {
        again = false;
        const waiters = roundWaiters;
        roundWaiters = [];
        try {
          await claimRound();
        } finally {
          releaseWaiters(waiters);
        }
      } while (again && !stopping);
    } catch (err) {
      core.log.error({ err: errSummary(err) }, 'worker claim round failed');
    } finally {
      ticking = false;
      schedule(core.settings.workerPollMs);
    }
  }

  async function claimRound(): Promise<void> {
    const targets = await core.targets();
    await pruneBudgetEvents();
    const busyVms = new Set([...running.values()].map((r) => r.job.vmId));
    const perTarget = new Map<string, number>();
    for (const r of running.values()) perTarget.set(r.job.targetId, (perTarget.get(r.job.targetId) ?? 0) + 1);
    const limitOf = (target: BoundTarget) => Math.max(1, target.spec.concurrency);
    // Only targets with a free slot are asked for work: a full target costs a round nothing, and
    // its queue cannot hide another target's jobs (each target's candidates are read on their own).
    const open = [...targets.values()].filter((t) => (perTarget.get(t.row.id) ?? 0) < limitOf(t));
    if (open.length === 0) return;
    const principals = await core.store.jobs.queuedPrincipals();
    if (principals.length === 0) return;
    const now = core.iso();
    const candidates: FairJobCandidate[] = [];
    for (const target of open) {
      const free = limitOf(target) - (perTarget.get(target.row.id) ?? 0);
      const queues = new Map<string, FairJobCandidate[]>();
      for (const principal of principals) {
        const queue = await core.store.jobs.fairCandidates(target.row.id, principal, now, Math.min(CLAIM_BATCH, free + CANDIDATE_SLACK));
        if (queue.length > 0) queues.set(principal, queue);
      }
      if (queues.size === 0) continue;
      const runningHere = new Map<string, number>();
      for (const r of running.values()) {
        if (r.job.targetId === target.row.id) runningHere.set(r.job.requestedBy, (runningHere.get(r.job.requestedBy) ?? 0) + 1);
      }
      candidates.push(...fairClaimOrder({ queues, running: runningHere, busyVms, lastClaimed: lastClaimedOn(target.row.id) }));
    }
    const budgets = await createBudgets(candidates);
    for (const candidate of candidates) {
      if (stopping) return;
      if (busyVms.has(candidate.vmId)) continue;
      // Looked up per candidate: a reload between two claims changes targets and their concurrency.
      const target = core.boundById(candidate.targetId);
      if (!target) continue; // its target is no longer configured; the job waits
      const limit = limitOf(target);
      if ((perTarget.get(candidate.targetId) ?? 0) >= limit) continue;
      let budget: { keys: string[]; guards: BudgetGuard[] } | null = null;
      if (budgets !== null && candidate.kind === 'snapshot.create') {
        const verdict = await budgets.check(candidate);
        if (verdict === 'wait') continue;
        budget = verdict;
      }
      const ticket = randomUUID();
      const lease = leases.lease();
      const job = await core.store.jobs.tryClaim(candidate.id, ticket, core.iso(), limit, { lease, ...(budget ? { budgetKeys: budget.keys, budgetGuards: budget.guards } : {}) });
      if (!job) continue;
      // Held from the claim: the heartbeat renews it until the job is settled.
      const release = leases.hold(job.id, lease);
      if (budget) budgets?.recorded(job.targetId, budget.keys);
      busyVms.add(job.vmId);
      perTarget.set(job.targetId, (perTarget.get(job.targetId) ?? 0) + 1);
      lastClaimedOn(job.targetId).set(job.requestedBy, ++claimClock);
      launch(job, ticket, release);
    }
  }

  /** Per target, when each principal last had a job claimed there (claimClock values): whose turn it is. */
  const lastClaimed = new Map<string, Map<string, number>>();
  let claimClock = 0;
  const lastClaimedOn = (targetId: string): Map<string, number> => {
    let byPrincipal = lastClaimed.get(targetId);
    if (!byPrincipal) {
      byPrincipal = new Map();
      lastClaimed.set(targetId, byPrincipal);
    }
    return byPrincipal;
  };

  /** The create budgets a target declares (capabilities.limits.createRate); empty for most. */
  const createRateOf = (targetId: string): CreateRateLimit[] => core.boundById(targetId)?.provider.capabilities().limits.createRate ?? [];

  /**
   * The create budgets of one claim round, or null when no due create is on a target declaring one
   * (then a round costs nothing more). Reads, once per round, the stored disks of the budgeted
   * candidates' VMs (one query) and each budgeted target's recent events (one query per target);
   * the events of claims made in this round are added as they happen.
   */
  async function createBudgets(candidates: readonly JobCandidate[]) {
    const limitsByTarget = new Map<string, CreateRateLimit[]>();
    const budgeted: JobCandidate[] = [];
    for (const c of candidates) {
      if (c.kind !== 'snapshot.create') continue;
      let limits = limitsByTarget.get(c.targetId);
      if (!limits) {
        limits = createRateOf(c.targetId);
        limitsByTarget.set(c.targetId, limits);
      }
      if (limits.length > 0) budgeted.push(c);
    }
    if (budgeted.length === 0) return null;
    const nowMs = core.now().getTime();
    const disks: Map<string, DiskInfo[] | null> = await core.store.vms.disksOf([...new Set(budgeted.map((c) => c.vmId))]);
    const events = new Map<string, Map<string, number[]>>();
    for (const targetId of new Set(budgeted.map((c) => c.targetId))) {
      const byKey = new Map<string, number[]>();
      const since = new Date(nowMs - longestWindowMs(limitsByTarget.get(targetId)!)).toISOString();
      for (const e of await core.store.budgets.recent(targetId, since)) {
        const list = byKey.get(e.key) ?? [];
        list.push(Date.parse(e.at));
        byKey.set(e.key, list);
      }
      events.set(targetId, byKey);
    }
    return {
      /**
       * null: not budgeted; keys: within budget, record them with the claim, whose guards re-check the
       * budget where claims are serialised (another replica may have claimed a create sharing a key
       * since this round read the events); 'wait': deferred.
       */
      async check(c: JobCandidate): Promise<{ keys: string[]; guards: BudgetGuard[] } | null | 'wait'> {
        const limits = limitsByTarget.get(c.targetId);
        if (!limits || limits.length === 0) return null;
        const now = core.now().getTime();
        const vm = { id: c.vmId, disks: disks.get(c.vmId) ?? null };
        const decision = decideCreateBudget({ limits, vm, events: events.get(c.targetId)!, now });
        if (decision.go) return { keys: decision.keys, guards: budgetGuards(limits, vm, now) };
        const message = budgetWaitMessage(decision);
        const deferred = await core.store.jobs.deferQueued(c.id, new Date(decision.until).toISOString(), message);
        if (deferred) {
          core.log.debug({ jobId: c.id, until: deferred.nextAttemptAt, key: decision.key }, 'create waits for its target\'s create budget');
          core.events.emit({ type: 'job', job: deferred });
        }
        return 'wait';
      },
      recorded(targetId: string, keys: readonly string[]) {
        const byKey = events.get(targetId);
        if (!byKey) return;
        const at = core.now().getTime();
        for (const key of keys) byKey.set(key, [...(byKey.get(key) ?? []), at]);
      },
    };
  }

  /** At most once a minute: deletes create budget events older than the longest window any target declares. */
  let lastPruneMs: number | null = null;
  async function pruneBudgetEvents(): Promise<void> {
    const nowMs = core.now().getTime();
    // A clock that went backwards restarts the interval rather than stopping pruning.
    if (lastPruneMs !== null && nowMs >= lastPruneMs && nowMs - lastPruneMs < BUDGET_PRUNE_INTERVAL_MS) return;
    lastPruneMs = nowMs;
    let longest = 0;
    for (const t of (await core.targets()).values()) longest = Math.max(longest, longestWindowMs(t.provider.capabilities().limits.createRate ?? []));
    if (longest === 0) return; // nothing declares a budget: nothing written, nothing to prune
    const pruned = await core.store.budgets.prune(new Date(nowMs - longest).toISOString());
    if (pruned > 0) core.log.debug({ pruned }, 'old create budget events pruned');
  }

  function launch(job: Job, ticket: string, releaseLease: () => void): void {
    const entry: Running = { job, ticket, controller: new AbortController(), reason: null, done: Promise.resolve() };
    running.set(job.id, entry);
    entry.done = execute(entry)
      .catch((err: unknown) => core.log.error({ jobId: job.id, err: errSummary(err) }, 'job settlement failed'))
      .finally(() => {
        releaseLease();
        running.delete(job.id);
        if (!stopping) kickSoon();
      });
  }

  async function execute(entry: Running): Promise<void> {
    const { job, ticket } = entry;
    const log = core.log.child({ jobId: job.id, kind: job.kind, attempt: job.attempts });
    core.events.emit({ type: 'job', job });
    // One line per job at info, when it ends (it names the outcome); its start is debug detail.
    log.debug({ vmId: job.vmId }, 'job started');
    const timeout = setTimeout(() => {
      entry.reason ??= 'timeout';
      entry.controller.abort(new Error('job attempt timed out'));
    }, core.settings.jobTimeoutMs);
    timeout.unref?.();
    // A job that ends within the interval writes no progress at all (finishing sets 100 %), except a
    // final message: it explains the outcome. That one is held back and written with the final state
    // in the same statement on success (one write less per job), or just before a failure is settled.
    // The injected clock, so tests cross the interval by advancing it instead of sleeping.
    let lastProgressAt = core.now().getTime();
    const ctx: CallContext = {
      signal: entry.controller.signal,
      log,
      firstAttempt: job.attempts === 1,
      ...(job.checkpoint ? { resume: job.checkpoint } : {}),
      // Written before the provider goes on (it awaits this): a crash after it finds the record.
      async checkpoint(record) {
        const saved = await core.store.jobs.checkpoint(job.id, ticket, record);
        if (!saved) {
          throw new SnapvisorError('transient', 'SNAPVISOR_ERR_CLAIM_LOST', `job ${job.id} is no longer claimed by this attempt; not going on`, { retry: 'uncertain' });
        }
        log.debug({ checkpoint: saved.checkpoint }, 'job checkpoint recorded');
      },
      progress(percent, message) {
        const at = core.now().getTime();
        if (percent >= 100 && message !== undefined) {
          entry.finalMessage = message;
          return;
        }
        if (at - lastProgressAt < PROGRESS_INTERVAL_MS) return;
        lastProgressAt = at;
        void core.store.jobs
          .setProgress(job.id, ticket, percent, message ?? null)
          .then((fresh) => {
            if (fresh && fresh.state === 'running') core.events.emit({ type: 'job', job: fresh });
          })
          .catch((err: unknown) => log.warn({ err: errSummary(err) }, 'progress update failed'));
      },
    };

    let settled: Job | null;
    // Held until the job is settled: a reload that changes or removes the target lets it finish on
    // this provider, which is closed after.
    let lease: TargetLease | null = null;
    try {
      lease = await core.leaseById(job.targetId);
      const vm = await core.store.vms.get(job.vmId);
      if (!vm) throw new SnapvisorError('not_found', 'SNAPVISOR_ERR_VM_NOT_FOUND', `VM of job ${job.id} is missing from the store`);
      const result = await runHandler({ core, sync, job, target: lease.target, vm, ctx });
      clearTimeout(timeout);
      // Success stands even if a cancel arrived meanwhile: the hypervisor already did it. Recording
      // it is retried while the storage refuses it, never turned into a failure.
      settled = await persist(log, 'success', () =>
        core.store.jobs.finish(job.id, ticket, { state: 'succeeded', result, error: null, at: core.iso(), progressMessage: entry.finalMessage ?? null }),
      ).catch((err: unknown) => {
        log.error({ err: errSummary(err) }, 'could not record the job\'s success; it stays running and the next start checks on the hypervisor what it did');
        return null;
      });
      log.info({ result, recorded: settled !== null }, 'job succeeded');
    } catch (err) {
      settled = await settleFailure(entry, err, log, lease?.target ?? null);
    } finally {
      clearTimeout(timeout);
      lease?.release();
    }
    if (settled) {
      core.events.emit({ type: 'job', job: settled });
      if (settled.state !== 'queued' && settled.state !== 'running') core.metrics.jobsFinished.inc({ kind: settled.kind, state: settled.state });
    }
  }

  async function settleFailure(entry: Running, err: unknown, log: CallContext['log'], target: BoundTarget | null): Promise<Job | null> {
    const { job, ticket } = entry;
    if (entry.finalMessage !== undefined) {
      // The provider's last word before the failure, persisted as it was before being held back.
      await core.store.jobs.setProgress(job.id, ticket, 100, entry.finalMessage).catch((e: unknown) => log.warn({ err: errSummary(e) }, 'progress update failed'));
    }
    const now = core.now();
    const cancelRequested = entry.reason === 'cancel' || (await core.store.jobs.get(job.id))?.cancelRequested === true;
    if (cancelRequested) {
      log.info({ err: errSummary(err) }, 'job cancelled while running');
      await resyncQuietly(job, target, log);
      return persist(log, 'cancellation', () => core.store.jobs.finish(job.id, ticket, { state: 'cancelled', error: cancelledError(), at: now.toISOString() }));
    }
    if (entry.reason === 'stop') {
      // Aborted mid-call: the hypervisor may have done it. Not queued again blindly (a retry counted
      // as a first attempt may skip the marker look-up and make a second snapshot): left running
      // for the next start, whose recovery looks on the hypervisor first.
      log.warn({ err: errSummary(err) }, 'daemon stopping: job interrupted; the next start checks on the hypervisor what it did');
      return core.store.jobs.leaveForRecovery(job.id, ticket, shutdownUncertainError()).catch((e: unknown) => {
        // Running it stays either way, which is all recovery needs.
        log.warn({ err: errSummary(e) }, 'could not record the interruption; the job stays running for recovery');
        return null;
      });
    }
    if (storeWriteFailure(err) !== null) {
      // The hypervisor may have done its part (a snapshot made, not yet recorded): never a failure.
      // Queued again, the retry looks for the job's marker first and records what it finds.
      const nextAttemptAt = new Date(now.getTime() + backoffDelayMs(job.attempts, core.settings.backoff)).toISOString();
      log.error({ err: errSummary(err), nextAttemptAt }, 'job attempt could not be recorded in the store; will retry');
      return persist(log, 'retry', () => core.store.jobs.requeue(job.id, ticket, { nextAttemptAt, error: storeRefusedError(err) }));
    }
    const cause =
      entry.reason === 'timeout' && !(err instanceof SnapvisorError)
        ? new SnapvisorError('transient', 'SNAPVISOR_ERR_JOB_TIMEOUT', `job attempt timed out after ${core.settings.jobTimeoutMs} ms`, { retry: 'uncertain' })
        : err;
    const decision = decideAfterError(cause, job, core.settings.backoff);
    const removed = core.removedByReload(job.targetId);
    if (removed !== null && (decision.action === 'retry' || target === null)) {
      // Its target was removed by a reload: no later attempt could run (or this one never started).
      log.info({ err: errSummary(err), reason: removed }, 'job cancelled: its target was removed');
      if (target) await resyncQuietly(job, target, log);
      return persist(log, 'cancellation', () => core.store.jobs.finish(job.id, ticket, { state: 'cancelled', error: targetRemovedError(removed), at: now.toISOString() }));
    }
    if (decision.action === 'retry') {
      const nextAttemptAt = new Date(now.getTime() + decision.delayMs).toISOString();
      log.warn({ error: decision.error, nextAttemptAt }, 'job attempt failed; will retry');
      return persist(log, 'retry', () => core.store.jobs.requeue(job.id, ticket, { nextAttemptAt, error: decision.error }));
    }
    if (decision.internal) log.error({ err: errSummary(err) }, 'job failed with an unexpected error');
    else log.warn({ error: decision.error }, 'job failed');
    await resyncQuietly(job, target, log);
    return persist(log, 'failure', () => core.store.jobs.finish(job.id, ticket, { state: 'failed', error: decision.error, at: now.toISOString() }));
  }

  /**
   * Writes a job's settlement, again and again while the store refuses it (a full disk): a job that
   * ran is neither left `running` here unseen nor recorded as something else. Given up only when
   * stop()'s grace is over: the row then still says `running`, and the next start's recovery
   * settles it from the hypervisor (a create by its marker). Null when given up; throws only what
   * is not a failure of the storage.
   */
  async function persist(log: CallContext['log'], what: string, write: () => Promise<Job | null>): Promise<Job | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        const job = await write();
        if (attempt > 1) log.warn({ attempts: attempt }, `job ${what} recorded after the store had refused it`);
        return job;
      } catch (err) {
        const storage = storeWriteFailure(err);
        // Anything else is no state of the disk that could change: retrying would not help.
        if (storage === null) throw err;
        if (halt.signal.aborted) {
          log.error({ err: errSummary(err), attempts: attempt }, `daemon stopping: job ${what} could not be recorded; the job stays running and the next start checks on the hypervisor what it did`);
          return null;
        }
        const retryInMs = Math.min(SETTLE_RETRY_MAX_MS, SETTLE_RETRY_INITIAL_MS * 2 ** Math.min(attempt - 1, 16));
        log.error({ err: errSummary(err), attempt, retryInMs, storage }, `could not record job ${what} in the store; retrying`);
        await sleep(retryInMs, halt.signal);
      }
    }
  }

  /** A failed or cancelled mutation may have half-happened: re-read the VM so the store shows the truth. */
  async function resyncQuietly(job: Job, target: BoundTarget | null, log: CallContext['log']): Promise<void> {
    if (!target) return;
    try {
      const vm = await core.store.vms.get(job.vmId);
      if (vm) await sync.syncVm(target, vm);
    } catch (err) {
      log.debug({ err: errSummary(err) }, 'resync after a failed job failed');
    }
  }

  return {
    start() {
      started = true;
      stopping = false;
      if (halt.signal.aborted) halt = new AbortController();
      void tick();
    },
    kick() {
      // At once, not coalesced: a submitted job is claimed before the next request is read, which
      // keeps two jobs queued for one VM in submit order even when their created_at ties.
      if (started && !stopping) void tick();
    },
    claimRound() {
      if (!started || stopping) return Promise.resolve();
      return new Promise<void>((resolve) => {
        roundWaiters.push(resolve);
        void tick();
      });
    },
    async stop(graceMs, { abortWaitMs = ABORT_WAIT_MS, graceOver } = {}) {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = null;
      releaseWaiters(roundWaiters);
      roundWaiters = [];
      const all = () => Promise.all([...running.values()].map((r) => r.done));
      if (running.size > 0) core.log.info({ jobs: [...running.keys()], graceMs }, 'waiting for running jobs');
      if (running.size === 0 || (await within(all(), graceMs))) {
        graceOver?.();
        return;
      }
      graceOver?.();
      halt.abort();
      const interrupted = [...running.values()];
      for (const r of interrupted) {
        r.reason ??= 'stop';
        r.controller.abort(new Error('daemon stopping'));
      }
      if (await within(all(), abortWaitMs)) return;
      // Handlers still inside a call that ignores its signal (a hung connection): record them for
      // recovery now; their late settlement, if any, finds its claim gone and changes nothing.
      const left = [...running.values()].filter((r) => interrupted.includes(r));
      for (const r of left) {
        await core.store.jobs.leaveForRecovery(r.job.id, r.ticket, shutdownUncertainError()).catch((err: unknown) =>
          core.log.warn({ jobId: r.job.id, err: errSummary(err) }, 'could not record the interruption; the job stays running for recovery'),
        );
      }
      core.log.warn({ jobs: left.map((r) => r.job.id) }, 'jobs did not end when aborted; left running for recovery at the next start');
    },
    abort(jobId) {
      const r = running.get(jobId);
      if (!r) return false;
      r.reason ??= 'cancel';
      r.controller.abort(new Error('job cancelled'));
      return true;
    },
    runningVmIds: () => new Set([...running.values()].map((r) => r.job.vmId)),
  };
}

export const cancelledError = (): JobError => ({ kind: 'cancelled', message: 'the job was cancelled' });

/** The error of a job cancelled because a reload removed its target; `reason` names the target. */
export const targetRemovedError = (reason: string): JobError => ({ kind: 'cancelled', message: reason });

/** The error of a job queued again because the store refused to record its attempt. */
const storeRefusedError = (err: unknown): JobError => ({
  kind: 'transient',
  code: storeWriteFailure(err) === 'full' ? INSUFFICIENT_STORAGE : 'SNAPVISOR_ERR_STORE_WRITE',
  message: 'the store could not record this attempt (the disk holding the database is full, or failing); the retry checks on the hypervisor what it did',
});

/** The error a job interrupted by a shutdown carries until the next start's recovery settles it. */
export const shutdownUncertainError = (): JobError => ({
  kind: 'transient',
  code: 'SNAPVISOR_ERR_SHUTDOWN_UNCERTAIN',
  message: 'the daemon stopped during this attempt; whether it reached the hypervisor is checked when the daemon starts again',
});
