/**
 * Two replicas on one PostgreSQL database (two stores, two pools) racing for the same rows: what
 * SQLite's single writer gives for free must hold here through the store's locks (store/pg/jobs.ts):
 * claims within the per-VM and per-target limits, each job claimed once, one job per idempotency
 * key, the queue cap, and lease hand-over.
 */
import t from 'tap';
import type { Job } from '../../src/domain/types.ts';
import type { NewJob, Store } from '../../src/store/index.ts';
import { openReplicaStore, openTestStore } from './store-dialects.ts';
import { SEED_AT as AT, seedTargetsAndVms } from './store-seed.ts';

const at = (s: number) => new Date(Date.parse(AT) + s * 1000).toISOString();
const VMS = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7'];

async function twoReplicas(t: Parameters<typeof openTestStore>[0]) {
  const { store: a, url } = await openTestStore(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  const ids = await seedTargetsAndVms(a, url, ['lab'], VMS.map((id) => ({ id, target: 'lab' })));
  const lab = ids['lab']!;
  const job = (id: string, vmId: string, extra: Partial<NewJob> = {}): NewJob => ({
    id, kind: 'snapshot.create', targetId: lab, vmId, snapshotId: null, params: { name: id, description: '', mode: 'crash' },
    maxAttempts: 3, requestedBy: 'ops', createdAt: AT, ...extra,
  });
  return { a, b, url: url!, job, replicas: [a, b] as const };
}

t.test('claims racing through two replicas: one running job per VM, the target\'s limit, each job claimed once', async (t) => {
  const { a, job, replicas } = await twoReplicas(t);
  const maxRunning = 3;
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    for (const vm of VMS) {
      await a.jobs.submit(job(`j${i}-${vm}`, vm));
      ids.push(`j${i}-${vm}`);
    }
  }
  const claims = new Map<string, string[]>();
  let round = 0;
  for (;;) {
    round++;
    const queued = (await a.jobs.listByState('queued')).map((j) => j.id);
    if (queued.length === 0) break;
    t.ok(round <= ids.length, 'every round claims something');
    if (round > ids.length) break;
    // Every queued job, claimed by both replicas at once, several times each.
    const attempts = queued.flatMap((id) => replicas.flatMap((store, r) => [0, 1].map((k) => ({ id, store, ticket: `${id}/r${r}/k${k}/round${round}` }))));
    const won = (await Promise.all(attempts.map(async (x) => ((await x.store.jobs.tryClaim(x.id, x.ticket, at(round), maxRunning)) ? x : null)))).filter(
      (x): x is NonNullable<typeof x> => x !== null,
    );
    const running = await a.jobs.listByState('running');
    t.equal(won.length, running.length, `round ${round}: as many wins as running jobs`);
    t.ok(running.length <= maxRunning, `round ${round}: never more than the target's limit running`);
    t.equal(running.length, Math.min(maxRunning, new Set(queued.map((id) => id.split('-')[1])).size), `round ${round}: the target's limit, filled`);
    t.equal(new Set(running.map((j) => j.vmId)).size, running.length, `round ${round}: never two running jobs on one VM`);
    for (const w of won) {
      claims.set(w.id, [...(claims.get(w.id) ?? []), w.ticket]);
      t.equal(running.find((j) => j.id === w.id)?.attempts, 1, 'claimed once: one attempt');
    }
    for (const j of running) t.ok(await a.jobs.finish(j.id, claims.get(j.id)!.at(-1)!, { state: 'succeeded', at: at(round) }), 'the winning ticket holds the job');
  }
  t.equal(claims.size, ids.length, 'every job was claimed');
  t.ok([...claims.values()].every((tickets) => tickets.length === 1), 'each exactly once');
  t.match(await a.jobs.countByState(), { succeeded: ids.length, queued: 0, running: 0 });
});

t.test('submits with one idempotency key racing through two replicas make one job; the others are replays', async (t) => {
  const { a, job, replicas } = await twoReplicas(t);
  const key = { principal: 'ops', key: 'same', requestHash: 'h' };
  const outcomes = await Promise.all(Array.from({ length: 16 }, (_, i) => replicas[i % 2]!.jobs.submit(job(`k${i}`, VMS[i % VMS.length]!), key)));
  const created = outcomes.filter((o) => o.outcome === 'created') as Array<{ outcome: 'created'; job: Job }>;
  t.equal(created.length, 1, 'one created');
  t.ok(outcomes.every((o) => o.outcome === 'created' || (o.outcome === 'replayed' && o.job.id === created[0]!.job.id)), 'the rest replay that job');
  t.equal((await a.jobs.list({ limit: 100 })).items.length, 1, 'one job stored');

  const groupKey = { principal: 'ops', key: 'group', requestHash: 'g' };
  const groups = await Promise.all(Array.from({ length: 8 }, (_, i) => replicas[i % 2]!.groups.create(
    { id: `g${i}`, name: 'g', description: '', mode: 'crash', selector: null, createdAt: AT, requestedBy: 'ops' },
    [{ vmId: 'v0', target: 'lab', job: job(`g${i}-0`, 'v0') }, { vmId: 'v1', target: 'lab', job: job(`g${i}-1`, 'v1') }],
    groupKey,
  )));
  const made = groups.filter((g) => g.outcome === 'created');
  t.equal(made.length, 1, 'one group created');
  t.ok(groups.every((g) => g.outcome === 'created' || (g.outcome === 'replayed' && g.groupId === (made[0] as { groupId: string }).groupId)), 'the rest replay it');
  t.equal((await a.jobs.list({ limit: 100 })).items.length, 3, 'its two jobs stored, no more');
});

