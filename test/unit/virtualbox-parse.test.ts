/** Parser tests on the verbatim samples of the reference (fixtures listed in test/fixtures/virtualbox/README.md). */
import t from 'tap';
import { descriptionWithMarker, splitMarker } from '../../providers/shared/description-marker.ts';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  hasErrorLine,
  lastProgressPercent,
  parseListVms,
  parseSnapshotList,
  parseTakenUuid,
  parseVboxError,
  parseVmInfo,
  powerStateOf,
  vboxTimeToIso,
} from '../../providers/virtualbox/parse.ts';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'virtualbox');
const fixture = (name: string) => readFileSync(join(dir, name), 'utf8');

t.test('Packer tree (§4.1): paths, parents, duplicate names, current', async (t) => {
  const snaps = parseSnapshotList(fixture('list-packer-tree.txt'));
  t.equal(snaps.length, 11);
  const byUuid = new Map(snaps.map((s) => [s.uuid, s]));
  const root = snaps[0];
  t.equal(root?.name, 'Imported');
  t.equal(root?.parentUuid, null);
  t.equal(byUuid.get('eb342b39-b4bd-47b0-afd8-dcd1cc5c5929')?.parentUuid, '8e12833b-c6b5-4cbd-b42b-09eff8ffc173', '-1-1-1 under -1-1');
  t.equal(byUuid.get('17df1668-e79a-4ed6-a86b-713913699846')?.parentUuid, '8e12833b-c6b5-4cbd-b42b-09eff8ffc173', '-1-1-2 under -1-1');
  t.equal(byUuid.get('a5903505-9261-4bd3-9972-bacd0064d667')?.parentUuid, '0d977a1f-c9ef-412c-a08d-7c0707b3b18f', '-3-2 under -3');
  t.same(snaps.filter((s) => s.name === 'Snapshot 2').map((s) => s.uuid), ['8e12833b-c6b5-4cbd-b42b-09eff8ffc173', '7b093686-2981-4ada-8b0f-4c03ae23cd1a'], 'duplicate names kept apart by UUID');
  t.same(snaps.filter((s) => s.current).map((s) => s.uuid), ['c857d1b8-4fd6-4044-9d2c-c6e465b3cdd4'], 'one current, Snapshot-Export');
  t.equal(byUuid.get('85646c6a-fb86-4112-b15e-cab090670778')?.parentUuid, '7e5b4165-91ec-4091-a74c-a5709d584530', 'node after the Current* lines still parsed (-2)');
});

t.test('single snapshot, VBox 5.1 (§4.1)', async (t) => {
  t.same(parseSnapshotList(fixture('list-single-5.1.txt')), [
    { uuid: 'c3dee892-28f7-475a-ba8a-bac2b98cfac8', name: 'Istantanea 1', description: '', parentUuid: null, current: true, path: '' },
  ]);
});

t.test('constructed chain with a description (§10.1)', async (t) => {
  const snaps = parseSnapshotList(fixture('list-constructed-chain.txt'));
  t.same(snaps.map((s) => [s.name, s.description, s.current]), [['base', '', false], ['s1', 'after apt upgrade', false], ['s2', '', true]]);
  t.equal(snaps[2]?.parentUuid, snaps[1]?.uuid);
});

t.test('no snapshots (§2.5) → []', async (t) => {
  t.same(parseSnapshotList(fixture('list-no-snapshots.txt')), []);
  t.same(parseSnapshotList('This machine does not have any snapshots\r\n'), []);
});

t.test('multi-line raw descriptions, quotes, -10 child prefix, CRLF', async (t) => {
  const children = Array.from({ length: 10 }, (_, i) => `SnapshotName-${i + 1}="c${i + 1}"\nSnapshotUUID-${i + 1}="00000000-0000-4000-8000-0000000000${String(i + 1).padStart(2, '0')}"\n`).join('');
  const text =
    'SnapshotName="root "q" \\ x"\nSnapshotUUID="11111111-1111-4111-8111-111111111111"\n' +
    'SnapshotDescription="line one\nname2=value2\nends with quote "x"\n\nsnapvisor:job-1"\n' +
    children +
    'SnapshotName-10-1="deep"\nSnapshotUUID-10-1="22222222-2222-4222-8222-222222222222"\n' +
    'CurrentSnapshotName="deep"\nCurrentSnapshotUUID="22222222-2222-4222-8222-222222222222"\nCurrentSnapshotNode="SnapshotName-10-1"\n';
  for (const variant of [text, text.replace(/\n/g, '\r\n')]) {
    const snaps = parseSnapshotList(variant);
    t.equal(snaps.length, 12);
    t.equal(snaps[0]?.name, 'root "q" \\ x', 'raw value, no unescaping');
    t.equal(snaps[0]?.description, 'line one\nname2=value2\nends with quote "x"\n\nsnapvisor:job-1');
    const tenth = snaps.find((s) => s.name === 'c10');
    t.equal(tenth?.parentUuid, '11111111-1111-4111-8111-111111111111', '-10 is a child of the root (not -1)');
    const deep = snaps.find((s) => s.name === 'deep');
    t.equal(deep?.parentUuid, tenth?.uuid, '-10-1 under -10');
    t.equal(deep?.current, true);
  }
});

