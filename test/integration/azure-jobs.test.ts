/**
 * The engine driving the real Azure adapter (loaded through the registry, as the daemon loads it)
 * against the ARM fake: creates over Azure's per-disk budget wait queued with the reason — never
 * failed, never a 429 from the fake's rule; a set whose disk snapshot failed is completed by the
 * job's retry (one set, nothing orphaned); revert swaps the disks and keeps the old ones; delete
 * removes every disk snapshot of the set.
 */
import t from 'tap';
import { createRegistry } from '../../providers/index.ts';
import type { Job } from '../../src/domain/types.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { startArmFake, type ArmFakeOptions } from '../labs/arm-fake/index.ts';
import { guardLoopback } from '../labs/arm-fake/loopback-guard.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

guardLoopback(t);

const meta = { principal: 'tester', requestHash: 'h' };

async function setup(t: TapTest, o: { fake?: ArmFakeOptions; snapshotRate?: { max: number; windowSec: number } } = {}) {
  const fake = await startArmFake({ lroPolls: 1, ...o.fake });
  const vm = fake.addVm({ resourceGroup: 'rg', name: 'app1', power: 'running', dataDisks: 1 });
  const log = silentLogger();
  const registry = await createRegistry(
    [
      {
        name: 'az',
        kind: 'azure',
        demo: false,
        concurrency: 4,
        options: {
          subscriptionId: fake.subscriptionId,
          resourceGroups: ['rg'],
          credential: { tenantId: fake.tenantId, clientId: fake.clientId, clientSecret: fake.clientSecret, authorityHost: fake.authorityHost },
          endpoint: fake.endpoint,
          ca: fake.ca,
          pollIntervalMs: 10,
          ...(o.snapshotRate ? { snapshotRate: o.snapshotRate } : {}),
        },
      },
    ],
    { log },
  );
  const store = openStore(':memory:');
  const engine = createEngine({
    store,
    registry,
    log,
    settings: { workerPollMs: 20, syncIntervalMs: 0, readinessPollMs: 20, maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } },
  });
  const events: Job[] = [];
  engine.subscribe((e) => {
    if (e.type === 'job') events.push(e.job);
  });
  await engine.start();
  t.teardown(async () => {
    await engine.stop({ graceMs: 100 });
    await registry.close();
    store.close();
    await fake.close();
  });
  const vmId = (await engine.listVms({ limit: 10 })).items[0]!.id;
  const final = async (job: Job) => {
    for (;;) {
      const j = await engine.waitForJob(job.id, 30_000);
      if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
    }
  };
  const create = async (name: string) => (await engine.submit({ kind: 'snapshot.create', vmId, name, description: '', mode: 'crash' }, meta)).job;
  return { fake, vm, engine, vmId, final, create, events };
}

