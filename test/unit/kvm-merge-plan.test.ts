/**
 * KVM manual-merge planner (pure): which deletes libvirt does itself, which are merged by hand and
 * how (commits per disk, chains before/after), which are refused and why; what is dropped after a
 * partial merge; the listVms consolidationNeeded decision. Hand-built chains and snapshot lists.
 */
import t from 'tap';
import { consolidationNeeded, worthReadingSnapshots } from '../../providers/kvm/consolidation.ts';
import { classifyDelete, droppedAfterMerge, planMerge, type MergeDisk, type MergeSnapshot } from '../../providers/kvm/merge-plan.ts';

const ext = (name: string, parent: string | null, files: Record<string, string>, memoryFile: string | null = null): MergeSnapshot => ({
  name,
  parent,
  memory: memoryFile === null ? 'no' : 'external',
  memoryFile,
  disks: Object.entries(files).map(([d, source]) => ({ name: d, snapshot: 'external', source, driverType: 'qcow2' })),
});
const int = (name: string, parent: string | null, disks = ['vda']): MergeSnapshot => ({
  name,
  parent,
  memory: 'internal',
  memoryFile: null,
  disks: disks.map((d) => ({ name: d, snapshot: 'internal', source: null, driverType: null })),
});
const disk = (target: string, chain: string[], type = 'file', device = 'disk'): MergeDisk => ({ target, type, device, source: chain[0] ?? null, backingChain: chain.slice(1) });

// e1 <- e2 <- e3, all external, running: chain o3 <- o2 <- o1 <- base
const linear = [ext('e1', null, { vda: '/o1' }), ext('e2', 'e1', { vda: '/o2' }, '/m2'), ext('e3', 'e2', { vda: '/o3' })];
const linearChain = ['/o3', '/o2', '/o1', '/base'];

t.test('classify: native where libvirt can', async (t) => {
  t.same(classifyDelete(linear, 'e3', false, true), { kind: 'native', children: false }, 'external leaf');
  t.same(classifyDelete(linear, 'e2', false, true), { kind: 'native', children: false }, 'external with one external child');
  t.same(classifyDelete([int('i1', null), int('i2', 'i1')], 'i1', true, true), { kind: 'native', children: true }, 'internal subtree');
  t.same(classifyDelete([int('i1', null), int('i2', 'i1')], 'i1', false, true), { kind: 'native', children: false }, 'internal with an internal child');
  t.same(classifyDelete(linear, 'e3', true, true), { kind: 'native', children: false }, 'children of a leaf: none');
});

t.test('classify: merge where libvirt refuses but it is safe', async (t) => {
  t.same(classifyDelete(linear, 'e2', true, true), { kind: 'merge', deleted: ['e3', 'e2'] }, 'external subtree, deepest first');
  t.same(classifyDelete(linear, 'e2', false, false), { kind: 'merge', deleted: ['e2'] }, 'libvirt < 9.0: linear external merged by hand');
  const mixed = [int('base-int', null), ext('x', 'base-int', { vda: '/ox' })];
  t.same(classifyDelete(mixed, 'x', false, true), { kind: 'merge', deleted: ['x'] }, 'external with an internal parent');
  // e1 <- i (internal, stored in /o1) <- e3 (on /o1): the whole subtree goes, i with its file.
  const sandwich = [ext('e1', null, { vda: '/o1' }), int('i', 'e1'), ext('e3', 'i', { vda: '/o3' })];
  t.same(classifyDelete(sandwich, 'e1', true, true), { kind: 'merge', deleted: ['e3', 'i', 'e1'] }, 'internal inside a merged overlay goes with it');
});

t.test('classify: refusals with the reason', async (t) => {
  const withInternalKids = [int('i', null), ext('x', 'i', { vda: '/ox' })];
  const r1 = classifyDelete(withInternalKids, 'i', false, true);
  t.equal(r1.kind, 'refuse');
  t.match(r1.kind === 'refuse' ? r1.reason : '', /internal with external children.*read-only backing file/);

  const branching = [ext('e', null, { vda: '/oe' }), ext('a', 'e', { vda: '/oa' }), ext('b', 'e', { vda: '/ob' })];
  const r2 = classifyDelete(branching, 'e', false, true);
  t.match(r2.kind === 'refuse' ? r2.reason : '', /has 2 children/);
  t.match((r => (r.kind === 'refuse' ? r.reason : ''))(classifyDelete(branching, 'e', true, true)), /has 2 children/, 'also as a subtree');

  // e (overlay /oe) <- i (internal, stored in /oe): deleting e alone would merge i's image away.
  const survivor = [ext('e', null, { vda: '/oe' }), int('i', 'e')];
  const r3 = classifyDelete(survivor, 'e', false, true);
  t.match(r3.kind === 'refuse' ? r3.reason : '', /'i' is not deleted but is stored in the overlay of 'e'/);

  // i0 (in the base) <- e (overlay) : deleting i0 with children would need i0 deleted inside the base.
  const deletedInBase = [int('i0', null), ext('e', 'i0', { vda: '/oe' })];
  const r4 = classifyDelete(deletedInBase, 'i0', true, true);
  t.match(r4.kind === 'refuse' ? r4.reason : '', /internal snapshot 'i0' would have to be deleted inside the base image/);
  t.throws(() => classifyDelete(linear, 'nope', false, true));
});

