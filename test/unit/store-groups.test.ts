/**
 * Snapshot groups' store on both dialects: the create transaction (group, member jobs, key), its
 * replay and quota answers, the state derived from the jobs, and the copies refresh keeps.
 */
import t from 'tap';
import type { NewGroup, NewGroupMember, NewJob } from '../../src/store/index.ts';
import { forEachDialect, openTestStore, type Dialect } from './store-dialects.ts';
import { SEED_AT as AT, seedTargetsAndVms } from './store-seed.ts';

const at = (s: number) => new Date(Date.parse(AT) + s * 1000).toISOString();

async function seed(t: Parameters<typeof openTestStore>[0], dialect: Dialect) {
  const { store, url } = await openTestStore(t, dialect);
  const ids = await seedTargetsAndVms(store, url, ['lab'], [{ id: 'v1', target: 'lab', name: 'web01' }, { id: 'v2', target: 'lab', name: 'db01' }]);
  const lab = ids['lab']!;
  const job = (id: string, vmId: string, extra: Partial<NewJob> = {}): NewJob => ({
    id, kind: 'snapshot.create', targetId: lab, vmId, snapshotId: null, params: { name: 'g', description: '', mode: 'crash' },
    maxAttempts: 1, requestedBy: 'ops', createdAt: AT, ...extra,
  });
  const group = (id: string, createdAt = AT): NewGroup => ({ id, name: id, description: '', mode: 'crash', selector: null, createdAt, requestedBy: 'ops' });
  const members = (prefix: string): NewGroupMember[] => [
    { vmId: 'v1', target: 'lab', job: job(`${prefix}-1`, 'v1') },
    { vmId: 'v2', target: 'lab', job: job(`${prefix}-2`, 'v2') },
  ];
  return { store, lab, job, group, members };
}

t.test('groups: created with its jobs and key in one go; replayed by key; refused whole over the queue cap', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, group, members } = await seed(t, dialect);
  const key = { principal: 'ops', key: 'gk', requestHash: 'h' };
  t.same(await store.groups.create(group('g1'), members('g1'), key), { outcome: 'created', groupId: 'g1' });
  t.match(await store.jobs.get('g1-1'), { state: 'queued', groupId: 'g1' });
  t.match(await store.idempotency.find('ops', 'gk'), { jobId: 'g1-1' }, 'the key names the first member\'s job');
  t.same(await store.groups.create(group('g2'), members('g2'), key), { outcome: 'replayed', groupId: 'g1' });
  t.same(await store.groups.create(group('g3'), members('g3'), { ...key, requestHash: 'other' }), { outcome: 'key-reused' });
  t.equal(await store.groups.get('g2'), null, 'a replay writes nothing');
  t.equal(await store.jobs.get('g2-1'), null);

  t.same(await store.groups.create(group('g4'), members('g4'), undefined, { maxQueued: 3 }), { outcome: 'queue-full', queued: 2 }, '2 queued + 2 > 3');
  t.equal(await store.groups.get('g4'), null, 'nothing written');
  t.equal(await store.jobs.get('g4-1'), null);
  t.same(await store.groups.create(group('g5'), members('g5'), undefined, { maxQueued: 4 }), { outcome: 'created', groupId: 'g5' }, '2 + 2 ≤ 4');
  t.same(await store.groups.runningIds().then((ids) => ids.sort()), ['g1', 'g5']);
}));

t.test('groups: state and members derived from the jobs; refresh keeps the copies and tells the state before', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, group, members, job } = await seed(t, dialect);
  await store.groups.create(group('g1'), members('g1'));
  t.match(await store.groups.get('g1'), {
    state: 'running', finishedAt: null, spreadMs: null,
    members: [{ vmId: 'v2', vmName: 'db01', jobId: 'g1-2', state: 'queued' }, { vmId: 'v1', vmName: 'web01', jobId: 'g1-1', state: 'queued' }],
  });
  await store.jobs.tryClaim('g1-1', 'T1', at(1), 4);
  await store.jobs.tryClaim('g1-2', 'T2', at(3), 4);
  await store.jobs.finish('g1-1', 'T1', { state: 'succeeded', result: { snapshotId: null as unknown as string }, at: at(5) });
  await store.jobs.finish('g1-2', 'T2', { state: 'failed', error: { kind: 'internal', message: 'boom' }, at: at(6) });
  const refreshed = await store.groups.refresh('g1');
  t.match(refreshed, { before: { state: 'running', finishedAt: null }, group: { state: 'partial', finishedAt: at(6), spreadMs: 2000 } });
  t.match(await store.groups.refresh('g1'), { before: { state: 'partial', finishedAt: at(6) } }, 'the copy was written');
  t.same(await store.groups.runningIds(), []);
  t.equal(await store.groups.refresh('nope'), null);

  await store.groups.retry('g1', [job('g1-2r', 'v2', { groupId: 'g1' })]);
  t.match(await store.groups.get('g1'), { state: 'running', members: [{ vmId: 'v2', jobId: 'g1-2r', state: 'queued' }, { vmId: 'v1', jobId: 'g1-1' }] });
  t.match(await store.jobs.get('g1-2r'), { groupId: 'g1' });
  await store.jobs.cancelQueued('g1-2r', at(7), { kind: 'cancelled', message: 'c' });
  await store.groups.addJobs('g1', [job('del-1', 'v1', { kind: 'snapshot.delete', params: { snapshotId: 'x' } })], { at: at(8) });
  t.match(await store.groups.get('g1'), { state: 'deleted', finishedAt: at(8) });
  t.match(await store.jobs.get('del-1'), { groupId: 'g1', kind: 'snapshot.delete' });
}));

t.test('groups: list newest first with a cursor', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, group, members } = await seed(t, dialect);
  for (let i = 0; i < 3; i++) await store.groups.create(group(`g${i}`, at(i)), members(`g${i}`));
  const first = await store.groups.list({ limit: 2 });
  t.same(first.items.map((g) => g.id), ['g2', 'g1']);
  t.equal(first.items[0]!.members.length, 2);
  const second = await store.groups.list({ limit: 2, cursor: first.next! });
  t.same(second.items.map((g) => g.id), ['g0']);
  t.equal(second.next, null);
  await t.rejects(store.groups.list({ limit: 2, cursor: 'garbage' }), { name: 'InvalidCursorError' });
}));
