/**
 * The scheduler wired into the engine, end to end: a policy created through the API fires at its
 * cron slot in its time zone (a run with trigger 'schedule' and that slot, a snapshot on the
 * simulator named after the local time), and after the daemon was down across several slots the
 * next engine on the same database runs exactly one catch-up run, for the latest slot, keeping
 * keepLast. The engine's clock is moved (its `now`), never slept on: the first slot is set 3 s
 * ahead of the moved clock.
 */
import t from 'tap';
import type { PolicyRun } from '../../src/domain/policy.ts';
import { nextFireAfter } from '../../src/domain/schedule.ts';
import type { Engine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { until } from '../unit/engine-harness.ts';
import { daemonOn, policyBody, setupLab } from './policy-helper.ts';

const SCHEDULE = '0 3 * * *';
const ZONE = 'Europe/Berlin';
const DAY_MS = 86_400_000;

/** The first ended run matching `want` (woken by policy-run events; the runs list is read first). */
async function endedRun(engine: Engine, policyId: string, want: (run: PolicyRun) => boolean): Promise<PolicyRun> {
  let wake!: (run: PolicyRun) => void;
  const done = new Promise<PolicyRun>((resolve) => (wake = resolve));
  const unsubscribe = engine.subscribe((e) => {
    if (e.type === 'policy-run' && e.run.policyId === policyId && e.run.state !== 'running' && want(e.run)) wake(e.run);
  });
  // The scheduler's timer is unref'd (a daemon lives by its server); nothing here listens, so hold the process.
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    const listed = (await engine.listPolicyRuns(policyId, { limit: 100 })).items.find((r) => r.state !== 'running' && want(r));
    return listed ?? (await done);
  } finally {
    clearInterval(keepAlive);
    unsubscribe();
  }
}

// Bounded: without a wired scheduler nothing ever fires, and the file must fail, not hang for its 600 s.
t.test('a policy fires at its slot in its zone; a daemon down across three slots catches up once', { timeout: 120_000 }, async (t) => {
  const { lab, database } = setupLab(t);
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const first = await daemonOn(t, lab, database, { scheduler: { enabled: true, jitterMs: 0 }, now });
  const slot = nextFireAfter(SCHEDULE, ZONE, new Date(Date.now() + 60_000))!;
  // The moved clock reads 3 s before the slot: the policy is created before it and fires at it.
  offset = slot.getTime() - 3_000 - Date.now();
  const body = policyBody({ schedule: SCHEDULE, timezone: ZONE, retention: { keepLast: 2 } });
  const created = await first.call('POST', '/v1/policies', body);
  t.equal(created.statusCode, 201, created.body);
  const policy = created.json<{ id: string }>();

  const scheduled = await endedRun(first.engine, policy.id, (r) => r.trigger === 'schedule');
  t.equal(scheduled.state, 'succeeded', scheduled.message ?? '');
  t.equal(scheduled.scheduledFor, slot.toISOString(), 'the run is for the cron slot');
  t.equal(scheduled.kind, 'snapshot');
  const names = () => Object.values(lab.readState().vms.find((v) => v.name === 'web01')!.snapshots).map((s) => s.name).sort();
  t.same(names(), ['nightly-' + localStamp(slot)], 'one snapshot, named after the local time of the slot (03:00 in Berlin)');
  const metrics = await first.engine.metrics();
  t.match(metrics.body, /snapvisor_policy_run_lateness_seconds_count\{kind="snapshot"\} 1\b/, 'its lateness was observed');
  await first.close();

  // Down for three more slots: the next start owes one run, for the latest of them.
  offset += 3 * DAY_MS + 60_000;
  const second = await daemonOn(t, lab, database, { scheduler: { enabled: true, jitterMs: 0 }, now });
  const catchUp = await endedRun(second.engine, policy.id, (r) => r.trigger === 'catch-up');
  t.equal(catchUp.state, 'succeeded', catchUp.message ?? '');
  t.equal(catchUp.scheduledFor, new Date(slot.getTime() + 3 * DAY_MS).toISOString(), 'for the latest missed slot');
  // Settle: the scheduler's next wake after the catch-up must not fire an older slot.
  await second.engine.syncTarget('lab');
  const runs = (await second.engine.listPolicyRuns(policy.id, { limit: 100 })).items;
  t.same(
    runs.map((r) => r.trigger).sort(),
    ['catch-up', 'schedule'],
    `one scheduled run and one catch-up, not one per missed slot: ${runs.map((r) => `${r.trigger}@${r.scheduledFor}`).join(', ')}`,
  );
  t.equal(names().length, 2, 'keepLast 2 holds');
});

// Two replicas sharing PostgreSQL may both fire a slot (an old leader that has not yet noticed it
// lost the lock, and the new one). Here the other replica's run is written to the database first.
t.test('a slot that already has its run (another replica fired it) starts nothing here', { timeout: 120_000 }, async (t) => {
  const { lab, database } = setupLab(t);
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const daemon = await daemonOn(t, lab, database, { scheduler: { enabled: true, jitterMs: 0 }, now });
  const slot = nextFireAfter(SCHEDULE, ZONE, new Date(Date.now() + 60_000))!;
  offset = slot.getTime() - 3_000 - Date.now();
  const created = await daemon.call('POST', '/v1/policies', policyBody({ schedule: SCHEDULE, timezone: ZONE }));
  t.equal(created.statusCode, 201, created.body);
  const policy = created.json<{ id: string }>();
  const theirs = { id: 'other-replica', policyId: policy.id, kind: 'snapshot' as const, trigger: 'schedule' as const, scheduledFor: slot.toISOString(), startedAt: now().toISOString() };
  t.match(await daemon.store.policies.startRun(theirs), { duplicate: false });
  await daemon.store.policies.finishRun(theirs.id, 'succeeded', null, now().toISOString());

  // The scheduler's timer is unref'd (a daemon lives by its server): hold the process meanwhile.
  const keepAlive = setInterval(() => {}, 1_000);
  t.teardown(() => clearInterval(keepAlive));
  const fired = /^snapvisor_scheduler_fires_total\{(?=[^}]*trigger="schedule")[^}]*\} 1$/m;
  await until(async () => fired.test((await daemon.engine.metrics()).body), 60_000);
  await daemon.close(); // settles the scheduler's start of that slot, and whatever it launched
  const store = openStore(database);
  t.teardown(() => store.close());
  t.match((await store.policies.listRuns(policy.id, { limit: 10 })).items, [{ id: 'other-replica', state: 'succeeded', jobIds: [] }], 'no second run of the slot');
  t.equal((await store.policies.listRuns(policy.id, { limit: 10 })).items.length, 1);
  t.same((await store.jobs.list({ limit: 10 })).items, [], 'nothing submitted');
  t.same(Object.keys(lab.readState().vms.find((v) => v.name === 'web01')!.snapshots), [], 'no snapshot taken');
});

/** yyyy-mm-ddTHHMM of an instant in Berlin, as policy snapshot names are stamped. */
function localStamp(at: Date): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}${parts.minute}`;
}
