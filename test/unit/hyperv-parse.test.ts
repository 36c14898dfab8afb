import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CHECKPOINT_TYPE,
  HyperVParseError,
  OPERATIONAL_STATUS_MERGING,
  SNAPSHOT_TYPE,
  VM_STATE,
  checkpointTypeOf,
  parseJsonArray,
  parsePowerShellStderr,
  parseWindowsDate,
  powerStateOf,
  toCheckpoint,
  toDrive,
  toVhd,
  toVm,
  vmStateName,
} from '../../providers/hyperv/parse.ts';

// pwsh76-*: verbatim output of a real PowerShell 7.6.10 (capture-pwsh.sh). ref-*: samples from
// /work/shared/reference/hyperv.md, VERBATIM pastes or CONSTRUCTED by the reference, as INDEX.tsv says.
// ansible-*: verbatim test data of ansible's CLIXML parser.
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'hyperv');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const CLIXML_HEAD = '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">';
const clixml = (body: string): string => `${CLIXML_HEAD}${body}</Objs>`;

/** The error a parser throws, so a test can check its class and the field it names. */
function caught(fn: () => unknown): HyperVParseError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HyperVParseError) return error;
    throw error;
  }
  throw new Error('expected a HyperVParseError, nothing was thrown');
}

t.test('fixture index: every file listed exists, with its origin and exit code', async (t) => {
  const rows = fixture('INDEX.tsv').trimEnd().split('\n').slice(1).map((l) => l.split('\t'));
  const byFile = new Map(rows.map((r) => [r[0], r]));
  for (const [file] of rows) t.ok(file && fixture(file).length >= 0, `${file} exists`);
  t.match(byFile.get('ref-5.1-checkpoints-ps51.json')?.[3], /^CONSTRUCTED/);
  t.match(byFile.get('ref-2.2-get-vmcheckpoint-notfound.txt')?.[3], /^VERBATIM/);
  t.equal(byFile.get('pwsh76-throw.stderr')?.[1], '1');
  t.equal(byFile.get('pwsh76-two-errors.stderr')?.[1], '0', 'non-terminating errors then success: exit 0 (§1.2)');
  t.equal(fixture('pwsh76-version.txt').trim(), '7.6.10');
});

// ---------------------------------------------------------------------------------------------
// enums

t.test('VM_STATE / vmStateName / powerStateOf', async (t) => {
  t.equal(VM_STATE[2], 'Running');
  t.equal(VM_STATE[32773], 'Saving');
  t.equal(VM_STATE[32796], 'FastSavingCritical');
  t.equal(vmStateName(9), 'Paused');
  t.equal(vmStateName(5), 'State(5)', 'unknown number');
  t.equal(vmStateName(40000), 'State(40000)');
  const expected: [number, string][] = [
    [2, 'running'], [32785, 'running'],
    [3, 'off'], [32786, 'off'],
    [9, 'paused'],
    [6, 'suspended'], [32779, 'suspended'], [32783, 'suspended'],
    [4, 'transitioning'], [10, 'transitioning'], [11, 'transitioning'], [32773, 'transitioning'],
    [32776, 'transitioning'], [32777, 'transitioning'], [32780, 'transitioning'], [32787, 'transitioning'],
    [1, 'unknown'], [32784, 'unknown'], [5, 'unknown'], [0, 'unknown'], [-1, 'unknown'],
  ];
  for (const [n, p] of expected) t.equal(powerStateOf(n), p, `${n} → ${p}`);
});

t.test('CHECKPOINT_TYPE / SNAPSHOT_TYPE / checkpointTypeOf', async (t) => {
  t.same(CHECKPOINT_TYPE, { 2: 'Disabled', 3: 'Production', 4: 'ProductionOnly', 5: 'Standard' });
  t.equal(SNAPSHOT_TYPE[0], 'Standard');
  t.equal(SNAPSHOT_TYPE[1], 'Recovery');
  t.equal(SNAPSHOT_TYPE[8], 'SyncedReplica');
  t.equal(OPERATIONAL_STATUS_MERGING, 32772);
  t.equal(checkpointTypeOf(3), 'Production');
  t.equal(checkpointTypeOf('ProductionOnly'), 'ProductionOnly');
  t.equal(checkpointTypeOf('standard'), 'Standard', 'names ignore case');
  t.equal(checkpointTypeOf({ value: 2, Value: 'Disabled' }), 'Disabled', '5.1 PSObject wrapper');
  // The wrapper is read by its number even when the name half disagrees (ScubaGear's "Unknown").
  t.equal(checkpointTypeOf(JSON.parse('{"value":5,"Value":"Unknown"}')), 'Standard');
  for (const bad of [1, 6, 'Sometimes', null, undefined, true, 3.5, {}, [3]]) {
    const e = caught(() => checkpointTypeOf(bad));
    t.equal(e.field, 'CheckpointType', `${JSON.stringify(bad)} refused`);
    t.match(e.message, /CheckpointType/);
  }
});

