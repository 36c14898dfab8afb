// The store on a real full filesystem (a small tmpfs, root only; a failed mount fails the test):
// a refused write throws StoreFullError and changes nothing — including an UPDATE … RETURNING,
// whose refused commit better-sqlite3's get() would silently drop — the write probe says 'full',
// each refusal is reported once, and freeing space is all it takes.
import path from 'node:path';
import t from 'tap';
import { isStoreFull, openStore, type StoreWriteFailure } from '../../src/store/index.ts';
import { smallDisk } from '../e2e/small-disk.ts';

const AT = '2025-01-01T00:00:00.000Z';

t.test('full disk: writes refused as StoreFullError, nothing changed, probe says full; space back → writes work', async (t) => {
  const disk = smallDisk(t, 4);
  const store = openStore(path.join(disk.dir, 'snapvisor.db'));
  t.teardown(() => store.close());
  const failures: StoreWriteFailure[] = [];
  store.onWriteFailure((reason) => failures.push(reason));
  const lab = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: true });
  await store.vms.apply({
    inserts: [{ id: 'v1', targetId: lab.id, providerVmId: 'p-v1', name: 'web01', powerState: 'running', rawPowerState: 'running', consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null }],
    updates: [],
    gone: [],
  });
  const job = { kind: 'snapshot.create' as const, targetId: lab.id, vmId: 'v1', snapshotId: null, params: { name: 's', description: '', mode: 'memory' as const }, maxAttempts: 3, requestedBy: 'ops', createdAt: AT };
  await store.jobs.submit({ ...job, id: 'j1' });
  t.ok(await store.jobs.tryClaim('j1', 'ticket', AT, 1));
  t.equal(await store.writeProbe(), null, 'writable');

  disk.fill();
  t.equal(await store.writeProbe(), 'full', 'the probe commits a write, so it sees the full disk');
  const finished = store.jobs.finish('j1', 'ticket', { state: 'succeeded', result: { message: 'ok' }, error: null, at: AT });
  await t.rejects(finished, { code: 'SNAPVISOR_ERR_INSUFFICIENT_STORAGE' }, 'UPDATE … RETURNING refused, not a row that was never written');
  await finished.catch((err: unknown) => t.ok(isStoreFull(err)));
  t.equal((await store.jobs.get('j1'))?.state, 'running', 'nothing changed');
  await t.rejects(store.jobs.submit({ ...job, id: 'j2' }), { code: 'SNAPVISOR_ERR_INSUFFICIENT_STORAGE' }, 'a transaction refused too');
  t.equal(await store.jobs.get('j2'), null);
  t.equal(await store.healthy(), true, 'reads still work');
  t.same(failures.filter((f) => f !== 'full'), []);
  t.equal(failures.length, 3, 'each refused write reported once (probe, statement, transaction)');

  disk.free();
  t.equal(await store.writeProbe(), null, 'writable again');
  t.match(await store.jobs.finish('j1', 'ticket', { state: 'succeeded', result: { message: 'ok' }, error: null, at: AT }), { state: 'succeeded' });
  t.equal((await store.jobs.get('j1'))?.state, 'succeeded');
});
