/**
 * Hyper-V adapter faults, through SSH against the Hyper-V lab (real sshd, real PowerShell 7.6, the
 * lab's Hyper-V module): what the issue lists — production checkpoints unavailable, a merge still
 * running when the next job comes, SSH dropped mid-command, a script error PowerShell would report
 * as success, hostile names, a host key that changed — each checked on the simulated host's state.
 * The persistent PowerShell hosts (sessions, the default) have their own: one host answers call
 * after call, SSH dropped with a request in it, a request past its timeout; and `sessions: false`.
 */
import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { markerForJob, ProviderError, type CallContext } from '../../providers/contract.ts';
import { testContext, type TapTest } from '../../providers/conformance/suite.ts';
import { createHyperVProvider, type HyperVProvider } from '../../providers/hyperv/index.ts';
import { createHyperVLab, LAB_SESSIONS, type HyperVLab, type HyperVLabOptions } from '../labs/hyperv/lab.ts';
import { until } from '../e2e/daemon.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const ctx = (): CallContext => testContext();
let jobs = 0;
const spec = (name: string, mode: 'memory' | 'quiesced' | 'offline' = 'memory', description = '') => ({ name, description, mode, marker: markerForJob(`hv-fault-${process.pid}-${++jobs}`) });

async function withLab(
  t: TapTest,
  labOptions: Omit<HyperVLabOptions, 'dir'>,
  providerOptions: Record<string, unknown> = {},
): Promise<{ lab: HyperVLab; provider: HyperVProvider }> {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-hv-fault-'));
  const lab = await createHyperVLab({ dir, ...labOptions });
  const provider = createHyperVProvider('lab', { ssh: lab.ssh, sessions: LAB_SESSIONS, commandTimeoutSec: 60, mergeWaitSec: 30, ...providerOptions }, { log, pollIntervalMs: 100 });
  t.teardown(async () => {
    await provider.close();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  return { lab, provider };
}

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ProviderError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/**
 * A create whose SSH connection dropped while Checkpoint-VM ran: uncertain; the host finishes it on
 * its own (Windows OpenSSH does not end it either), and the retry answers that checkpoint, once.
 */
async function droppedThenRecovered(
  t: TapTest,
  lab: HyperVLab,
  provider: HyperVProvider,
  vm: string,
  s: ReturnType<typeof spec>,
  attempt: Promise<ProviderError>,
  beforeRetry: () => Promise<void> = async () => {},
): Promise<void> {
  const e = await attempt;
  t.equal(e.kind, 'transient', e.message);
  t.equal(e.retry, 'uncertain', 'the command was sent: it may have acted');
  await until('the host to finish the checkpoint', async () => lab.readState().snapshots.length > 0, 10_000);
  t.equal(lab.readState().snapshots.length, 1, 'the checkpoint was made after the connection dropped');
  await beforeRetry();
  const again = await provider.createSnapshot(vm, s, ctx());
  t.equal(again.marker, s.marker, 'the retry answers the checkpoint the first attempt made');
  t.equal(lab.readState().snapshots.length, 1, 'and makes no second one');
  t.equal(lab.readState().vms[0]!.notes, '', "the VM's notes were put back by the host-side script");
}

t.test('production checkpoint unavailable: quiesced is a conflict, nothing made, the VM as it was', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'app', state: 'Running', productionSupported: false, checkpointType: 'Standard', notes: 'owner: team-a' }] });
  const vm = lab.vmId('app');
  const e = await rejection(provider.createSnapshot(vm, spec('q1', 'quiesced'), ctx()));
  t.equal(e.kind, 'conflict', e.message);
  t.match(e.message, /production \(quiesced\) checkpoint .* failed, and no standard checkpoint was made instead/);
  const state = lab.readState();
  t.same(state.snapshots, [], 'no checkpoint at all: never the standard fallback');
  const app = state.vms.find((v) => v.name === 'app')!;
  t.equal(app.checkpointType, 'Standard', "the VM's checkpoint type was put back");
  t.equal(app.notes, 'owner: team-a', "the VM's notes were put back");
  const memory = await provider.createSnapshot(vm, spec('m1', 'memory', 'before patch'), ctx());
  t.equal(memory.mode, 'memory', 'a memory checkpoint of the same VM still works');
  t.equal(lab.readState().vms.find((v) => v.name === 'app')!.notes, 'owner: team-a');
});

