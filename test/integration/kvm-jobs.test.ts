/**
 * The engine driving the KVM adapter against the real lab (through SSH): after every job the store is
 * updated from the adapter's answer, without listing the domain again (src/domain/listing-after.ts).
 * Here each job is followed by a full sync, which must find nothing to change — i.e. libvirt's own
 * rules (a new snapshot is current; a deleted one's children move to its parent; deleting the current
 * snapshot makes its parent current; revert moves the current flag) hold for native deletes, for the
 * fast internal-leaf delete and for manual merges alike.
 */
import t from 'tap';
import type { Job } from '../../src/domain/types.ts';
import { kvmEngine } from './kvm-engine.ts';

const { lab, engine, vm, meta, final } = await kvmEngine(t, 'jobs');
const picture = async () =>
  (await engine.listSnapshots(vm, { includeGone: true }))
    .map((r) => ({ name: r.name, parentId: r.parentId, current: r.current, state: r.state, owner: r.owner }))
    .sort((x, y) => x.name.localeCompare(y.name));

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function step(tt: TapTest, what: string, submit: () => ReturnType<typeof engine.submit>): Promise<Job> {
  const done = await final((await submit()).job);
  tt.equal(done.state, 'succeeded', done.error ? `${what}: ${JSON.stringify(done.error)}` : `${what}: succeeded`);
  const recorded = await picture();
  await engine.syncTarget('lab');
  tt.same(await picture(), recorded, `${what}: the recorded tree is what a full sync reads`);
  return done;
}

t.test('create, revert, delete (fast, native, merged) keep the recorded tree equal to libvirt', async (tt) => {
  const create = (name: string, mode: 'memory' | 'crash') => () => engine.submit({ kind: 'snapshot.create', vmId: vm, name, description: '', mode }, meta());
  const a = await step(tt, 'create a (internal)', create('a', 'memory'));
  await step(tt, 'create b (internal, child of a)', create('b', 'memory'));
  await step(tt, 'revert to a', () => engine.submit({ kind: 'snapshot.revert', snapshotId: a.result!.snapshotId! }, meta()));
  const c = await step(tt, 'create c (internal, branch under a)', create('c', 'memory'));
  await step(tt, 'delete c (the current internal leaf: fast path)', () => engine.submit({ kind: 'snapshot.delete', snapshotId: c.result!.snapshotId!, children: false }, meta()));
  tt.equal((await engine.snapshotTree(vm)).currentSnapshotId, a.result!.snapshotId, 'its parent is current again');
  const d = await step(tt, 'create d (external crash snapshot under internal a)', create('d', 'crash'));
  await step(tt, 'delete d (external with an internal parent: merged by hand)', () => engine.submit({ kind: 'snapshot.delete', snapshotId: d.result!.snapshotId!, children: false }, meta()));
  await step(tt, 'delete a with children (native)', () => engine.submit({ kind: 'snapshot.delete', snapshotId: a.result!.snapshotId!, children: true }, meta()));
  tt.same(await engine.listSnapshots(vm, { includeGone: false }), [], 'nothing left');
});

t.test('remove all: two roots and a snapshot made outside Snapvisor, root by root, through the engine', async (tt) => {
  const create = (name: string) => () => engine.submit({ kind: 'snapshot.create', vmId: vm, name, description: '', mode: 'memory' }, meta());
  const p = await step(tt, 'create p', create('p'));
  await step(tt, 'create q (child of p)', create('q'));
  await step(tt, 'revert to p', () => engine.submit({ kind: 'snapshot.revert', snapshotId: p.result!.snapshotId! }, meta()));
  await step(tt, 'create r (child of p)', create('r'));
  await step(tt, 'delete p alone: q and r become roots', () => engine.submit({ kind: 'snapshot.delete', snapshotId: p.result!.snapshotId!, children: false }, meta()));
  tt.equal((await engine.snapshotTree(vm)).roots.length, 2, 'two roots');
  const dom = lab.domainName('jobs');
  const made = await lab.virsh('snapshot-create-as', '--domain', dom, '--name', 'by hand; $(x)');
  tt.equal(made.code, 0, made.stderr);
  await engine.syncTarget('lab');
  tt.ok((await engine.listSnapshots(vm, { includeGone: false })).some((s) => s.owner === 'external'), 'the hand-made one is recorded as external');
  const all = await step(tt, 'remove all', () => engine.submit({ kind: 'snapshot.delete-all', vmId: vm }, meta()));
  tt.equal(all.result?.snapshotIds?.length, 3, 'q, r and the hand-made one');
  tt.equal((await lab.virsh('snapshot-list', '--domain', dom, '--name')).stdout.trim(), '', 'libvirt has none left');
  tt.same(await engine.listSnapshots(vm, { includeGone: false }), [], 'nor does the store');
});
