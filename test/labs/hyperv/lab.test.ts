// The Hyper-V lab itself: real sshd, real PowerShell 7.6, the simulated Hyper-V module, driven
// exactly like the adapter drives a Windows host (powershellEncoding's command over SSH).
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeSSH } from 'node-ssh';
import { powershellEncoding, type PowerShellValue } from '../../../providers/shared/command-encoding.ts';
import { until } from '../../e2e/daemon.ts';
import { createHyperVLab, type HyperVLab } from './lab.ts';

const FIXTURE = new URL('../../fixtures/hyperv/clixml-get-vmsnapshot-not-found.pwsh76.txt', import.meta.url);
const FIXTURE_NORMAL = new URL('../../fixtures/hyperv/clixml-get-vmsnapshot-not-found.pwsh76-normalview.txt', import.meta.url);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function connect(lab: HyperVLab): Promise<NodeSSH> {
  const ssh = new NodeSSH();
  const expected = lab.ssh.hostKey.split(' ')[2] ?? '';
  await ssh.connect({
    host: lab.ssh.host,
    port: lab.ssh.port,
    username: lab.ssh.username,
    privateKey: lab.ssh.privateKey,
    hostVerifier: (key: Buffer) => key.toString('base64') === expected,
  });
  // killSessions()/cleanup() drop connections with a RST: that is expected, not an uncaught error.
  ssh.connection?.on('error', () => {});
  return ssh;
}

/** End the connection and wait until it is closed (before the lab's sshd goes away). */
async function disconnect(ssh: NodeSSH): Promise<void> {
  const connection = ssh.connection;
  if (connection === null) return;
  const closed = new Promise<void>((r) => connection.once('close', () => r()));
  ssh.dispose();
  await Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]);
}

