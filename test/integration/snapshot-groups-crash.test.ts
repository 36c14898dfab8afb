/**
 * Crash safety of snapshot groups. A group and its jobs are written in one transaction (a failure
 * part-way stores nothing), and the group's state is derived from its jobs, so a daemon killed
 * while the members' creates are half done needs nothing special: a second engine on the same
 * database recovers the jobs as it always does (by their markers, no duplicate snapshot) and the
 * group ends succeeded. The kill is the engine stopped with no grace, which leaves its jobs
 * `running` exactly as a killed daemon does (test/integration/recovering-engine.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { registryOf, type TargetSpec } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { until } from '../e2e/daemon.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

const log = silentLogger();
const settings = { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 3, backoff: { initialMs: 20, maxMs: 50 } };
const spec: TargetSpec = { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 2, options: {} };

t.test('killed while the members are being made: a second engine on the same database completes the group, no duplicates', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-group-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const database = join(dir, 'snapvisor.db');
  const lab = createVboxLab({ dir: join(dir, 'vbox'), stepMs: 5, vms: ['m1', 'm2', 'm3'].map((name) => ({ name, state: 'poweroff' as const })) });
  // Every take starts (the VM in its transient state, the operation pending) and stops half-way.
  lab.setFault('take', '*', { type: 'stall' });

  const store1 = openStore(database);
  const engine1 = createEngine({ store: store1, registry: registryOf([{ spec, provider: createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 60 }, { log }) }]), log, settings });
  await engine1.start();
  const vms = (await engine1.listVms({ limit: 10 })).items.map((v) => v.id);
  const { group } = await engine1.createSnapshotGroup({ name: 'crash-safe', description: '', mode: 'offline', vms }, { principal: 'ops', requestHash: '' });
  const jobs = group.members.map((m) => m.jobId);
  t.equal(jobs.length, 3, 'the group and its three jobs exist together');
  const hung = await until('both slots stopped half-way through a take', async () => {
    const h = lab.readState().hung ?? [];
    return h.length >= 2 ? h : undefined;
  });
  await engine1.stop({ graceMs: 0 });
  for (const h of hung) {
    try {
      process.kill(h.pid, 'SIGKILL');
    } catch {
      // already ended with its job's signal
    }
  }
  const left = await Promise.all(jobs.map((id) => store1.jobs.get(id)));
  t.equal(left.filter((j) => j?.state === 'running').length, 2, 'two creates left running, as a killed daemon leaves them');
  t.equal(left.filter((j) => j?.state === 'queued').length, 1, 'the third still queued');
  t.equal((await store1.groups.get(group.id))?.state, 'running');
  store1.close();
  lab.clearFaults();

  const store2 = openStore(database);
  const engine2 = createEngine({ store: store2, registry: registryOf([{ spec, provider: createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 60 }, { log }) }]), log, settings });
  t.teardown(async () => {
    await engine2.stop({ graceMs: 1_000 });
    store2.close();
  });
  await engine2.start();
  for (const id of jobs) {
    for (;;) {
      const job = await engine2.waitForJob(id, 60_000);
      if (['succeeded', 'failed', 'cancelled'].includes(job.state)) break;
    }
  }
  const after = await engine2.getSnapshotGroup(group.id);
  t.equal(after.state, 'succeeded', JSON.stringify(after.members.map((m) => m.error)));
  t.ok(after.members.every((m) => m.snapshotId !== null && m.startedAt !== null), 'every member has its snapshot and start time');
  for (const vm of lab.readState().vms) {
    t.equal(Object.values(vm.snapshots).filter((s) => s.name === 'crash-safe').length, 1, `${vm.name}: exactly one snapshot, no duplicate`);
  }
  await until('the stored copy caught up', async () => ((await store2.groups.runningIds()).length === 0 ? true : undefined));
});

t.test('a group whose write fails part-way stores nothing: no group row, no job', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  const lab = createVboxLab({ dir: mkdtempSync(join(tmpdir(), 'snapvisor-group-tx-')), vms: [{ name: 'a', state: 'poweroff' }, { name: 'b', state: 'poweroff' }] });
  t.teardown(() => lab.cleanup());
  const engine = createEngine({ store, registry: registryOf([{ spec, provider: createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage }, { log }) }]), log, settings });
  await engine.start();
  t.teardown(() => engine.stop({ graceMs: 100 }));
  const [a, b] = (await engine.listVms({ limit: 10 })).items;
  const target = a!.targetId;
  const job = (vmId: string) => ({
    id: 'same-job-id', // the second insert breaks the primary key, after the group row and the first job were written
    kind: 'snapshot.create' as const,
    targetId: target,
    vmId,
    snapshotId: null,
    params: { name: 'x', description: '', mode: 'offline' as const },
    maxAttempts: 1,
    requestedBy: 'ops',
    createdAt: new Date().toISOString(),
  });
  await t.rejects(
    store.groups.create(
      { id: 'g1', name: 'x', description: '', mode: 'offline', selector: null, createdAt: new Date().toISOString(), requestedBy: 'ops' },
      [{ vmId: a!.id, target: 'lab', job: job(a!.id) }, { vmId: b!.id, target: 'lab', job: job(b!.id) }],
    ),
  );
  t.equal(await store.groups.get('g1'), null, 'no group row');
  t.equal(await store.jobs.get('same-job-id'), null, 'no job');
  t.same((await store.groups.list({ limit: 10 })).items, []);
});
