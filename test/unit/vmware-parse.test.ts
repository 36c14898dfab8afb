/**
 * providers/vmware/parse.ts on the shapes node-soap makes of vim25 answers. The fixtures are what
 * node-soap 1.13 returned from vcsim 0.24 with the shipped WSDL (recorded while building the
 * adapter), plus the `xsi:type` spelling real vCenter uses (reference/vmware.md).
 */
import t from 'tap';
import { asArray, flattenSnapshots, modeOf, moRefOf, normalizeValue, objectProps, parseTaskInfo, parseVm, powerStateOf, toSoap } from '../../providers/vmware/parse.ts';

const ref = (type: string, value: string) => ({ attributes: { type }, $value: value });
const vcsimTyped = (type: string, value: string) => ({ attributes: { 'XMLSchema-instance:type': type }, $value: value });
const vcenterTyped = (type: string, value: string) => ({ attributes: { 'xsi:type': type }, $value: value });

t.test('MoRefs: node-soap shape both ways', async (t) => {
  t.same(toSoap({ type: 'VirtualMachine', value: 'vm-57' }), { attributes: { type: 'VirtualMachine' }, $value: 'vm-57' });
  t.same(moRefOf(ref('Task', 'task-70')), { type: 'Task', value: 'task-70' });
  t.equal(moRefOf('vm-57'), null, 'a plain string is not a MoRef');
  t.equal(moRefOf({ type: 'VirtualMachine', value: 'vm-1' }), null, 'nor is a {type, value} object');
});

t.test('asArray: a single child is not an array, an absent one is empty', async (t) => {
  t.same(asArray(undefined), []);
  t.same(asArray({ a: 1 }), [{ a: 1 }]);
  t.same(asArray([1, 2]), [1, 2]);
});

t.test('normalizeValue: anyType primitives in both xsi spellings', async (t) => {
  for (const typed of [vcsimTyped, vcenterTyped]) {
    t.equal(normalizeValue(typed('xsd:string', 'DC0_H0_VM0')), 'DC0_H0_VM0');
    t.equal(normalizeValue(typed('xsd:boolean', 'true')), true);
    t.equal(normalizeValue(typed('xsd:boolean', 'false')), false);
    t.equal(normalizeValue(typed('xsd:int', '42')), 42);
    t.equal(normalizeValue(typed('VirtualMachinePowerState', 'poweredOn')), 'poweredOn', 'an enum stays its word');
  }
  t.same(
    normalizeValue({ attributes: { 'XMLSchema-instance:type': 'ManagedObjectReference', type: 'VirtualMachineSnapshot' }, $value: 'snapshot-71' }),
    { type: 'VirtualMachineSnapshot', value: 'snapshot-71' },
    'a typed MoRef (TaskInfo.result) becomes a MoRef',
  );
  t.equal(normalizeValue(vcsimTyped('xsd:boolean', 'true')) === 'true', false, 'not left as the string "true"');
});

t.test('objectProps: propSet by name, missingSet paths', async (t) => {
  const { obj, props, missing } = objectProps({
    obj: ref('VirtualMachine', 'vm-57'),
    propSet: { name: 'runtime.consolidationNeeded', val: vcenterTyped('xsd:boolean', 'true') },
    missingSet: [{ path: 'snapshot', fault: { fault: { attributes: { 'xsi:type': 'NoPermission' } } } }],
  });
  t.same(obj, { type: 'VirtualMachine', value: 'vm-57' });
  t.equal(props.get('runtime.consolidationNeeded'), true, 'a single DynamicProperty (not an array) is read');
  t.same(missing, [{ path: 'snapshot', faultType: 'NoPermission' }]);
});

t.test('powerStateOf', async (t) => {
  t.equal(powerStateOf('poweredOn'), 'running');
  t.equal(powerStateOf('poweredOff'), 'off');
  t.equal(powerStateOf('suspended'), 'suspended');
  t.equal(powerStateOf('somethingNew'), 'unknown');
});

t.test('modeOf: quiesced flag first, then the memory state', async (t) => {
  t.equal(modeOf('poweredOff', true), 'quiesced');
  t.equal(modeOf('poweredOn', false), 'memory');
  t.equal(modeOf('poweredOff', false), null, 'crash or offline: the tree cannot tell');
  t.equal(modeOf('suspended', false), null);
});

/** VirtualMachineSnapshotInfo as node-soap returned it from vcsim (WSDL types: id number, quiesced boolean). */
const snapshotInfo = {
  attributes: { 'XMLSchema-instance:type': 'VirtualMachineSnapshotInfo' },
  currentSnapshot: ref('VirtualMachineSnapshot', 'snapshot-71'),
  rootSnapshotList: [
    {
      snapshot: ref('VirtualMachineSnapshot', 'snapshot-69'),
      vm: ref('VirtualMachine', 'vm-57'),
      name: 's1 <&>',
      description: 'd "x"\nline2\n\nsnapvisor:job-1',
      id: 1,
      createTime: '2026-11-23T21:31:01.952Z',
      state: 'poweredOn',
      quiesced: false,
      childSnapshotList: [
        {
          snapshot: ref('VirtualMachineSnapshot', 'snapshot-71'),
          vm: ref('VirtualMachine', 'vm-57'),
          name: 's2',
          description: '',
          id: 2,
          createTime: '2026-11-23T21:31:01.957Z',
          state: 'poweredOff',
          quiesced: true,
          replaySupported: false,
        },
        {
          snapshot: ref('VirtualMachineSnapshot', 'snapshot-80'),
          vm: ref('VirtualMachine', 'vm-57'),
          name: 's3',
          description: 'external one',
          createTime: new Date('2026-11-23T22:00:00.000+01:00'),
          state: 'poweredOff',
          quiesced: false,
        },
      ],
      replaySupported: false,
    },
  ],
};

