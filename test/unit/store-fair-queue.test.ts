/**
 * The store's side of fair queues: the fair tag each queued job gets, the claim candidates (each
 * VM's oldest due job, per principal and target, in tag order) and the per-principal cap, which
 * refuses without writing anything.
 */
import t from 'tap';
import type { NewJob } from '../../src/store/index.ts';
import { forEachDialect, openTestStore, type Dialect } from './store-dialects.ts';
import { seedTargetsAndVms } from './store-seed.ts';

const AT = '2025-01-01T00:00:00.000Z';
const at = (s: number) => new Date(Date.parse(AT) + s * 1000).toISOString();

async function seed(t: Parameters<typeof openTestStore>[0], dialect: Dialect) {
  const { store, url } = await openTestStore(t, dialect);
  const ids = await seedTargetsAndVms(store, url, ['lab', 'other'], [
    { id: 'a', target: 'lab' }, { id: 'b', target: 'lab' }, { id: 'c', target: 'lab' }, { id: 'o', target: 'other' },
  ]);
  const lab = { id: ids['lab']! };
  const other = { id: ids['other']! };
  let n = 0;
  const job = (principal: string, vmId: string, extra: Partial<NewJob> = {}): NewJob => {
    n++;
    return {
      id: `${principal}-${vmId}-${n}`, kind: 'snapshot.create', targetId: vmId === 'o' ? other.id : lab.id, vmId, snapshotId: null,
      params: { name: `s${n}`, description: '', mode: 'memory' }, maxAttempts: 3, requestedBy: principal, createdAt: at(n), ...extra,
    };
  };
  const submit = async (principal: string, vmId: string) => {
    const out = await store.jobs.submit(job(principal, vmId));
    if (out.outcome !== 'created') throw new Error(out.outcome);
    return out.job.id;
  };
  return { store, lab, other, job, submit };
}

t.test('fair tags interleave a principal\'s VMs; candidates are VM heads in tag order, per principal and target', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab, other, submit } = await seed(t, dialect);
  const a = [await submit('x', 'a'), await submit('x', 'a'), await submit('x', 'a')];
  const b = await submit('x', 'b');
  await submit('y', 'a');
  const yc = await submit('y', 'c');
  const o = await submit('x', 'o');
  const ids = async (principal: string, targetId = lab.id, now = at(100)) => (await store.jobs.fairCandidates(targetId, principal, now, 10)).map((c) => c.id);

  t.same(await ids('x'), [a[0], b], 'one candidate per VM (its oldest), B beside A\'s first, not after all of A\'s');
  t.same(await ids('y'), [yc], 'y\'s job for A waits behind x\'s older ones: a VM\'s jobs start in submit order');
  t.same(await ids('x', other.id), [o], 'per target');
  t.same(await ids('x', lab.id, at(0)), [], 'not due yet');
  t.same(await store.jobs.queuedPrincipals(), ['x', 'y']);
  t.equal(await store.jobs.countQueued('x'), 5);

  // A claimed: its VM offers nothing while it runs; B's job is x's only candidate on the target.
  t.ok(await store.jobs.tryClaim(a[0]!, 'T', at(100), 5));
  t.same(await ids('x'), [b]);
  // When it ends, A's next job heads A again; B (round 0) still goes before it (round 1). A new job
  // of x for C is no candidate: y's older job heads C.
  await store.jobs.finish(a[0]!, 'T', { state: 'succeeded', at: at(101) });
  const c = await submit('x', 'c');
  t.same(await ids('x'), [b, a[1]]);
  t.same(await ids('y'), [yc], 'y\'s job for A is still behind x\'s older ones');
  t.equal(await store.jobs.countQueued('x'), 5);
  void c;
  t.same(await store.jobs.queuedPrincipals(), ['x', 'y']);
}));

t.test('the fair tag of each queued job: per VM it only grows, a new VM takes the principal\'s current round', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, submit } = await seed(t, dialect);
  // Tags are internal: read through the order they give. x: A×3 then B → B is second in x's order.
  const a1 = await submit('x', 'a');
  await submit('x', 'a');
  await submit('x', 'a');
  const b1 = await submit('x', 'b');
  const b2 = await submit('x', 'b');
  const c1 = await submit('x', 'c');
  const order = (await store.jobs.fairCandidates((await store.jobs.get(a1))!.targetId, 'x', at(1000), 100)).map((c) => c.id);
  t.same(order, [a1, b1, c1], 'each VM\'s head, the heads in tag order (all round 0)');
  t.notOk(order.includes(b2), 'B\'s second job waits for its first');
}));

t.test('the per-principal cap refuses a queued job without writing; replays, final jobs and other principals pass', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, job } = await seed(t, dialect);
  const cap = { maxQueued: 2 };
  t.match(await store.jobs.submit(job('x', 'a'), { principal: 'x', key: 'k1', requestHash: 'h1' }, cap), { outcome: 'created' });
  t.match(await store.jobs.submit(job('x', 'b'), undefined, cap), { outcome: 'created' });
  const full = job('x', 'c');
  t.same(await store.jobs.submit(full, { principal: 'x', key: 'k2', requestHash: 'h2' }, cap), { outcome: 'queue-full', queued: 2 });
  t.equal(await store.jobs.get(full.id), null, 'no job');
  t.equal(await store.idempotency.find('x', 'k2'), null, 'no idempotency key');
  t.match(await store.jobs.submit(job('x', 'a'), { principal: 'x', key: 'k1', requestHash: 'h1' }, cap), { outcome: 'replayed' }, 'a replay is answered');
  t.match(await store.jobs.submit(job('x', 'a', { state: 'succeeded', result: { message: 'dry run' } }), undefined, cap), { outcome: 'created' }, 'an answered (final) job is not queued');
  t.match(await store.jobs.submit(job('y', 'c'), undefined, cap), { outcome: 'created' }, 'per principal');
  t.equal(await store.jobs.countQueued('x'), 2);
}));