t.test('a merge still running when the next job comes: the job waits for it; with no wait allowed it is transient', async (t) => {
  // Merges that run until the test ends them (their end time set in the state): nothing here
  // depends on how fast this machine is.
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], mergeMs: 600_000 });
  const endMerges = async (): Promise<number> => {
    const at = Date.now();
    await lab.updateState((s) => {
      for (const m of s.merges) m.until = new Date(at).toISOString();
    });
    return at;
  };
  const vm = lab.vmId('web');
  const a = await provider.createSnapshot(vm, spec('a'), ctx());
  await provider.deleteSnapshot(vm, a.providerRef, { children: false }, ctx());
  t.equal(lab.readState().merges.length, 1, 'the removal started a disk merge');
  t.equal((await provider.listVms(ctx())).find((v) => v.providerVmId === vm)?.consolidationNeeded, true, 'listVms: consolidation needed while it merges');

  const impatient = createHyperVProvider('lab', { ssh: lab.ssh, sessions: LAB_SESSIONS, mergeWaitSec: 0 }, { log });
  t.teardown(() => impatient.close());
  const e = await rejection(impatient.createSnapshot(vm, spec('b'), ctx()));
  t.equal(e.kind, 'transient', e.message);
  t.equal(e.retry, 'transient');
  t.match(e.message, /still merging/);

  // A provider of its own, so that the create starts a PowerShell of its own on the host (the
  // others may keep idle session hosts running there).
  const before = lab.hostProcesses();
  const patientProvider = createHyperVProvider('lab', { ssh: lab.ssh, sessions: LAB_SESSIONS, commandTimeoutSec: 60, mergeWaitSec: 30 }, { log });
  t.teardown(() => patientProvider.close());
  const patient = patientProvider.createSnapshot(vm, spec('b'), ctx());
  await until('the create to run on the host', async () => lab.hostProcesses().some((p) => !before.includes(p)), 10_000, 20);
  const endedAt = await endMerges();
  const b = await patient;
  t.equal(b.name, 'b', 'a patient job waits for the merge and then checkpoints');
  t.ok(Date.parse(b.createdAt!) >= endedAt, `the checkpoint was made after the merge ended (${b.createdAt} ≥ ${new Date(endedAt).toISOString()})`);

  await provider.deleteSnapshot(vm, b.providerRef, { children: false }, ctx());
  const progress: number[] = [];
  const consolidating = provider.consolidate(vm, testContext(undefined, (pct) => progress.push(pct)));
  await until('consolidate to report progress while it waits', async () => progress.length > 0, 30_000, 50);
  t.equal(lab.readState().merges.length, 1, 'the merge is still running while consolidate waits');
  await endMerges();
  const report = await consolidating;
  t.equal(report.merged, 1, `consolidate waited for the merge (${report.message})`);
  t.ok(progress.length >= 2 && progress.at(-1) === 100, `progress reported while waiting, 100 at the end (${progress.join(', ')})`);
  t.equal((await provider.consolidate(vm, ctx())).merged, 0, 'nothing to wait for the second time');
  t.equal(lab.readState().merges.length, 0, 'no merge left');
});

t.test('orphaned .avhdx files are reported by consolidate, never deleted', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], mergeMs: 0 });
  const vm = lab.vmId('web');
  await provider.createSnapshot(vm, spec('kept'), ctx());
  const stray = join(lab.vhdDir('web'), 'web_0B5E1C3A-0000-4000-8000-0000000000AA.avhdx');
  const made = await lab.pwsh(`$null = New-Item -ItemType File -Path '${stray}'`);
  t.equal(made.exitCode, 0, made.stderr);
  const report = await provider.consolidate(vm, ctx());
  t.same(report.orphans, [stray], 'the stray file, and only it');
  t.match(report.message, /1 orphaned \.avhdx file\(s\), not deleted/);
  t.ok(existsSync(stray), 'still on disk');
});

t.test('SSH dropped mid-command: uncertain, then a retry finds the checkpoint by its marker (no duplicate)', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], checkpointDelayMs: 4000 });
  const vm = lab.vmId('web');
  const s = spec('dropped');
  const attempt = rejection(provider.createSnapshot(vm, s, ctx()));
  // The script has set the VM's notes to carry the marker: Checkpoint-VM is in its 4 s delay now.
  await until('the command to run on the host', async () => lab.readState().vms[0]!.notes.endsWith(s.marker), 10_000, 50);
  lab.sshd.killSessions();
  await droppedThenRecovered(t, lab, provider, vm, s, attempt);
});

