/**
 * DELETE /v1/vms/{vmId}/snapshots — every snapshot of one VM, as a job: the hypervisor's own
 * remove-all when the provider has one, else root by root with children; refused up front (422,
 * nothing stored changes) when the target cannot; 404 for an unknown VM; write scope; audited.
 */
import t from 'tap';
import { build, eventually } from './api-helper.ts';

const json = (res: { body: string }) => JSON.parse(res.body);

async function treeOf(h: Awaited<ReturnType<typeof build>>, vmId: string): Promise<string[]> {
  return json(await h.call({ url: `/v1/vms/${vmId}/snapshots`, as: 'reader' })).items.map((s: { name: string }) => s.name).sort();
}

t.test('without a native remove-all: each root is deleted with its children; other VMs keep theirs', async (t) => {
  const h = await build(t);
  const db = await h.vmId('db-1');
  const web = await h.vmId('web-1');
  // A second root on db-1 (made outside Snapvisor, as a sibling tree), and a snapshot on web-1.
  const vm = [...h.provider.vms.values()].find((v) => v.name === 'db-1')!;
  h.provider.addExternalSnapshot(vm.id, 'other-root', { parentRef: null });
  await h.engine.syncTarget('lab');
  t.equal(json(await h.call({ method: 'POST', url: `/v1/vms/${web}/snapshots?wait=10`, payload: { name: 'keep-me', mode: 'memory' } })).state, 'succeeded');
  t.same(await treeOf(h, db), ['base', 'other-root', 'patched']);

  const res = await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots?wait=10` });
  t.equal(res.statusCode, 200);
  const job = json(res);
  t.match(job, { kind: 'snapshot.delete-all', state: 'succeeded', vmId: db, result: { message: 'removed 3 snapshot(s)' } });
  t.equal(job.result.snapshotIds.length, 3);
  t.same(await treeOf(h, db), [], 'the VM has no snapshots');
  t.same(await treeOf(h, web), ['keep-me'], 'another VM keeps its snapshot');
  const calls = h.provider.callsOf('deleteSnapshot');
  t.equal(calls.length, 2, 'one delete per root');
  t.ok(calls.every((c) => c.children === true), 'each with its children');
  t.equal(h.provider.callsOf('deleteAllSnapshots').length, 0);

  const again = await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots?wait=10` });
  t.match(json(again), { state: 'succeeded', result: { message: 'removed 0 snapshot(s)' } }, 'a VM without snapshots: success, nothing removed');
});

t.test('with a native remove-all: one provider call; 202 + Location without ?wait; Idempotency-Key replays', async (t) => {
  const h = await build(t, { provider: { nativeDeleteAll: true } });
  const db = await h.vmId('db-1');
  const headers = { 'idempotency-key': 'remove-all-1' };
  const res = await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots`, headers });
  t.equal(res.statusCode, 202);
  const job = json(res);
  t.equal(res.headers.location, `/v1/jobs/${job.id}`);
  const done = await eventually(async () => {
    const j = json(await h.call({ url: `/v1/jobs/${job.id}`, as: 'reader' }));
    return j.state === 'succeeded' ? j : undefined;
  });
  t.equal(done.result.snapshotIds.length, 2);
  t.equal(h.provider.callsOf('deleteAllSnapshots').length, 1, 'the hypervisor’s own operation');
  t.equal(h.provider.callsOf('deleteSnapshot').length, 0);
  t.same(await treeOf(h, db), []);
  const replay = await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots`, headers });
  t.equal(json(replay).id, job.id, 'the same job');
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(h.provider.callsOf('deleteAllSnapshots').length, 1, 'not run twice');
});

t.test('refusals: a target that cannot (422, nothing changes), unknown VM (404), reader (403), a body (400)', async (t) => {
  const h = await build(t, { provider: { capabilities: { deleteAll: false } } });
  const db = await h.vmId('db-1');
  const before = await h.snapshotOfStore();
  const refused = await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots?wait=10` });
  t.equal(refused.statusCode, 422);
  t.match(refused.headers['content-type'], /application\/problem\+json/);
  t.match(json(refused), { code: 'SNAPVISOR_ERR_DELETE_ALL_UNSUPPORTED' });
  t.same(await h.snapshotOfStore(), before, 'no job, no call, no snapshot changed');
  t.equal((await h.call({ method: 'DELETE', url: `/v1/vms/00000000-0000-4000-8000-000000000000/snapshots` })).statusCode, 404);
  t.equal((await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots`, as: 'reader' })).statusCode, 403);
  t.equal((await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots`, payload: { all: true } })).statusCode, 400);
  t.same(await h.snapshotOfStore(), before);
});

t.test('audited like every mutation', async (t) => {
  const h = await build(t);
  const db = await h.vmId('db-1');
  const job = json(await h.call({ method: 'DELETE', url: `/v1/vms/${db}/snapshots` }));
  const entries = await eventually(async () => {
    const list = await h.store.audit.list({ limit: 5 });
    return list.length > 0 ? list : undefined;
  });
  t.match(entries[0], { principal: 'writer', method: 'DELETE', path: `/v1/vms/${db}/snapshots`, statusCode: 202, jobId: job.id });
});