// ---------------------------------------------------------------------------------------------
// dates

t.test('parseWindowsDate: 5.1 \\/Date(ms)\\/ forms', async (t) => {
  t.equal(parseWindowsDate('/Date(1714550400000)/'), '2024-05-01T08:00:00.000Z', 'as JSON.parse leaves it');
  t.equal(parseWindowsDate('\\/Date(1714550400000)\\/'), '2024-05-01T08:00:00.000Z', 'raw JSON text form');
  t.equal(parseWindowsDate(JSON.parse('"\\/Date(1714550400123)\\/"')), '2024-05-01T08:00:00.123Z');
  t.equal(parseWindowsDate('/Date(1714550400000+0200)/'), '2024-05-01T08:00:00.000Z', 'offset suffix does not move the instant');
  t.equal(parseWindowsDate('/Date(1714550400000-0530)/'), '2024-05-01T08:00:00.000Z');
  t.equal(parseWindowsDate('/Date(-62135596800000)/'), '0001-01-01T00:00:00.000Z', 'DateTime.MinValue (negative ms)');
  t.equal(parseWindowsDate('/Date(-1000)/'), '1969-12-31T23:59:59.000Z');
  t.equal(parseWindowsDate('/Date(0)/'), '1970-01-01T00:00:00.000Z');
  t.equal(parseWindowsDate('/Date(253402300799999)/'), '9999-12-31T23:59:59.999Z', 'DateTime.MaxValue');
  // 5.1 piping a bare DateTime (§4.1): the value member carries the instant, DateTime is display text.
  t.equal(
    parseWindowsDate({ value: '/Date(1720919582928)/', DisplayHint: 2, DateTime: 'Sunday 14 July 2024 02:13:02' }),
    '2024-07-14T01:13:02.928Z',
  );
});

t.test('parseWindowsDate: PS7 ISO 8601 forms (real captures and 7-digit fractions)', async (t) => {
  const [dates] = parseJsonArray(fixture('pwsh76-json-dates.json')) as [Record<string, string>];
  t.equal(parseWindowsDate(dates.Utc), '2024-05-01T08:00:00.000Z', 'Kind=Utc: Z');
  t.equal(parseWindowsDate(dates.Offset), '2024-05-01T08:00:00.000Z', 'DateTimeOffset +02:00');
  t.equal(dates.Unspecified, '2024-05-01T08:00:00', 'pwsh writes Kind=Unspecified without offset');
  t.equal(parseWindowsDate(dates.Unspecified), '2024-05-01T08:00:00.000Z', 'no offset: read as UTC, not the local zone');
  t.equal(parseWindowsDate(dates.Min), '0001-01-01T00:00:00.000Z', 'DateTime.MinValue, year 1 (not 1901)');
  t.equal(parseWindowsDate(JSON.parse(fixture('pwsh76-json-bare-date.json'))), '2024-05-01T08:00:00.000Z');
  t.equal(parseWindowsDate('2021-08-05T16:13:05.6394416-07:00'), '2021-08-05T23:13:05.639Z', 'doc example: 7 digits truncated to ms');
  t.equal(parseWindowsDate('2024-05-01T10:00:00.9999999+02:00'), '2024-05-01T08:00:00.999Z', 'truncated, not rounded up');
  t.equal(parseWindowsDate('2024-05-01T10:00:00.5+02:00'), '2024-05-01T08:00:00.500Z');
  t.equal(parseWindowsDate('2024-05-01T00:30:00+05:45'), '2024-04-30T18:45:00.000Z', 'offset crossing midnight');
  t.equal(parseWindowsDate(' 2024-05-01T08:00:00Z '), '2024-05-01T08:00:00.000Z');
});

t.test('parseWindowsDate: empty and malformed', async (t) => {
  t.equal(parseWindowsDate(null), null);
  t.equal(parseWindowsDate(''), null);
  for (const bad of [
    undefined, 1714550400000, true, {}, [], 'yesterday', '/Date()/', '/Date(abc)/', '/Date(1714550400000)',
    '2024-05-01', '2024-13-01T00:00:00Z', '2024-02-30T00:00:00Z', '2024-05-01T24:00:00Z', '2024-05-01T08:00:00+15:00',
    '2024-05-01T08:00:00.12345678Z', '/Date(253402300800000)/', '/Date(-62135596800001)/',
    { DateTime: 'Sunday 14 July 2024 02:13:02' },
  ]) {
    const e = caught(() => parseWindowsDate(bad));
    t.ok(e instanceof HyperVParseError, `${JSON.stringify(bad)} refused`);
  }
});

