import t from 'tap';
import type { ProviderSnapshot, VmInfo } from '../../providers/contract.ts';
import { reconcileVms } from '../../src/domain/inventory.ts';
import { reconcileSnapshots, type SnapshotPlan } from '../../src/domain/reconcile.ts';
import type { Snapshot, Vm } from '../../src/domain/types.ts';

const NOW = '2025-02-01T00:00:00.000Z';
const EARLIER = '2025-01-01T00:00:00.000Z';

const ids = () => {
  let n = 0;
  return () => `new-${++n}`;
};

const ps = (ref: string, parentRef: string | null, extra: Partial<ProviderSnapshot> = {}): ProviderSnapshot => ({
  providerRef: ref,
  name: ref.toUpperCase(),
  description: '',
  parentRef,
  current: false,
  ready: true,
  createdAt: null,
  mode: null,
  marker: null,
  ...extra,
});

const row = (id: string, ref: string, parentId: string | null, extra: Partial<Snapshot> = {}): Snapshot => ({
  id,
  vmId: 'vm1',
  providerRef: ref,
  parentId,
  name: ref.toUpperCase(),
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
  firstSeenAt: EARLIER,
  deletedAt: null,
  ...extra,
});

const run = (stored: Snapshot[], observed: ProviderSnapshot[], known: Record<string, 'memory' | null> = {}) =>
  reconcileSnapshots({
    vmId: 'vm1',
    stored,
    observed,
    knownJobs: new Map(Object.entries(known).map(([k, mode]) => [k, { mode }])),
    now: NOW,
    newId: ids(),
  });

const summary = (p: SnapshotPlan) => ({
  inserts: p.inserts.map((s) => `${s.providerRef}<${s.parentId ?? '-'}>${s.owner}${s.current ? '*' : ''}`),
  updates: p.updates.map((c) => `${c.before.providerRef}:${JSON.stringify(c.set)}`),
  gone: p.gone.map((c) => c.before.providerRef),
});

const cases: Array<{ name: string; stored: Snapshot[]; observed: ProviderSnapshot[]; known?: Record<string, 'memory' | null>; want: ReturnType<typeof summary> }> = [
  {
    name: 'empty store, a chain on the hypervisor: inserted parents first, external, current kept',
    stored: [],
    observed: [ps('b', 'a', { current: true }), ps('a', null)],
    want: { inserts: ['a<->external', 'b<new-2>external*'], updates: [], gone: [] },
  },
  {
    name: 'no change → empty plan',
    stored: [row('s1', 'a', null), row('s2', 'b', 's1', { current: true })],
    observed: [ps('a', null), ps('b', 'a', { current: true })],
    want: { inserts: [], updates: [], gone: [] },
  },
  {
    name: 'VirtualBox re-parents the child of a deleted snapshot; the deleted one is marked gone',
    stored: [row('s1', 'a', null), row('s2', 'b', 's1'), row('s3', 'c', 's2', { current: true })],
    observed: [ps('a', null), ps('c', 'a', { current: true })],
    want: { inserts: [], updates: ['c:{"parentId":"s1"}'], gone: ['b'] },
  },
  {
    name: 'current moves after a revert',
    stored: [row('s1', 'a', null), row('s2', 'b', 's1', { current: true })],
    observed: [ps('a', null, { current: true }), ps('b', 'a')],
    want: { inserts: [], updates: ['a:{"current":true}', 'b:{"current":false}'], gone: [] },
  },
  {
    name: 'a snapshot made outside Snapvisor appears as external; one with a known job marker as snapvisor',
    stored: [row('s1', 'a', null, { current: true })],
    observed: [
      ps('a', null),
      ps('x', 'a', { marker: 'snapvisor:job-unknown' }),
      ps('y', 'x', { marker: 'snapvisor:job-1', current: true }),
    ],
    known: { 'job-1': 'memory' },
    want: { inserts: ['x<s1>external', 'y<new-1>snapvisor*'], updates: ['a:{"current":false}'], gone: [] },
  },
  {
    name: 'renamed and re-described in place',
    stored: [row('s1', 'a', null)],
    observed: [ps('a', null, { name: 'renamed', description: 'now with text' })],
    want: { inserts: [], updates: ['a:{"name":"renamed","description":"now with text"}'], gone: [] },
  },
  {
    name: 'everything vanished: all marked gone, none deleted; gone rows are not touched again',
    stored: [row('s1', 'a', null), row('s2', 'b', 's1', { current: true }), row('s0', 'z', null, { state: 'gone', deletedAt: EARLIER })],
    observed: [],
    want: { inserts: [], updates: [], gone: ['a', 'b'] },
  },
  {
    name: 'a gone snapshot that comes back is revived',
    stored: [row('s1', 'a', null, { state: 'gone', deletedAt: EARLIER })],
    observed: [ps('a', null, { current: true })],
    want: { inserts: [], updates: ['a:{"current":true,"state":"present","deletedAt":null}'], gone: [] },
  },
  {
    name: 'duplicate names are fine: identity is the provider ref; a repeated ref is taken once',
    stored: [],
    observed: [ps('a', null, { name: 'same' }), ps('b', 'a', { name: 'same' }), ps('b', 'a', { name: 'same' })],
    want: { inserts: ['a<->external', 'b<new-1>external'], updates: [], gone: [] },
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    t.same(summary(run(c.stored, c.observed, c.known)), c.want);
  });
}

t.test('gone rows get deletedAt=now and lose current; the known job mode is recorded', async (t) => {
  const plan = run([row('s1', 'a', null, { current: true })], [ps('n', null, { marker: 'snapvisor:j', current: true })], { j: 'memory' });
  t.same(plan.gone[0]!.set, { state: 'gone', current: false, deletedAt: NOW });
  t.equal(plan.inserts[0]!.mode, 'memory');
  t.equal(plan.inserts[0]!.jobId, 'j');
  t.equal(plan.inserts[0]!.firstSeenAt, NOW);
});

