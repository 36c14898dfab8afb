/**
 * Issue 13, the policy scheduler (src/engine/scheduler.ts): fires at cron slots in the policy's
 * time zone, one catch-up for slots missed while down, never a slot twice (restart, clock jumps),
 * skips counted, jitter bounded and stable, refresh, a throwing port does not stop the others, DST.
 *
 * The PolicyRunPort here is an in-test implementation of the port (it keeps its run records like
 * the store does and derives lastScheduledFor from them), not our module mocked. The clock is
 * moved by the test; real timers stay short (maxSleepMs 2 ms), and every wait is on a condition or
 * on a wake of the scheduler that started after the clock was moved, never a sleep.
 */
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import type { Logger } from '../../providers/contract.ts';
import type { Policy, PolicyRun, PolicyRunKind, PolicyRunTrigger } from '../../src/domain/policy.ts';
import { policyJitterMs } from '../../src/domain/policy-slots.ts';
import type { Iso } from '../../src/domain/types.ts';
import type { PolicyRunPort } from '../../src/engine/policy-port.ts';
import { createScheduler } from '../../src/engine/scheduler.ts';

class Clock {
  ms: number;
  constructor(iso: string) {
    this.ms = Date.parse(iso);
  }
  set(iso: string) {
    this.ms = Date.parse(iso);
  }
  now = () => new Date(this.ms);
}

class LabPort implements PolicyRunPort {
  readonly policies = new Map<string, Policy>();
  readonly runs: PolicyRun[] = [];
  /** New runs stay 'running' (so the next slot of the same policy and kind is skipped). */
  holdRuns = false;
  /** How startRun fails for a policy: a synchronous throw or a rejected promise. */
  readonly failures = new Map<string, 'throw' | 'reject'>();
  /** The next n schedulable() calls throw. */
  schedulableFailures = 0;
  constructor(private readonly clock: Clock) {}

  add(policy: Partial<Policy> & Pick<Policy, 'id' | 'schedule'>): Policy {
    const at = this.clock.now().toISOString();
    const full: Policy = {
      name: policy.id, selector: { targets: ['lab'] }, timezone: 'UTC', mode: 'crash', retention: { keepLast: 3 },
      maxChainDepth: null, consolidationSchedule: null, enabled: true, createdAt: at, updatedAt: at, ...policy,
    };
    this.policies.set(full.id, full);
    return full;
  }

  change(id: string, patch: Partial<Policy>) {
    this.policies.set(id, { ...this.policies.get(id)!, ...patch, updatedAt: this.clock.now().toISOString() });
  }

  /** A run recorded by an earlier daemon (persisted), for lastScheduledFor. */
  persisted(policyId: string, kind: PolicyRunKind, scheduledFor: Iso) {
    this.runs.push({ id: `old-${this.runs.length}`, policyId, kind, trigger: 'schedule', scheduledFor, startedAt: scheduledFor, finishedAt: scheduledFor, state: 'succeeded', jobIds: [], message: null });
  }

  private last(policyId: string, kind: PolicyRunKind): Iso | null {
    const slots = this.runs.filter((r) => r.policyId === policyId && r.kind === kind && r.scheduledFor !== null).map((r) => r.scheduledFor!);
    return slots.sort().at(-1) ?? null;
  }

  schedulable() {
    if (this.schedulableFailures > 0) {
      this.schedulableFailures--;
      throw new Error('database is locked');
    }
    return [...this.policies.values()]
      .filter((p) => p.enabled)
      .map((policy) => ({ policy, lastScheduledFor: { snapshot: this.last(policy.id, 'snapshot'), consolidate: this.last(policy.id, 'consolidate') } }));
  }

  startRun(policyId: string, kind: PolicyRunKind, trigger: PolicyRunTrigger, scheduledFor: Iso | null): Promise<PolicyRun> {
    const failure = this.failures.get(policyId);
    if (failure === 'throw') throw new Error(`cannot record a run of ${policyId}`);
    if (failure === 'reject') return Promise.reject(new Error(`cannot submit the jobs of ${policyId}`));
    const going = this.runs.find((r) => r.policyId === policyId && r.kind === kind && r.state === 'running');
    const run: PolicyRun = {
      id: `run-${this.runs.length}`, policyId, kind, trigger, scheduledFor, startedAt: this.clock.now().toISOString(),
      finishedAt: null, state: going ? 'skipped' : this.holdRuns ? 'running' : 'succeeded', jobIds: [], message: going ? `run ${going.id} is still going` : null,
    };
    this.runs.push(run);
    return Promise.resolve(run);
  }

