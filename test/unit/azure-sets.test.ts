/** Snapshot sets (providers/azure/sets.ts): names, tags, grouping, tree, current, readiness, limits. */
import t from 'tap';
import {
  TAG,
  diskLineage,
  disksAtIncrementalLimit,
  memberName,
  memberTags,
  readiness,
  revertDiskName,
  setIdOf,
  setIdOfRef,
  setRef,
  snapshotsOfVm,
  subtree,
  type DiskRec,
  type SnapRec,
  type SetSpec,
  type VmDisk,
} from '../../providers/azure/sets.ts';

const VM = '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1';
const disk = (name: string) => `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/${name}`;
const OS = disk('os1');
const D0 = disk('data0');
const vmDisks: VmDisk[] = [{ slot: 'os', id: OS, name: 'os1' }, { slot: 'lun0', id: D0, name: 'data0' }];

function member(spec: SetSpec, slot: string, source: string, at: string, extra: Partial<SnapRec> = {}): SnapRec {
  const name = memberName(spec.setId, slot);
  return {
    id: `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/${name}`,
    name, resourceGroup: 'rg', tags: memberTags(spec, slot), sourceId: source, sourceUniqueId: 'u-' + source, incremental: true,
    familyId: 'f-' + source, provisioningState: 'Succeeded', createdAt: at, ...extra,
  };
}
const specOf = (marker: string, parentSetId: string | null = null): SetSpec => ({
  marker, setId: setIdOf(marker), vmId: VM, name: `n-${marker}`, description: 'd', mode: 'crash', slots: ['os', 'lun0'], parentSetId,
});
const setOf = (spec: SetSpec, at: string, sources = [OS, D0]) => [member(spec, 'os', sources[0]!, at), member(spec, 'lun0', sources[1]!, at)];

t.test('names and ids are deterministic and within Azure limits', async (t) => {
  const id = setIdOf('snapvisor:job-1');
  t.match(id, /^[0-9a-f]{16}$/);
  t.equal(setIdOf('snapvisor:job-1'), id, 'same marker, same set');
  t.not(setIdOf('snapvisor:job-2'), id);
  t.equal(memberName(id, 'lun12'), `sv-${id}-lun12`);
  t.equal(setIdOfRef(setRef(id)), id);
  t.equal(setIdOfRef('set:nothex'), null);
  const long = 'x'.repeat(80);
  const n = revertDiskName(long, disk(long), id);
  t.ok(n.length <= 80, `${n.length} characters`);
  t.match(n, /-sv[0-9a-f]{8}$/);
  t.equal(revertDiskName('os1', OS, id), revertDiskName('os1', OS, id), 'a retried revert reuses the name');
  t.not(revertDiskName('os1', OS, id), revertDiskName('os1', disk('other'), id), 'another disk, another name');
  t.equal(revertDiskName(revertDiskName('os1', OS, id), OS, id).split('-sv').length, 2, 'suffixes do not pile up');
});

t.test('tags of a member', async (t) => {
  const spec = specOf('snapvisor:j', 'aaaaaaaaaaaaaaaa');
  t.same(memberTags(spec, 'lun0'), {
    [TAG.owner]: 'snapvisor', [TAG.job]: 'snapvisor:j', [TAG.set]: spec.setId, [TAG.vm]: VM, [TAG.disk]: 'lun0', [TAG.disks]: '2', [TAG.luns]: '0',
    [TAG.name]: 'n-snapvisor:j', [TAG.description]: 'd', [TAG.mode]: 'crash', [TAG.parent]: 'aaaaaaaaaaaaaaaa',
  });
  t.notOk(TAG.parent in memberTags(specOf('snapvisor:k'), 'os'), 'a root has no parent tag');
});

