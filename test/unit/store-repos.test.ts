import t from 'tap';
import type { Snapshot, Vm } from '../../src/domain/types.ts';
import type { Store } from '../../src/store/index.ts';
import { forEachDialect, openReplicaStore, openTestStore, type Dialect } from './store-dialects.ts';

const AT = '2025-01-01T00:00:00.000Z';

async function seed(t: { teardown(fn: () => void | Promise<void>): void }, dialect: Dialect = 'sqlite') {
  const { store, url } = await openTestStore(t, dialect);
  const lab = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: true });
  const other = await store.targets.ensure({ name: 'other', kind: 'virtualbox', demo: false });
  const vm = (id: string, targetId: string, name: string, extra: Partial<Vm> = {}): Vm => ({
    id,
    targetId,
    providerVmId: `p-${id}`,
    name,
    powerState: 'running',
    rawPowerState: 'running',
    consolidationNeeded: false,
    disks: null,
    firstSeenAt: AT,
    lastSeenAt: AT,
    goneAt: null,
    ...extra,
  });
  await store.vms.apply({
    inserts: [
      vm('v1', lab.id, 'web01'),
      vm('v2', lab.id, 'web02', { consolidationNeeded: true }),
      vm('v3', lab.id, 'db01'),
      vm('v4', other.id, 'Web03'),
      vm('v5', lab.id, 'web04', { goneAt: AT }),
    ],
    updates: [],
    gone: [],
  });
  return { store, lab, other, url };
}

const snap = (id: string, vmId: string, parentId: string | null, extra: Partial<Snapshot> = {}): Snapshot => ({
  id,
  vmId,
  providerRef: `ref-${id}`,
  parentId,
  name: id,
  description: '',
  mode: null,
  owner: 'external',
  jobId: null,
  policyId: null,
  state: 'present',
  current: false,
  ready: true,
  progress: null,
  details: null,
  createdAt: null,
  firstSeenAt: AT,
  deletedAt: null,
  ...extra,
});

t.test('targets: ensure is idempotent by name, health is stored', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const again = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
  t.equal(again.id, lab.id);
  t.equal(again.demo, false, 'demo flag follows the configuration');
  t.equal(again.healthy, null, 'never checked');
  await store.targets.setHealth(lab.id, { healthy: false, message: 'unreachable', version: null, checkedAt: AT });
  t.match(await store.targets.get('lab'), { healthy: false, healthMessage: 'unreachable', checkedAt: AT });
  t.same((await store.targets.list()).map((x) => x.name), ['lab', 'other']);
}));

t.test('vms: filter by target and name (case-insensitive prefix), gone hidden, keyset pages', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const names = async (q: Parameters<Store['vms']['list']>[0]) => (await store.vms.list(q)).items.map((v) => v.name);
  t.same(await names({ includeGone: false, limit: 10 }), ['Web03', 'db01', 'web01', 'web02'], 'binary order by name');
  t.same(await names({ targetId: lab.id, name: 'WEB', includeGone: false, limit: 10 }), ['web01', 'web02']);
  t.same(await names({ targetId: lab.id, name: 'web', includeGone: true, limit: 10 }), ['web01', 'web02', 'web04']);
  t.same(await names({ name: 'eb0', includeGone: false, limit: 10 }), [], 'a prefix, not a substring');
  t.same(await names({ name: 'w_b', includeGone: false, limit: 10 }), [], '_ is literal, not a wildcard');
  t.same(await names({ name: '%', includeGone: false, limit: 10 }), [], '% is literal, not a wildcard');
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.vms.list({ includeGone: true, limit: 2, ...(cursor ? { cursor } : {}) });
    seen.push(...page.items.map((v) => v.id));
    cursor = page.next ?? undefined;
  } while (cursor);
  t.same(seen.sort(), ['v1', 'v2', 'v3', 'v4', 'v5'], 'pages cover every row exactly once');
  await t.rejects(store.vms.list({ includeGone: false, limit: 2, cursor: 'garbage' }), { name: 'InvalidCursorError' });
  t.equal(await store.vms.countPresentByTarget(lab.id), 3);
  t.equal(await store.vms.countConsolidationNeeded(), 1);
}));

