/**
 * The VBoxManage simulator's read cache (createVboxLab({ readCache: true })): the wrapper's `cat`
 * answers exactly what the simulator answers (same bytes, same exit code) and follows every change
 * — a take, a delete to no snapshots, a change made through lab.ts — and steps aside while the
 * answer could differ: a fault armed for the read, a VM in a transient state.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createVboxLab, SIMULATOR_PATH, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { until } from '../e2e/daemon.ts';

const viaWrapper = (lab: VboxLab, args: string[]) => spawnSync(lab.vboxmanage, args, { encoding: 'utf8' });
const viaSimulator = (lab: VboxLab, args: string[]) => spawnSync(process.execPath, [SIMULATOR_PATH, '--sim-state', lab.statePath, ...args], { encoding: 'utf8' });
const LIST = (uuid: string) => ['snapshot', uuid, 'list', '--machinereadable'];
const INFO = (uuid: string) => ['showvminfo', uuid, '--machinereadable'];

function same(t: Parameters<Parameters<typeof import("tap").test>[0]>[0], lab: VboxLab, args: string[], what: string) {
  const a = viaWrapper(lab, args);
  const b = viaSimulator(lab, args);
  t.same([a.status, a.stdout], [b.status, b.stdout], what);
}

t.test('cached answers are the simulator\'s, through every change', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }, { name: 'vm2', state: 'poweroff' }], stepMs: 1, readCache: true, callLog: true });
  const [vm1, vm2] = lab.readState().vms.map((v) => v.uuid) as [string, string];
  t.equal(viaWrapper(lab, ['list', 'vms']).status, 0, 'a first call renders the cache');
  const logged = lab.calls().length;
  viaWrapper(lab, LIST(vm1));
  viaWrapper(lab, INFO(vm2));
  t.equal(lab.calls().length, logged, 'answered from the cache (no simulator call logged)');
  same(t, lab, LIST(vm1), 'no snapshots: the text and exit 1');
  same(t, lab, INFO(vm2), 'showvminfo');
  t.equal(viaWrapper(lab, ['snapshot', vm1, 'take', 'one', '--description=snapvisor:j1']).status, 0);
  const list = viaWrapper(lab, LIST(vm1));
  t.match(list.stdout, /SnapshotName="one"/, 'the take shows at once');
  same(t, lab, LIST(vm1), 'list after a take');
  same(t, lab, INFO(vm1), 'showvminfo after a take');
  lab.addExternalSnapshot('vm1', { name: 'outside' });
  t.match(viaWrapper(lab, LIST(vm1)).stdout, /SnapshotName-1="outside"/, 'a change made through lab.ts shows at once');
  lab.setVmState('vm2', 'saved');
  t.match(viaWrapper(lab, INFO(vm2)).stdout, /VMState="saved"/);
  same(t, lab, INFO(vm2), 'after setVmState');
});

t.test('a fault armed for a read, or a transient state, goes to the simulator', async (t) => {
  const lab = createVboxLab({ dir: t.testdir({}), vms: [{ name: 'vm1', state: 'running' }], stepMs: 40, readCache: true });
  const vm1 = lab.readState().vms[0]!.uuid;
  viaWrapper(lab, INFO(vm1));
  lab.setFault('showvminfo', 'vm1', { type: 'fail', message: 'boom', times: 1 });
  const failed = viaWrapper(lab, INFO(vm1));
  t.equal(failed.status, 1, 'the fault fires');
  t.match(failed.stderr, /boom/);
  t.match(viaWrapper(lab, INFO(vm1)).stdout, /VMState="running"/, 'then answers again');
  const take = spawn(lab.vboxmanage, ['snapshot', vm1, 'take', 'slow'], { stdio: 'ignore' });
  const ended = new Promise((resolve) => take.on('exit', resolve));
  await until('take running', async () => lab.readState().vms[0]!.state === 'onlinesnapshotting', 10_000, 5);
  t.match(viaWrapper(lab, INFO(vm1)).stdout, /VMState="onlinesnapshotting"/, 'the transient state, not a cached "running"');
  await ended;
  t.match(viaWrapper(lab, INFO(vm1)).stdout, /VMState="running"/);
  t.match(viaWrapper(lab, LIST(vm1)).stdout, /SnapshotName="slow"/);
});