// ---------------------------------------------------------------------------------------------
// collections

t.test('parseJsonArray: array, single object, empty, BOM', async (t) => {
  t.equal(parseJsonArray(fixture('ref-5.1-checkpoints-ps51.json')).length, 3, '5.1 array, 4-space indent');
  const one = parseJsonArray(fixture('ref-5.2-get-vm-ps51.json'));
  t.equal(one.length, 1, 'a bare object becomes one element');
  t.equal((one[0] as { Name: string }).Name, 'web01');
  t.equal(parseJsonArray(fixture('pwsh76-json-checkpoint.json')).length, 1, 'PS7 piped single object, 2-space indent');
  t.equal(parseJsonArray(fixture('pwsh76-json-asarray.json')).length, 1, '-AsArray');
  t.same(parseJsonArray(fixture('pwsh76-json-empty-inputobject.json')), [], 'ConvertTo-Json -InputObject @() prints []');
  t.equal(fixture('pwsh76-json-empty-pipeline.json'), '', '@() | ConvertTo-Json prints nothing');
  t.same(parseJsonArray(fixture('pwsh76-json-empty-pipeline.json')), []);
  t.same(parseJsonArray('null'), []);
  t.same(parseJsonArray(' \r\n '), []);
  t.same(parseJsonArray('\uFEFF[{"a":1}]\r\n'), [{ a: 1 }], 'BOM and CRLF');
  t.same(parseJsonArray('\uFEFF{"a":1}'), [{ a: 1 }]);
  for (const bad of ['[{"a":1}', 'WARNING: something', '{"a":1} trailing']) {
    const e = caught(() => parseJsonArray(bad));
    t.equal(e.field, 'json', `${bad} refused`);
  }
});

// ---------------------------------------------------------------------------------------------
// objects

t.test('toCheckpoint: the §5.1 3-checkpoint chain (5.1, CONSTRUCTED)', async (t) => {
  const cps = parseJsonArray(fixture('ref-5.1-checkpoints-ps51.json')).map(toCheckpoint);
  t.same(cps.map((c) => c.name), ['base-install', 'before-patch', 'after-patch']);
  t.same(cps.map((c) => c.parentId), [null, '5b7f0c2e-3a41-4f7b-9c1d-0e2a6f8b1c01', '9d2c4e6a-1b3f-4a5c-8e7d-6f1a2b3c4d02']);
  t.same(cps.map((c) => c.hasMemory), [false, true, true], 'State 3 = no memory, 6 = Saved');
  t.same(cps.map((c) => c.createdAt), ['2024-05-01T08:00:00.000Z', '2024-05-02T08:00:00.000Z', '2024-05-03T08:00:00.000Z']);
  t.same(cps[1], {
    id: '9d2c4e6a-1b3f-4a5c-8e7d-6f1a2b3c4d02',
    name: 'before-patch',
    vmId: '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10',
    vmName: 'web01',
    parentId: '5b7f0c2e-3a41-4f7b-9c1d-0e2a6f8b1c01',
    snapshotType: 0,
    state: 6,
    hasMemory: true,
    createdAt: '2024-05-02T08:00:00.000Z',
    notes: '',
    automatic: false,
  });
});

t.test('toCheckpoint: real PS7 form (ISO with 7 digits, [guid] upper case in, Notes null)', async (t) => {
  const [c] = parseJsonArray(fixture('pwsh76-json-checkpoint.json')).map(toCheckpoint);
  t.equal(c?.createdAt, '2024-05-01T10:00:00.123Z', '"2024-05-01T10:00:00.1234567+00:00"');
  t.equal(c?.vmId, '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10', 'pwsh prints a [guid] lower case');
  t.equal(c?.notes, '');
  t.equal(c?.parentId, null);
});

