/**
 * The policy scheduler: decides *when* each enabled policy runs (its cron `schedule` for snapshot
 * runs, its `consolidationSchedule` for consolidate runs, in the policy's time zone) and asks the
 * PolicyRunPort to start the run; what a run does is the port's business.
 *
 * - One timer for every policy: the next fire times sit in a min-heap and the timer waits for the
 *   earliest (at most `maxSleepMs`, so a wall-clock jump forward is seen soon and no wait is longer
 *   than setTimeout's 2^31-1 ms). Every wake re-reads the clock; a timer that fires early re-arms.
 * - A slot is fired at most once: the next slot is always after the last one fired (in this
 *   process) or persisted (the port's lastScheduledFor, which survives restarts), so a clock
 *   turned back only delays runs.
 * - Slots missed while the daemon was down (or asleep, or the clock jumped forward) become ONE
 *   'catch-up' run for the latest of them, not one per slot.
 * - Jitter: each policy fires a fixed delay in [0, jitterMaxMs) after its slots (a hash of its id,
 *   domain/policy-slots.ts), to spread policies sharing a schedule. scheduledFor stays the slot.
 * - Overlap: the port records a 'skipped' run when the previous run of (policy, kind) still goes;
 *   the scheduler logs and counts it. A port that throws is logged and counted, never stops the loop.
 *
 * `refresh()` must be called by the policies code after a policy is created, changed or deleted
 * (calls in the same tick are coalesced into one reload of `port.schedulable()`).
 *
 * Metrics (on the registry given): `snapvisor_policy_run_lateness_seconds{kind}` — fire time minus
 * (slot + the policy's jitter), so the intended jitter is not counted as lateness, for 'schedule'
 * runs only (a catch-up's delay is the downtime, not the scheduler's); `snapvisor_policy_runs_skipped_total{kind}`;
 * `snapvisor_policy_run_start_failures_total{kind}`; `snapvisor_scheduler_policies` (policies with
 * at least one schedule); `snapvisor_scheduler_fires_total{kind,trigger}`.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../providers/contract.ts';
import { MinHeap } from '../domain/min-heap.ts';
import type { Policy, PolicyRun, PolicyRunKind } from '../domain/policy.ts';
import { latestSlotAtOrBefore, MIN_SLOT_GAP_MS, policyJitterMs } from '../domain/policy-slots.ts';
import { nextFireAfter } from '../domain/schedule.ts';
import type { Iso } from '../domain/types.ts';
import type { PolicyRunPort } from './policy-port.ts';
import { errSummary } from './sync.ts';

export interface SchedulerOptions {
  port: PolicyRunPort;
  log: Logger;
  /** The registry the scheduler's metrics are registered on (the engine's). */
  metrics: Registry;
  /** Policies fire a stable delay in [0, jitterMaxMs) after each slot (config scheduler.jitterSec × 1000). */
  jitterMaxMs: number;
  /** Wall clock (default: the real one). */
  clock?: () => Date;
  /** Longest wait before the clock is read again (default 10 s; tests use a few ms with a moved clock). */
  maxSleepMs?: number;
}

export type ScheduledTrigger = 'schedule' | 'catch-up';

export interface PlannedFire {
  policyId: string;
  kind: PolicyRunKind;
  trigger: ScheduledTrigger;
  /** The slot the run will be for. */
  scheduledFor: Iso;
  /** When it fires: the slot plus the policy's jitter (a catch-up: start plus jitter). */
  fireAt: Iso;
}

export interface Scheduler {
  /** Loads the enabled policies, plans one catch-up per (policy, kind) that missed slots, arms the timer. Again after stop(): a fresh plan. */
  start(): void;
  /** Disarms the timer; resolves once the startRun calls already made have settled. start() may follow. */
  stop(): Promise<void>;
  /** Policies changed: reload them (coalesced per tick); resolves once reloaded. */
  refresh(): Promise<void>;
  /** The next fire of every (policy, kind), earliest first. */
  planned(): PlannedFire[];
  /** Resolves once a wake that started after the call has ended (tests wait on it instead of sleeping). */
  wakeRound(): Promise<void>;
}

export const SCHEDULER_DEFAULTS = { maxSleepMs: 10_000 } as const;

const KINDS: readonly PolicyRunKind[] = ['snapshot', 'consolidate'];
const TRIGGERS: readonly ScheduledTrigger[] = ['schedule', 'catch-up'];

