/**
 * Adapter logic with a fixture-replay runner keyed by argv (STYLE §4): it throws on any argv it was
 * not given, so the test also pins exactly which commands run, and that names pass as one argument.
 */
import t from 'tap';
import { markerForJob, ProviderError } from '../../providers/contract.ts';
import { CommandError, type CommandRunner, type RunResult } from '../../providers/shared/command-runner.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const VM = '7e261a39-d356-4eb1-a8ed-75675b149241';
const SNAP = '31863d6f-8d58-4d58-aa2e-01aed147602c';

type Reply = Partial<RunResult> | CommandError;
function fixtureRunner(replies: Record<string, Reply | Reply[]>): CommandRunner & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    async run(argv, options) {
      calls.push([...argv]);
      const key = JSON.stringify(argv.slice(1));
      const entry = replies[key];
      if (entry === undefined) throw new Error(`unexpected argv ${key}`);
      const reply = Array.isArray(entry) ? entry.shift() : entry;
      if (reply === undefined) throw new Error(`no more replies for ${key}`);
      if (reply instanceof CommandError) throw reply;
      if (reply.stderr) options?.onStderr?.(reply.stderr);
      return { exitCode: 0, stdout: '', stderr: '', ...reply };
    },
  };
}
const vminfo = (state: string) => ({ stdout: `name="vm"\nEncryption:     disabled\nUUID="${VM}"\nVMState="${state}"\n` });
const provider = (runner: CommandRunner) => createVirtualBoxProvider('t1', { vboxmanage: 'VBoxManage' }, { log, runner });

t.test('memory create: list, state, take with the marker in the description, list', async (t) => {
  const marker = markerForJob('job-1');
  const name = 'a "b"; $(x) `y`\nz';
  const listed = `SnapshotName="${name}"\nSnapshotUUID="${SNAP}"\nSnapshotDescription="user\n\n${marker}"\nCurrentSnapshotName="${name}"\nCurrentSnapshotUUID="${SNAP}"\nCurrentSnapshotNode="SnapshotName"\n`;
  const runner = fixtureRunner({
    [JSON.stringify(['snapshot', VM, 'list', '--machinereadable'])]: [{ exitCode: 1, stdout: 'This machine does not have any snapshots\n' }, { stdout: listed }],
    [JSON.stringify(['showvminfo', VM, '--machinereadable'])]: vminfo('running'),
    [JSON.stringify(['snapshot', VM, 'take', name, `--description=user\n\n${marker}`])]: { stdout: `Snapshot taken. UUID: ${SNAP}\n`, stderr: '0%...50%...100%\n' },
  });
  const progress: number[] = [];
  const s = await provider(runner).createSnapshot(VM, { name, description: 'user', mode: 'memory', marker }, testContext(undefined, (p) => progress.push(p)));
  t.same(s, { providerRef: SNAP, name, description: 'user', parentRef: null, current: true, createdAt: null, mode: null, marker, ready: true });
  t.equal(runner.calls.length, 4);
  t.same(progress, [100], 'progress from stderr chunks');
});

t.test('idempotent create: an existing marker returns the snapshot without taking another', async (t) => {
  const marker = markerForJob('job-2');
  const runner = fixtureRunner({
    [JSON.stringify(['showvminfo', VM, '--machinereadable'])]: vminfo('running'),
    [JSON.stringify(['snapshot', VM, 'list', '--machinereadable'])]: { stdout: `SnapshotName="s"\nSnapshotUUID="${SNAP}"\nSnapshotDescription="${marker}"\n` },
  });
  const s = await provider(runner).createSnapshot(VM, { name: 's', description: '', mode: 'memory', marker }, testContext());
  t.equal(s.providerRef, SNAP);
  t.equal(s.description, '');
  t.same(runner.calls.map((c) => c[1]), ['showvminfo', 'snapshot'], 'the state, then the list: no take');
});

t.test('a VM between states (a take left by an attempt that died): transient, retried, nothing taken', async (t) => {
  const marker = markerForJob('job-3');
  const runner = fixtureRunner({ [JSON.stringify(['showvminfo', VM, '--machinereadable'])]: vminfo('livesnapshotting') });
  const e = await provider(runner).createSnapshot(VM, { name: 's', description: '', mode: 'memory', marker }, testContext()).catch((x: unknown) => x);
  t.match(e, { kind: 'transient' });
  t.match(String((e as Error).message), /livesnapshotting; the snapshot is tried again once it has settled/);
  t.same(runner.calls.map((c) => c[1]), ['showvminfo'], 'neither listed nor taken: the list is read only once the state is stable');
});

