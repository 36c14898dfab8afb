/** computeDrift (src/domain/drift.ts): which store rows are drift, and the fingerprint that says it changed. */
import t from 'tap';
import { computeDrift, driftFingerprint, type DeletingJob } from '../../src/domain/drift.ts';
import type { Snapshot, Vm } from '../../src/domain/types.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';
const T2 = '2026-01-03T00:00:00.000Z';

const vm = (id: string, over: Partial<Vm> = {}): Vm => ({
  id,
  targetId: 't',
  providerVmId: `p-${id}`,
  name: id,
  powerState: 'running',
  rawPowerState: 'running',
  consolidationNeeded: false,
  disks: null,
  firstSeenAt: T0,
  lastSeenAt: T0,
  goneAt: null,
  ...over,
});

const snap = (id: string, vmId: string, over: Partial<Snapshot> = {}): Snapshot => ({
  id,
  vmId,
  providerRef: `r-${id}`,
  parentId: null,
  name: id,
  description: '',
  mode: 'memory',
  owner: 'snapvisor',
  jobId: null,
  state: 'present',
  current: false,
  ready: true,
  progress: null,
  details: null,
  createdAt: T0,
  firstSeenAt: T0,
  deletedAt: null,
  policyId: null,
  ...over,
});

const gone = (id: string, vmId: string, over: Partial<Snapshot> = {}) => snap(id, vmId, { state: 'gone', deletedAt: T1, ...over });

const job = (over: Partial<DeletingJob>): DeletingJob => ({
  id: 'j',
  kind: 'snapshot.delete',
  state: 'succeeded',
  vmId: 'a',
  snapshotId: null,
  children: false,
  dryRun: false,
  startedAt: T0,
  ...over,
});

t.test('created outside: present external snapshots only', async (t) => {
  const d = computeDrift({
    vms: [vm('a')],
    snapshots: [snap('ext', 'a', { owner: 'external' }), snap('ours', 'a'), gone('ext-gone', 'a', { owner: 'external' })],
    jobs: [job({ snapshotId: 'ext-gone' })],
  });
  t.same(d.createdOutside.map((s) => s.snapshotId), ['ext']);
  t.same(d.deletedOutside, []);
});

t.test('deleted outside: gone without a job that explains it', async (t) => {
  const snapshots = [
    gone('by-delete', 'a'),
    gone('root', 'a'),
    gone('child', 'a', { parentId: 'root' }),
    gone('grandchild', 'a', { parentId: 'child' }),
    gone('by-hand', 'a'),
    gone('b-after-delete-all', 'b', { deletedAt: T2 }),
    gone('b-before-delete-all', 'b', { deletedAt: T0 }),
    gone('c-after-dry-run', 'c', { deletedAt: T2 }),
    gone('of-a-gone-vm', 'gone-vm'),
  ];
  const d = computeDrift({
    vms: [vm('a'), vm('b'), vm('c'), vm('gone-vm', { goneAt: T1 })],
    snapshots,
    jobs: [
      job({ snapshotId: 'by-delete' }),
      job({ snapshotId: 'root', children: true }),
      job({ kind: 'snapshot.delete-all', vmId: 'b', startedAt: T1 }),
      job({ kind: 'vm.consolidate', vmId: 'c', startedAt: T1, dryRun: true }),
    ],
  });
  t.same(d.deletedOutside.map((s) => s.snapshotId).sort(), ['b-before-delete-all', 'by-hand', 'c-after-dry-run']);
  t.same(d.vmsGone, [{ vmId: 'gone-vm', name: 'gone-vm', goneAt: T1 }], 'a gone VM is one item, not its snapshots');
});

t.test('a consolidate (KVM merge drops snapshot metadata) explains snapshots gone after it started', async (t) => {
  const d = computeDrift({ vms: [vm('a')], snapshots: [gone('merged', 'a', { deletedAt: T2 })], jobs: [job({ kind: 'vm.consolidate', startedAt: T1 })] });
  t.same(d.deletedOutside, []);
});

t.test('consolidation needed: the hypervisor says so, or the chain is deeper than the policies allow', async (t) => {
  const chain = [snap('s1', 'deep'), snap('s2', 'deep', { parentId: 's1' }), snap('s3', 'deep', { parentId: 's2', current: true })];
  const input = {
    vms: [vm('flagged', { consolidationNeeded: true }), vm('deep'), vm('shallow')],
    snapshots: [...chain, snap('x1', 'shallow', { current: true })],
    jobs: [],
  };
  t.same(computeDrift(input).consolidationNeeded.map((c) => [c.vmId, c.reason]), [['flagged', 'hypervisor']], 'no policy: only the hypervisor flag');
  const limited = computeDrift({ ...input, maxChainDepthFor: (id) => (id === 'shallow' ? 0 : 2) });
  t.same(
    limited.consolidationNeeded.map((c) => ({ vmId: c.vmId, reason: c.reason, chainDepth: c.chainDepth, maxChainDepth: c.maxChainDepth })),
    [
      { vmId: 'deep', reason: 'chain-depth', chainDepth: 3, maxChainDepth: 2 },
      { vmId: 'flagged', reason: 'hypervisor', chainDepth: 0, maxChainDepth: 2 },
      { vmId: 'shallow', reason: 'chain-depth', chainDepth: 1, maxChainDepth: 0 },
    ],
  );
  t.same(computeDrift({ ...input, maxChainDepthFor: () => 3 }).consolidationNeeded.map((c) => c.vmId), ['flagged'], 'a chain at the limit is fine');
});

t.test('the fingerprint changes when an item comes or goes, not when only times move', async (t) => {
  const base = { vms: [vm('a')], jobs: [] };
  const one = computeDrift({ ...base, snapshots: [snap('e1', 'a', { owner: 'external' })] });
  const later = computeDrift({ ...base, snapshots: [snap('e1', 'a', { owner: 'external', createdAt: T2 })] });
  const other = computeDrift({ ...base, snapshots: [snap('e2', 'a', { owner: 'external' })] });
  t.equal(driftFingerprint(one, null), driftFingerprint(later, null));
  t.not(driftFingerprint(one, null), driftFingerprint(other, null), 'same count, another item');
  t.not(driftFingerprint(one, null), driftFingerprint(one, []), 'orphans listed (even none) is not the same as cannot list');
});