interface Entry {
  key: string;
  policyId: string;
  kind: PolicyRunKind;
  expression: string;
  timezone: string;
  jitterMs: number;
  slot: number;
  trigger: ScheduledTrigger;
  dueAt: number;
  /** Heap items of an older plan for this key carry an older seq and are dropped when they surface. */
  seq: number;
}

const isoMs = (iso: Iso | null | undefined): number | null => {
  if (iso == null) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : null;
};

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { port, log } = options;
  const clock = options.clock ?? (() => new Date());
  const maxSleepMs = Math.max(1, Math.min(options.maxSleepMs ?? SCHEDULER_DEFAULTS.maxSleepMs, 2 ** 31 - 1));
  const jitterMaxMs = Math.max(0, options.jitterMaxMs);

  const lateness = new Histogram({
    name: 'snapvisor_policy_run_lateness_seconds',
    help: "Scheduled policy runs: fire time minus (cron slot + the policy's jitter); catch-up runs are not observed",
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [options.metrics],
  });
  const skipped = new Counter({
    name: 'snapvisor_policy_runs_skipped_total',
    help: 'Policy runs skipped because the previous run of the same policy and kind was still going',
    labelNames: ['kind'] as const,
    registers: [options.metrics],
  });
  const startFailures = new Counter({
    name: 'snapvisor_policy_run_start_failures_total',
    help: 'Policy runs the scheduler could not start (the run could not be recorded or submitted)',
    labelNames: ['kind'] as const,
    registers: [options.metrics],
  });
  const fires = new Counter({
    name: 'snapvisor_scheduler_fires_total',
    help: 'Policy runs the scheduler asked for, by trigger (catch-up: one run for slots missed while the daemon was down)',
    labelNames: ['kind', 'trigger'] as const,
    registers: [options.metrics],
  });
  const policiesGauge = new Gauge({
    name: 'snapvisor_scheduler_policies',
    help: 'Enabled policies the scheduler holds a next run for',
    registers: [options.metrics],
  });
  // Series at 0 from the start, so alerts on their rate see them before the first event.
  for (const kind of KINDS) {
    skipped.inc({ kind }, 0);
    startFailures.inc({ kind }, 0);
    for (const trigger of TRIGGERS) fires.inc({ kind, trigger }, 0);
  }

  const entries = new Map<string, Entry>();
  const heap = new MinHeap<{ key: string; seq: number }>();
  /** The latest slot fired in this process per key: the port may not have persisted it yet. */
  const lastFired = new Map<string, number>();
  const inFlight = new Set<Promise<void>>();
  let seq = 0;
  let policyCount = 0;
  /** The last read of the policies failed: every wake tries again (at most maxSleepMs apart). */
  let loadFailed = false;
  let timer: NodeJS.Timeout | null = null;
  let started = false;
  let stopped = false;
  let pendingRefresh: Promise<void> | null = null;
  let wakeWaiters: Array<() => void> = [];

  // A cron lookup costs 0.1–0.5 ms (croner builds its time-zone formatter each time); policies on
  // one schedule share their answers within a load or a wake (1,000 policies firing at the same
  // minute need one lookup, not 1,000). Cleared at the start of each.
  const lookups = new Map<string, number | null>();
  const memo = (kind: 'next' | 'latest', expression: string, timezone: string, at: number): number | null => {
    const key = `${kind}\u0000${expression}\u0000${timezone}\u0000${at}`;
    let slot = lookups.get(key);
    if (slot === undefined) {
      const date = kind === 'next' ? nextFireAfter(expression, timezone, new Date(at)) : latestSlotAtOrBefore(expression, timezone, new Date(at));
      slot = date?.getTime() ?? null;
      lookups.set(key, slot);
    }
    return slot;
  };

  const keyOf = (policyId: string, kind: PolicyRunKind) => `${kind}\u0000${policyId}`;

  const enqueue = (entry: Entry) => {
    entry.seq = ++seq;
    entries.set(entry.key, entry);
    heap.push(entry.dueAt, { key: entry.key, seq: entry.seq });
  };

  /** The first fire of (policy, kind) from its persisted and in-process history. */
  const plan = (policy: Policy, kind: PolicyRunKind, expression: string, lastIso: Iso | null, now: number): Entry | null => {
    const key = keyOf(policy.id, kind);
    const lasts = [isoMs(lastIso), lastFired.get(key) ?? null].filter((x): x is number => x !== null);
    const last = lasts.length > 0 ? Math.max(...lasts) : null;
    // Never ran: count from creation, so a policy created just before a shutdown still catches up.
    // A change (re-enabled, new schedule) counts from then: slots before it were not missed.
    const base = Math.max(last ?? isoMs(policy.createdAt) ?? now, isoMs(policy.updatedAt) ?? -Infinity);
    const first = memo('next', expression, policy.timezone, base);
    if (first === null) {
      log.info({ policyId: policy.id, kind, schedule: expression }, 'policy schedule never fires again');
      return null;
    }
    const jitterMs = policyJitterMs(policy.id, jitterMaxMs);
    const entry: Entry = { key, policyId: policy.id, kind, expression, timezone: policy.timezone, jitterMs, slot: first, trigger: 'schedule', dueAt: first + jitterMs, seq: 0 };
    if (entry.slot <= now) {
      const latest = memo('latest', expression, policy.timezone, now);
      entry.slot = Math.max(entry.slot, latest ?? entry.slot);
      entry.trigger = 'catch-up';
      entry.dueAt = now + jitterMs;
      log.info({ policyId: policy.id, kind, scheduledFor: new Date(entry.slot).toISOString(), lastScheduledFor: lastIso }, 'policy missed runs: one catch-up run planned');
    }
    return entry;
  };

  /** (Re)reads the policies; unchanged schedules keep their planned fire (a pending catch-up included). */
  const load = (): void => {
    let rows: ReturnType<PolicyRunPort['schedulable']>;
    try {
      rows = port.schedulable();
      loadFailed = false;
    } catch (err) {
      if (!loadFailed) log.error({ err: errSummary(err) }, 'scheduler could not read the policies; the previous plan stays, retried at each wake');
      loadFailed = true;
      return;
    }
    const now = clock().getTime();
    lookups.clear();
    const seen = new Set<string>();
    for (const { policy, lastScheduledFor } of rows) {
      if (!policy.enabled) continue;
      for (const kind of KINDS) {
        const expression = kind === 'snapshot' ? policy.schedule : policy.consolidationSchedule;
        if (!expression) continue;
        const key = keyOf(policy.id, kind);
        seen.add(key);
        const existing = entries.get(key);
        const persisted = isoMs(lastScheduledFor[kind]);
        const unchanged = existing && existing.expression === expression && existing.timezone === policy.timezone;
        if (unchanged && (persisted === null || persisted < existing.slot)) continue;
        try {
          const entry = plan(policy, kind, expression, lastScheduledFor[kind], now);
          if (entry) enqueue(entry);
          else entries.delete(key);
        } catch (err) {
          entries.delete(key);
          log.error({ policyId: policy.id, kind, err: errSummary(err) }, 'policy schedule cannot be planned; it is not scheduled');
        }
      }
    }
    for (const key of [...entries.keys()]) {
      if (seen.has(key)) continue;
      entries.delete(key);
      lastFired.delete(key);
    }
    policyCount = new Set([...entries.values()].map((e) => e.policyId)).size;
    policiesGauge.set(policyCount);
  };

  const startRun = (entry: Entry, trigger: ScheduledTrigger, slot: number) => {
    const scheduledFor = new Date(slot).toISOString();
    const context = { policyId: entry.policyId, kind: entry.kind, trigger, scheduledFor };
    let call: Promise<PolicyRun>;
    try {
      call = port.startRun(entry.policyId, entry.kind, trigger, scheduledFor);
    } catch (err) {
      call = Promise.reject(err);
    }
    const settled = call.then(
      (run) => {
        if (run.state === 'skipped') {
          skipped.inc({ kind: entry.kind });
          log.warn({ ...context, runId: run.id, message: run.message }, 'policy run skipped: the previous run of this policy is still going');
        }
      },
      (err: unknown) => {
        startFailures.inc({ kind: entry.kind });
        log.error({ ...context, err: errSummary(err) }, 'policy run could not be started');
      },
    );
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
  };

  /** Starts the run of a due entry (for the latest slot it slept through, if any). */
  const fire = (entry: Entry): void => {
    const firedAt = clock().getTime();
    let { slot, trigger } = entry;
    // Later than the closest two slots can be: the timer slept through slots (suspend, a clock
    // jumped forward, a blocked loop). One run, for the latest of them, as at start.
    if (firedAt - entry.dueAt >= MIN_SLOT_GAP_MS) {
      const latest = latestSlotAtOrBefore(entry.expression, entry.timezone, new Date(firedAt - entry.jitterMs))?.getTime() ?? slot;
      if (latest > slot) {
        log.warn({ policyId: entry.policyId, kind: entry.kind, from: new Date(slot).toISOString(), to: new Date(latest).toISOString() }, 'policy slots passed while the scheduler slept: one catch-up run');
        slot = latest;
        trigger = 'catch-up';
      }
    }
    entry.slot = slot;
    lastFired.set(entry.key, slot);
    if (trigger === 'schedule') lateness.observe({ kind: entry.kind }, Math.max(0, firedAt - entry.dueAt) / 1000);
    fires.inc({ kind: entry.kind, trigger });
    log.debug({ policyId: entry.policyId, kind: entry.kind, trigger, scheduledFor: new Date(slot).toISOString() }, 'policy run due');
    startRun(entry, trigger, slot);
  };

  const planNext = (entry: Entry) => {
    try {
      const next = memo('next', entry.expression, entry.timezone, entry.slot);
      if (next === null) {
        entries.delete(entry.key);
        log.info({ policyId: entry.policyId, kind: entry.kind }, 'policy schedule never fires again');
        return;
      }
      enqueue({ ...entry, slot: next, trigger: 'schedule', dueAt: next + entry.jitterMs });
    } catch (err) {
      entries.delete(entry.key);
      log.error({ policyId: entry.policyId, kind: entry.kind, err: errSummary(err) }, 'policy schedule cannot be planned; it is not scheduled');
    }
  };

  const current = (item: { key: string; seq: number }) => {
    const entry = entries.get(item.key);
    return entry !== undefined && entry.seq === item.seq ? entry : undefined;
  };

  const arm = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (stopped) return;
    while (heap.size > 0 && !current(heap.peek()!.value)) heap.pop();
    const top = heap.peek();
    const delay = top ? Math.min(Math.max(0, top.key - clock().getTime()), maxSleepMs) : maxSleepMs;
    timer = setTimeout(wake, delay);
    // The daemon's server keeps the process up; only someone waiting for a wake should.
    if (wakeWaiters.length === 0) timer.unref?.();
  };

  const wake = () => {
    timer = null;
    const waiters = wakeWaiters;
    wakeWaiters = [];
    try {
      if (stopped) return;
      if (loadFailed) load();
      lookups.clear();
      const now = clock().getTime();
      const due: Entry[] = [];
      while (heap.size > 0 && heap.peek()!.key <= now) {
        const entry = current(heap.pop()!.value);
        if (entry) due.push(entry);
      }
      // Every due run is started before any next slot is computed: the last of a burst is not
      // delayed by the cron lookups of the others.
      for (const entry of due) {
        try {
          fire(entry);
        } catch (err) {
          log.error({ policyId: entry.policyId, kind: entry.kind, err: errSummary(err) }, 'policy run could not be fired; its next slot is planned');
        }
      }
      for (const entry of due) planNext(entry);
    } catch (err) {
      log.error({ err: errSummary(err) }, 'scheduler wake failed; it goes on');
    } finally {
      arm();
      for (const resolve of waiters) resolve();
    }
  };

  return {
    start() {
      if (started && !stopped) return;
      // A restart (the replica leads again): plan from the store afresh; another replica may have
      // fired slots meanwhile (load() reads them as lastScheduledFor). lastFired stays: a lower bound.
      started = true;
      stopped = false;
      entries.clear();
      heap.clear();
      load();
      const catchUps = [...entries.values()].filter((e) => e.trigger === 'catch-up').length;
      log.info({ policies: policyCount, schedules: entries.size, catchUps, jitterMaxMs }, 'scheduler started');
      arm();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      for (const resolve of wakeWaiters) resolve();
      wakeWaiters = [];
      await Promise.allSettled([...inFlight]);
    },
    refresh() {
      if (!started || stopped) return Promise.resolve();
      pendingRefresh ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          pendingRefresh = null;
          if (!stopped) {
            load();
            arm();
          }
          resolve();
        }),
      );
      return pendingRefresh;
    },
    planned() {
      return [...entries.values()]
        .sort((a, b) => a.dueAt - b.dueAt)
        .map((e) => ({ policyId: e.policyId, kind: e.kind, trigger: e.trigger, scheduledFor: new Date(e.slot).toISOString(), fireAt: new Date(e.dueAt).toISOString() }));
    },
    wakeRound() {
      if (stopped || !started) return Promise.resolve();
      timer?.ref?.();
      return new Promise<void>((resolve) => wakeWaiters.push(resolve));
    },
  };
}
