/**
 * The engine driving the real VirtualBox adapter against the VBoxManage simulator: a VBoxManage
 * that hangs is killed at its timeout and the job ends failed as `transient` (after its retries),
 * with nothing half-made left behind; a refused operation ends failed with the hypervisor's reason.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import type { Job } from '../../src/domain/types.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function setup(t: TapTest) {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-vbox-jobs-'));
  const lab = createVboxLab({ dir, stepMs: 5, vms: [{ name: 'web01', state: 'running' }, { name: 'db01', state: 'poweroff' }] });
  const log = silentLogger();
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 2 }, { log });
  const store = openStore(':memory:');
  const registry = registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 2, options: {} }, provider }]);
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } } });
  await engine.start();
  t.teardown(async () => {
    await engine.stop({ graceMs: 100 });
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const vmId = async (name: string) => (await engine.listVms({ limit: 10, name })).items[0]!.id;
  const final = async (job: Job) => {
    for (;;) {
      const j = await engine.waitForJob(job.id, 30_000);
      if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
    }
  };
  return { lab, engine, vmId, final };
}

const meta = (key: string) => ({ principal: 'test', requestHash: key });

t.test('a hanging VBoxManage is killed at its timeout; the job fails as transient after its retries', async (t) => {
  const { lab, engine, vmId, final } = await setup(t);
  lab.setFault('take', 'web01', { type: 'hang' });
  const started = Date.now();
  const { job } = await engine.submit({ kind: 'snapshot.create', vmId: await vmId('web01'), name: 'never', description: '', mode: 'memory' }, meta('a'));
  const done = await final(job);
  t.equal(done.state, 'failed');
  t.equal(done.error?.kind, 'transient');
  t.match(done.error?.message ?? '', /timed out/);
  t.equal(done.attempts, 2, 'retried once, then gave up');
  t.ok(Date.now() - started < 20_000, 'bounded by the command timeout, not hanging forever');
  lab.setFault('take', 'web01', null);
  const vm = lab.readState().vms.find((v) => v.name === 'web01')!;
  t.equal(Object.keys(vm.snapshots).length, 0, 'nothing was made');
  t.notOk(vm.pending, 'no operation left half done');
});

t.test('a refusal from VirtualBox ends the job failed with its reason, and nothing stored changes', async (t) => {
  const { lab, engine, vmId, final } = await setup(t);
  // Stored as powered off: refused up front (409), no job.
  const refused = await engine
    .submit({ kind: 'snapshot.create', vmId: await vmId('db01'), name: 'no ram', description: '', mode: 'memory' }, meta('a'))
    .then(() => undefined, (e: unknown) => e);
  t.match(refused, { kind: 'conflict', code: 'SNAPVISOR_ERR_VM_POWERED_OFF' });
  // Stored as running, powered off since (the store is stale): VirtualBox itself refuses, and the job says so.
  const web = await vmId('web01');
  lab.setVmState('web01', 'poweroff');
  const { job } = await engine.submit({ kind: 'snapshot.create', vmId: web, name: 'no ram', description: '', mode: 'memory' }, meta('b'));
  const done = await final(job);
  t.equal(done.state, 'failed');
  t.equal(done.error?.kind, 'conflict');
  t.match(done.error?.message ?? '', /running/);
  t.equal(done.attempts, 1, 'a final error is not retried');
  t.same(await engine.listSnapshots(web, { includeGone: true }), []);
});

t.test('create, revert, delete with children through the engine keep the stored tree equal to the hypervisor', async (t) => {
  const { lab, engine, vmId, final } = await setup(t);
  const vm = await vmId('web01');
  // After a job the engine records what the provider answered without listing again; a full sync
  // (what the periodic one does) must then find nothing to change.
  const picture = async () => {
    const rows = await engine.listSnapshots(vm, { includeGone: true });
    return rows.map((r) => ({ name: r.name, parentId: r.parentId, current: r.current, state: r.state, mode: r.mode, owner: r.owner })).sort((x, y) => x.name.localeCompare(y.name));
  };
  const sameAsFullSync = async (after: string) => {
    const recorded = await picture();
    await engine.syncTarget('lab');
    t.same(await picture(), recorded, `after ${after}: the recorded tree is what a full sync reads`);
  };
  const a = await final((await engine.submit({ kind: 'snapshot.create', vmId: vm, name: 'a', description: 'first', mode: 'memory' }, meta('c1'))).job);
  await sameAsFullSync('create a');
  const b = await final((await engine.submit({ kind: 'snapshot.create', vmId: vm, name: 'b', description: '', mode: 'offline' }, meta('c2'))).job);
  t.equal(b.state, 'succeeded', JSON.stringify(b.error));
  await sameAsFullSync('create b');
  const rev = await final((await engine.submit({ kind: 'snapshot.revert', snapshotId: a.result!.snapshotId! }, meta('c3'))).job);
  t.equal(rev.state, 'succeeded', JSON.stringify(rev.error));
  await sameAsFullSync('revert to a');
  const c = await final((await engine.submit({ kind: 'snapshot.create', vmId: vm, name: 'c', description: '', mode: 'memory' }, meta('c4'))).job);
  await sameAsFullSync('create c');
  const d = await final((await engine.submit({ kind: 'snapshot.create', vmId: vm, name: 'd', description: '', mode: 'memory' }, meta('c6'))).job);
  const delD = await final((await engine.submit({ kind: 'snapshot.delete', snapshotId: d.result!.snapshotId!, children: false }, meta('c7'))).job);
  t.equal(delD.state, 'succeeded', JSON.stringify(delD.error));
  await sameAsFullSync('delete of the current snapshot d');
  const tree = await engine.snapshotTree(vm);
  t.equal(tree.roots.length, 1);
  t.same(tree.roots[0]!.children.map((n) => n.name).sort(), ['b', 'c'], 'branch after revert');
  t.equal(tree.currentSnapshotId, c.result!.snapshotId);
  const stored = await engine.listSnapshots(vm, { includeGone: false });
  t.equal(stored.find((s) => s.name === 'b')!.mode, 'offline', 'mode recorded from the job');
  t.equal(stored.find((s) => s.name === 'a')!.owner, 'snapvisor');
  const del = await final((await engine.submit({ kind: 'snapshot.delete', snapshotId: a.result!.snapshotId!, children: true }, meta('c5'))).job);
  t.equal(del.state, 'succeeded', JSON.stringify(del.error));
  await sameAsFullSync('delete of a with children');
  t.same(await engine.listSnapshots(vm, { includeGone: false }), [], 'all gone from the store');
  t.equal((await engine.listSnapshots(vm, { includeGone: true })).filter((s) => s.state === 'gone').length, 4, 'kept as history');
  t.same(Object.keys(lab.readState().vms.find((v) => v.name === 'web01')!.snapshots), [], 'and from the hypervisor');
});
