/**
 * Several daemon replicas (in-process engines, each with its own pool) on one PostgreSQL database
 * and one VirtualBox simulator: only the leader's scheduler fires a policy's slots, a policy created
 * on a follower reaches it, and when the leader stops another replica fires the next slot — each
 * slot run exactly once, none skipped. Events of a job one replica runs reach another replica's
 * event bus (what its SSE stream and waits hear), a big one by reference.
 * The engines' clock is moved (their `now`), never slept on; waits are on events.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import pg from 'pg';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import type { PolicyRun } from '../../src/domain/policy.ts';
import { isFinal, type Job } from '../../src/domain/types.ts';
import { nextFireAfter } from '../../src/domain/schedule.ts';
import type { EngineEvent } from '../../src/engine/api.ts';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import type { Store } from '../../src/store/index.ts';
import type { PgCluster } from '../../src/store/pg/cluster.ts';
import { openPgStore } from '../../src/store/pg/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { freshDatabase } from '../labs/postgres/lab.ts';
import { startListenCut } from '../labs/postgres/listen-cut.ts';
import { until } from '../e2e/daemon.ts';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const EVERY_MINUTE = '* * * * *';

interface Replica {
  name: string;
  engine: Engine;
  store: Store;
  events: EngineEvent[];
  stop(): Promise<void>;
}

function setupLab(t: TapTest): VboxLab {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-replicas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return createVboxLab({ dir, stepMs: 1, vms: [{ name: 'web01', state: 'running' }, { name: 'web02', state: 'running' }] });
}

/**
 * One replica: an engine on its own pool; `withTarget: false` makes one that runs no job (it has no
 * target). Its target's `concurrency` is its own claim limit for jobs running on the target.
 */
async function replica(t: TapTest, name: string, lab: VboxLab, url: string, now: () => Date, withTarget = true, concurrency = 4): Promise<Replica> {
  const log = silentLogger();
  const store = await openPgStore(url, { cluster: { leaderRetryMs: 50, checkMs: 50, maxBackoffMs: 200 } });
  const targets = withTarget
    ? [{ spec: { name: 'lab', kind: 'virtualbox' as const, demo: false, concurrency, options: {} }, provider: createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 30 }, { log }) }]
    : [];
  const registry = registryOf(targets);
  const engine = createEngine({
    store,
    registry,
    log,
    now,
    schedulerMaxSleepMs: 50,
    settings: { workerPollMs: 10, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 20, maxMs: 50 }, scheduler: { enabled: true, jitterMs: 0 } },
  });
  const events: EngineEvent[] = [];
  engine.subscribe((e) => void events.push(e));
  await engine.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await engine.stop({ graceMs: 2000 });
    await registry.close();
    await store.close();
  };
  t.teardown(stop);
  return { name, engine, store, events, stop };
}

const leads = (r: Replica) => r.store.cluster.leadership.isLeader();

/** Resolves once one of the replicas leads (at once when one does). */
function someoneLeads(replicas: readonly Replica[]): Promise<Replica> {
  return new Promise((resolve) => {
    const offs: Array<() => void> = [];
    const check = () => {
      const leader = replicas.find(leads);
      if (!leader) return;
      for (const off of offs) off();
      resolve(leader);
    };
    for (const r of replicas) offs.push(r.store.cluster.leadership.onChange(check));
    check();
  });
}

/** The first ended run for the slot, as the replica's event bus hears it (the runs list read first). */
async function slotEnded(r: Replica, policyId: string, slot: Date): Promise<PolicyRun> {
  const want = (run: PolicyRun) => run.policyId === policyId && run.scheduledFor === slot.toISOString() && run.state !== 'running';
  let wake!: (run: PolicyRun) => void;
  const done = new Promise<PolicyRun>((resolve) => (wake = resolve));
  const off = r.engine.subscribe((e) => {
    if (e.type === 'policy-run' && want(e.run)) wake(e.run);
  });
  // The engines' timers are unref'd (a daemon lives by its server): hold the process while waiting.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const listed = (await r.engine.listPolicyRuns(policyId, { limit: 100 })).items.find(want);
    return listed ?? (await done);
  } finally {
    clearInterval(keepAlive);
    off();
  }
}

