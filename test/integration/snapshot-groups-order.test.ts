/**
 * A group's jobs are not put behind work its token submits later: on a target running one job at a
 * time, busy with an earlier job, a group of three and then an unrelated create (same token, another
 * VM) are queued; the group's three start before the later create. (The group's jobs take the
 * token's current fair round, domain/fair-claim.ts; the later job takes the same round but is newer.)
 */
import t from 'tap';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../fixtures/fake-provider.ts';

t.test('a group queued behind a running job starts before a create submitted after it', async (t) => {
  const provider = createFakeProvider('lab', { vms: ['busy', 'g1', 'g2', 'g3', 'later'].map((name) => ({ name, powerState: 'running' as const })) });
  const store = openStore(':memory:');
  const registry = fakeRegistry([{ spec: fakeSpec('lab', { concurrency: 1 }), provider }]);
  const engine = createEngine({ store, registry, log: silentLogger(), settings: { workerPollMs: 10, syncIntervalMs: 0, maxAttempts: 1 } });
  await engine.start();
  t.teardown(async () => {
    await engine.stop({ graceMs: 200 });
    await registry.close();
    store.close();
  });
  const id = new Map((await engine.listVms({ limit: 10 })).items.map((v) => [v.name, v.id]));
  const meta = { principal: 'ops', requestHash: '' };
  const create = (name: string) => engine.submit({ kind: 'snapshot.create', vmId: id.get(name)!, name: 'x', description: '', mode: 'memory' }, meta);

  const gate = provider.hold('createSnapshot');
  const blocker = await create('busy');
  await gate.reached;
  const { group } = await engine.createSnapshotGroup({ name: 'grp', description: '', mode: 'memory', vms: ['g1', 'g2', 'g3'].map((n) => id.get(n)!) }, meta);
  const later = await create('later');
  gate.release();
  for (const jobId of [blocker.job.id, ...group.members.map((m) => m.jobId), later.job.id]) {
    for (;;) {
      const job = await engine.waitForJob(jobId, 30_000);
      if (['succeeded', 'failed', 'cancelled'].includes(job.state)) break;
    }
  }
  const order = provider.callsOf('createSnapshot').map((c) => provider.vms.get(c.vm!)?.name ?? c.vm);
  t.equal(order[0], 'busy');
  t.same(new Set(order.slice(1, 4)), new Set(['g1', 'g2', 'g3']), `the group's three start next (order: ${order.join(', ')})`);
  t.equal(order[4], 'later', 'the later create waits for the group');
  t.equal((await engine.getSnapshotGroup(group.id)).state, 'succeeded');
});