t.test('grouping: sets, a partial set, an outside snapshot, tree and current', async (t) => {
  const a = specOf('snapvisor:a');
  const b = specOf('snapvisor:b', a.setId);
  const c = specOf('snapvisor:c', b.setId);
  const partialC = [member(c, 'os', OS, '2026-01-03T00:00:00.000Z')];
  const outside: SnapRec = { ...member(a, 'os', OS, '2026-01-02T12:00:00.000Z'), id: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/snapshots/manual', name: 'manual', tags: {} };
  const otherVm = setOf({ ...specOf('snapvisor:z'), vmId: VM.replace('vm1', 'vm2') }, '2026-01-05T00:00:00.000Z', [disk('x'), disk('y')]);
  const list = snapshotsOfVm({ id: VM.toUpperCase(), disks: vmDisks }, [...setOf(a, '2026-01-01T00:00:00.000Z'), ...setOf(b, '2026-01-02T00:00:00.000Z'), ...partialC, outside, ...otherVm], []);
  t.same(list.map((s) => s.name), ['n-snapvisor:a', 'n-snapvisor:b', 'manual', 'n-snapvisor:c'], 'oldest first; another VM’s set is not here; VM ids compare case-insensitively');
  t.same(list.map((s) => s.parentRef), [null, setRef(a.setId), null, setRef(b.setId)]);
  t.same(list.filter((s) => s.current).map((s) => s.name), ['n-snapvisor:c'], 'the newest snapshot of the current disks is current');
  const partial = list[3]!;
  t.equal(partial.ready, false);
  t.match(partial.details, { partial: true, missing: ['lun0'] });
  t.equal(partial.progress, undefined, 'no progress for a set that waiting cannot complete');
  const manual = list[2]!;
  t.equal(manual.providerRef, outside.id);
  t.equal(manual.marker, null);
  t.equal(manual.mode, null);
  t.same(subtree(list, setRef(a.setId)), [setRef(c.setId), setRef(b.setId), setRef(a.setId)], 'children before parents');
});

t.test('current after a revert: the set the new disks came from, until a snapshot of them exists', async (t) => {
  const a = specOf('snapvisor:a');
  const b = specOf('snapvisor:b', a.setId);
  const snaps = [...setOf(a, '2026-01-01T00:00:00.000Z'), ...setOf(b, '2026-01-02T00:00:00.000Z')];
  const newDisks: VmDisk[] = [{ slot: 'os', id: disk('os1-sv1'), name: 'os1-sv1' }, { slot: 'lun0', id: disk('data0-sv1'), name: 'data0-sv1' }];
  const disks: DiskRec[] = [
    { id: disk('os1-sv1'), name: 'os1-sv1', tags: { [TAG.fromSet]: a.setId } },
    { id: OS, name: 'os1', tags: { [TAG.replacedBy]: disk('os1-sv1') } },
    { id: D0, name: 'data0', tags: { [TAG.replacedBy]: disk('data0-sv1') } },
  ];
  let list = snapshotsOfVm({ id: VM, disks: newDisks }, snaps, disks);
  t.same(list.filter((s) => s.current).map((s) => s.name), ['n-snapvisor:a']);
  t.same([...diskLineage(newDisks, disks)].sort(), [OS, D0, disk('os1-sv1'), disk('data0-sv1')].map((x) => x.toLowerCase()).sort(), 'replaced disks stay in the lineage');
  const c = specOf('snapvisor:c', a.setId);
  list = snapshotsOfVm({ id: VM, disks: newDisks }, [...snaps, ...setOf(c, '2026-01-03T00:00:00.000Z', [disk('os1-sv1'), disk('data0-sv1')])], disks);
  t.same(list.filter((s) => s.current).map((s) => s.name), ['n-snapvisor:c']);
  t.same(list.filter((s) => s.parentRef === setRef(a.setId)).map((s) => s.name).sort(), ['n-snapvisor:b', 'n-snapvisor:c'], 'a has two children');
  // Nothing of the current disks and no revert tag: the newest set.
  list = snapshotsOfVm({ id: VM, disks: [{ slot: 'os', id: disk('elsewhere'), name: 'e' }] }, snaps, []);
  t.same(list.filter((s) => s.current).map((s) => s.name), ['n-snapvisor:b']);
  t.same(snapshotsOfVm({ id: VM, disks: vmDisks }, [], []), [], 'none: none current');
});

t.test('readiness: every member Succeeded and 100 %, progress the minimum', async (t) => {
  const spec = specOf('snapvisor:r');
  const [os, lun] = setOf(spec, '2026-01-01T00:00:00.000Z');
  t.same(readiness([os!, lun!], []), { ready: true });
  t.same(readiness([{ ...os!, completionPercent: 40 }, { ...lun!, completionPercent: 70 }], []), { ready: false, progress: 40 });
  t.same(readiness([{ ...os!, completionPercent: 100 }, { ...lun!, provisioningState: 'Updating' }], []), { ready: false, progress: 0 });
  t.same(readiness([os!], ['lun0']), { ready: false });
});

t.test('Azure’s 500 incremental snapshots per disk, counted by source id and unique id', async (t) => {
  const spec = specOf('snapvisor:q');
  const many = Array.from({ length: 500 }, (_, i) => ({ ...member(spec, 'os', OS, '2026-01-01T00:00:00.000Z'), id: `s${i}` }));
  const d = [{ ...vmDisks[0]!, uniqueId: 'u-' + OS }, { ...vmDisks[1]!, uniqueId: 'u-' + D0 }];
  t.same(disksAtIncrementalLimit(d, many).map((x) => x.slot), ['os']);
  t.same(disksAtIncrementalLimit(d, many.slice(1)), [], '499 is fine');
  t.same(disksAtIncrementalLimit([{ ...vmDisks[0]!, uniqueId: 'recreated' }], many), [], 'a recreated disk of the same name starts again');
  t.same(disksAtIncrementalLimit(d, many.map((s) => ({ ...s, incremental: false }))), [], 'full snapshots do not count');
});