async function firesOf(r: Replica): Promise<number> {
  const body = (await r.engine.metrics()).body;
  return [...body.matchAll(/^snapvisor_scheduler_fires_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

t.test('one leader fires each slot; when it stops another fires the next: no slot run twice, none skipped', { timeout: 180_000 }, async (t) => {
  const db = await freshDatabase('replicas');
  t.teardown(() => db.drop());
  const admin = new pg.Client(db.url);
  await admin.connect();
  t.teardown(() => admin.end());
  const lab = setupLab(t);
  let offset = 0;
  const now = () => new Date(Date.now() + offset);

  const a = await replica(t, 'a', lab, db.url, now);
  const b = await replica(t, 'b', lab, db.url, now);
  const c = await replica(t, 'c', lab, db.url, now);
  const all = [a, b, c];
  const first = await someoneLeads(all);
  const followers = all.filter((r) => r !== first);
  t.same(all.filter(leads).map((r) => r.name), [first.name], 'one replica leads');
  const ready = await followers[0]!.engine.ready();
  t.match(ready.replica, { shared: true, leader: false, id: followers[0]!.store.cluster.replicaId }, '/readyz names the replica and that it does not lead');
  t.match((await first.engine.metrics()).body, /^snapvisor_cluster_leader 1$/m);
  t.match((await followers[0]!.engine.metrics()).body, /^snapvisor_cluster_leader 0$/m);

  // The clock 1.5 s before a minute; the policy is created on a FOLLOWER: the change must reach the leader's scheduler.
  const slot1 = nextFireAfter(EVERY_MINUTE, 'UTC', new Date(Date.now() + 10_000))!;
  offset = slot1.getTime() - 1500 - Date.now();
  const policy = await followers[1]!.engine.createPolicy({
    name: 'every-minute',
    selector: { namePattern: 'web01' },
    schedule: EVERY_MINUTE,
    timezone: 'UTC',
    mode: 'memory',
    retention: { keepLast: 5 },
  });
  const run1 = await slotEnded(followers[0]!, policy.id, slot1);
  t.equal(run1.state, 'succeeded', `${run1.message ?? ''} (seen on a follower's bus)`);
  t.equal(run1.trigger, 'schedule');
  const firstFires = await firesOf(first);
  t.equal(firstFires, 1, 'the leader fired the slot');
  for (const f of followers) t.equal(await firesOf(f), 0, `follower ${f.name} fired nothing`);

  // The leader goes (stop, store closed): another replica leads and fires the next minute.
  await first.stop();
  const second = await someoneLeads(followers);
  const slot2 = new Date(slot1.getTime() + 60_000);
  offset = slot2.getTime() - 1500 - Date.now();
  const observer = followers.find((r) => r !== second)!;
  const run2 = await slotEnded(observer, policy.id, slot2);
  t.equal(run2.state, 'succeeded', run2.message ?? '');
  t.equal(run2.trigger, 'schedule', 'the next slot on time, not a catch-up');
  t.equal(await firesOf(second), 1, `the new leader ${second.name} fired the next slot`);
  t.equal(await firesOf(observer), 0, 'the remaining follower fired nothing');

  // Settle: a further wake of every scheduler must not fire an older slot again.
  await second.engine.syncTarget('lab');
  const perSlot = (await admin.query<{ scheduled_for: string; n: number }>('SELECT scheduled_for, count(*)::int AS n FROM policy_runs WHERE policy_id = $1 GROUP BY scheduled_for ORDER BY scheduled_for', [policy.id])).rows;
  t.same(perSlot, [{ scheduled_for: slot1.toISOString(), n: 1 }, { scheduled_for: slot2.toISOString(), n: 1 }], 'one run per slot, both slots');
});

t.test("a job run on one replica is heard on another's event bus, a big event by reference", { timeout: 120_000 }, async (t) => {
  const db = await freshDatabase('replicas');
  t.teardown(() => db.drop());
  const lab = setupLab(t);
  const now = () => new Date();
  const worker = await replica(t, 'worker', lab, db.url, now);
  // No target: it runs no job; all it hears of one comes from the other replica.
  const observer = await replica(t, 'observer', lab, db.url, now, false);
  const vmId = (await worker.engine.listVms({ limit: 10, name: 'web01' })).items.find((v) => v.name === 'web01')!.id;

  const submitted = async (description: string): Promise<Job> =>
    (await worker.engine.submit({ kind: 'snapshot.create', vmId, name: `snap-${description.length}`, description, mode: 'memory' }, { principal: 'test', requestHash: description.slice(0, 20) })).job;
  const small = await submitted('small');
  // 4000 two-byte characters: the job's event is over NOTIFY's 8000 bytes.
  const big = await submitted('é'.repeat(4000));
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  for (const job of [small, big]) {
    const final = await observer.engine.waitForJob(job.id, 60_000);
    t.equal(final.state, 'succeeded', `job ${job.id} seen final on the observer`);
    const heard = observer.events.filter((e): e is Extract<EngineEvent, { type: 'job' }> => e.type === 'job' && e.job.id === job.id).map((e) => e.job.state);
    t.ok(heard.includes('running') && heard.at(-1) === 'succeeded', `the observer heard it run and end, in order: ${heard.join(' → ')}`);
  }
  const bigHeard = observer.events.find((e) => e.type === 'job' && e.job.id === big.id && e.job.state === 'succeeded');
  t.equal(bigHeard?.type === 'job' ? (bigHeard.job.params as { description?: string }).description : null, 'é'.repeat(4000), 'the big event was read whole from the store');
  t.ok(observer.events.some((e) => e.type === 'snapshot' && e.action === 'created'), 'snapshot events too');
  const ownEnds = worker.events.filter((e) => e.type === 'job' && e.job.id === small.id && e.job.state === 'succeeded').length;
  t.equal(ownEnds, 1, "the worker heard its own job's end once (its publish did not come back to it)");
});

t.test("the leader's session is cut (the server ends it): it steps down at once, its scheduler stops, the other fires the next slot", { timeout: 180_000 }, async (t) => {
  const db = await freshDatabase('replicas');
  t.teardown(() => db.drop());
  const admin = new pg.Client(db.url);
  await admin.connect();
  t.teardown(() => admin.end());
  const lab = setupLab(t);
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const a = await replica(t, 'a', lab, db.url, now);
  const b = await replica(t, 'b', lab, db.url, now);
  const first = await someoneLeads([a, b]);
  const other = first === a ? b : a;

  const slot1 = nextFireAfter(EVERY_MINUTE, 'UTC', new Date(Date.now() + 10_000))!;
  offset = slot1.getTime() - 1500 - Date.now();
  const policy = await first.engine.createPolicy({ name: 'every-minute', selector: { namePattern: 'web02' }, schedule: EVERY_MINUTE, timezone: 'UTC', mode: 'memory', retention: { keepLast: 5 } });
  t.equal((await slotEnded(other, policy.id, slot1)).state, 'succeeded');

  // The server ends the leader's cluster session (as it does for a replica whose network died):
  // the leader steps down without stopping, the other takes the lead.
  const pid = (first.store.cluster as PgCluster).backendPid()!;
  const down = new Promise<void>((resolve) => first.store.cluster.leadership.onChange((v) => !v && resolve()));
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  await down;
  await someoneLeads([other]);
  t.match((await first.engine.metrics()).body, /^snapvisor_cluster_leader 0$/m, 'the old leader says it does not lead');

  const slot2 = new Date(slot1.getTime() + 60_000);
  offset = slot2.getTime() - 1500 - Date.now();
  const run2 = await slotEnded(first, policy.id, slot2);
  t.equal(run2.trigger, 'schedule');
  t.equal(await firesOf(first), 1, 'the old leader fired only the slot it led for');
  t.equal(await firesOf(other), 1, 'the new leader fired the next');
  const perSlot = (await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM policy_runs WHERE policy_id = $1 GROUP BY scheduled_for ORDER BY scheduled_for', [policy.id])).rows.map((r) => r.n);
  t.same(perSlot, [1, 1]);
  t.equal(first.store.cluster.leadership.isLeader(), false, 'and stays a follower');
});

t.test('a replica that cannot hear the others for a while: not ready meanwhile; then its waits on jobs that ended elsewhere read the store and end', { timeout: 120_000 }, async (t) => {
  const db = await freshDatabase('replicas');
  t.teardown(() => db.drop());
  // The observer reaches the database through a relay that can drop its LISTEN connection alone.
  const relay = await startListenCut(db.url);
  t.teardown(() => relay.close());
  const lab = setupLab(t);
  const now = () => new Date();
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  // Every take stops until cancelled: the jobs end only while the observer is deaf.
  lab.setFault('take', '*', { type: 'hang' });
  const worker = await replica(t, 'worker', lab, db.url, now);
  const vmId = (await worker.engine.listVms({ limit: 10, name: 'web01' })).items.find((v) => v.name === 'web01')!.id;
  const job = (await worker.engine.submit({ kind: 'snapshot.create', vmId, name: 'deaf', description: '', mode: 'memory' }, { principal: 'test', requestHash: 'deaf' })).job;
  const hungTakes = () => (lab.readState().hung ?? []).filter((h) => h.op === 'take').length;
  await until('the take hung on the worker', async () => hungTakes() === 1, 30_000, 20);
  // The observer has the target too (a policy plans only for bound targets), but its own limit of
  // one job on it is taken by the worker's: every job here runs on the worker.
  const observer = await replica(t, 'observer', lab, relay.url, now, true, 1);
  // Never due while the test runs: only the manual run below.
  const policy = await observer.engine.createPolicy({ name: 'yearly', selector: { namePattern: 'web02' }, schedule: '0 0 1 1 *', timezone: 'UTC', mode: 'memory', retention: { keepLast: 5 } });
  const run = await observer.engine.runPolicy(policy.id, 'snapshot');
  await until("the policy run's take hung on the worker too", async () => hungTakes() === 2, 30_000, 20);
  const runJob = (await worker.engine.listJobs({ policyId: policy.id, limit: 10 })).items[0]!;
  let woken: Job | null = null;
  const waiting = observer.engine.waitForJob(job.id, 600_000).then((j) => (woken = j));
  // Let the wait read the job (running) and subscribe before the events stop arriving.
  await new Promise((r) => setTimeout(r, 300));

  relay.cut();
  await until('the observer notices', async () => !observer.store.cluster.hearing(), 30_000, 20);
  t.match((await observer.engine.ready()).reason, /not hearing the other replicas/, 'not ready while deaf');
  lab.clearFaults();
  for (const id of [runJob.id, job.id]) {
    await worker.engine.cancelJob(id, 'test');
    t.ok(isFinal(await worker.engine.waitForJob(id, 60_000)), 'ended on the worker');
  }
  await new Promise((r) => setTimeout(r, 300));
  t.equal(woken, null, 'the observer did not hear the end');
  t.equal((await observer.engine.getPolicyRun(policy.id, run.id)).state, 'running', 'its policy run still waits');

  relay.restore();
  const final = await waiting;
  t.ok(isFinal(final), `the wait ended once the observer heard again (${final.state})`);
  const ended = await until('the policy run ended', async () => {
    const r = await observer.engine.getPolicyRun(policy.id, run.id);
    return r.state === 'running' ? null : r;
  }, 60_000, 50);
  t.not(ended.state, 'running');
  t.equal((await observer.engine.ready()).reason, null, 'ready again');
});