t.test('plan: runs become commits, chains before/after', async (t) => {
  const sub = planMerge([disk('vda', linearChain)], linear, ['e3', 'e2']);
  t.same(sub, {
    kind: 'merge',
    commits: [{ disk: 'vda', before: linearChain, after: ['/o1', '/base'], active: true, top: '/o3', base: '/o1', merged: ['/o3', '/o2'] }],
    memoryFiles: ['/m2'],
  }, 'run reaching the active image: one active commit into the image below');

  const mid = planMerge([disk('vda', linearChain)], linear, ['e2']);
  t.same(mid.kind === 'merge' ? mid.commits : null, [{ disk: 'vda', before: linearChain, after: ['/o3', '/o1', '/base'], active: false, top: '/o2', base: '/o1', merged: ['/o2'] }], 'inactive commit');

  // Two separate runs on one disk: deepest first, the second starts from the first's result.
  const two = planMerge([disk('vda', linearChain)], linear, ['e1', 'e3']);
  t.same(two.kind === 'merge' ? two.commits.map((c) => [c.before, c.after, c.active]) : null, [
    [linearChain, ['/o3', '/o2', '/base'], false],
    [['/o3', '/o2', '/base'], ['/o2', '/base'], true],
  ]);

  const mixed = [int('base-int', null), ext('x', 'base-int', { vda: '/ox', vdb: '/oy' })];
  const p = planMerge([disk('vda', ['/ox', '/a']), disk('vdb', ['/oy', '/b']), disk('hdc', ['/iso'], 'file', 'cdrom')], mixed, ['x']);
  t.same(p.kind === 'merge' ? p.commits.map((c) => [c.disk, c.top, c.base, c.active]) : null, [['vda', '/ox', '/a', true], ['vdb', '/oy', '/b', true]], 'each disk into the image holding the internal parent');

  const noOverlays = planMerge([disk('vda', ['/base'])], [ext('m', null, {}, '/mem')], ['m']);
  t.same(noOverlays, { kind: 'merge', commits: [], memoryFiles: ['/mem'] }, 'memory-only external: metadata and memory file only');
});

t.test('plan: refusals from the chain', async (t) => {
  const notInChain = planMerge([disk('vda', ['/o3', '/o1', '/base'])], linear, ['e2']);
  t.match(notInChain.kind === 'refuse' ? notInChain.reason : '', /overlay \/o2 of snapshot 'e2' is not in the chain/);
  const block = planMerge([disk('vda', linearChain, 'block')], linear, ['e2']);
  t.match(block.kind === 'refuse' ? block.reason : '', /only file disks/);
  const gone = planMerge([], linear, ['e2']);
  t.match(gone.kind === 'refuse' ? gone.reason : '', /no longer attached/);
  const bottom = planMerge([disk('vda', ['/o3', '/o2'])], linear, ['e3', 'e2']);
  t.match(bottom.kind === 'refuse' ? bottom.reason : '', /nothing to merge it into/, 'a chain without its base (shut-off XML) is never merged from');
  // a surviving child overlay on a merged image must be in the chain, or it would lose its backing file
  const orphan = planMerge([disk('vda', ['/o2', '/o1', '/base'])], linear, ['e2']);
  t.match(orphan.kind === 'refuse' ? orphan.reason : '', /overlay \/o3 of snapshot 'e3' sits on a merged image/);
});

t.test('dropped after a merge', async (t) => {
  t.same(droppedAfterMerge(linear, ['e2', 'e3'], ['/o3', '/o2'], true), ['e3', 'e2'], 'all done: every deleted snapshot');
  t.same(droppedAfterMerge(linear, ['e2', 'e1'], [], false), [], 'nothing merged: nothing dropped');
  t.same(droppedAfterMerge(linear, ['e1', 'e3'], ['/o1'], false), ['e1'], 'partial: only those whose overlay is merged');
  const sandwich = [ext('e1', null, { vda: '/o1' }), int('i', 'e1'), ext('e3', 'i', { vda: '/o3' })];
  t.same(droppedAfterMerge(sandwich, ['e1', 'i', 'e3'], ['/o1'], false), ['i', 'e1'], 'a deleted internal stored in a merged overlay is gone too');
});

t.test('consolidationNeeded decision', async (t) => {
  const chain = [disk('vda', linearChain)];
  t.ok(worthReadingSnapshots(chain, true, 1), '3 images above the bottom > 1');
  t.notOk(worthReadingSnapshots(chain, true, 3), 'at the limit: no snapshot read');
  t.notOk(worthReadingSnapshots([disk('vda', ['/base'])], true, 0), 'no chain');
  t.notOk(worthReadingSnapshots([disk('vda', ['/o3'])], false, 1, 1), 'shut off: one external snapshot, limit 1');
  t.ok(worthReadingSnapshots([disk('vda', ['/o3'])], false, 1, 2), 'shut off: two external snapshots');
  t.ok(consolidationNeeded(chain, linear, true, 1), 'running, too deep');
  t.notOk(consolidationNeeded(chain, [], true, 1), 'deep chain no snapshot of ours created (template): false');
  t.ok(consolidationNeeded([disk('vda', ['/o3'])], linear, false, 1), 'shut off: three overlays recorded');
  t.notOk(consolidationNeeded([disk('vda', ['/o3'])], linear, false, 3));
});