  /** Runs made by the scheduler under test (not the persisted ones), as `kind policy trigger slot`. */
  fired(): string[] {
    return this.runs.filter((r) => r.id.startsWith('run-')).map((r) => `${r.kind} ${r.policyId} ${r.trigger} ${r.scheduledFor}`);
  }
}

interface Line {
  level: string;
  obj: object;
  msg: string | undefined;
}

function captureLog(lines: Line[]): Logger {
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const match = m?.values.find((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val));
  return match?.value;
}

function harness(t: Test, clock: Clock, port: LabPort, jitterMaxMs = 0) {
  const registry = new Registry();
  const lines: Line[] = [];
  const scheduler = createScheduler({ port, log: captureLog(lines), metrics: registry, jitterMaxMs, clock: clock.now, maxSleepMs: 2 });
  t.teardown(() => scheduler.stop());
  /** Resolves once a wake that read the clock as it is now has ended. */
  const settle = () => scheduler.wakeRound();
  /** Waits (wake by wake, bounded) until the condition holds. */
  const waitFor = async (what: string, cond: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 5000; i++) {
      if (await cond()) return;
      await scheduler.wakeRound();
    }
    throw new Error(`timed out waiting for ${what}`);
  };
  return { scheduler, registry, lines, settle, waitFor };
}