t.test('showvminfo 7.0 Linux excerpt (§5.2): garbage lines, multi-line description', async (t) => {
  const info = parseVmInfo(fixture('showvminfo-7.0-linux.txt'));
  t.equal(info.name, 'manjaro-gnome-x64-full-clean');
  t.equal(info.uuid, '19e117b3-06f4-4a1e-851d-47336ad6a142');
  t.equal(info.vmState, 'poweroff');
  t.equal(info.vmStateChangeTime, '2023-02-06T02:18:47.191Z');
  t.same(info.storage, { 'SATA-0-0': '/home/user/VirtualBox VMs/manjaro-gnome-x64-full-clean/manjaro-gnome-x64-full-clean-disk001.vdi' });
  t.equal(info.values.description, 'name1=value1\nname2=value2', 'description spans two lines, name2= not read as a key');
  t.notOk('name2' in info.values);
  t.equal(info.values.GuestMemoryBalloon, '0');
  t.notOk(Object.keys(info.values).some((k) => k.includes('Encryption') || k.includes('rec_screen0')), 'garbage lines skipped');
});

t.test('showvminfo 6.x Windows excerpt (§5.2) with CRLF: escaped CfgFile, raw storage paths', async (t) => {
  const text = fixture('showvminfo-6.x-windows-crlf.txt');
  t.ok(text.includes('\r\n'), 'fixture has CRLF');
  const info = parseVmInfo(text);
  t.equal(info.name, 'Xubuntu 22.04');
  t.equal(info.uuid, '7e261a39-d356-4eb1-a8ed-75675b149241');
  t.equal(info.vmState, 'running');
  t.equal(info.vmStateChangeTime, '2026-09-10T00:14:37.409Z');
  t.equal(info.values.CfgFile, 'C:\\Users\\kouzm\\VirtualBox VMs\\Xubuntu 22.04\\Xubuntu 22.04.vbox', 'escaped backslashes undone');
  t.same(info.storage, {
    'IDE-1-0': 'C:\\Program Files\\Oracle\\VirtualBox\\VBoxGuestAdditions.iso',
    'SATA-0-0': 'C:\\Virtual Machines\\xubuntu22.04-3.vdi',
  }, 'raw 6.x storage paths kept; ImageUUID/tempeject/none left out');
  t.equal(info.values.GuestAdditionsVersion, '6.0.0 r127566');
});

t.test('list vms (§6), CRLF', async (t) => {
  t.same(parseListVms(fixture('list-vms-windows-crlf.txt')), [
    { name: 'Alpine39', uuid: '143fc8d2-8e84-4778-a58e-ae4ad83c41cc' },
    { name: 'Xubuntu 22.04', uuid: '7e261a39-d356-4eb1-a8ed-75675b149241' },
  ]);
  t.same(parseListVms('"a "quoted" name" {143fc8d2-8e84-4778-a58e-ae4ad83c41cc}\n'), [{ name: 'a "quoted" name', uuid: '143fc8d2-8e84-4778-a58e-ae4ad83c41cc' }]);
  t.same(parseListVms(''), []);
});

