/**
 * Orphans on Azure, the real adapter (through the registry) against the ARM fake: a disk snapshot
 * Snapvisor made (tag snapvisor-owner) whose source disk was deleted is listed by listOrphans and
 * shown under GET-drift's orphans after an inventory pass (gauge kind="orphans"); a snapshot made
 * outside Snapvisor of a deleted disk, and Snapvisor's snapshots of disks that exist, are not. The
 * listing changes nothing.
 */
import t from 'tap';
import { createRegistry } from '../../providers/index.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { startArmFake } from '../labs/arm-fake/index.ts';
import { guardLoopback } from '../labs/arm-fake/loopback-guard.ts';

guardLoopback(t);

t.test('a Snapvisor disk snapshot whose disk is gone is an orphan; nothing else is', async (t) => {
  const fake = await startArmFake({ lroPolls: 1 });
  fake.addVm({ resourceGroup: 'rg', name: 'app1', power: 'running', dataDisks: 0 });
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
        },
      },
    ],
    { log },
  );
  const store = openStore(':memory:');
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, readinessPollMs: 20 } });
  await engine.start();
  t.teardown(async () => {
    await engine.stop({ graceMs: 100 });
    await registry.close();
    store.close();
    await fake.close();
  });

  // A job's snapshot of the VM's disk: not an orphan (its disk exists).
  const vmId = (await engine.listVms({ limit: 10 })).items[0]!.id;
  const { job } = await engine.submit({ kind: 'snapshot.create', vmId, name: 'kept', description: '', mode: 'crash' }, { principal: 'test', requestHash: 'h' });
  t.equal((await engine.waitForJob(job.id, 60_000)).state, 'succeeded');

  const before = (await engine.drift({ target: 'az' }))[0]!;
  t.same(before.orphans.items, [], 'listed, and none found: an empty list means checked');
  t.equal(before.orphans.supported, true);

  // A VM deleted with its disk leaves Snapvisor's snapshot behind; another leaves an outside one.
  const scratch = fake.addDisk({ resourceGroup: 'rg', name: 'scratch-os' });
  const ours = fake.addSnapshot({ diskId: scratch, name: 'snapvisor-left-behind', tags: { 'snapvisor-owner': 'snapvisor', 'snapvisor-vm': '/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gone' } });
  const other = fake.addDisk({ resourceGroup: 'rg', name: 'other-os' });
  fake.addSnapshot({ diskId: other, name: 'made-by-hand', tags: {} });
  t.ok(fake.removeDisk(scratch));
  t.ok(fake.removeDisk(other));
  const snapshotsBefore = fake.snapshots('rg').length;

  await engine.syncTarget('az');
  const after = (await engine.drift({ target: 'az' }))[0]!;
  t.equal(after.orphans.supported, true);
  t.equal(after.orphans.message, null);
  t.ok(after.orphans.checkedAt);
  t.same(after.orphans.items?.map((o) => [o.ref.toLowerCase(), o.kind]), [[String(ours.id).toLowerCase(), 'disk-snapshot']]);
  t.match(after.orphans.items?.[0]?.reason, /scratch-os, which no longer exists/);
  t.equal(after.summary.orphans, 1);
  const gauge = (await engine.metrics()).body.split('\n').find((l) => l.startsWith('snapvisor_drift_items{target="az",kind="orphans"}'));
  t.equal(gauge?.split(' ').pop(), '1');
  t.equal(fake.snapshots('rg').length, snapshotsBefore, 'nothing deleted');
});