t.test('an external row whose marker job becomes known is adopted', async (t) => {
  const plan = run([row('s1', 'a', null)], [ps('a', null, { marker: 'snapvisor:j' })], { j: null });
  t.same(plan.updates[0]!.set, { owner: 'snapvisor', jobId: 'j' });
});

const vm = (id: string, pid: string, extra: Partial<Vm> = {}): Vm => ({
  id,
  targetId: 't1',
  providerVmId: pid,
  name: pid,
  powerState: 'running',
  rawPowerState: 'running',
  consolidationNeeded: false,
  disks: null,
  firstSeenAt: EARLIER,
  lastSeenAt: EARLIER,
  goneAt: null,
  ...extra,
});
const info = (pid: string, extra: Partial<VmInfo> = {}): VmInfo => ({ providerVmId: pid, name: pid, powerState: 'running', rawPowerState: 'running', ...extra });

t.test('VM inventory: new, changed, vanished, reappeared', async (t) => {
  const plan = reconcileVms({
    targetId: 't1',
    stored: [vm('v1', 'p1'), vm('v2', 'p2'), vm('v3', 'p3', { goneAt: EARLIER }), vm('v4', 'p4', { goneAt: EARLIER })],
    observed: [info('p1'), info('p3', { powerState: 'off', rawPowerState: 'poweroff' }), info('p5', { consolidationNeeded: true })],
    now: NOW,
    newId: ids(),
  });
  t.same(plan.inserts.map((v) => [v.providerVmId, v.consolidationNeeded, v.firstSeenAt]), [['p5', true, NOW]]);
  t.same(
    plan.updates.map((c) => [c.before.id, c.set, c.meaningful]),
    [
      ['v1', { lastSeenAt: NOW }, false],
      ['v3', { powerState: 'off', rawPowerState: 'poweroff', lastSeenAt: NOW, goneAt: null }, true],
    ],
  );
  t.same(plan.gone.map((c) => [c.before.id, c.set]), [['v2', { goneAt: NOW }]], 'v4 already gone is left alone');
});

t.test('snapshot details: inserted as reported; a structurally equal object (other key order) is no change; a changed one is', async (t) => {
  const details = { diskSnapshots: [{ disk: 'os', id: 'x' }], missingDisks: ['data'] };
  t.same(run([], [ps('a', null, { details })]).inserts[0]!.details, details);
  t.equal(run([], [ps('a', null)]).inserts[0]!.details, null, 'none reported: null');
  const stored = [row('s1', 'a', null, { details })];
  const reordered = { missingDisks: ['data'], diskSnapshots: [{ id: 'x', disk: 'os' }] };
  t.same(run(stored, [ps('a', null, { details: reordered })]).updates, [], 'same object, other key order: nothing to write');
  const completed = { ...details, missingDisks: [] };
  t.same(run(stored, [ps('a', null, { details: completed })]).updates.map((c) => c.set), [{ details: completed }]);
  t.same(run(stored, [ps('a', null)]).updates.map((c) => c.set), [{ details: null }], 'no longer reported: cleared');
});

t.test('VM disks: stored when reported, kept when not, an equal list writes nothing, a changed one is meaningful', async (t) => {
  const disks = [{ slot: 'os', path: '/d/os', chainDepth: 0 }, { slot: 'lun0', path: '/d/data' }];
  const inserted = reconcileVms({ targetId: 't1', stored: [], observed: [info('p1', { disks }), info('p2')], now: NOW, newId: ids() });
  t.same(inserted.inserts.map((v) => v.disks), [disks, null]);
  const stored = [vm('v1', 'p1', { disks, lastSeenAt: NOW })];
  const same = reconcileVms({ targetId: 't1', stored, observed: [info('p1', { disks: [{ path: '/d/os', chainDepth: 0, slot: 'os' }, { slot: 'lun0', path: '/d/data' }] })], now: NOW, newId: ids() });
  t.same(same.updates, [], 'an unchanged list (other key order) writes nothing');
  const absent = reconcileVms({ targetId: 't1', stored, observed: [info('p1')], now: NOW, newId: ids() });
  t.same(absent.updates, [], 'not reported: the known disks stay');
  const changed = reconcileVms({ targetId: 't1', stored, observed: [info('p1', { disks: [disks[0]!] })], now: NOW, newId: ids() });
  t.same(changed.updates.map((c) => [c.set, c.meaningful]), [[{ disks: [disks[0]] }, true]]);
});

t.test('progress is kept as a whole percent in 0..100 (Azure reports completionPercent 33.33…)', async (t) => {
  const { wholePercent } = await import('../../src/domain/percent.ts');
  t.equal(wholePercent(33.333), 33);
  t.equal(wholePercent(99.99), 99, 'never rounded up to a finished copy');
  t.equal(wholePercent(-3), 0);
  t.equal(wholePercent(250), 100);
  t.equal(wholePercent(Number.NaN), null);
  t.equal(wholePercent(undefined), null);
});

t.test('a fractional copy progress from the provider is stored as a whole percent (the column is an integer)', async (t) => {
  const inserted = run([], [ps('a', null, { ready: false, progress: 33.333 })]);
  t.equal(inserted.inserts[0]?.progress, 33);
  const updated = run([row('s1', 'a', null, { ready: false, progress: 33 })], [ps('a', null, { ready: false, progress: 66.667 })]);
  t.match(updated.updates[0]?.set, { progress: 66 });
});