t.test('snapshots: apply a plan (children before parents is fine), stats and chain depth', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  // Child inserted before its parent: the parent FK is deferred to commit.
  await store.snapshots.apply({
    inserts: [snap('c', 'v1', 'b', { current: true }), snap('a', 'v1', null), snap('b', 'v1', 'a'), snap('x', 'v1', 'a')],
    updates: [],
    gone: [],
  });
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: 4, chainDepth: 3, currentSnapshotId: 'c', targetName: 'lab' });
  const a = (await store.snapshots.get('b'))!;
  await store.snapshots.apply({
    inserts: [],
    updates: [{ before: (await store.snapshots.get('c'))!, after: {} as Snapshot, set: { parentId: 'a' } }],
    gone: [{ before: a, after: {} as Snapshot, set: { state: 'gone', deletedAt: AT, current: false } }],
  });
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: 3, chainDepth: 2 });
  t.same((await store.snapshots.listByVm('v1', { includeGone: false })).map((s) => s.id).sort(), ['a', 'c', 'x']);
  t.equal((await store.snapshots.listByVm('v1', { includeGone: true })).length, 4, 'gone rows kept');
  t.same((await store.snapshots.listByVm('v1', { includeGone: true })).map((s) => s.id), ['c', 'a', 'b', 'x'], 'found in one sync: in the plan\'s (the provider\'s) order');
  t.equal((await store.snapshots.getByRef('v1', 'ref-c'))?.id, 'c');
  t.match(await store.vms.getWithStats('v2'), { snapshotCount: 0, chainDepth: 0, currentSnapshotId: null });
}));

t.test('audit log: append and read newest first', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  await store.audit.insert({ at: AT, principal: 'ops', method: 'POST', path: '/v1/x', statusCode: 202, jobId: null, detail: null });
  await store.audit.insert({ at: AT, principal: 'ops', method: 'DELETE', path: '/v1/y', statusCode: 404, jobId: null, detail: 'nf' });
  const rows = await store.audit.list({ limit: 10 });
  t.same(rows.map((r) => r.method), ['DELETE', 'POST']);
  t.same((await store.audit.list({ limit: 10, beforeId: rows[0]!.id })).map((r) => r.method), ['POST']);
}));

t.test('vms: disks are stored as reported, updated through the plan, read in one query for many VMs', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const disks = [{ slot: 'os', path: '/subscriptions/s/disks/osdisk1', chainDepth: 0 }, { slot: 'lun0' }];
  await store.vms.apply({
    inserts: [
      {
        id: 'v9', targetId: lab.id, providerVmId: 'p-v9', name: 'az1', powerState: 'running', rawPowerState: 'running',
        consolidationNeeded: false, disks, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
      },
    ],
    updates: [],
    gone: [],
  });
  t.same((await store.vms.get('v9'))?.disks, disks);
  t.equal((await store.vms.get('v1'))?.disks, null, 'never reported: null');
  t.same((await store.vms.getWithStats('v9'))?.disks, disks, 'also with stats');
  const before = (await store.vms.get('v1'))!;
  await store.vms.apply({ inserts: [], updates: [{ before, after: before, set: { disks: [{ slot: 'vda' }] }, meaningful: true }], gone: [] });
  t.same((await store.vms.get('v1'))?.disks, [{ slot: 'vda' }]);
  const map = await store.vms.disksOf(['v1', 'v9', 'v2', 'nope']);
  t.same([...map.entries()].sort(([a], [b]) => a.localeCompare(b)), [['v1', [{ slot: 'vda' }]], ['v2', null], ['v9', disks]]);
  t.same([...(await store.vms.disksOf([])).entries()], []);
}));