t.test('sessions: one PowerShell host answers call after call; SSH dropped mid-call is uncertain, the retry finds the checkpoint on a fresh host', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], checkpointDelayMs: 4000 }, { sessions: true });
  const vm = lab.vmId('web');
  await provider.listSnapshots(vm, ctx());
  // The host's processes (PowerShell, and the account's shell that started it).
  const hosts = lab.hostProcesses();
  t.ok(hosts.length > 0, 'a PowerShell host stays running after the call');
  await provider.listVms(ctx());
  await provider.listSnapshots(vm, ctx());
  t.same(lab.hostProcesses(), hosts, 'and answers the next calls: no PowerShell started for them');
  const s = spec('dropped');
  const attempt = rejection(provider.createSnapshot(vm, s, ctx()));
  // The script has set the VM's notes to carry the marker: Checkpoint-VM is in its 4 s delay now.
  await until('the create to run in the host', async () => lab.readState().vms[0]!.notes.endsWith(s.marker), 10_000, 50);
  t.same(lab.hostProcesses(), hosts, 'in that same host');
  lab.sshd.killSessions();
  await droppedThenRecovered(t, lab, provider, vm, s, attempt, async () => {
    await until('the host to end, its stdin closed', async () => !lab.hostProcesses().some((p) => hosts.includes(p)), 15_000);
  });
  const fresh = lab.hostProcesses();
  t.ok(fresh.length > 0 && !fresh.some((p) => hosts.includes(p)), `through a fresh host (${hosts.join()} → ${fresh.join()})`);
});

t.test('sessions: a call past its timeout ends its PowerShell host (its own watchdog); the next call gets a fresh one', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], checkpointDelayMs: 120_000 }, { sessions: true, commandTimeoutSec: 3 });
  const vm = lab.vmId('web');
  t.same(await provider.listSnapshots(vm, ctx()), []);
  const host = lab.hostProcesses();
  t.ok(host.length > 0, 'a PowerShell host runs');
  const started = Date.now();
  const e = await rejection(provider.createSnapshot(vm, spec('slow'), ctx()));
  const took = Date.now() - started;
  t.equal(e.kind, 'transient', e.message);
  t.equal(e.retry, 'uncertain');
  t.match(e.message, /timed out/);
  t.ok(took >= 3000 && took < 7000, `ended by the host's watchdog at the call's 3 s, not the pool's kill 7 s later (${took} ms)`);
  t.notOk(lab.hostProcesses().some((p) => host.includes(p)), 'the host is gone');
  t.same(lab.readState().snapshots, [], 'no checkpoint was committed');
  t.same(await provider.listSnapshots(vm, ctx()), [], 'the next call is answered');
  const fresh = lab.hostProcesses();
  t.ok(fresh.length > 0 && !fresh.some((p) => host.includes(p)), `by a fresh host (${host.join()} → ${fresh.join()})`);
});

t.test('sessions: false — one PowerShell per call, no host left running', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], mergeMs: 0 }, { sessions: false });
  const vm = lab.vmId('web');
  const made = await provider.createSnapshot(vm, spec("one-shot 'quoted' 🧪", 'memory', 'line 1\nline 2'), ctx());
  t.same(lab.hostProcesses(), [], 'the call’s PowerShell ended with it');
  t.same((await provider.listSnapshots(vm, ctx())).map((s) => [s.name, s.description]), [["one-shot 'quoted' 🧪", 'line 1\nline 2']]);
  const e = await rejection(provider.revertSnapshot(vm, '00000000-0000-4000-8000-000000000000', ctx()));
  t.equal(e.kind, 'not_found', `a script's own refusal keeps its exit code (${e.message})`);
  await provider.deleteSnapshot(vm, made.providerRef, { children: false }, ctx());
  t.same(lab.readState().snapshots, []);
  t.same(lab.hostProcesses(), []);
});