t.test('toCheckpoint: GUID casing, braces, wrappers, enum names and wrappers', async (t) => {
  const bareGuid = JSON.parse(fixture('pwsh76-json-bare-guid.json'));
  const c = toCheckpoint({
    Id: '{C4E8A1F2-7D6B-4C3A-9B2E-1F0D9C8B7A03}',
    Name: 'after-patch',
    VMId: bareGuid,
    VMName: 'web01',
    ParentSnapshotId: { Guid: '9D2C4E6A-1B3F-4A5C-8E7D-6F1A2B3C4D02' },
    SnapshotType: { value: 1, Value: 'Recovery' },
    State: 'Saved',
    CreationTime: '2024-05-03T10:00:00.0000000+02:00',
    Notes: 'before the patch\r\nsecond line',
    IsAutomaticCheckpoint: true,
  });
  t.equal(c.id, 'c4e8a1f2-7d6b-4c3a-9b2e-1f0d9c8b7a03');
  t.equal(c.vmId, '5b7f0c2e-3a41-4f7b-9c1d-0e2a6f8b1c01', '{value, Guid} wrapper of a piped [guid]');
  t.equal(c.parentId, '9d2c4e6a-1b3f-4a5c-8e7d-6f1a2b3c4d02');
  t.equal(c.snapshotType, 1);
  t.equal(c.state, 6);
  t.equal(c.hasMemory, true);
  t.equal(c.createdAt, '2024-05-03T08:00:00.000Z');
  t.equal(c.notes, 'before the patch\r\nsecond line', 'notes kept as written');
  t.equal(c.automatic, true);
  const unknown = toCheckpoint({ Id: '5b7f0c2e-3a41-4f7b-9c1d-0e2a6f8b1c01', Name: 'x', VMId: '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10', VMName: 'w', SnapshotType: 42, State: 3, CreationTime: null });
  t.equal(unknown.snapshotType, 42, 'an unknown enum number is kept');
  t.equal(unknown.createdAt, null);
  t.equal(unknown.automatic, false, 'IsAutomaticCheckpoint absent (older hosts)');
  t.equal(unknown.parentId, null, 'ParentSnapshotId absent');
});

t.test('toCheckpoint: malformed input names the field', async (t) => {
  const good = JSON.parse(fixture('ref-5.1-checkpoints-ps51.json'))[1] as Record<string, unknown>;
  const cases: [string, unknown][] = [
    ['Id', 'not-a-guid'],
    ['Id', undefined],
    ['Id', '9d2c4e6a1b3f4a5c8e7d6f1a2b3c4d02'],
    ['VMId', 42],
    ['Name', null],
    ['VMName', undefined],
    ['ParentSnapshotId', 'base-install'],
    ['SnapshotType', 'Production'],
    ['SnapshotType', 1.5],
    ['State', 'Sleeping'],
    ['State', null],
    ['CreationTime', 'May 1st'],
    ['CreationTime', undefined],
    ['Notes', 7],
    ['IsAutomaticCheckpoint', 'false'],
  ];
  for (const [field, value] of cases) {
    const o = { ...good };
    if (value === undefined) delete o[field];
    else o[field] = value;
    const e = caught(() => toCheckpoint(o));
    t.equal(e.field, field, `${field} = ${JSON.stringify(value)}`);
    t.match(e.message, new RegExp(`\\b${field}\\b`));
  }
  t.equal(caught(() => toCheckpoint([good])).field, 'object', 'an array is not a checkpoint');
  t.equal(caught(() => toCheckpoint(null)).field, 'object');
});

t.test('toVm: §5.2 Get-VM (5.1, CONSTRUCTED)', async (t) => {
  const [vm] = parseJsonArray(fixture('ref-5.2-get-vm-ps51.json')).map(toVm);
  t.same(vm, {
    id: '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10',
    name: 'web01',
    state: 2,
    stateName: 'Running',
    powerState: 'running',
    status: 'Operating normally',
    operationalStatus: [2],
    merging: false,
    checkpointType: 'Standard',
    parentSnapshotId: 'c4e8a1f2-7d6b-4c3a-9b2e-1f0d9c8b7a03',
    notes: '',
  });
});