t.test('vms: names are data — % _ \\ quotes, $() and non-ASCII round-trip, filter literally, page in byte order', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  const names = await store.targets.ensure({ name: 'names', kind: 'virtualbox', demo: false });
  const odd = ['web%1', 'web_1', 'webX1', 'web\\1', 'WEB\\2', 'Web', 'Élan', 'élan', 'ÉLAN', `a'b"c$(rm -rf /)\`x\`;--`, '日本語', 'zz', 'Z'];
  await store.vms.apply({
    inserts: odd.map((name, i) => ({
      id: `n${String(i).padStart(2, '0')}`, targetId: names.id, providerVmId: `p-${name}`, name, powerState: 'running', rawPowerState: 'running',
      consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
    })),
    updates: [],
    gone: [],
  });
  for (const [i, name] of odd.entries()) t.equal((await store.vms.get(`n${String(i).padStart(2, '0')}`))?.name, name, `${name} round-trips`);
  const find = async (name: string) => (await store.vms.list({ targetId: names.id, name, includeGone: false, limit: 50 })).items.map((v) => v.name);
  t.same(await find('web%'), ['web%1'], '% matches itself only');
  t.same(await find('WEB_'), ['web_1'], '_ matches itself only, case folded');
  t.same(await find('web\\'), ['WEB\\2', 'web\\1'], 'a backslash matches itself, case folded');
  t.same(await find('wEb'), ['WEB\\2', 'Web', 'web%1', 'webX1', 'web\\1', 'web_1'], 'ASCII case folded, byte order');
  t.same(await find('é'), ['élan'], 'non-ASCII letters are not case folded (SQLite LIKE)');
  t.same(await find('É'), ['ÉLAN', 'Élan']);
  t.same(await find(`a'b"c$(`), [`a'b"c$(rm -rf /)\`x\`;--`], 'quotes and $() are plain characters');
  t.same(await find('日本'), ['日本語']);
  const byteOrder = [...odd].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const paged: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.vms.list({ targetId: names.id, includeGone: false, limit: 3, ...(cursor ? { cursor } : {}) });
    paged.push(...page.items.map((v) => v.name));
    cursor = page.next ?? undefined;
  } while (cursor);
  t.same(paged, byteOrder, 'keyset pages in byte order (SQLite BINARY), every row once');
}));

t.test('drift: snapshots of a target (present, and gone since), deleting jobs, last state per target', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const later = '2025-01-02T00:00:00.000Z';
  await store.snapshots.apply({
    inserts: [
      snap('a', 'v1', null, { owner: 'snapvisor', createdAt: AT }),
      snap('b', 'v1', 'a', { current: true }),
      snap('old', 'v2', null, { state: 'gone', deletedAt: AT }),
      snap('recent', 'v2', null, { state: 'gone', deletedAt: later }),
      snap('elsewhere', 'v4', null),
    ],
    updates: [],
    gone: [],
  });
  const rows = (await store.drift.snapshotsOfTarget(lab.id, later)).sort((x, y) => x.id.localeCompare(y.id));
  t.same(rows, [
    { id: 'a', vmId: 'v1', parentId: null, name: 'a', owner: 'snapvisor', state: 'present', current: false, createdAt: AT, deletedAt: null },
    { id: 'b', vmId: 'v1', parentId: 'a', name: 'b', owner: 'external', state: 'present', current: true, createdAt: null, deletedAt: null },
    { id: 'recent', vmId: 'v2', parentId: null, name: 'recent', owner: 'external', state: 'gone', current: false, createdAt: null, deletedAt: later },
  ], 'present ones, gone ones since then; not another target\'s');
  t.same(await store.drift.deletingJobs(lab.id), [], 'no jobs yet');
  t.equal(await store.drift.lastState('lab'), null);
  await store.drift.saveState('lab', { fingerprint: 'f1', summary: { createdOutside: 1 }, checkedAt: AT });
  await store.drift.saveState('lab', { fingerprint: 'f2', summary: { createdOutside: 2 }, checkedAt: later });
  t.same(await store.drift.lastState('lab'), { fingerprint: 'f2', summary: { createdOutside: 2 }, checkedAt: later }, 'one row per target, replaced');
}));