t.test('flattenSnapshots: tree → flat list with parents, current, marker, mode, ISO time', async (t) => {
  const flat = flattenSnapshots(snapshotInfo);
  t.same(
    flat.map((s) => [s.providerRef, s.parentRef, s.current]),
    [
      ['snapshot-69', null, false],
      ['snapshot-71', 'snapshot-69', true],
      ['snapshot-80', 'snapshot-69', false],
    ],
  );
  const [s1, s2, s3] = flat;
  t.equal(s1?.name, 's1 <&>');
  t.equal(s1?.description, 'd "x"\nline2', 'marker split off the description');
  t.equal(s1?.marker, 'snapvisor:job-1');
  t.equal(s1?.mode, 'memory');
  t.equal(s1?.createdAt, '2026-11-23T21:31:01.952Z');
  t.equal(s2?.mode, 'quiesced');
  t.equal(s2?.marker, null);
  t.equal(s2?.description, '');
  t.equal(s3?.createdAt, '2026-11-23T21:00:00.000Z', 'a Date becomes UTC ISO');
  t.equal(s3?.mode, null);
  t.equal(s3?.marker, null, 'a snapshot made outside Snapvisor has no marker');
});

t.test('flattenSnapshots: a single root (not an array) and no snapshots at all', async (t) => {
  const single = { ...snapshotInfo, rootSnapshotList: { ...snapshotInfo.rootSnapshotList[0], childSnapshotList: undefined } };
  t.same(flattenSnapshots(single).map((s) => s.providerRef), ['snapshot-69']);
  t.same(flattenSnapshots(undefined), [], 'absent snapshot property = no snapshots');
  t.same(flattenSnapshots({ rootSnapshotList: [] }), []);
});

t.test('parseVm: one ObjectContent of the inventory pass', async (t) => {
  const vm = parseVm({
    obj: ref('VirtualMachine', 'vm-57'),
    propSet: [
      { name: 'name', val: vcsimTyped('xsd:string', 'DC0_H0_VM0') },
      { name: 'config.instanceUuid', val: vcsimTyped('xsd:string', 'b4689bed-97f0-5bcd-8a4c-07477cc8f06f') },
      { name: 'runtime.powerState', val: vcsimTyped('VirtualMachinePowerState', 'poweredOn') },
      { name: 'snapshot', val: snapshotInfo },
    ],
  });
  t.equal(vm?.ref.value, 'vm-57');
  t.equal(vm?.name, 'DC0_H0_VM0');
  t.equal(vm?.instanceUuid, 'b4689bed-97f0-5bcd-8a4c-07477cc8f06f');
  t.equal(vm?.rawPowerState, 'poweredOn');
  t.equal(vm?.consolidationNeeded, false, 'absent consolidationNeeded means false');
  t.equal(vm?.snapshots.length, 3);
  t.equal(parseVm({ obj: ref('Folder', 'group-d1'), propSet: [] }), null, 'not a VM');
  const noSnap = parseVm({ obj: ref('VirtualMachine', 'vm-58'), propSet: { name: 'runtime.consolidationNeeded', val: vcenterTyped('xsd:boolean', 'true') } });
  t.same(noSnap?.snapshots, []);
  t.equal(noSnap?.consolidationNeeded, true);
  t.equal(noSnap?.name, 'vm-58', 'a VM without a readable name falls back to its id');
});

t.test('parseTaskInfo: states, progress, result, error', async (t) => {
  const ok = parseTaskInfo({
    attributes: { 'XMLSchema-instance:type': 'TaskInfo' },
    key: 'task-70',
    state: 'success',
    cancelable: false,
    result: { attributes: { 'XMLSchema-instance:type': 'ManagedObjectReference', type: 'VirtualMachineSnapshot' }, $value: 'snapshot-71' },
  });
  t.equal(ok.state, 'success');
  t.same(ok.result, { type: 'VirtualMachineSnapshot', value: 'snapshot-71' });
  t.equal(ok.progress, null);
  const running = parseTaskInfo({ state: 'running', progress: 42, cancelable: true });
  t.equal(running.progress, 42);
  t.equal(running.cancelable, true);
  t.equal(parseTaskInfo({ state: 'running', progress: '140' }).progress, 100, 'clamped to 0..100');
  const failed = parseTaskInfo({ state: 'error', error: { fault: { attributes: { 'xsi:type': 'InvalidState' } }, localizedMessage: 'no' } });
  t.equal(failed.state, 'error');
  t.ok(failed.error, 'the LocalizedMethodFault is kept for faults.ts');
});