t.test('toVm: merging, single OperationalStatus, wrappers, unknown state, optional fields', async (t) => {
  const base = { Name: 'web01', Id: '0F6A1D3C-8B52-4E6F-A1C9-2D7E4B9F3A10' };
  const merging = toVm({ ...base, State: 3, Status: 'Merging disks', OperationalStatus: [2, 32772], CheckpointType: { value: 3, Value: 'Production' } });
  t.equal(merging.id, '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10', 'upper-case GUID lowered');
  t.equal(merging.merging, true);
  t.same(merging.operationalStatus, [2, 32772]);
  t.equal(merging.checkpointType, 'Production');
  t.equal(merging.powerState, 'off');
  t.equal(toVm({ ...base, State: 2, Status: 'Operating normally', OperationalStatus: 32772 }).merging, true, 'single number, not an array');
  t.same(toVm({ ...base, State: 2, OperationalStatus: 2 }).operationalStatus, [2]);
  t.equal(toVm({ ...base, State: 2, Status: 'merging DISKS (42%)', OperationalStatus: [2] }).merging, true, 'Status prefix, any case');
  t.equal(toVm({ ...base, State: 2, Status: 'Operating normally', OperationalStatus: [2, 32770] }).merging, false, 'deleting snapshot is not merging');
  t.equal(toVm({ ...base, State: 2, Status: 'Not merging disks', OperationalStatus: [{ value: 2, Value: 'Ok' }] }).merging, false, 'prefix only');
  t.same(toVm({ ...base, State: 2, OperationalStatus: ['Ok', 'MergingDisks'] }).operationalStatus, [2, 32772], '-EnumsAsStrings names');

  const wrapped = toVm({ ...base, Id: { value: '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10' }, State: { value: 9, Value: 'Paused' }, Notes: null, ParentSnapshotId: null });
  t.equal(wrapped.id, '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10');
  t.equal(wrapped.state, 9);
  t.equal(wrapped.powerState, 'paused');
  t.equal(wrapped.notes, '');
  t.equal(wrapped.status, null);
  t.same(wrapped.operationalStatus, []);
  t.equal(wrapped.checkpointType, null);
  t.equal(wrapped.parentSnapshotId, null);

  const odd = toVm({ ...base, State: 32999, Notes: 'n' });
  t.equal(odd.stateName, 'State(32999)');
  t.equal(odd.powerState, 'unknown');
  t.equal(odd.notes, 'n');
  t.equal(toVm({ ...base, State: 'FastSaved' }).powerState, 'suspended', 'state by name');
  t.equal(toVm({ ...base, State: '6' }).state, 6, 'numeric string');
  t.equal(toVm({ name: 'web01', id: base.Id, state: 2 }).name, 'web01', 'property names are case-insensitive');
});

t.test('toVm: malformed input names the field', async (t) => {
  const good: Record<string, unknown> = { Name: 'web01', Id: '0f6a1d3c-8b52-4e6f-a1c9-2d7e4b9f3a10', State: 2, Status: 'Operating normally', OperationalStatus: [2], CheckpointType: 5, ParentSnapshotId: null, Notes: '' };
  const cases: [string, unknown][] = [
    ['Name', undefined],
    ['Name', 5],
    ['Id', 'web01'],
    ['Id', { Guid: 'nope' }],
    ['State', undefined],
    ['State', true],
    ['State', { value: { value: 2 } }],
    ['Status', 2],
    ['OperationalStatus', ['2x']],
    ['OperationalStatus', [null]],
    ['CheckpointType', 9],
    ['ParentSnapshotId', 42],
    ['Notes', ['a']],
  ];
  for (const [field, value] of cases) {
    const o = { ...good };
    if (value === undefined) delete o[field];
    else o[field] = value;
    t.equal(caught(() => toVm(o)).field, field, `${field} = ${JSON.stringify(value)}`);
  }
  t.equal(caught(() => toVm('web01')).field, 'object');
  const { Name: _drop, ...noName } = good;
  t.equal(toVm({ ...noName, name: 'a' }).name, 'a');
  const ambiguous = caught(() => toVm({ ...noName, name: 'a', NAME: 'b' }));
  t.equal(ambiguous.field, 'Name', 'two keys differing in case are not guessed between');
});

t.test('toVhd and toDrive', async (t) => {
  const [plain] = parseJsonArray(fixture('pwsh76-json-asarray.json')).map(toVhd);
  t.same(plain, { path: 'C:\\VMs\\web01.vhdx', vhdType: 3, differencing: false, parentPath: null });
  const diff = toVhd({ Path: 'C:\\AutoLab\\VMVirtualHardDisks\\Win10Ent_DACADEC3-36AF-4972-91E1-900A9235D71F.avhdx', VhdType: { value: 4, Value: 'Differencing' }, ParentPath: 'C:\\AutoLab\\VMVirtualHardDisks\\Win10Ent.vhdx' });
  t.equal(diff.differencing, true);
  t.equal(diff.vhdType, 4);
  t.equal(diff.parentPath, 'C:\\AutoLab\\VMVirtualHardDisks\\Win10Ent.vhdx');
  t.equal(toVhd({ Path: 'a.vhdx', VhdType: 'Fixed', ParentPath: '' }).parentPath, null, "'' parent → null");
  t.equal(toVhd({ Path: 'a.vhdx', VhdType: 'Fixed' }).vhdType, 2);
  t.equal(caught(() => toVhd({ Path: 'a.vhdx', VhdType: 'Sparse' })).field, 'VhdType');
  t.equal(caught(() => toVhd({ VhdType: 3 })).field, 'Path');
  t.equal(caught(() => toVhd({ Path: 'a', VhdType: 3, ParentPath: false })).field, 'ParentPath');

  t.same(toDrive({ Path: 'C:\\VMs\\web01.avhdx', ControllerType: 1, ControllerNumber: 0, ControllerLocation: 2 }), {
    path: 'C:\\VMs\\web01.avhdx', controllerType: 1, controllerNumber: 0, controllerLocation: 2,
  });
  t.equal(toDrive({ Path: 'x', ControllerType: 'IDE', ControllerNumber: 1, ControllerLocation: 0 }).controllerType, 0);
  t.equal(toDrive({ Path: 'x', ControllerType: { value: 2, Value: 'PMEM' }, ControllerNumber: 1, ControllerLocation: 0 }).controllerType, 2);
  t.equal(caught(() => toDrive({ Path: 'x', ControllerType: 1, ControllerNumber: '0', ControllerLocation: 0 })).field, 'ControllerNumber');
  t.equal(caught(() => toDrive({ Path: 'x', ControllerType: 1, ControllerNumber: 0 })).field, 'ControllerLocation');
  t.equal(caught(() => toDrive({ Path: 'x', ControllerType: 'NVMe', ControllerNumber: 0, ControllerLocation: 0 })).field, 'ControllerType');
  t.equal(caught(() => toDrive({ Path: null, ControllerType: 1, ControllerNumber: 0, ControllerLocation: 0 })).field, 'Path');
});