t.test('vms and snapshots: a plan larger than one statement is written whole, in order', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const n = 1203;
  const id = (i: number) => `big${String(i).padStart(4, '0')}`;
  await store.vms.apply({
    inserts: Array.from({ length: n }, (_, i) => ({
      id: id(i), targetId: lab.id, providerVmId: `p-${id(i)}`, name: id(i), powerState: 'running' as const, rawPowerState: 'running',
      consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
    })),
    updates: [],
    gone: [],
  });
  t.equal(await store.vms.countPresentByTarget(lab.id), n + 3);
  const refs = Array.from({ length: n }, (_, i) => `s${(i * 7919) % n}`);
  await store.snapshots.apply({ inserts: refs.map((r, i) => snap(r, 'v1', i === 0 ? null : refs[i - 1]!)), updates: [], gone: [] });
  t.same((await store.snapshots.listByVm('v1', { includeGone: false })).map((s) => s.id), refs, 'every snapshot, in the plan\'s order');
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: n });
}));

t.test('postgres: two replicas applying plans to one VM at once: each plan bumps its revision once', async (t) => {
  const { store: a, url } = await seed(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  const before = (await a.snapshots.revision('v1'))!;
  const plans = 20;
  // Each plan writes its own snapshot row: nothing but the revision makes them wait for each other.
  await Promise.all(Array.from({ length: plans }, (_, i) => (i % 2 ? a : b).snapshots.apply({ inserts: [snap(`n${i}`, 'v1', null)], updates: [], gone: [] })));
  t.equal(await a.snapshots.revision('v1'), before + plans, 'no bump lost');
});

t.test('snapshots: a plan made from rows another writer changed since (its revision moved) writes nothing', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  const read = await store.snapshots.revision('v1');
  t.ok(await store.snapshots.apply({ inserts: [snap('first', 'v1', null)], updates: [], gone: [] }, { vmId: 'v1', expectedRevision: read }), 'applied at the revision read');
  t.notOk(await store.snapshots.apply({ inserts: [snap('stale', 'v1', null)], updates: [], gone: [] }, { vmId: 'v1', expectedRevision: read }), 'the same revision again: stale');
  t.same((await store.snapshots.listByVm('v1', { includeGone: true })).map((s) => s.id), ['first'], 'the stale plan wrote nothing');
  t.equal(await store.snapshots.revision('v1'), read! + 1, 'and bumped nothing');
}));

t.test('postgres: two replicas planning from the same revision of one VM: one plan applies, the other is told to read again', async (t) => {
  const { store: a, url } = await seed(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  const read = await a.snapshots.revision('v1');
  // Both insert the same provider snapshot (a job's record and the leader's sync of one VM): without the check, a unique violation.
  const results = await Promise.all([a, b].map((s) => s.snapshots.apply({ inserts: [snap(s === a ? 'from-a' : 'from-b', 'v1', null, { providerRef: 'same-ref' })], updates: [], gone: [] }, { vmId: 'v1', expectedRevision: read })));
  t.same(results.slice().sort(), [false, true], 'one applied, one stale');
  t.equal((await a.snapshots.listByVm('v1', { includeGone: true })).length, 1);
});

t.test('snapshots: details are stored as JSON, updated through the plan (bumping the revision), null when absent', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  const details = { diskSnapshots: [{ disk: 'os', id: 'snap-os' }], missingDisks: ['data'] };
  await store.snapshots.apply({ inserts: [snap('a', 'v1', null, { details }), snap('b', 'v1', 'a')], updates: [], gone: [] });
  t.same((await store.snapshots.get('a'))?.details, details);
  t.equal((await store.snapshots.get('b'))?.details, null);
  const rev = await store.snapshots.revision('v1');
  const a = (await store.snapshots.get('a'))!;
  await store.snapshots.apply({ inserts: [], updates: [{ before: a, after: a, set: { details: { ...details, missingDisks: [] } } }], gone: [] });
  t.same((await store.snapshots.get('a'))?.details, { ...details, missingDisks: [] });
  t.equal(await store.snapshots.revision('v1'), rev! + 1, 'a details change bumps the revision (ETags follow)');
  await store.snapshots.apply({ inserts: [], updates: [{ before: a, after: a, set: { details: null } }], gone: [] });
  t.equal((await store.snapshots.get('a'))?.details, null);
}));