t.test("creates over Azure's per-disk budget wait queued with the reason; none fails, the fake's rule never answers 429", async (t) => {
  // The fake enforces the same rule as Azure (2 per disk per 3 s here, scaled down from 7 per 5 min;
  // long enough that two creates in a row always fit in it, however loaded the machine).
  const l = await setup(t, { fake: { snapshotRate: { max: 2, windowMs: 3_000 } }, snapshotRate: { max: 2, windowSec: 3 } });
  const jobs = [];
  for (let i = 0; i < 5; i++) jobs.push(await l.create(`burst-${i}`));
  const done = await Promise.all(jobs.map(l.final));
  t.same(done.map((j) => j.state), ['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
  t.same(done.map((j) => j.attempts), [1, 1, 1, 1, 1], 'no attempt was refused and retried');
  t.equal(l.fake.counters.selfCaused429, 0, 'no 429 from the per-disk rule');
  t.ok(
    l.events.some((j) => j.state === 'queued' && /^waiting for the create budget: Azure allows 2 incremental snapshots per disk every 3 s; disk \/subscriptions\/.+ is free again at /.test(j.progressMessage ?? '')),
    'a waiting job says why',
  );
  const snaps = await l.engine.listSnapshots(l.vmId, { includeGone: false });
  t.equal(snaps.length, 5);
  t.ok(snaps.every((s) => s.ready && s.owner === 'snapvisor'));
  t.match(snaps[0]!.details, { partial: false, disks: [{ disk: 'os' }, { disk: 'lun0' }] }, "each disk's snapshot and lineage shown");
  t.equal(l.fake.snapshots('rg').length, 10, 'five sets of two disk snapshots');
});

t.test("a set whose data-disk snapshot failed: the job's retry completes it — one set, nothing orphaned", async (t) => {
  const l = await setup(t);
  l.fake.fault({ method: 'PUT', path: /\/snapshots\/sv-[0-9a-f]+-lun0$/ }, { status: 500, code: 'InternalServerError', message: 'An internal execution error occurred.' });
  const done = await l.final(await l.create('half'));
  t.equal(done.state, 'succeeded');
  t.equal(done.attempts, 2, 'the first attempt failed on the data disk');
  const snaps = await l.engine.listSnapshots(l.vmId, { includeGone: false });
  t.equal(snaps.length, 1, 'one set');
  t.match(snaps[0], { ready: true, owner: 'snapvisor', jobId: done.id, details: { partial: false, missing: [] } });
  t.equal(l.fake.snapshots('rg').length, 2, 'two disk snapshots, the OS one made once');
});

t.test('revert swaps in new disks from the set and keeps the old ones; delete removes every disk snapshot', async (t) => {
  const l = await setup(t);
  const made = await l.final(await l.create('before-upgrade'));
  t.equal(made.state, 'succeeded');
  const snapshotId = made.result!.snapshotId!;
  const disksBefore = l.fake.disks('rg').map((d) => String(d.id));
  const reverted = await l.final((await l.engine.submit({ kind: 'snapshot.revert', snapshotId }, meta)).job);
  t.equal(reverted.state, 'succeeded');
  const vm = l.fake.vm(l.vm.id) as { properties: { storageProfile: { osDisk: { managedDisk: { id: string } }; dataDisks: Array<{ managedDisk: { id: string } }> } } };
  t.not(vm.properties.storageProfile.osDisk.managedDisk.id.toLowerCase(), l.vm.osDiskId.toLowerCase(), 'a new OS disk');
  t.not(vm.properties.storageProfile.dataDisks[0]!.managedDisk.id.toLowerCase(), l.vm.dataDiskIds[0]!.toLowerCase(), 'a new data disk');
  const disksAfter = l.fake.disks('rg').map((d) => String(d.id));
  t.ok(disksBefore.every((id) => disksAfter.includes(id)), 'the old disks are kept');
  t.equal((await l.engine.getVm(l.vmId)).powerState, 'running', 'started again: it was running');
  const removed = await l.final((await l.engine.submit({ kind: 'snapshot.delete', snapshotId, children: false }, meta)).job);
  t.equal(removed.state, 'succeeded');
  t.equal(l.fake.snapshots('rg').length, 0, 'both disk snapshots deleted');
  t.equal((await l.engine.getSnapshot(snapshotId)).state, 'gone');
});

t.test("a full copy on request (options.incremental: false) and the target's default (incremental)", async (t) => {
  const l = await setup(t);
  const full = await l.final((await l.engine.submit({ kind: 'snapshot.create', vmId: l.vmId, name: 'full', description: '', mode: 'crash', options: { incremental: false } }, meta)).job);
  const incr = await l.final(await l.create('incr'));
  t.same([full.state, incr.state], ['succeeded', 'succeeded']);
  const bySet = (set: string) => l.fake.snapshots('rg').filter((s) => String(s.name).includes(set));
  const [fullSnap, incrSnap] = await Promise.all([l.engine.getSnapshot(full.result!.snapshotId!), l.engine.getSnapshot(incr.result!.snapshotId!)]);
  const setOf = (s: { details: Record<string, unknown> | null }) => String((s.details as { disks: Array<{ snapshotId: string }> }).disks[0]!.snapshotId).split('/').pop()!.split('-')[1]!;
  t.ok(bySet(setOf(fullSnap)).every((s) => (s.properties as { incremental: boolean }).incremental === false), 'full copies');
  t.ok(bySet(setOf(incrSnap)).every((s) => (s.properties as { incremental: boolean }).incremental === true), 'incremental by default');
  t.match(fullSnap.details, { disks: [{ incremental: false }, { incremental: false }] }, 'shown in details');
});
