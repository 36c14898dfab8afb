import t from 'tap';
import type { Snapshot, Vm } from '../../src/domain/types.ts';
import { openStore, type Store } from '../../src/store/index.ts';

const AT = '2025-01-01T00:00:00.000Z';

async function seed(t: { teardown(fn: () => void): void }) {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
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
  return { store, lab, other };
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

t.test('targets: ensure is idempotent by name, health is stored', async (t) => {
  const { store, lab } = await seed(t);
  const again = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
  t.equal(again.id, lab.id);
  t.equal(again.demo, false, 'demo flag follows the configuration');
  t.equal(again.healthy, null, 'never checked');
  await store.targets.setHealth(lab.id, { healthy: false, message: 'unreachable', version: null, checkedAt: AT });
  t.match(await store.targets.get('lab'), { healthy: false, healthMessage: 'unreachable', checkedAt: AT });
  t.same((await store.targets.list()).map((x) => x.name), ['lab', 'other']);
});

t.test('vms: filter by target and name (case-insensitive prefix), gone hidden, keyset pages', async (t) => {
  const { store, lab } = await seed(t);
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
});

t.test('snapshots: apply a plan (children before parents is fine), stats and chain depth', async (t) => {
  const { store } = await seed(t);
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
  t.equal((await store.snapshots.getByRef('v1', 'ref-c'))?.id, 'c');
  t.match(await store.vms.getWithStats('v2'), { snapshotCount: 0, chainDepth: 0, currentSnapshotId: null });
});


t.test('audit log: append and read newest first', async (t) => {
  const { store } = await seed(t);
  await store.audit.insert({ at: AT, principal: 'ops', method: 'POST', path: '/v1/x', statusCode: 202, jobId: null, detail: null });
  await store.audit.insert({ at: AT, principal: 'ops', method: 'DELETE', path: '/v1/y', statusCode: 404, jobId: null, detail: 'nf' });
  const rows = await store.audit.list({ limit: 10 });
  t.same(rows.map((r) => r.method), ['DELETE', 'POST']);
  t.same((await store.audit.list({ limit: 10, beforeId: rows[0]!.id })).map((r) => r.method), ['POST']);
});

t.test('vms: disks are stored as reported, updated through the plan, read in one query for many VMs', async (t) => {
  const { store, lab } = await seed(t);
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
});

t.test('snapshots: details are stored as JSON, updated through the plan (bumping the revision), null when absent', async (t) => {
  const { store } = await seed(t);
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
});