t.test('delete: already gone is success; children deleted deepest-first', async (t) => {
  const child = '00000000-0000-4000-8000-000000000001';
  const grandchild = '00000000-0000-4000-8000-000000000002';
  const tree = `SnapshotName="a"\nSnapshotUUID="${SNAP}"\nSnapshotName-1="b"\nSnapshotUUID-1="${child}"\nSnapshotName-1-1="c"\nSnapshotUUID-1-1="${grandchild}"\n`;
  const runner = fixtureRunner({
    [JSON.stringify(['snapshot', VM, 'list', '--machinereadable'])]: [{ exitCode: 1, stdout: 'This machine does not have any snapshots\n' }, { stdout: tree }],
    [JSON.stringify(['snapshot', VM, 'delete', grandchild])]: { stdout: `Deleting snapshot 'c' (${grandchild})\n` },
    [JSON.stringify(['snapshot', VM, 'delete', child])]: { stdout: `Deleting snapshot 'b' (${child})\n` },
    [JSON.stringify(['snapshot', VM, 'delete', SNAP])]: { stdout: `Deleting snapshot 'a' (${SNAP})\n` },
  });
  const p = provider(runner);
  await p.deleteSnapshot(VM, SNAP, { children: false }, testContext());
  await p.deleteSnapshot(VM, SNAP, { children: true }, testContext());
  t.same(runner.calls.slice(2).map((c) => c[4]), [grandchild, child, SNAP]);
});

t.test('error mapping', async (t) => {
  const notFound = "VBoxManage: error: Could not find a registered machine with UUID {x}\nVBoxManage: error: Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, interface IVirtualBox, callee nsISupports\n";
  const listKey = JSON.stringify(['snapshot', VM, 'list', '--machinereadable']);
  const cases: Array<[Reply, string, string]> = [
    [{ exitCode: 1, stderr: notFound }, 'not_found', 'final'],
    [{ exitCode: 1, stderr: 'VBoxManage: error: Invalid machine state: Stuck\nVBoxManage: error: Details: code VBOX_E_INVALID_VM_STATE (0x80bb0002), component SessionMachine, interface IMachine, callee nsISupports\n' }, 'conflict', 'final'],
    [{ exitCode: 0, stderr: 'VBoxManage.exe: error: odd\r\n' }, 'internal', 'final'],
    [{ exitCode: 1, stderr: "VBoxManage: error: The machine 'vm' is already locked by a session (or being locked or unlocked)\nVBoxManage: error: Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports\n" }, 'transient', 'transient'],
    [new CommandError('timeout', 'VBoxManage: timed out', true), 'transient', 'transient'],
    [new CommandError('spawn', 'VBoxManage: cannot start (ENOENT)', false), 'transient', 'transient'],
  ];
  for (const [reply, kind, retry] of cases) {
    const e = await provider(fixtureRunner({ [listKey]: reply })).listSnapshots(VM, testContext()).catch((x: unknown) => x);
    t.ok(e instanceof ProviderError, `${kind}: ProviderError`);
    t.equal((e as ProviderError).kind, kind);
    t.equal((e as ProviderError).retry, retry, `${kind}: retry ${retry}`);
    t.match((e as ProviderError).message, /^\[snapvisor\] \[virtualbox\] target 't1':/);
  }
  const takeTimeout = fixtureRunner({
    [listKey]: { exitCode: 1, stdout: 'This machine does not have any snapshots\n' },
    [JSON.stringify(['showvminfo', VM, '--machinereadable'])]: vminfo('running'),
    [JSON.stringify(['snapshot', VM, 'take', 'x', `--description=${markerForJob('j')}`])]: new CommandError('timeout', 'timed out', true),
  });
  const e = (await provider(takeTimeout).createSnapshot(VM, { name: 'x', description: '', mode: 'memory', marker: markerForJob('j') }, testContext()).catch((x: unknown) => x)) as ProviderError;
  t.equal(e.kind, 'transient');
  t.equal(e.retry, 'uncertain', 'a mutating call that timed out may have happened');
});

t.test('capabilities: crash and quiesced unsupported with reasons', async (t) => {
  const caps = provider(fixtureRunner({})).capabilities();
  t.equal(caps.modes.memory.supported, true);
  t.equal(caps.modes.offline.supported, true);
  t.equal(caps.modes.crash.supported, false);
  t.equal(caps.modes.quiesced.supported, false);
  t.equal(caps.deleteChildren, true);
  t.equal(caps.duplicateNames, true);
});