// ---------------------------------------------------------------------------------------------
// stderr

const NO_ERRORS = { text: '', message: '', fullyQualifiedErrorIds: [], categories: [], warnings: [] };

t.test('stderr: plain text pastes (§2.2 multipass, §2.6 minikube, §2.4 PS-AutoLab; VERBATIM)', async (t) => {
  const mp = parsePowerShellStderr(fixture('ref-2.2-get-vmcheckpoint-notfound.txt'));
  t.equal(mp.message, 'Unable to find a snapshot matching the given criteria.');
  t.same(mp.fullyQualifiedErrorIds, ['ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot']);
  t.same(mp.categories, [{ category: 'ObjectNotFound', target: ':', activity: 'Get-VMSnapshot', reason: 'VirtualizationException' }]);
  t.equal(mp.text, fixture('ref-2.2-get-vmcheckpoint-notfound.txt').trim(), 'plain text kept, trimmed');
  t.same(mp.warnings, []);

  const mk = parsePowerShellStderr(fixture('ref-2.6-get-vm-minikube.txt'));
  t.equal(mk.message, 'Hyper-V was unable to find a virtual machine with name "minikube".', 'module-qualified Hyper-V\\Get-VM prefix removed');
  t.same(mk.fullyQualifiedErrorIds, ['InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM']);
  t.same(mk.categories, [{ category: 'InvalidArgument', target: 'minikube:String', activity: 'Get-VM', reason: 'VirtualizationException' }]);

  const al = parsePowerShellStderr(fixture('ref-2.4-remove-vmsnapshot-autolab.txt'));
  t.equal(al.message, "'Win10Ent' failed to remove checkpoint.", 'first line of a multi-line Hyper-V message');
  t.match(al.text, /\nCannot delete checkpoint: The system cannot find the file specified\. \(0x80070002\)\.\n/, 'later lines kept; "checkpoint:" not taken for a prefix');
  t.same(al.fullyQualifiedErrorIds, []);
});

t.test('stderr: plain text with CRLF and ANSI colours', async (t) => {
  const r = parsePowerShellStderr('\r\n\x1b[31;1mGet-VM: \x1b[31;1mHyper-V was unable to find a virtual machine with name "web02".\x1b[0m\r\n\x1b]8;;https://x\x07link\x1b]8;;\x07\r\n');
  t.equal(r.text, 'Get-VM: Hyper-V was unable to find a virtual machine with name "web02".\nlink');
  t.equal(r.message, 'Hyper-V was unable to find a virtual machine with name "web02".');
  t.same(parsePowerShellStderr(''), NO_ERRORS);
  t.same(parsePowerShellStderr(' \r\n'), NO_ERRORS);
  t.equal(parsePowerShellStderr('Error: boom').message, 'Error: boom', 'a word without a hyphen is not a command prefix');
});

t.test('stderr: §5.3 CLIXML (5.1, CONSTRUCTED): _x000D__x000A_ decoded, CategoryInfo and FQID found', async (t) => {
  const r = parsePowerShellStderr(fixture('ref-5.3-restore-notfound.clixml'));
  t.equal(r.message, 'Unable to find a snapshot matching the given criteria.');
  t.same(r.fullyQualifiedErrorIds, ['ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RestoreVMSnapshot']);
  t.same(r.categories, [{ category: 'ObjectNotFound', target: ':', activity: 'Restore-VMSnapshot', reason: 'VirtualizationException' }]);
  t.equal(r.text.split('\n').length, 6, 'six lines; the trailing " " line trimmed away');
  t.notMatch(r.text, /\r|_x000[DA]_|<S|&/);
  t.ok(r.text.startsWith('Restore-VMSnapshot : Unable to find a snapshot'));
  t.ok(r.text.endsWith('Commands.RestoreVMSnapshot'));
});