t.test('a cmdlet error that PowerShell would report as success (exit 0) fails the call', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], mergeMs: 0 });
  const vm = lab.vmId('web');
  const a = await provider.createSnapshot(vm, spec('stuck'), ctx());
  await lab.updateState((s) => {
    s.snapshots[0]!.failRemove = true;
  });
  // The trap, shown with the same cmdlet: a non-terminating error, then a statement that succeeds.
  const naive = await lab.pwsh(`Remove-VMSnapshot -VMName web -Name stuck -Confirm:$false; 'done'`);
  t.equal(naive.exitCode, 0, 'without ErrorActionPreference Stop, PowerShell exits 0 after the failed removal');
  t.match(naive.stderr, /failed to remove checkpoint/);
  const e = await rejection(provider.deleteSnapshot(vm, a.providerRef, { children: false }, ctx()));
  t.match(e.message, /failed to remove checkpoint/, e.message);
  t.notOk(e.message.includes('CLIXML'), 'a clean message');
  t.equal(lab.readState().snapshots.length, 1, 'the checkpoint is still there, and the API says so');
});

t.test('hostile names and descriptions are data on the host: round-trip, and nothing runs', async (t) => {
  const { lab, provider } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }] });
  const vm = lab.vmId('web');
  const canary = join(tmpdir(), `snapvisor-hv-canary-${process.pid}`);
  const names = ['2024-05-01T10:00:00Z', `'@\n"@ $(New-Item ${canary})`, '`$env:HOME; exit 0 `n', "x'; Remove-Item -Recurse / ; '", '${Params}|&;<>', 'ünïcødé 🧪 ‏עברית'];
  for (const name of names) {
    const description = `${name}\r\n$( Remove-VMSnapshot -VMName web -Name * )\n@'\nline\n'@`;
    const made = await provider.createSnapshot(vm, { ...spec(name), description }, ctx());
    t.equal(made.name, name, `name round-trips: ${JSON.stringify(name)}`);
    t.equal(made.description, description, 'description round-trips');
  }
  t.equal((await provider.listSnapshots(vm, ctx())).length, names.length, 'every checkpoint is still there');
  t.notOk(existsSync(canary), 'no name ran as code');
});

t.test('a host key that changed is refused: no command runs, and the key is not in the message', async (t) => {
  const first = await withLab(t, { vms: [{ name: 'web', state: 'Running' }] });
  const second = await withLab(t, { vms: [{ name: 'web', state: 'Running' }] });
  // The address of the second lab with the host key pinned for the first: what a reinstalled or
  // impersonated host looks like to the daemon.
  const moved = createHyperVProvider('lab', { ssh: { ...second.lab.ssh, hostKey: first.lab.ssh.hostKey } }, { log });
  t.teardown(() => moved.close());
  const health = await moved.check(ctx());
  t.equal(health.reachable, true);
  t.equal(health.authOk, false, health.message ?? 'no message');
  const e = await rejection(moved.createSnapshot(second.lab.vmId('web'), spec('never'), ctx()));
  t.equal(e.kind, 'auth', e.message);
  t.notOk(e.message.includes(second.lab.ssh.privateKey.split('\n')[1]!), 'no key material in the message');
  t.same(second.lab.readState().snapshots, [], 'nothing was made');
});

t.test("an account whose shell is PowerShell (Windows OpenSSH's DefaultShell = powershell)", async (t) => {
  const { lab } = await withLab(t, { vms: [{ name: 'web', state: 'Running' }], shell: 'powershell' });
  const provider = createHyperVProvider('lab', { ssh: { ...lab.ssh, shell: 'powershell' } }, { log });
  t.teardown(() => provider.close());
  const vm = lab.vmId('web');
  const made = await provider.createSnapshot(vm, spec("it's $(ps)", 'memory', 'via pwsh -c'), ctx());
  t.equal(made.name, "it's $(ps)", 'the request reaches the script through the shell, as data');
  t.same((await provider.listSnapshots(vm, ctx())).map((s) => s.name), ["it's $(ps)"]);
  const e = await rejection(provider.deleteSnapshot(vm, 'not-a-guid', { children: false }, ctx()));
  t.equal(e.kind, 'not_found');
  const refused = await rejection(provider.revertSnapshot(vm, '00000000-0000-4000-8000-000000000000', ctx()));
  t.equal(refused.kind, 'not_found', `a script's own refusal keeps its exit code through the shell (${refused.message})`);
});