t.test('submits racing through two replicas hold the per-principal queue cap exactly', async (t) => {
  const { a, job, replicas } = await twoReplicas(t);
  const cap = { maxQueued: 5 };
  const outcomes = await Promise.all(Array.from({ length: 24 }, (_, i) => replicas[i % 2]!.jobs.submit(job(`q${i}`, VMS[i % VMS.length]!), undefined, cap)));
  t.equal(outcomes.filter((o) => o.outcome === 'created').length, 5, 'five created');
  t.ok(outcomes.every((o) => o.outcome === 'created' || (o.outcome === 'queue-full' && o.queued === 5)), 'the others refused at 5');
  t.equal(await a.jobs.countQueued('ops'), 5);

  const groups = await Promise.all(Array.from({ length: 6 }, (_, i) => replicas[i % 2]!.groups.create(
    { id: `g${i}`, name: 'g', description: '', mode: 'crash', selector: null, createdAt: AT, requestedBy: 'grp' },
    [{ vmId: 'v0', target: 'lab', job: job(`g${i}-0`, 'v0', { requestedBy: 'grp' }) }, { vmId: 'v1', target: 'lab', job: job(`g${i}-1`, 'v1', { requestedBy: 'grp' }) }],
    undefined,
    { maxQueued: 5 },
  )));
  t.equal(groups.filter((g) => g.outcome === 'created').length, 2, 'two groups of two fit under 5');
  t.equal(await a.jobs.countQueued('grp'), 4);
});

t.test('leases: take-over refused while the lease lasts, won by one replica after; renewal moves only the owner\'s running jobs', async (t) => {
  const { a, b, url, job } = await twoReplicas(t);
  for (const vm of ['v0', 'v1', 'v2']) await a.jobs.submit(job(`j-${vm}`, vm));
  const lease = (owner: Store, until: string) => ({ owner: owner.cluster.replicaId, until });
  t.ok(await a.jobs.tryClaim('j-v0', 'A0', at(0), 10, { lease: lease(a, at(30)) }));
  t.ok(await a.jobs.tryClaim('j-v1', 'A1', at(0), 10, { lease: lease(a, at(30)) }));
  t.ok(await b.jobs.tryClaim('j-v2', 'B2', at(0), 10, { lease: lease(b, at(30)) }));

  t.same((await b.jobs.recoverable(at(10))).map((j) => j.id), [], 'nothing recoverable while the leases last');
  t.equal(await b.jobs.takeOver('j-v0', 'B0', at(10), lease(b, at(40))), null, 'an unexpired lease is not taken over');

  t.equal(await a.jobs.renewLeases(a.cluster.replicaId, at(60)), 2, 'A renews its two');
  t.same((await b.jobs.recoverable(at(45))).map((j) => j.id), ['j-v2'], 'B\'s own stopped renewing: recoverable at 45');
  await a.jobs.finish('j-v1', 'A1', { state: 'succeeded', at: at(50) });
  t.equal(await a.jobs.renewLeases(a.cluster.replicaId, at(90)), 1, 'a finished job is not renewed');

  // A dies (stops renewing): after its lease, both B's pool and a third replica race to take over.
  const c = await openReplicaStore(t, url);
  t.same((await b.jobs.recoverable(at(100))).map((j) => j.id), ['j-v0', 'j-v2']);
  const tries = await Promise.all([b, c, b, c].map((s, i) => s.jobs.takeOver('j-v0', `T${i}`, at(100), lease(s, at(130)))));
  const winners = tries.filter((x) => x !== null);
  t.equal(winners.length, 1, 'one replica takes it over');
  t.match(winners[0], { state: 'running', attempts: 1, startedAt: at(0) });
  t.equal(await a.jobs.setProgress('j-v0', 'A0', 50, null), null, 'the dead replica\'s ticket is void');
  t.notOk((await b.jobs.recoverable(at(110))).some((j) => j.id === 'j-v0'), 'held again: not recoverable');
  t.equal(await a.jobs.renewLeases(a.cluster.replicaId, at(200)), 0, 'the old owner renews nothing');
});

t.test('creates sharing a budgeted disk, decided at once by two replicas: the claim\'s guard lets one through', async (t) => {
  const { a, b, job } = await twoReplicas(t);
  // Both replicas read the events before either claimed (no event yet), so both decided "go": the
  // guard, counted under the target's claim lock, is what keeps the budget (1 per window) for the disk.
  await a.jobs.submit(job('shared-1', 'v0'));
  await a.jobs.submit(job('shared-2', 'v1'));
  const keys = ['disk:/pool/shared.vdi'];
  const guards = [{ key: 'disk:/pool/shared.vdi', max: 1, since: at(-300) }];
  const [x, y] = await Promise.all([
    a.jobs.tryClaim('shared-1', 'A', at(0), 8, { budgetKeys: keys, budgetGuards: guards }),
    b.jobs.tryClaim('shared-2', 'B', at(0), 8, { budgetKeys: keys, budgetGuards: guards }),
  ]);
  t.equal([x, y].filter((j) => j !== null).length, 1, 'one create claimed');
  t.equal((await a.budgets.recent((x ?? y)!.targetId, at(-300))).length, 1, 'one event recorded');
  // Outside the window the guard no longer counts it.
  t.ok(await b.jobs.tryClaim(x ? 'shared-2' : 'shared-1', 'C', at(301), 8, { budgetKeys: keys, budgetGuards: [{ ...guards[0]!, since: at(1) }] }), 'claimed once the window moved past the event');
});