/** The adapter's command shape: powershellEncoding for the lab's shell; raw stdout/stderr bytes. */
async function run(lab: HyperVLab, ssh: NodeSSH, script: string, params: { [key: string]: PowerShellValue } = {}): Promise<Result> {
  const { command } = powershellEncoding({ provider: 'hyperv', shell: lab.shell }).encode({ script, params }, { timeoutMs: 60_000 });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await ssh.execCommand(command, { onStdout: (b) => out.push(b), onStderr: (b) => err.push(b) });
  return { code: r.code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** The Error strings of a `#< CLIXML` blob, unescaped and joined (ansible's _parse_clixml, reference §1.3). */
function clixmlErrors(stderr: string): string {
  const parts = [...stderr.matchAll(/<S S="Error">([\s\S]*?)<\/S>/g)].map((m) => m[1] ?? '');
  return parts
    .join('')
    .replace(/_x([0-9A-F]{4})_/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/\u001b\[[0-9;]*m/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

const dir = mkdtempSync(join(tmpdir(), 'hvlab-test-'));
const lab = await createHyperVLab({
  dir,
  mergeMs: 1500,
  shutdownWaitMs: 200,
  vms: [
    { name: 'web01', checkpointType: 'Standard', notes: 'web tier' },
    { name: 'power01', checkpointType: 'Standard' },
    { name: 'prod01', checkpointType: 'Production', productionSupported: true },
    { name: 'noprod01', checkpointType: 'Production', productionSupported: false },
    { name: 'only01', checkpointType: 'ProductionOnly', productionSupported: false },
    { name: 'dis01', checkpointType: 'Disabled' },
    { name: 'merge01', checkpointType: 'Standard' },
    { name: 'conc01', checkpointType: 'Standard' },
    { name: 'names01', state: 'Off', checkpointType: 'Standard' },
    { name: 'stop01', state: 'Running', guestShutdown: false },
    { name: 'off01', state: 'Off' },
  ],
});
let ssh = await connect(lab);
t.teardown(async () => {
  await disconnect(ssh);
  await lab.cleanup();
});

t.test('the environment reaches the SSH session (SetEnv + shim) and pwsh finds the module', async (t) => {
  // Raw command through the account shell (bash here, standing in for cmd.exe): no pwsh involved.
  const raw = await ssh.execCommand('command -v powershell; printf "%s\\n" "$HYPERV_SIM_STATE" "$PSModulePath"; id -un');
  t.equal(raw.code, 0, raw.stderr);
  t.same(raw.stdout.split('\n'), [join(dir, 'bin', 'powershell'), lab.statePath, join(dir, 'module'), 'hvlab']);
  t.match(readFileSync(join(dir, 'sshd', 'sshd_config'), 'utf8'), /^SetEnv "PATH=/m);

  const r = await run(
    lab,
    ssh,
    "$c = Get-Command Get-VM; $a = Get-Command Get-VMCheckpoint\n" +
      "[ordered]@{ state = $env:HYPERV_SIM_STATE; module = $c.Module.Name; base = $c.Module.ModuleBase; alias = $a.ResolvedCommandName; version = $PSVersionTable.PSVersion.ToString(); user = [Environment]::UserName; qualified = @(Hyper-V\\Get-VM -Name web01).Count } | ConvertTo-Json",
  );
  t.equal(r.code, 0, r.stderr);
  t.same(json(r.stdout), { state: lab.statePath, module: 'Hyper-V', base: join(dir, 'module', 'Hyper-V'), alias: 'Get-VMSnapshot', version: '7.6.10', user: 'hvlab', qualified: 1 });

  const local = await lab.pwsh('[Environment]::UserName; $env:HYPERV_SIM_STATE; (Get-VM -Name web01).Name');
  t.equal(local.exitCode, 0, local.stderr);
  t.same(local.stdout.trim().split('\n'), ['hvlab', lab.statePath, 'web01']);
  t.equal(lab.vmId('web01'), lab.readState().vms[0]?.id);
  t.match(lab.vmId('web01'), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});

t.test('JSON shapes and .NET types of Get-VM / Get-VMSnapshot', async (t) => {
  const r = await run(
    lab,
    ssh,
    [
      'Checkpoint-VM -Name $Params.vm -SnapshotName first',
      'Checkpoint-VM -Name $Params.vm -SnapshotName second',
      '$vm = Get-VM -Name $Params.vm',
      '$vmJson = $vm | Select-Object Name, Id, State, Status, OperationalStatus, PrimaryOperationalStatus, SecondaryOperationalStatus, CheckpointType, ParentSnapshotId, ParentSnapshotName, Notes, Generation | ConvertTo-Json',
      // The reference's recommended projection (§4.2), -InputObject so a 1-element array stays an array.
      "$s = @(Get-VMSnapshot -VMName $Params.vm | Select-Object Name, @{n='Id';e={$_.Id.ToString()}}, VMName, @{n='VMId';e={$_.VMId.ToString()}}, @{n='ParentSnapshotId';e={if($_.ParentSnapshotId){$_.ParentSnapshotId.ToString()}}}, ParentSnapshotName, @{n='SnapshotType';e={[int]$_.SnapshotType}}, @{n='State';e={[int]$_.State}}, CreationTime, IsAutomaticCheckpoint, Path)",
      '$snapJson = ConvertTo-Json -InputObject $s -Depth 3',
      '$raw = Get-VMSnapshot -VMName $Params.vm | Select-Object -First 1 Id, ParentSnapshotId, State, SnapshotType, CreationTime | ConvertTo-Json',
      '$snap = @(Get-VMSnapshot -VMName $Params.vm)[1]',
      '$types = [ordered]@{ vm = $vm.PSObject.TypeNames[0]; id = $vm.Id.GetType().FullName; state = $vm.State.GetType().FullName; ops = $vm.OperationalStatus.GetType().FullName; cpt = $vm.CheckpointType.GetType().FullName; parent = $vm.ParentSnapshotId.GetType().FullName; snap = $snap.PSObject.TypeNames[0]; created = $snap.CreationTime.GetType().FullName; stype = $snap.SnapshotType.GetType().FullName; exc = [Microsoft.HyperV.PowerShell.VirtualizationException].BaseType.FullName; vhdType = [int][Microsoft.Vhd.PowerShell.VhdType]::Differencing }',
      '[ordered]@{ vm = $vmJson; snaps = $snapJson; raw = $raw; types = $types } | ConvertTo-Json -Depth 3',
    ].join('\n'),
    { vm: 'web01' },
  );
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const out = json<{ vm: string; snaps: string; raw: string; types: Record<string, string | number> }>(r.stdout);
  const snaps = json<Array<Record<string, unknown>>>(out.snaps);
  t.equal(snaps.length, 2);
  const [first, second] = snaps;
  const vmId = lab.vmId('web01');
  // pwsh 7 layout: 2-space indent, "key": value (reference §4.1); enums as integers; GUIDs lower-case strings.
  t.match(out.vm, /^\{\n {2}"Name": "web01",\n {2}"Id": "[0-9a-f-]{36}",\n/);
  t.same(json(out.vm), {
    Name: 'web01',
    Id: vmId,
    State: 2,
    Status: 'Operating normally',
    OperationalStatus: [2],
    PrimaryOperationalStatus: 2,
    SecondaryOperationalStatus: null,
    CheckpointType: 5,
    ParentSnapshotId: second?.Id,
    ParentSnapshotName: 'second',
    Notes: 'web tier',
    Generation: 2,
  });
  t.match(first, { Name: 'first', VMName: 'web01', VMId: vmId, ParentSnapshotId: null, ParentSnapshotName: null, SnapshotType: 0, State: 6, IsAutomaticCheckpoint: false });
  t.match(second, { Name: 'second', ParentSnapshotId: first?.Id, ParentSnapshotName: 'first', State: 6 });
  t.match(String(first?.CreationTime), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+[+-]\d\d:\d\d$/, 'PS 7 ISO 8601 with offset');
  t.ok(String(first?.CreationTime) <= String(second?.CreationTime), 'sorted by CreationTime');
  t.same(json(out.raw), { Id: first?.Id, ParentSnapshotId: null, State: 6, SnapshotType: 0, CreationTime: first?.CreationTime }, 'unprojected [guid]/[Nullable[guid]]/enum/[datetime]');
  t.same(out.types, {
    vm: 'Microsoft.HyperV.PowerShell.VirtualMachine',
    id: 'System.Guid',
    state: 'Microsoft.HyperV.PowerShell.VMState',
    ops: 'Microsoft.HyperV.PowerShell.VMOperationalStatus[]',
    cpt: 'Microsoft.HyperV.PowerShell.CheckpointType',
    parent: 'System.Guid',
    snap: 'Microsoft.HyperV.PowerShell.VMSnapshot',
    created: 'System.DateTime',
    stype: 'Microsoft.HyperV.PowerShell.SnapshotType',
    exc: 'System.Exception',
    vhdType: 4,
  });
});

/**
 * The error names the line of the whole encoded script (the encoding's preamble comes first), so a
 * recording is compared with its line numbers masked: the preamble may grow without re-recording.
 */
const atAnyLine = (stderr: string): string => stderr.replace(/(_x001B_\[36;1m) *\d+ \| /g, '$1NN | ').replace(/At line:\d+ char:/g, 'At line:NN char:');

t.test('a failing encoded command: CLIXML on stderr (verbatim fixture), exit 1, the reference FQIDs', async (t) => {
  const r = await run(lab, ssh, 'Get-VMSnapshot -VMName $Params.vm -Name $Params.name', { vm: 'web01', name: 'nope' });
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.ok(r.stderr.startsWith('#< CLIXML\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">'), r.stderr);
  // HYPERV_RECORD_FIXTURES=1 re-records the sample (e.g. after a PowerShell upgrade).
  if (process.env.HYPERV_RECORD_FIXTURES === '1') writeFileSync(FIXTURE, r.stderr);
  t.equal(atAnyLine(r.stderr), atAnyLine(readFileSync(FIXTURE, 'utf8')), 'identical to test/fixtures/hyperv/clixml-get-vmsnapshot-not-found.pwsh76.txt but for the script line it names');
  // pwsh 7's default ConciseView names neither CategoryInfo nor FullyQualifiedErrorId; Windows
  // PowerShell 5.1 prints the NormalView block (reference §2.2). The same error under NormalView:
  const normal = await run(lab, ssh, "$ErrorView = 'NormalView'\nGet-VMSnapshot -VMName $Params.vm -Name $Params.name", { vm: 'web01', name: 'nope' });
  if (process.env.HYPERV_RECORD_FIXTURES === '1') writeFileSync(FIXTURE_NORMAL, normal.stderr);
  t.equal(normal.code, 1);
  t.equal(atAnyLine(normal.stderr), atAnyLine(readFileSync(FIXTURE_NORMAL, 'utf8')));
  t.match(clixmlErrors(normal.stderr), /CategoryInfo {10}: ObjectNotFound: \(:\) \[Get-VMSnapshot\], VirtualizationException\n/);
  t.match(clixmlErrors(normal.stderr), /FullyQualifiedErrorId : ObjectNotFound,Microsoft\.HyperV\.PowerShell\.Commands\.GetVMSnapshot\n/);
  t.match(clixmlErrors(r.stderr), /Get-VMSnapshot: \nLine \|\n *\d+ \| .*Get-VMSnapshot -VMName \$Params\.vm -Name \$Params\.name\n[\s\S]*\| Unable to find a snapshot matching the given criteria\.\n$/);

  const caught = await run(
    lab,
    ssh,
    [
      'function Show($e) { [ordered]@{ fqid = $e.FullyQualifiedErrorId; category = $e.CategoryInfo.Category.ToString(); info = $e.CategoryInfo.ToString(); type = $e.Exception.GetType().FullName; message = $e.Exception.Message } }',
      '$out = @()',
      'try { Get-VMSnapshot -VMName web01 -Name nope } catch { $out += Show $_ }',
      'try { Get-VMCheckpoint -VMName web01 -Name nope } catch { $out += Show $_ }',
      'try { Get-VM -Name $Params.missing } catch { $out += Show $_ }',
      'try { Stop-VM -Name $Params.missing } catch { $out += Show $_ }',
      'try { Restore-VMSnapshot -VMName web01 -Name nope -Confirm:$false } catch { $out += Show $_ }',
      'ConvertTo-Json -InputObject $out',
    ].join('\n'),
    { missing: 'minikube' },
  );
  t.equal(caught.code, 0, caught.stderr);
  const [snap, alias, vm, stop, restore] = json<Array<Record<string, string>>>(caught.stdout);
  t.same(snap, {
    fqid: 'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot',
    category: 'ObjectNotFound',
    info: 'ObjectNotFound: (:) [Get-VMSnapshot], VirtualizationException',
    type: 'Microsoft.HyperV.PowerShell.VirtualizationException',
    message: 'Unable to find a snapshot matching the given criteria.',
  });
  t.same(alias, snap, 'the alias reports the real cmdlet (§2)');
  t.same(vm, {
    fqid: 'InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM',
    category: 'InvalidArgument',
    info: 'InvalidArgument: (minikube:String) [Get-VM], VirtualizationException',
    type: 'Microsoft.HyperV.PowerShell.VirtualizationException',
    message: 'Hyper-V was unable to find a virtual machine with name "minikube".',
  });
  t.match(stop, { fqid: 'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.StopVM', info: 'ObjectNotFound: (:) [Stop-VM], VirtualizationException' });
  t.match(restore, { fqid: 'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.RestoreVMSnapshot', category: 'ObjectNotFound' });
});

t.test('Remove-VMSnapshot of an unknown name is a silent no-op; a VM without checkpoints lists nothing', async (t) => {
  const r = await run(lab, ssh, 'Remove-VMSnapshot -VMName $Params.vm -Name $Params.name\n@(Get-VMSnapshot -VMName off01).Count', { vm: 'web01', name: 'no such checkpoint' });
  t.same(r, { code: 0, stdout: '0\n', stderr: '' });
});

t.test('Restore-VMSnapshot without -Confirm:$false fails under -NonInteractive; with it, applies', async (t) => {
  const r = await run(lab, ssh, 'Restore-VMSnapshot -VMName $Params.vm -Name first', { vm: 'web01' });
  t.equal(r.code, 1);
  t.match(clixmlErrors(r.stderr), /PowerShell is in NonInteractive mode\. Read and Prompt functionality is not available\./);
  const ok = await run(lab, ssh, 'Restore-VMSnapshot -VMName $Params.vm -Name first -Confirm:$false\n(Get-VM -Name $Params.vm).ParentSnapshotName', { vm: 'web01' });
  t.same(ok, { code: 0, stdout: 'first\n', stderr: '' });
  t.equal(lab.readState().vms.find((v) => v.name === 'web01')?.parentSnapshotId, lab.readState().snapshots.find((s) => s.name === 'first')?.id);
});

t.test('restore power-state rules (§2.3) and checkpoint State (§2.2)', async (t) => {
  const r = await run(
    lab,
    ssh,
    [
      '$vm = $Params.vm',
      'function S { [int](Get-VM -Name $vm).State }',
      'Checkpoint-VM -Name $vm -SnapshotName mem',
      'Stop-VM -Name $vm -TurnOff',
      'Checkpoint-VM -Name $vm -SnapshotName nomem',
      'Start-VM -Name $vm',
      '$o = [ordered]@{ memState = [int](Get-VMSnapshot -VMName $vm -Name mem).State; nomemState = [int](Get-VMSnapshot -VMName $vm -Name nomem).State }',
      'Restore-VMSnapshot -VMName $vm -Name mem -Confirm:$false; $o.runningMem = S',
      'Restore-VMSnapshot -VMName $vm -Name nomem -Confirm:$false; $o.runningNomem = S',
      'Start-VM -Name $vm; Suspend-VM -Name $vm; $o.paused = S',
      'Restore-VMSnapshot -VMName $vm -Name mem -Confirm:$false; $o.pausedMem = S',
      'Restore-VMSnapshot -VMName $vm -Name nomem -Confirm:$false; $o.savedNomem = S',
      'Restore-VMSnapshot -VMName $vm -Name mem -Confirm:$false; $o.offMem = S',
      'Start-VM -Name $vm; Suspend-VM -Name $vm; Restore-VMSnapshot -VMName $vm -Name nomem -Confirm:$false; $o.pausedNomem = S',
      'Start-VM -Name $vm; Save-VM -Name $vm; $o.saved = S; Resume-VM -Name $vm -ErrorAction SilentlyContinue; $o.resumeSaved = S',
      'Get-VMSnapshot -VMName $vm -Name mem | Restore-VMSnapshot -Confirm:$false; $o.pipedFromSaved = S',
      '$o | ConvertTo-Json',
    ].join('\n'),
    { vm: 'power01' },
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  t.same(json(r.stdout), {
    memState: 6,
    nomemState: 3,
    runningMem: 2, // saved first, applied, restarted: Running from the checkpoint's memory
    runningNomem: 3, // no memory: Off
    paused: 9,
    pausedMem: 6, // paused: never restarted
    savedNomem: 3,
    offMem: 6,
    pausedNomem: 3,
    saved: 6,
    resumeSaved: 6,
    pipedFromSaved: 6,
  });
});

t.test('Remove-VMSnapshot: re-parenting, merge status while merging and after, .avhdx merged away', async (t) => {
  const vhdDir = lab.vhdDir('merge01');
  const r = await run(
    lab,
    ssh,
    [
      '$vm = $Params.vm',
      "function St { $v = Get-VM -Name $vm; [ordered]@{ Status = $v.Status; OperationalStatus = $v.OperationalStatus; PrimaryOperationalStatus = $v.PrimaryOperationalStatus; SecondaryOperationalStatus = $v.SecondaryOperationalStatus; Parent = $v.ParentSnapshotName } }",
      "function Files { @(Get-ChildItem -LiteralPath $Params.dir -Filter '*.avhdx').Count }",
      'Checkpoint-VM -Name $vm -SnapshotName a; Checkpoint-VM -Name $vm -SnapshotName b; Checkpoint-VM -Name $vm -SnapshotName c',
      '$o = [ordered]@{ before = St; filesBefore = Files }',
      'Remove-VMSnapshot -VMName $vm -Name b',
      '$o.merging = St',
      '$o.filesMerging = Files',
      "$o.cParent = (Get-VMSnapshot -VMName $vm -Name c).ParentSnapshotName",
      'try { Checkpoint-VM -Name $vm -SnapshotName during; $o.duringMerge = "ok" } catch { $o.duringMerge = $_.Exception.Message }',
      "while ((Get-VM -Name $vm).Status -like 'Merging*') { [System.Threading.Thread]::Sleep(100) }",
      '$o.after = St',
      '$o.filesAfter = Files',
      'Get-VMSnapshot -VMName $vm -Name c | Remove-VMSnapshot',
      '$o.afterRemovingCurrent = (Get-VM -Name $vm).ParentSnapshotName',
      '$o | ConvertTo-Json -Depth 3',
    ].join('\n'),
    { vm: 'merge01', dir: vhdDir },
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<Record<string, unknown>>(r.stdout);
  t.same(o.before, { Status: 'Operating normally', OperationalStatus: [2], PrimaryOperationalStatus: 2, SecondaryOperationalStatus: null, Parent: 'c' });
  t.same(o.merging, { Status: 'Merging disks', OperationalStatus: [2, 32772], PrimaryOperationalStatus: 2, SecondaryOperationalStatus: 32772, Parent: 'c' });
  t.same(o.after, { Status: 'Operating normally', OperationalStatus: [2], PrimaryOperationalStatus: 2, SecondaryOperationalStatus: null, Parent: 'c' });
  t.equal(o.filesBefore, 3);
  t.equal(o.filesMerging, 3, 'the merged file lingers while merging');
  t.equal(o.filesAfter, 2, 'and is gone afterwards');
  t.equal(o.cParent, 'a', 'children re-parent to the removed checkpoint\'s parent');
  t.match(String(o.duringMerge), /while its disks are being merged/);
  t.equal(o.afterRemovingCurrent, 'a', "removing the VM's current checkpoint moves ParentSnapshotId up");

  // The chain on disk stays consistent: VM disk → … → base .vhdx, every link a file that exists.
  // The second removal's merge has run out (the next cmdlet completes it).
  await until('the merge to run out', async () => lab.readState().merges.every((m) => Date.parse(m.until) <= Date.now()));
  const chain = await run(
    lab,
    ssh,
    "$p = (Get-VMHardDiskDrive -VMName $Params.vm).Path; $out = @(); while ($p) { $v = Get-VHD -Path $p; $out += [ordered]@{ name = Split-Path -Leaf $v.Path; type = [int]$v.VhdType; format = [int]$v.VhdFormat }; $p = $v.ParentPath }; ConvertTo-Json -InputObject $out",
    { vm: 'merge01' },
  );
  t.equal(chain.code, 0, clixmlErrors(chain.stderr));
  const links = json<Array<{ name: string; type: number; format: number }>>(chain.stdout);
  t.equal(links.length, 2, 'checkpoint a remains: active .avhdx → merge01.vhdx');
  t.match(links[0], { type: 4, format: 3 });
  t.match(links[0]?.name, /^merge01_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\.avhdx$/);
  t.same(links[1], { name: 'merge01.vhdx', type: 3, format: 3 });
  t.same(readdirSync(vhdDir).filter((f) => f.endsWith('.avhdx')).length, 1);
});

t.test('checkpoint types: Disabled (Vagrant text), Set-VM round trip, production fallback, ProductionOnly', async (t) => {
  const r = await run(
    lab,
    ssh,
    [
      '$o = [ordered]@{}',
      'try { Checkpoint-VM -Name dis01 -SnapshotName x } catch { $o.disabled = $_.Exception.Message }',
      // Vagrant's workaround (§2.1): switch to Standard, checkpoint, switch back.
      'Set-VM -Name dis01 -CheckpointType Standard; Checkpoint-VM -Name dis01 -SnapshotName vagrant; Set-VM -Name dis01 -CheckpointType Disabled',
      '$o.disType = [int](Get-VM -Name dis01).CheckpointType',
      '$o.disSnaps = @(Get-VMSnapshot -VMName dis01 | ForEach-Object Name)',
      '$o.setPassthru = (Set-VM -Name dis01 -Notes $Params.notes -Passthru).Notes',
      'Checkpoint-VM -Name prod01 -SnapshotName p; $o.production = [int](Get-VMSnapshot -VMName prod01 -Name p).State',
      'Checkpoint-VM -Name noprod01 -SnapshotName p; $o.fallback = [int](Get-VMSnapshot -VMName noprod01 -Name p).State',
      'try { Checkpoint-VM -Name only01 -SnapshotName p } catch { $o.productionOnly = $_.Exception.Message; $o.productionOnlyFqid = $_.FullyQualifiedErrorId }',
      '$o.onlySnaps = @(Get-VMSnapshot -VMName only01).Count',
      '$o | ConvertTo-Json',
    ].join('\n'),
    { notes: 'line1\nline2 "quoted"' },
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<Record<string, unknown>>(r.stdout);
  const id = lab.vmId('dis01').toUpperCase();
  t.equal(
    o.disabled,
    `Checkpoint operation failed.\nCheckpoints have been disabled.\nCheckpoint operation for 'dis01' failed. (Virtual machine ID ${id})\nCheckpoints have been disabled for 'dis01'. (Virtual machine ID ${id}).`,
  );
  t.equal(o.disType, 2);
  t.same(o.disSnaps, ['vagrant']);
  t.equal(o.setPassthru, 'line1\nline2 "quoted"');
  t.equal(o.production, 3, 'production checkpoint: no memory, Off');
  t.equal(o.fallback, 6, 'Production without guest support falls back to standard (memory, Saved)');
  t.match(String(o.productionOnly), /Production checkpoints cannot be created for 'only01'/);
  t.equal(o.productionOnlyFqid, 'OperationFailed,Microsoft.HyperV.PowerShell.Commands.CheckpointVM');
  t.equal(o.onlySnaps, 0);
});

t.test('concurrency: two checkpoints at once both land, the state stays valid; a cut session still commits', async (t) => {
  await lab.updateState((s) => {
    s.knobs.checkpointDelayMs = 400;
  });
  const script = 'Checkpoint-VM -Name $Params.vm -SnapshotName $Params.name';
  const [a, b, list] = await Promise.all([
    run(lab, ssh, script, { vm: 'conc01', name: 'left' }),
    run(lab, ssh, script, { vm: 'conc01', name: 'right' }),
    run(lab, ssh, 'Get-VM | Measure-Object | ForEach-Object Count'),
  ]);
  t.equal(a.code, 0, clixmlErrors(a.stderr));
  t.equal(b.code, 0, clixmlErrors(b.stderr));
  t.equal(list.stdout.trim(), '11');
  const state = lab.readState();
  const vmId = lab.vmId('conc01');
  const snaps = state.snapshots.filter((s) => s.vmId === vmId);
  t.same(snaps.map((s) => s.name).sort(), ['left', 'right']);
  t.ok(snaps.some((s) => s.parentId === null) && snaps.some((s) => s.parentId !== null), 'commits serialised: one is the other\'s parent');
  t.equal(readdirSync(lab.vhdDir('conc01')).filter((f) => f.endsWith('.avhdx')).length, 2);

  // Cut the SSH connection mid-command: the remote pwsh keeps going (as on Windows OpenSSH).
  await lab.updateState((s) => {
    s.knobs.checkpointDelayMs = 1500;
  });
  const other = await connect(lab);
  const pending = run(lab, other, script, { vm: 'conc01', name: 'survivor' }).catch(() => undefined);
  await until('the command to run on the host', async () => lab.hostProcesses().length > 0, 10_000, 20);
  lab.sshd.killSessions(); // every session drops, ours too
  await pending;
  await disconnect(other);
  await disconnect(ssh);
  ssh = await connect(lab);
  await lab.updateState((s) => {
    s.knobs.checkpointDelayMs = 0;
  });
  await until('the checkpoint to commit', async () => lab.readState().snapshots.some((s) => s.name === 'survivor'), 10_000);
  t.pass('the checkpoint committed after the session was cut');
  t.doesNotThrow(() => JSON.parse(readFileSync(lab.statePath, 'utf8')));
});

t.test('Get-VMSnapshot -Id/-ChildOf/-ParentOf/-SnapshotType; Remove -IncludeAllChildSnapshots empties the tree', async (t) => {
  const r = await run(
    lab,
    ssh,
    [
      '$vm = Get-VM -Name conc01',
      '$all = @(Get-VMSnapshot -VM $vm)',
      '$root = $all | Where-Object { -not $_.ParentSnapshotId }',
      '$o = [ordered]@{ count = $all.Count }',
      '$o.byId = (Get-VMSnapshot -Id $root.Id).Name',
      '$o.children = @(Get-VMSnapshot -ChildOf $root | ForEach-Object Name)',
      '$o.parentOf = (Get-VMSnapshot -ParentOf $vm).Name',
      '$o.standard = @(Get-VMSnapshot -VMName conc01 -SnapshotType Standard).Count',
      "try { Get-VMSnapshot -VMName conc01 -SnapshotType Replica } catch { $o.replica = $_.FullyQualifiedErrorId }",
      '$root | Remove-VMSnapshot -IncludeAllChildSnapshots',
      '$o.left = @(Get-VMSnapshot -VMName conc01).Count',
      '$o.vmParent = (Get-VM -Name conc01).ParentSnapshotId',
      '$o | ConvertTo-Json',
    ].join('\n'),
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<Record<string, unknown>>(r.stdout);
  t.equal(o.count, 3);
  t.type(o.byId, 'string');
  t.equal((o.children as string[]).length, 1, 'immediate children only');
  t.type(o.parentOf, 'string');
  t.equal(o.standard, 3);
  t.equal(o.replica, 'ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot', 'empty result with -SnapshotType is an error (§2.2)');
  t.equal(o.left, 0, 'no checkpoints, no -Name: nothing and no error');
  t.equal(o.vmParent, null);
});

t.test('hostile names and notes round-trip through $Params as data', async (t) => {
  const names = [
    `it's "quoted"`,
    '$env:PATH $(whoami) ${x}',
    'back`tick`n`0',
    'semi; Remove-Item -Recurse -Force / #',
    "'@\n@'\n\"@",
    'multi\nline\r\nname\ttab',
    'emoji 🚀 ünïcödé 名前',
    '  spaced  ',
    '%PATH% & | < > ^',
  ];
  const notes = "notes with 'quotes', $vars, `backticks`, ; and\nnewlines 🚀";
  const r = await run(
    lab,
    ssh,
    [
      'Set-VM -Name names01 -Notes $Params.notes',
      'foreach ($n in $Params.names) { Checkpoint-VM -Name names01 -SnapshotName $n }',
      '$listed = @(Get-VMSnapshot -VMName names01 | ForEach-Object Name)',
      // -Name is a wildcard pattern (§2.2): callers escape it.
      '$found = @(foreach ($n in $Params.names) { @(Get-VMSnapshot -VMName names01 -Name ([System.Management.Automation.WildcardPattern]::Escape($n))).Count })',
      '$snapNotes = @(Get-VMSnapshot -VMName names01 | ForEach-Object Notes | Select-Object -Unique)',
      'ConvertTo-Json -InputObject ([ordered]@{ listed = $listed; found = $found; notes = $snapNotes })',
    ].join('\n'),
    { names, notes },
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<{ listed: string[]; found: number[]; notes: string[] }>(r.stdout);
  t.same(o.listed, names);
  t.same(o.found, names.map(() => 1));
  t.same(o.notes, [notes], 'a checkpoint copies the VM notes');
  t.same(
    lab.readState().snapshots.filter((s) => s.vmId === lab.vmId('names01')).map((s) => s.name),
    names,
  );
});

t.test('disks: checkpoint drives, Get-VHD chain, an orphan .avhdx is listed and answers Get-VHD', async (t) => {
  const vhdDir = lab.vhdDir('web01');
  const orphan = join(vhdDir, 'web01_0BADF00D-0000-4000-8000-000000000001.avhdx');
  writeFileSync(orphan, '');
  const r = await run(
    lab,
    ssh,
    [
      '$o = [ordered]@{}',
      '$snap = Get-VMSnapshot -VMName web01 -Name first',
      '$o.snapDrive = Split-Path -Leaf (Get-VMHardDiskDrive -VMSnapshot $snap).Path',
      '$d = Get-VMHardDiskDrive -VMName web01',
      '$o.drive = [ordered]@{ ControllerType = [int]$d.ControllerType; ControllerNumber = $d.ControllerNumber; ControllerLocation = $d.ControllerLocation; type = $d.PSObject.TypeNames[0] }',
      '$o.active = Get-VHD -Path $d.Path | Select-Object VhdFormat, VhdType, @{n="Parent";e={Split-Path -Leaf $_.ParentPath}}, Attached',
      '$o.listed = @(Get-ChildItem -LiteralPath $Params.dir | ForEach-Object Name)',
      '$o.orphan = Get-VHD -Path $Params.orphan | Select-Object VhdFormat, VhdType, ParentPath, Attached, FileSize',
      'try { Get-VHD -Path (Join-Path $Params.dir missing.avhdx) } catch { $o.missing = $_.FullyQualifiedErrorId }',
      '$o | ConvertTo-Json -Depth 3',
    ].join('\n'),
    { dir: vhdDir, orphan },
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<Record<string, unknown>>(r.stdout);
  t.equal(o.snapDrive, 'web01.vhdx', "the first checkpoint's drive is the base disk");
  t.same(o.drive, { ControllerType: 1, ControllerNumber: 0, ControllerLocation: 0, type: 'Microsoft.HyperV.PowerShell.HardDiskDrive' });
  t.match(o.active, { VhdFormat: 3, VhdType: 4, Attached: true });
  t.ok((o.listed as string[]).includes('web01.vhdx') && (o.listed as string[]).includes('web01_0BADF00D-0000-4000-8000-000000000001.avhdx'));
  t.same(o.orphan, { VhdFormat: 3, VhdType: 4, ParentPath: null, Attached: false, FileSize: 0 });
  t.equal(o.missing, 'ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD');
  t.ok(existsSync(orphan));
});

t.test('Stop-VM: already off warns; a guest that ignores shutdown fails after the wait; -TurnOff works', async (t) => {
  const warn = await run(lab, ssh, 'Stop-VM -Name off01', {});
  t.equal(warn.code, 0);
  t.equal(warn.stdout, '');
  t.match(warn.stderr, /^#< CLIXML\n<Objs [^>]*><S S="warning">The virtual machine is already in the specified state\.<\/S><\/Objs>$/, 'pwsh 7.6 writes warnings as S="warning"');

  const started = Date.now();
  const stop = await run(lab, ssh, 'Stop-VM -Name stop01 -Force', {});
  t.equal(stop.code, 1);
  t.ok(Date.now() - started >= 200);
  t.match(clixmlErrors(stop.stderr), /'stop01' failed to shut down/);
  const off = await run(lab, ssh, 'Stop-VM -Name stop01 -TurnOff; [int](Get-VM -Name stop01).State', {});
  t.same(off, { code: 0, stdout: '3\n', stderr: '' });
});

t.test('a checkpoint whose removal fails: non-terminating per-operand error, the others are removed', async (t) => {
  await lab.updateState((s) => {
    const snap = s.snapshots.find((x) => x.name === 'p' && x.vmId === s.vms.find((v) => v.name === 'prod01')?.id);
    if (snap) snap.failRemove = true;
  });
  const r = await run(
    lab,
    ssh,
    [
      'Checkpoint-VM -Name prod01 -SnapshotName q',
      'Remove-VMSnapshot -VMName prod01 -Name p, q -ErrorAction Continue -ErrorVariable errs 2>$null',
      '[ordered]@{ after = "continued"; left = @(Get-VMSnapshot -VMName prod01 | ForEach-Object Name); fqid = $errs[0].FullyQualifiedErrorId; message = $errs[0].Exception.Message } | ConvertTo-Json',
    ].join('\n'),
  );
  t.equal(r.code, 0, clixmlErrors(r.stderr));
  const o = json<{ after: string; left: string[]; fqid: string; message: string }>(r.stdout);
  t.equal(o.after, 'continued');
  t.same(o.left, ['p']);
  t.equal(o.fqid, 'OperationFailed,Microsoft.HyperV.PowerShell.Commands.RemoveVMSnapshot');
  t.match(o.message, /^'prod01' failed to remove checkpoint\.\nCannot delete checkpoint: The system cannot find the file specified\. \(0x80070002\)\./);
  t.match(o.message, new RegExp(`Virtual machine ID ${lab.vmId('prod01').toUpperCase()}`));

  // Under the adapter's preamble ($ErrorActionPreference = 'Stop') the same error ends the script: exit 1.
  const strict = await run(lab, ssh, 'Remove-VMSnapshot -VMName prod01 -Name p');
  t.equal(strict.code, 1);
  t.match(clixmlErrors(strict.stderr), /'prod01' failed to remove checkpoint\./);
});

t.test("shell: 'powershell' — the command arrives as pwsh -c \"…; exit $LASTEXITCODE\"", async (t) => {
  const psLab = await createHyperVLab({ dir: mkdtempSync(join(tmpdir(), 'hvlab-ps-')), vms: [{ name: 'web01' }], shell: 'powershell' });
  const psSsh = await connect(psLab);
  t.teardown(async () => {
    await disconnect(psSsh);
    await psLab.cleanup();
  });
  t.equal(psLab.ssh.username, 'hvlabps');
  const ok = await run(psLab, psSsh, '(Get-VM -Name $Params.vm).Name; exit 7', { vm: 'web01' });
  t.same(ok, { code: 7, stdout: 'web01\n', stderr: '' });
  const fail = await run(psLab, psSsh, 'Get-VMSnapshot -VMName web01 -Name nope');
  t.equal(fail.code, 1);
  t.match(fail.stderr, /^#< CLIXML\n/);
  t.match(clixmlErrors(fail.stderr), /Unable to find a snapshot matching the given criteria\./);
});
