/**
 * providers/vmware/created-snapshot.ts: picking the snapshot a CreateSnapshot_Task made out of the
 * VM tree read in the same poll (shapes as node-soap returns them, see vmware-parse.test.ts).
 */
import t from 'tap';
import { createdRefOf, createdSnapshotIn } from '../../providers/vmware/created-snapshot.ts';

const ref = (type: string, value: string) => ({ attributes: { type }, $value: value });

/** A VirtualMachineSnapshotInfo with root snapshot-10 and its child snapshot-11 (current). */
const tree = {
  currentSnapshot: ref('VirtualMachineSnapshot', 'snapshot-11'),
  rootSnapshotList: {
    snapshot: ref('VirtualMachineSnapshot', 'snapshot-10'),
    name: 'base',
    description: 'first\nsnapvisor:job-a',
    createTime: new Date('2026-11-23T21:00:00.000Z'),
    state: 'poweredOff',
    quiesced: false,
    childSnapshotList: {
      snapshot: ref('VirtualMachineSnapshot', 'snapshot-11'),
      name: 'new',
      description: 'snapvisor:job-b',
      createTime: new Date('2026-11-23T21:05:00.000Z'),
      state: 'poweredOff',
      quiesced: false,
    },
  },
};

t.test('createdRefOf: normalised MoRef, raw node-soap MoRef, nothing', async (t) => {
  t.equal(createdRefOf({ type: 'VirtualMachineSnapshot', value: 'snapshot-11' }), 'snapshot-11');
  t.equal(createdRefOf(ref('VirtualMachineSnapshot', 'snapshot-12')), 'snapshot-12');
  t.equal(createdRefOf(undefined), null);
  t.equal(createdRefOf(null), null);
  t.equal(createdRefOf('snapshot-11'), null, 'a bare string is not a result');
  t.equal(createdRefOf({ type: 'VirtualMachineSnapshot', value: '' }), null, 'an empty value is not a result');
});

t.test('createdSnapshotIn: the task result found in the tree read alongside', async (t) => {
  const props = new Map<string, unknown>([['snapshot', tree]]);
  const made = createdSnapshotIn('snapshot-11', props);
  t.ok(made, 'found');
  t.equal(made?.providerRef, 'snapshot-11');
  t.equal(made?.parentRef, 'snapshot-10', 'parent from the tree');
  t.equal(made?.current, true, 'current from currentSnapshot');
  t.equal(made?.createdAt, '2026-11-23T21:05:00.000Z');
  t.equal(made?.marker, 'snapvisor:job-b');
  t.equal(createdSnapshotIn('snapshot-10', props)?.current, false, 'another node of the same tree: not current');
});

t.test('createdSnapshotIn: null when the tree cannot vouch for it (caller reads again)', async (t) => {
  t.equal(createdSnapshotIn('snapshot-12', new Map([['snapshot', tree]])), null, 'tree not updated yet');
  t.equal(createdSnapshotIn('snapshot-11', new Map()), null, 'VM without a snapshot property (no snapshots yet)');
  t.equal(createdSnapshotIn('snapshot-11', null), null, 'VM not in the poll answer');
});
