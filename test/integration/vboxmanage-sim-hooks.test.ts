/**
 * The VBoxManage simulator's stop-here faults (hang, stall, hang-after, skip) and the `hung` record
 * the kill matrix waits on: each stops the process exactly where it says, records it, and leaves
 * the state a real VirtualBox would have at that point.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createVboxLab, type SimHung, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { until } from '../e2e/daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function setup(t: TapTest): { lab: VboxLab; start(args: string[]): { proc: ChildProcess; out(): string; exited: Promise<number | null> } } {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }], stepMs: 5 });
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  return {
    lab,
    start(args) {
      const proc = spawn(lab.vboxmanage, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(proc);
      let out = '';
      proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
      const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
      return { proc, out: () => out, exited };
    },
  };
}

const vm = (lab: VboxLab) => lab.readState().vms[0]!;
const hungAt = (lab: VboxLab, op: string, type: SimHung['type']) =>
  until(`stopped at ${op} (${type})`, async () => lab.readState().hung?.find((h) => h.op === op && h.type === type), 10_000, 10);
const run = (lab: VboxLab, args: string[]) => spawnSync(lab.vboxmanage, args, { encoding: 'utf8' });

t.test('stall: the take stops half-way, pending; once killed, the next call completes it', async (t) => {
  const { lab, start } = setup(t);
  lab.setFault('take', 'vm1', { type: 'stall', times: 1 });
  const take = start(['snapshot', 'vm1', 'take', 'halfway', '--description=d']);
  const hung = await hungAt(lab, 'take', 'stall');
  t.equal(hung.pid, take.proc.pid, 'the record names the stopped process');
  t.equal(vm(lab).state, 'onlinesnapshotting', 'the VM is in the transient state');
  t.equal(vm(lab).pending?.kind, 'take');
  t.equal(Object.keys(vm(lab).snapshots).length, 0, 'not committed yet');
  take.proc.kill('SIGKILL');
  await take.exited;
  const info = run(lab, ['showvminfo', 'vm1', '--machinereadable']);
  t.match(info.stdout, /VMState="running"/);
  t.match(info.stdout, /SnapshotName="halfway"/, 'completed by the next call, as VBoxSVC would');
  t.equal(lab.readState().faults?.vm1?.take, undefined, 'times: 1 consumed it');
});

t.test('hang-after: the delete is done and printed, the process never exits', async (t) => {
  const { lab, start } = setup(t);
  const uuid = lab.addExternalSnapshot('vm1', { name: 'old' });
  lab.setFault('delete', 'vm1', { type: 'hang-after', times: 1 });
  const del = start(['snapshot', 'vm1', 'delete', uuid]);
  await hungAt(lab, 'delete', 'hang-after');
  t.equal(Object.keys(vm(lab).snapshots).length, 0, 'the snapshot is gone');
  t.equal(vm(lab).state, 'running');
  t.equal(vm(lab).pending, undefined);
  t.match(del.out(), `Deleting snapshot 'old' (${uuid})`);
  t.equal(del.proc.exitCode, null, 'still running');
  del.proc.kill('SIGKILL');
  await del.exited;
});

t.test('skip lets calls through first; hang on showvminfo stops before any output', async (t) => {
  const { lab, start } = setup(t);
  lab.setFault('showvminfo', 'vm1', { type: 'hang', times: 1, skip: 1 });
  const first = run(lab, ['showvminfo', 'vm1', '--machinereadable']);
  t.equal(first.status, 0, 'the first call is let through');
  t.match(first.stdout, /VMState="running"/);
  t.equal(lab.readState().hung, undefined, 'nothing stopped yet');
  const second = start(['showvminfo', 'vm1', '--machinereadable']);
  const hung = await hungAt(lab, 'showvminfo', 'hang');
  t.equal(hung.pid, second.proc.pid);
  t.equal(second.out(), '', 'stopped before printing');
  second.proc.kill('SIGKILL');
  await second.exited;
  t.equal(run(lab, ['showvminfo', 'vm1', '--machinereadable']).status, 0, 'the fault is used up');
});

t.test('stall of startvm stops while starting; hang-after of startvm leaves it running', async (t) => {
  const { lab, start } = setup(t);
  lab.setVmState('vm1', 'poweroff');
  lab.setFault('startvm', 'vm1', { type: 'stall', times: 1 });
  const s1 = start(['startvm', 'vm1', '--type', 'headless']);
  await hungAt(lab, 'startvm', 'stall');
  t.equal(vm(lab).state, 'starting');
  s1.proc.kill('SIGKILL');
  await s1.exited;
  t.match(run(lab, ['showvminfo', 'vm1', '--machinereadable']).stdout, /VMState="running"/, 'completed at the next call');
  run(lab, ['controlvm', 'vm1', 'poweroff']);
  lab.setFault('startvm', 'vm1', { type: 'hang-after', times: 1 });
  const s2 = start(['startvm', 'vm1', '--type', 'headless']);
  await hungAt(lab, 'startvm', 'hang-after');
  t.equal(vm(lab).state, 'running');
  t.match(s2.out(), 'VM "vm1" has been successfully started.');
  s2.proc.kill('SIGKILL');
  await s2.exited;
});