t.test('fires each kind at its cron slots, for the slot, and observes lateness', async (t) => {
  const clock = new Clock('2026-06-01T12:00:10.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'p1', schedule: '* * * * *', consolidationSchedule: '*/2 * * * *' });
  const h = harness(t, clock, port);
  h.scheduler.start();
  t.same(h.scheduler.planned().map((p) => `${p.kind} ${p.scheduledFor} ${p.trigger}`), ['snapshot 2026-06-01T12:01:00.000Z schedule', 'consolidate 2026-06-01T12:02:00.000Z schedule']);
  await h.settle();
  clock.set('2026-06-01T12:00:59.999Z');
  await h.settle();
  t.same(port.fired(), [], 'nothing before the first slot');

  clock.set('2026-06-01T12:01:00.000Z');
  await h.waitFor('the 12:01 run', () => port.fired().length === 1);
  clock.set('2026-06-01T12:02:00.250Z');
  await h.waitFor('the 12:02 runs', () => port.fired().length === 3);
  await h.settle();
  t.same(port.fired().sort(), [
    'consolidate p1 schedule 2026-06-01T12:02:00.000Z',
    'snapshot p1 schedule 2026-06-01T12:01:00.000Z',
    'snapshot p1 schedule 2026-06-01T12:02:00.000Z',
  ]);
  const json = (await h.registry.getMetricsAsJSON()).find((m) => m.name === 'snapvisor_policy_run_lateness_seconds')!;
  const count = json.values.find((v) => (v as { metricName?: string }).metricName === 'snapvisor_policy_run_lateness_seconds_count' && v.labels.kind === 'snapshot');
  const sum = json.values.find((v) => (v as { metricName?: string }).metricName === 'snapvisor_policy_run_lateness_seconds_sum' && v.labels.kind === 'snapshot');
  t.equal(count?.value, 2, 'two snapshot runs observed');
  t.ok(Math.abs((sum?.value ?? 0) - 0.25) < 1e-9, `lateness is fire time − slot by the clock (0 + 0.25 s), got ${sum?.value}`);
  t.equal(await metric(h.registry, 'snapvisor_scheduler_policies'), 1);
});

t.test('slots missed while the daemon was down: one catch-up run for the latest, then normal', async (t) => {
  const clock = new Clock('2026-06-01T08:00:00.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'hourly', schedule: '0 * * * *' });
  port.persisted('hourly', 'snapshot', '2026-06-01T09:00:00.000Z');
  clock.set('2026-06-01T11:59:30.000Z');
  port.add({ id: 'created-before-shutdown', schedule: '0 * * * *' });
  clock.set('2026-06-01T12:10:00.000Z');
  port.add({ id: 'created-after-the-slot', schedule: '0 * * * *' });

  clock.set('2026-06-01T12:30:00.000Z');
  const h = harness(t, clock, port);
  h.scheduler.start();
  await h.waitFor('the catch-up runs', () => port.fired().length >= 2);
  for (let i = 0; i < 5; i++) await h.settle();
  t.same(port.fired().sort(), [
    'snapshot created-before-shutdown catch-up 2026-06-01T12:00:00.000Z',
    'snapshot hourly catch-up 2026-06-01T12:00:00.000Z',
  ], 'one run each (10:00, 11:00 and 12:00 were missed by hourly), none for a policy created after its last slot');
  t.equal(await metric(h.registry, 'snapvisor_scheduler_fires_total', { kind: 'snapshot', trigger: 'catch-up' }), 2);

  clock.set('2026-06-01T13:00:00.000Z');
  await h.waitFor('the 13:00 runs', () => port.fired().length === 5);
  t.same(port.fired().slice(2).sort(), [
    'snapshot created-after-the-slot schedule 2026-06-01T13:00:00.000Z',
    'snapshot created-before-shutdown schedule 2026-06-01T13:00:00.000Z',
    'snapshot hourly schedule 2026-06-01T13:00:00.000Z',
  ]);

  // The wall clock jumps 4.5 hours forward while running (suspend/resume): again one run each.
  clock.set('2026-06-01T17:30:00.000Z');
  await h.waitFor('the runs after the jump', () => port.fired().length >= 8);
  for (let i = 0; i < 5; i++) await h.settle();
  t.same(port.fired().slice(5).sort(), [
    'snapshot created-after-the-slot catch-up 2026-06-01T17:00:00.000Z',
    'snapshot created-before-shutdown catch-up 2026-06-01T17:00:00.000Z',
    'snapshot hourly catch-up 2026-06-01T17:00:00.000Z',
  ]);
});

t.test('a catch-up planned at start survives a refresh for an unrelated change (e.g. a rename)', async (t) => {
  const id = 'nightly-db';
  const jitterMaxMs = 60_000;
  const jitter = policyJitterMs(id, jitterMaxMs);
  const clock = new Clock('2026-06-01T08:00:00.000Z');
  const port = new LabPort(clock);
  port.add({ id, schedule: '0 * * * *' });
  port.persisted(id, 'snapshot', '2026-06-01T09:00:00.000Z');
  clock.set('2026-06-01T12:30:00.000Z');
  const h = harness(t, clock, port, jitterMaxMs);
  h.scheduler.start();
  const planned = h.scheduler.planned();
  t.match(planned, [{ trigger: 'catch-up', scheduledFor: '2026-06-01T12:00:00.000Z', fireAt: new Date(clock.ms + jitter).toISOString() }]);
  clock.ms += 500;
  port.change(id, { name: 'nightly database' });
  await h.scheduler.refresh();
  t.same(h.scheduler.planned(), planned, 'the same catch-up, at the same time');
  clock.ms = Date.parse('2026-06-01T12:30:00.000Z') + jitter;
  await h.waitFor('the catch-up run', () => port.fired().length === 1);
  t.same(port.fired(), [`snapshot ${id} catch-up 2026-06-01T12:00:00.000Z`]);
});

t.test('a slot is never fired twice: across a restart and when the clock goes back', async (t) => {
  const clock = new Clock('2026-06-01T11:59:00.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'p', schedule: '* * * * *' });
  const first = harness(t, clock, port);
  first.scheduler.start();
  clock.set('2026-06-01T12:00:00.000Z');
  await first.waitFor('the 12:00 run', () => port.fired().length === 1);
  await first.scheduler.stop();

  // A new daemon on the same store, within the same minute.
  clock.set('2026-06-01T12:00:30.000Z');
  const second = harness(t, clock, port);
  second.scheduler.start();
  await second.settle();
  await second.settle();
  t.same(port.fired(), ['snapshot p schedule 2026-06-01T12:00:00.000Z'], 'the restart does not run 12:00 again');
  t.same(second.scheduler.planned().map((p) => p.scheduledFor), ['2026-06-01T12:01:00.000Z']);

  clock.set('2026-06-01T12:01:00.000Z');
  await second.waitFor('the 12:01 run', () => port.fired().length === 2);
  // The clock is set back two minutes, then forward again over the slots already run.
  clock.set('2026-06-01T11:59:00.000Z');
  await second.settle();
  clock.set('2026-06-01T12:01:40.000Z');
  await second.settle();
  // A reload in between (policies changed elsewhere) must not bring 12:01 back either.
  await second.scheduler.refresh();
  await second.settle();
  t.equal(port.fired().length, 2, 'nothing fired again');
  clock.set('2026-06-01T12:02:00.000Z');
  await second.waitFor('the 12:02 run', () => port.fired().length === 3);
  t.same(port.fired().map((r) => r.split(' ').at(-1)), ['2026-06-01T12:00:00.000Z', '2026-06-01T12:01:00.000Z', '2026-06-01T12:02:00.000Z']);
});

t.test('a slot that comes while the previous run still goes is skipped, logged and counted', async (t) => {
  const clock = new Clock('2026-06-01T12:00:30.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'slow', schedule: '* * * * *' });
  port.holdRuns = true;
  const h = harness(t, clock, port);
  h.scheduler.start();
  t.equal(await metric(h.registry, 'snapvisor_policy_runs_skipped_total', { kind: 'snapshot' }), 0, 'the series exists at 0');
  clock.set('2026-06-01T12:01:00.000Z');
  await h.waitFor('the 12:01 run', () => port.fired().length === 1);
  clock.set('2026-06-01T12:02:00.000Z');
  await h.waitFor('the skip to be counted', async () => (await metric(h.registry, 'snapvisor_policy_runs_skipped_total', { kind: 'snapshot' })) === 1);
  t.same(port.runs.map((r) => r.state), ['running', 'skipped']);
  const line = h.lines.find((l) => l.level === 'warn' && /skipped/.test(l.msg ?? ''));
  t.match(line?.obj, { policyId: 'slow', kind: 'snapshot', scheduledFor: '2026-06-01T12:02:00.000Z' }, 'logged with the policy and the slot');

  port.runs[0]!.state = 'succeeded';
  port.holdRuns = false;
  clock.set('2026-06-01T12:03:00.000Z');
  await h.waitFor('the 12:03 run', () => port.fired().length === 3);
  t.equal(port.runs[2]!.state, 'succeeded');
  t.equal(await metric(h.registry, 'snapvisor_policy_runs_skipped_total', { kind: 'snapshot' }), 1);
});

t.test('jitter: within [0, max), stable per policy id, spread, and fired after the slot for the slot', async (t) => {
  const max = 30_000;
  const values = Array.from({ length: 1000 }, (_, i) => policyJitterMs(`policy-${i}`, max));
  t.ok(values.every((v) => Number.isInteger(v) && v >= 0 && v < max), 'every jitter is in [0, max)');
  t.same(Array.from({ length: 1000 }, (_, i) => policyJitterMs(`policy-${i}`, max)), values, 'the same id gets the same jitter');
  t.ok(new Set(values).size > 950, 'different ids get different delays');
  t.ok(Math.min(...values) < 1500 && Math.max(...values) > 28_500, 'spread over the whole window');
  t.equal(policyJitterMs('policy-0', 0), 0, 'no window, no jitter');

  const jitterMaxMs = 60_000;
  const id = 'nightly-db';
  const jitter = policyJitterMs(id, jitterMaxMs);
  t.ok(jitter > 1000, `a delay to see (${jitter} ms)`);
  const clock = new Clock('2026-06-01T12:00:30.000Z');
  const port = new LabPort(clock);
  port.add({ id, schedule: '* * * * *' });
  const h = harness(t, clock, port, jitterMaxMs);
  h.scheduler.start();
  const slot = Date.parse('2026-06-01T12:01:00.000Z');
  t.same(h.scheduler.planned().map((p) => p.fireAt), [new Date(slot + jitter).toISOString()]);
  clock.ms = slot + jitter - 1;
  await h.settle();
  t.same(port.fired(), [], 'not before slot + jitter');
  clock.ms = slot + jitter;
  await h.waitFor('the jittered run', () => port.fired().length === 1);
  t.same(port.fired(), ['snapshot nightly-db schedule 2026-06-01T12:01:00.000Z'], 'scheduledFor is the slot itself');
  const sum = (await h.registry.getMetricsAsJSON())
    .find((m) => m.name === 'snapvisor_policy_run_lateness_seconds')!
    .values.find((v) => (v as { metricName?: string }).metricName === 'snapvisor_policy_run_lateness_seconds_sum' && v.labels.kind === 'snapshot');
  t.equal(sum?.value, 0, 'the intended jitter is not lateness');
});

t.test('refresh picks up new, changed, disabled, re-enabled and deleted policies', async (t) => {
  const clock = new Clock('2026-06-01T12:00:10.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'a', schedule: '* * * * *' });
  const h = harness(t, clock, port);
  h.scheduler.start();
  t.equal(await metric(h.registry, 'snapvisor_scheduler_policies'), 1);

  clock.set('2026-06-01T12:00:20.000Z');
  port.add({ id: 'b', schedule: '* * * * *' });
  await h.scheduler.refresh();
  t.equal(await metric(h.registry, 'snapvisor_scheduler_policies'), 2, 'new policy b');
  clock.set('2026-06-01T12:01:00.000Z');
  await h.waitFor('a and b at 12:01', () => port.fired().length === 2);

  clock.set('2026-06-01T12:01:10.000Z');
  port.change('a', { schedule: '*/5 * * * *' });
  port.change('b', { enabled: false });
  await h.scheduler.refresh();
  t.equal(await metric(h.registry, 'snapvisor_scheduler_policies'), 1, 'b disabled');
  clock.set('2026-06-01T12:02:00.000Z');
  await h.settle();
  t.equal(port.fired().length, 2, 'nothing at 12:02: a is now every 5 minutes, b is disabled');

  clock.set('2026-06-01T12:04:30.000Z');
  port.change('b', { enabled: true });
  await h.scheduler.refresh();
  await h.settle();
  t.equal(port.fired().length, 2, 're-enabling is not a catch-up for the slots b was disabled for');
  clock.set('2026-06-01T12:05:00.000Z');
  await h.waitFor('a and b at 12:05', () => port.fired().length === 4);
  t.same(port.fired().slice(2).sort(), ['snapshot a schedule 2026-06-01T12:05:00.000Z', 'snapshot b schedule 2026-06-01T12:05:00.000Z']);

  port.policies.delete('a');
  port.change('b', { consolidationSchedule: '*/3 * * * *' });
  await h.scheduler.refresh();
  t.same(h.scheduler.planned().map((p) => `${p.kind} ${p.policyId} ${p.scheduledFor}`), [
    'snapshot b 2026-06-01T12:06:00.000Z',
    'consolidate b 2026-06-01T12:06:00.000Z',
  ], 'a deleted; b got a consolidation schedule');
  t.equal(await metric(h.registry, 'snapvisor_scheduler_policies'), 1);
});

t.test('a port that throws or rejects is logged and counted and does not stop the others', async (t) => {
  const clock = new Clock('2026-06-01T12:00:10.000Z');
  const port = new LabPort(clock);
  for (const id of ['throws', 'rejects', 'works']) port.add({ id, schedule: '* * * * *' });
  port.failures.set('throws', 'throw');
  port.failures.set('rejects', 'reject');
  const h = harness(t, clock, port);
  h.scheduler.start();
  clock.set('2026-06-01T12:01:00.000Z');
  await h.waitFor('two start failures', async () => (await metric(h.registry, 'snapvisor_policy_run_start_failures_total', { kind: 'snapshot' })) === 2);
  t.same(port.fired(), ['snapshot works schedule 2026-06-01T12:01:00.000Z']);
  t.same(h.lines.filter((l) => l.level === 'error').map((l) => (l.obj as { policyId?: string }).policyId).sort(), ['rejects', 'throws']);

  // The policies cannot be read at a refresh: the plan stays, and the loop goes on.
  port.failures.clear();
  port.schedulableFailures = 1;
  await h.scheduler.refresh();
  clock.set('2026-06-01T12:02:00.000Z');
  await h.waitFor('all three at 12:02', () => port.fired().length === 4);
  t.same(port.fired().slice(1).sort(), [
    'snapshot rejects schedule 2026-06-01T12:02:00.000Z',
    'snapshot throws schedule 2026-06-01T12:02:00.000Z',
    'snapshot works schedule 2026-06-01T12:02:00.000Z',
  ]);
});

t.test('DST, Europe/Berlin daily at 02:30: once on the spring-forward day and once on the fall-back day', async (t) => {
  await t.test('spring forward (29 March 2026: 02:00 → 03:00, 02:30 does not exist)', async (t) => {
    const clock = new Clock('2026-03-27T12:00:00.000Z');
    const port = new LabPort(clock);
    port.add({ id: 'berlin', schedule: '30 2 * * *', timezone: 'Europe/Berlin' });
    port.persisted('berlin', 'snapshot', '2026-03-28T01:30:00.000Z'); // 02:30 CET
    clock.set('2026-03-28T12:00:00.000Z');
    const h = harness(t, clock, port);
    h.scheduler.start();
    t.same(h.scheduler.planned().map((p) => p.scheduledFor), ['2026-03-29T01:00:00.000Z'], 'the missing 02:30 runs at the first valid time, 03:00 CEST');
    clock.set('2026-03-29T00:59:59.000Z');
    await h.settle();
    t.same(port.fired(), []);
    clock.set('2026-03-29T01:00:00.000Z');
    await h.waitFor('the run of the short day', () => port.fired().length === 1);
    clock.set('2026-03-30T00:29:59.000Z');
    await h.settle();
    t.equal(port.fired().length, 1, 'no second run that day');
    clock.set('2026-03-30T00:30:00.000Z'); // 02:30 CEST
    await h.waitFor('the next day', () => port.fired().length === 2);
    t.same(port.fired(), ['snapshot berlin schedule 2026-03-29T01:00:00.000Z', 'snapshot berlin schedule 2026-03-30T00:30:00.000Z']);
  });

  await t.test('fall back (25 October 2026: 03:00 → 02:00, 02:30 happens twice)', async (t) => {
    const clock = new Clock('2026-10-23T12:00:00.000Z');
    const port = new LabPort(clock);
    port.add({ id: 'berlin', schedule: '30 2 * * *', timezone: 'Europe/Berlin' });
    port.persisted('berlin', 'snapshot', '2026-10-24T00:30:00.000Z'); // 02:30 CEST
    clock.set('2026-10-24T12:00:00.000Z');
    const h = harness(t, clock, port);
    h.scheduler.start();
    clock.set('2026-10-25T00:30:00.000Z'); // the first 02:30 (CEST)
    await h.waitFor('the first 02:30', () => port.fired().length === 1);
    clock.set('2026-10-25T01:30:00.000Z'); // the second 02:30 (CET)
    await h.settle();
    await h.settle();
    t.equal(port.fired().length, 1, 'the repeated 02:30 does not run again');
    t.same(h.scheduler.planned().map((p) => p.scheduledFor), ['2026-10-26T01:30:00.000Z'], 'next: 02:30 CET the day after');
    clock.set('2026-10-26T01:30:00.000Z');
    await h.waitFor('the next day', () => port.fired().length === 2);
    t.same(port.fired(), ['snapshot berlin schedule 2026-10-25T00:30:00.000Z', 'snapshot berlin schedule 2026-10-26T01:30:00.000Z']);
  });
});

t.test('stopped and started again (a replica that leads again): slots fired meanwhile elsewhere are not fired again, the next one is', async (t) => {
  const clock = new Clock('2026-06-01T12:00:10.000Z');
  const port = new LabPort(clock);
  port.add({ id: 'p1', schedule: '* * * * *' });
  const h = harness(t, clock, port);
  h.scheduler.start();
  clock.set('2026-06-01T12:01:00.000Z');
  await h.waitFor('the 12:01 run', () => port.fired().length === 1);
  await h.scheduler.stop();
  // Another replica led meanwhile and ran 12:02 and 12:03 (persisted, as the store keeps them).
  clock.set('2026-06-01T12:03:30.000Z');
  port.persisted('p1', 'snapshot', '2026-06-01T12:02:00.000Z');
  port.persisted('p1', 'snapshot', '2026-06-01T12:03:00.000Z');
  h.scheduler.start();
  t.same(h.scheduler.planned().map((p) => `${p.scheduledFor} ${p.trigger}`), ['2026-06-01T12:04:00.000Z schedule'], 'planned afresh from the persisted slots');
  clock.set('2026-06-01T12:04:00.000Z');
  await h.waitFor('the 12:04 run', () => port.fired().length === 2);
  for (let i = 0; i < 3; i++) await h.settle();
  t.same(port.fired(), ['snapshot p1 schedule 2026-06-01T12:01:00.000Z', 'snapshot p1 schedule 2026-06-01T12:04:00.000Z'], 'no slot twice, none of the other replica again');
});