t.test('stderr: ansible data — progress only; a wrapped line joined; S="Info" is a warning line', async (t) => {
  t.same(parsePowerShellStderr(fixture('ansible-progress.clixml')), NO_ERRORS, 'progress record dropped');
  const r = parsePowerShellStderr(fixture('ansible-wrapped-multistream.clixml'));
  t.equal(r.message, "The term 'fake' is not recognized as the name of a cmdlet. Check the spelling of the name, or if a path was included.");
  t.ok(r.text.startsWith("fake : The term 'fake' is not recognized as the name of a cmdlet. Check the spelling of the name, or if a path was included.\nAt line:1 char:1\n"));
  t.same(r.fullyQualifiedErrorIds, ['CommandNotFoundException']);
  t.same(r.categories, [{ category: 'ObjectNotFound', target: 'fake:String', activity: '', reason: 'CommandNotFoundException' }]);
  t.same(r.warnings, ['hi info']);
  t.notMatch(r.text, /hi info/, 'other streams are not error text');
});

t.test('stderr: real pwsh 7.6 ConciseView captures (ANSI inside CLIXML, no FullyQualifiedErrorId)', async (t) => {
  const cases: [string, string, string][] = [
    ['pwsh76-throw.stderr', 'Exception: boom', 'boom'],
    ['pwsh76-write-error-id.stderr', 'Write-Error: disk merge failed', 'disk merge failed'],
    ['pwsh76-cmdlet-concise.stderr', 'Get-VMSnapshot: Unable to find a snapshot matching the given criteria.', 'Unable to find a snapshot matching the given criteria.'],
    ['pwsh76-stop-concise.stderr', "Get-Item: Cannot find path '/nonexistent/web01.avhdx' because it does not exist.", "Cannot find path '/nonexistent/web01.avhdx' because it does not exist."],
    ['pwsh76-noninteractive.stderr', 'Read-Host: PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.', 'PowerShell is in NonInteractive mode. Read and Prompt functionality is not available.'],
    ['pwsh76-throw-multiline.stderr', 'Exception: Checkpoint operation failed.\nCheckpoints have been disabled.', 'Checkpoint operation failed.'],
  ];
  for (const [file, text, message] of cases) {
    const raw = fixture(file);
    t.match(raw, /_x001B_\[31;1m/, `${file}: the capture really has ANSI escapes`);
    const r = parsePowerShellStderr(raw);
    t.equal(r.text, text, `${file} text`);
    t.equal(r.message, message, `${file} message`);
    t.same(r.fullyQualifiedErrorIds, [], `${file}: ConciseView prints no FullyQualifiedErrorId`);
    t.same(r.categories, []);
  }
  // -ErrorId was given, and still nowhere in the output.
  t.notMatch(fixture('pwsh76-write-error-id.stderr'), /HvMergeFailed|FullyQualifiedErrorId/);
});

t.test('stderr: real pwsh 7.6 ConciseView of an error in a script file (position block first)', async (t) => {
  const r = parsePowerShellStderr(fixture('pwsh76-script-file-concise.stderr'));
  t.equal(r.message, "Cannot find path '/nonexistent/web01.avhdx' because it does not exist.");
  t.match(r.text, /^Get-Item: \/tmp\/hv-capture\.ps1:2\nLine \|\n   2 \|  Get-Item/);
  t.notMatch(r.text, /\x1b/);
});

t.test('stderr: real pwsh 7.6 NormalView ($ErrorView) has CategoryInfo and FQID lines', async (t) => {
  const r = parsePowerShellStderr(fixture('pwsh76-stop-normalview.stderr'));
  t.equal(r.message, "Cannot find path '/nonexistent/web01.avhdx' because it does not exist.", '"Get-Item : " prefix removed');
  t.same(r.fullyQualifiedErrorIds, ['PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand']);
  t.same(r.categories, [{ category: 'ObjectNotFound', target: '/nonexistent/web01.avhdx:String', activity: 'Get-Item', reason: 'ItemNotFoundException' }]);
});

t.test('stderr: real pwsh 7.6 progress records, two errors, streams, unicode', async (t) => {
  const p = parsePowerShellStderr(fixture('pwsh76-progress.stderr'));
  t.match(fixture('pwsh76-progress.stderr'), /<Obj S="progress"/);
  t.equal(p.text, 'Write-Error: after progress', 'progress records dropped');
  t.notMatch(p.text, /Merging|half/);

  const two = parsePowerShellStderr(fixture('pwsh76-two-errors.stderr'));
  t.equal(two.text, 'Write-Error: first failure\nWrite-Error: second failure');
  t.equal(two.message, 'first failure');

  const s = parsePowerShellStderr(fixture('pwsh76-streams.stderr'));
  t.same(s.warnings, ['The virtual machine is already in the specified state.', 'info text', 'host text'], 'warning + information records, not verbose');
  t.equal(s.text, '');
  t.equal(s.message, '');

  const u = parsePowerShellStderr(fixture('pwsh76-unicode.stderr'));
  t.match(fixture('pwsh76-unicode.stderr'), /_xD83D__xDE00_/, 'pwsh escapes the emoji as a surrogate pair');
  t.equal(u.message, 'Grinning 😀 Größe <tag> & "q"', 'surrogate pair and XML entities decoded');
});

t.test('stderr: escapes — surrogate pairs, _x005F_, XML entities decoded once', async (t) => {
  const r = parsePowerShellStderr(clixml('<S S="Error">a _xD83D__xDE00_ b _x005F_x000A_ c &amp;lt; d_x000D__x000A_</S>'));
  t.equal(r.text, 'a 😀 b _x000A_ c &lt; d');
  t.equal(parsePowerShellStderr(clixml('<S S="Error">x_x0009_y_x000A_</S>')).text, 'x\ty');
});

t.test('stderr: wrapped pieces joined (no newline; space-newline), real line breaks kept', async (t) => {
  const r = parsePowerShellStderr(
    clixml(
      '<S S="Error">Checkpoint-VM : Checkpoint operation for \'web01\' failed. (Virtual machine ID 32CE0777-9746-44DF-</S>' +
        '<S S="Error">934F-4ACF9D002896)_x000D__x000A_</S>' +
        '<S S="Error">Checkpoints have been disabled for _x000D__x000A_</S>' +
        '<S S="Error">\'web01\'._x000D__x000A_</S>' +
        '<S S="Error"> _x000D__x000A_</S>',
    ),
  );
  t.equal(r.text, "Checkpoint-VM : Checkpoint operation for 'web01' failed. (Virtual machine ID 32CE0777-9746-44DF-934F-4ACF9D002896)\nCheckpoints have been disabled for 'web01'.");
  t.equal(r.message, "Checkpoint operation for 'web01' failed. (Virtual machine ID 32CE0777-9746-44DF-934F-4ACF9D002896)");
});

t.test('stderr: two CLIXML documents, plain text before; message from the first CLIXML error', async (t) => {
  const first = fixture('ref-5.3-restore-notfound.clixml');
  const second = fixture('pwsh76-throw.stderr');
  const r = parsePowerShellStderr(`Warning: Permanently added 'hv01' (ED25519) to the list of known hosts.\r\n${first}\r\n${second}`);
  t.equal(r.message, 'Unable to find a snapshot matching the given criteria.', 'not the ssh line');
  t.same(r.fullyQualifiedErrorIds, ['ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RestoreVMSnapshot']);
  const lines = r.text.split('\n');
  t.equal(lines[0], "Warning: Permanently added 'hv01' (ED25519) to the list of known hosts.");
  t.equal(lines.at(-1), 'Exception: boom', 'second document read too');
  t.equal(lines.length, 8);
  // Back to back with no separator at all.
  const tight = parsePowerShellStderr(second.trimEnd() + fixture('pwsh76-write-error-id.stderr'));
  t.equal(tight.text, 'Exception: boom\nWrite-Error: disk merge failed');
});

t.test('stderr: truncated or odd CLIXML never throws', async (t) => {
  const cut = fixture('ref-5.3-restore-notfound.clixml').slice(0, 300);
  const r = parsePowerShellStderr(cut);
  t.equal(r.message, 'Unable to find a snapshot matching the given criteria.', 'complete <S> elements before the cut are read');
  t.same(parsePowerShellStderr('#< CLIXML\r\n'), NO_ERRORS);
  t.same(parsePowerShellStderr('#< CLIXML\r\n<Objs Version="1.1.0.1"></Objs>'), NO_ERRORS);
  t.equal(parsePowerShellStderr(clixml('<S S="Error" /><S S="Error">e_x000A_</S>')).text, 'e', 'self-closing S');
  t.equal(parsePowerShellStderr(clixml('<S S="verbose">v</S><S S="debug">d</S>')).text, '', 'verbose/debug dropped');
  t.same(parsePowerShellStderr(clixml('<S S="verbose">v</S><S S="debug">d</S>')).warnings, []);
});