t.test('error blocks (§1.3, §3, §1.4)', async (t) => {
  t.same(parseVboxError(fixture('error-snapshot-not-found.txt')), {
    message: "Could not find a snapshot named 'snapshot1'",
    messages: ["Could not find a snapshot named 'snapshot1'"],
    code: 'VBOX_E_OBJECT_NOT_FOUND',
    hresult: '0x80bb0001',
    component: 'SessionMachine',
    iface: 'IMachine',
  });
  const uuid = parseVboxError(fixture('error-vm-uuid-not-found.txt'));
  t.equal(uuid?.message, 'Could not find a registered machine with UUID {99c6a563-deea-4673-81e3-860a818a6d72}');
  t.equal(uuid?.component, 'VirtualBoxWrap');
  const take = parseVboxError(fixture('error-take-progress-failure.txt'));
  t.equal(take?.message, 'Failed to take snapshot');
  t.equal(take?.messages.length, 3, 'summary + two cause lines');
  t.equal(take?.code, 'NS_ERROR_FAILURE');
  t.equal(take?.iface, 'IMedium', 'Details line without callee (older build)');
  const win = parseVboxError(fixture('error-progress-windows-crlf.txt'));
  t.equal(win?.message, 'Snapshot operation failed', 'VBoxManage.exe prefix and CRLF');
  t.equal(win?.code, 'E_FAIL', 'old `Code E_FAIL (…)` line');
  t.equal(parseVboxError(fixture('error-online-merge-4.2.txt'))?.messages[1], 'Failed to perform an online medium merge (VERR_INVALID_PARAMETER)');
  t.equal(parseVboxError(fixture('error-restore-running.txt'))?.code, 'VBOX_E_INVALID_VM_STATE');
  t.equal(parseVboxError(fixture('error-delete-two-children.txt'))?.code, 'VBOX_E_INVALID_OBJECT_STATE');
  const notRunning = parseVboxError(fixture('error-controlvm-not-running.txt'));
  t.equal(notRunning?.message, "Machine 'web01' is not currently running.");
  t.equal(notRunning?.code, undefined, 'single line, no Details');
  t.equal(parseVboxError('0%...10%...100%\n'), null, 'progress only');
});

t.test('exit-0-with-error quirk (§1.2): an error line is detected whatever the exit code', async (t) => {
  t.ok(hasErrorLine(fixture('error-snapshot-not-found.txt')));
  t.ok(hasErrorLine(fixture('error-progress-windows-crlf.txt')));
  t.notOk(hasErrorLine('0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n'));
});

t.test('take output and progress', async (t) => {
  t.equal(parseTakenUuid('Snapshot taken. UUID: 31863d6f-8d58-4d58-aa2e-01aed147602c\n'), '31863d6f-8d58-4d58-aa2e-01aed147602c');
  t.equal(parseTakenUuid('Snapshot taken. UUID: 727b376b-edaf-4a85-8f75-0e5604004a37\r\n'), '727b376b-edaf-4a85-8f75-0e5604004a37');
  t.equal(parseTakenUuid(''), null);
  t.equal(lastProgressPercent('0%...10%...20%...'), 20);
  t.equal(lastProgressPercent('90%...100%\n'), 100);
  t.equal(lastProgressPercent('0%...\nProgress state: E_FAIL'), 0);
  t.equal(lastProgressPercent('nothing'), null);
});

t.test('VMState → PowerState (§5.3)', async (t) => {
  const cases: Array<[string, string]> = [
    ['running', 'running'], ['paused', 'paused'], ['saved', 'suspended'], ['poweroff', 'off'], ['aborted', 'off'],
    ['aborted-saved', 'off'], ['teleported', 'off'], ['onlinesnapshotting', 'transitioning'], ['restoringsnapshot', 'transitioning'],
    ['deletingsnapshotlivepaused', 'transitioning'], ['stopping', 'transitioning'], ['gurumeditation', 'unknown'], ['weird', 'unknown'],
  ];
  for (const [token, expected] of cases) t.equal(powerStateOf(token), expected, token);
  t.equal(vboxTimeToIso('2023-02-06T02:18:47.191000000'), '2023-02-06T02:18:47.191Z');
  t.equal(vboxTimeToIso('garbage'), null);
});

t.test('marker in the description', async (t) => {
  const m = 'snapvisor:job-42';
  for (const d of ['', 'plain', 'two\nlines', 'ends with newline\n', 'snapvisor:looks-like-a-marker', '\n\n']) {
    t.same(splitMarker(descriptionWithMarker(d, m)), { description: d, marker: m }, JSON.stringify(d));
  }
  t.same(splitMarker('user text only'), { description: 'user text only', marker: null });
  t.same(splitMarker('snapvisor:not a marker (has spaces)'), { description: 'snapvisor:not a marker (has spaces)', marker: null });
});
