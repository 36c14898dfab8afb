/**
 * The VBoxManage simulator's call log (createVboxLab({ callLog: true })): one line per call with
 * its process's start and end, the VM it resolved to and a take's job marker; overlappingCalls
 * finds two mutating calls on one VM whose lifetimes intersect. The replicas e2e test checks
 * per-VM serialisation with it, so here it must see an overlap that really happened.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createVboxLab, overlappingCalls, type SimCall } from '../labs/vboxmanage-sim/lab.ts';
import { until } from '../e2e/daemon.ts';

const run = (vboxmanage: string, args: string[]) => spawnSync(vboxmanage, args, { encoding: 'utf8' });

t.test('each call is logged once with its VM, marker, exit code and times', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }, { name: 'vm2', state: 'running' }], stepMs: 1, callLog: true });
  const uuid = lab.readState().vms[0]!.uuid;
  t.equal(run(lab.vboxmanage, ['snapshot', uuid, 'take', 's1', '--description=hello\nsnapvisor:job-1']).status, 0);
  t.equal(run(lab.vboxmanage, ['snapshot', 'vm1', 'list', '--machinereadable']).status, 0);
  t.equal(run(lab.vboxmanage, ['snapshot', 'vm2', 'delete', 'nothing']).status, 1);
  t.equal(run(lab.vboxmanage, ['list', 'vms']).status, 0);
  const calls = lab.calls();
  t.same(calls.map((c) => [c.op, c.vm, c.marker, c.exit]), [
    ['take', 'vm1', 'snapvisor:job-1', 0],
    ['list', 'vm1', null, 0],
    ['delete', 'vm2', null, 1],
    ['list vms', null, null, 0],
  ]);
  for (const c of calls) t.ok(c.start <= c.end, `${c.op}: start ≤ end`);
  for (let i = 1; i < calls.length; i++) t.ok(calls[i]!.start >= calls[i - 1]!.end, 'sequential calls do not overlap');
  t.same(overlappingCalls(calls), [], 'no overlap reported for sequential calls');
});

t.test('two takes on one VM at once are reported as an overlap; on two VMs they are not', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }, { name: 'vm2', state: 'running' }], stepMs: 30, callLog: true });
  const start = (vm: string, name: string) => {
    const p = spawn(lab.vboxmanage, ['snapshot', vm, 'take', name], { stdio: 'ignore' });
    return new Promise<number | null>((resolve) => p.on('exit', resolve));
  };
  // The first take holds vm1 in a transient state for ~300 ms; the second starts while it runs.
  const first = start('vm1', 'a');
  await until('first take running', async () => lab.readState().vms[0]!.state === 'onlinesnapshotting', 10_000, 5);
  const second = start('vm1', 'b');
  const other = start('vm2', 'c');
  await Promise.all([first, second, other]);
  const calls: SimCall[] = lab.calls();
  t.equal(calls.length, 3);
  const found = overlappingCalls(calls);
  t.equal(found.length, 1, 'one overlapping pair');
  t.same(found[0]!.map((c) => c.vm), ['vm1', 'vm1']);
  t.same(overlappingCalls(calls, (c) => c.vm === 'vm2' || c.op !== 'take'), [], 'the selector limits what is compared');
});

t.test('no log without the option', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }], stepMs: 1 });
  t.equal(run(lab.vboxmanage, ['list', 'vms']).status, 0);
  t.same(lab.calls(), []);
});

t.test('a take whose caller dies under it is logged at its death (exit 141), and the next call completes it', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }], stepMs: 30, callLog: true });
  // Its caller reads the first progress chunk, then goes away (as a SIGKILLed daemon does): the
  // simulator's next write finds no reader.
  const take = spawn(lab.vboxmanage, ['snapshot', 'vm1', 'take', 's1', '--description=snapvisor:job-9'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => take.on('exit', resolve));
  await new Promise<void>((resolve) => take.stderr.once('data', () => resolve()));
  take.stdout.destroy();
  take.stderr.destroy();
  t.equal(await exited, 141, 'the take died of the broken pipe');
  const [died] = lab.calls();
  t.same(died && [died.op, died.vm, died.marker, died.exit], ['take', 'vm1', 'snapvisor:job-9', 141], 'and is in the call log');
  t.equal(lab.readState().vms[0]!.state, 'onlinesnapshotting', 'its operation is still pending');
  const list = run(lab.vboxmanage, ['snapshot', 'vm1', 'list', '--machinereadable']);
  t.match(list.stdout, /SnapshotDescription="snapvisor:job-9"/, 'the next call completed it');
  t.same(lab.calls().map((c) => [c.op, c.exit]), [['take', 141], ['list', 0]]);
});
