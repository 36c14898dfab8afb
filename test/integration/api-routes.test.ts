import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { build } from './api-helper.ts';

const json = (res: { body: string }) => JSON.parse(res.body);

t.test('targets: list, one with capabilities, sync needs admin', async (t) => {
  const h = await build(t);
  const list = await h.call({ url: '/v1/targets', as: 'reader' });
  t.equal(list.statusCode, 200);
  t.same(json(list).items.map((x: { name: string }) => x.name), ['lab']);

  const one = json(await h.call({ url: '/v1/targets/lab', as: 'reader' }));
  t.equal(one.kind, 'virtualbox');
  t.equal(one.vmCount, 3);
  t.equal(one.health.reachable, true);
  t.same(one.capabilities.modes.crash.supported, false);
  t.match(one.capabilities.modes.crash.reason, /VirtualBox/);

  t.equal((await h.call({ method: 'POST', url: '/v1/targets/lab/sync', as: 'writer' })).statusCode, 403);
  h.provider.addVm({ name: 'late-arrival' });
  const synced = await h.call({ method: 'POST', url: '/v1/targets/lab/sync', as: 'admin' });
  t.equal(synced.statusCode, 200);
  t.equal(json(synced).vmCount, 4);
});

t.test('vms: list with filters and paging, one VM', async (t) => {
  const h = await build(t);
  const all = json(await h.call({ url: '/v1/vms', as: 'reader' }));
  t.same(all.items.map((v: { name: string }) => v.name).sort(), ['build', 'db-1', 'web-1']);
  t.equal(all.next, null);

  const filtered = json(await h.call({ url: '/v1/vms?target=lab&name=DB', as: 'reader' }));
  t.same(filtered.items.map((v: { name: string }) => v.name), ['db-1']);
  t.equal(filtered.items[0].snapshotCount, 2);
  t.equal(filtered.items[0].chainDepth, 2);
  t.equal(filtered.items[0].targetName, 'lab');

  const page1 = json(await h.call({ url: '/v1/vms?limit=2', as: 'reader' }));
  t.equal(page1.items.length, 2);
  t.type(page1.next, 'string');
  const page2 = json(await h.call({ url: `/v1/vms?limit=2&cursor=${encodeURIComponent(page1.next)}`, as: 'reader' }));
  t.equal(page2.items.length, 1);
  t.equal(page2.next, null);

  const id = await h.vmId('db-1');
  const vm = json(await h.call({ url: `/v1/vms/${id}`, as: 'reader' }));
  t.equal(vm.id, id);
  t.equal(vm.powerState, 'off');
  t.type(vm.currentSnapshotId, 'string');
});

t.test('snapshot lifecycle: create → 202 + Location → job succeeds → listed flat and as tree → revert → delete', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');

  const created = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'before upgrade', description: 'pre-2.0', mode: 'memory' } });
  t.equal(created.statusCode, 202);
  const job = json(created);
  t.equal(created.headers.location, `/v1/jobs/${job.id}`);
  t.equal(job.kind, 'snapshot.create');
  t.equal(job.requestedBy, 'writer');
  t.ok(['queued', 'running', 'succeeded'].includes(job.state));

  const done = await h.call({ url: `/v1/jobs/${job.id}?wait=10`, as: 'reader' });
  t.equal(done.statusCode, 200);
  // GET /v1/jobs/:id ignores wait; follow with the engine until final, then read it back over HTTP.
  await h.engine.waitForJob(job.id, 10_000);
  const finished = json(await h.call({ url: `/v1/jobs/${job.id}`, as: 'reader' }));
  t.equal(finished.state, 'succeeded');
  t.equal(finished.progress, 100);
  const snapshotId = finished.result.snapshotId;
  t.type(snapshotId, 'string');
  t.equal(h.provider.callsOf('createSnapshot').length, 1);
  t.equal(h.provider.callsOf('createSnapshot')[0]?.spec?.name, 'before upgrade');

  const flat = json(await h.call({ url: `/v1/vms/${vmId}/snapshots`, as: 'reader' }));
  t.equal(flat.view, 'flat');
  t.same(flat.items.map((s: { id: string; current: boolean; mode: string; owner: string }) => [s.id, s.current, s.mode, s.owner]), [[snapshotId, true, 'memory', 'snapvisor']]);

  const one = json(await h.call({ url: `/v1/snapshots/${snapshotId}`, as: 'reader' }));
  t.equal(one.name, 'before upgrade');
  t.equal(one.description, 'pre-2.0');
  t.equal(one.jobId, job.id);

  // A second snapshot under the first, made with ?wait= so the answer is the finished job.
  const second = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots?wait=10`, payload: { name: 'after', mode: 'offline' } });
  t.equal(second.statusCode, 200);
  t.equal(json(second).state, 'succeeded');
  const secondId = json(second).result.snapshotId;

  const tree = json(await h.call({ url: `/v1/vms/${vmId}/snapshots?view=tree`, as: 'reader' }));
  t.equal(tree.view, 'tree');
  t.equal(tree.currentSnapshotId, secondId);
  t.equal(tree.maxDepth, 2);
  t.equal(tree.roots.length, 1);
  t.equal(tree.roots[0].id, snapshotId);
  t.equal(tree.roots[0].current, false);
  t.equal(tree.roots[0].children[0].id, secondId);
  t.equal(tree.roots[0].children[0].current, true);
  t.equal(tree.roots[0].children[0].depth, 2);

  const reverted = await h.call({ method: 'POST', url: `/v1/snapshots/${snapshotId}/revert?wait=10` });
  t.equal(reverted.statusCode, 200);
  t.equal(json(reverted).kind, 'snapshot.revert');
  t.equal(json(reverted).state, 'succeeded');
  t.equal(json(await h.call({ url: `/v1/snapshots/${snapshotId}`, as: 'reader' })).current, true);

  const deleted = await h.call({ method: 'DELETE', url: `/v1/snapshots/${secondId}` });
  t.equal(deleted.statusCode, 202);
  t.equal(deleted.headers.location, `/v1/jobs/${json(deleted).id}`);
  t.equal((await h.engine.waitForJob(json(deleted).id, 10_000)).state, 'succeeded');
  const after = json(await h.call({ url: `/v1/vms/${vmId}/snapshots`, as: 'reader' }));
  t.same(after.items.map((s: { id: string }) => s.id), [snapshotId]);
  const withGone = json(await h.call({ url: `/v1/vms/${vmId}/snapshots?includeGone=true`, as: 'reader' }));
  t.same(withGone.items.map((s: { id: string; state: string }) => [s.id, s.state]).sort(), [[snapshotId, 'present'], [secondId, 'gone']].sort());
});

t.test('delete with ?children=true removes the subtree', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('db-1');
  const [root] = json(await h.call({ url: `/v1/vms/${vmId}/snapshots?view=tree`, as: 'reader' })).roots;
  const res = await h.call({ method: 'DELETE', url: `/v1/snapshots/${root.id}?children=true&wait=10` });
  t.equal(res.statusCode, 200);
  t.equal(json(res).state, 'succeeded');
  t.equal(h.provider.callsOf('deleteSnapshot')[0]?.children, true);
  t.same(json(await h.call({ url: `/v1/vms/${vmId}/snapshots`, as: 'reader' })).items, []);
});

t.test('consolidate is a job', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('db-1');
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/consolidate?wait=10`, payload: {} });
  t.equal(res.statusCode, 200);
  t.equal(json(res).kind, 'vm.consolidate');
  t.equal(json(res).state, 'succeeded');
  const noBody = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/consolidate` });
  t.equal(noBody.statusCode, 202);
});

t.test('?wait= answers 202 when the job is not final in time', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');
  const gate = h.provider.hold('createSnapshot');
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots?wait=1`, payload: { name: 'slow', mode: 'memory' } });
  t.equal(res.statusCode, 202);
  t.ok(['queued', 'running'].includes(json(res).state));
  gate.release();
  t.equal((await h.engine.waitForJob(json(res).id, 10_000)).state, 'succeeded');
});

t.test('a failed job carries its error kind; the job still answered 202', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');
  h.provider.failNext('createSnapshot', new ProviderError('virtualbox', 'conflict', 'the VM is locked by another session'));
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots?wait=10`, payload: { name: 'x', mode: 'memory' } });
  t.equal(res.statusCode, 200);
  const job = json(res);
  t.equal(job.state, 'failed');
  t.equal(job.error.kind, 'conflict');
});

t.test('jobs: list with filters, get, cancel (own, other principal needs admin, finished is 409)', async (t) => {
  const h = await build(t);
  const web = await h.vmId('web-1');
  const db = await h.vmId('db-1');
  const gate = h.provider.hold('createSnapshot');
  const first = json(await h.call({ method: 'POST', url: `/v1/vms/${web}/snapshots`, payload: { name: 'a', mode: 'memory' } }));
  await gate.reached;
  // One mutating job per VM: this one waits in the queue behind the held one.
  const second = json(await h.call({ method: 'POST', url: `/v1/vms/${web}/snapshots`, payload: { name: 'b', mode: 'memory' }, as: 'other' }));
  const third = json(await h.call({ method: 'POST', url: `/v1/vms/${db}/consolidate`, payload: { dryRun: true } }));
  await h.engine.waitForJob(third.id, 10_000);

  const all = json(await h.call({ url: '/v1/jobs', as: 'reader' }));
  t.same(all.items.map((j: { id: string }) => j.id).sort(), [first.id, second.id, third.id].sort());
  const byVm = json(await h.call({ url: `/v1/jobs?vm=${web}`, as: 'reader' }));
  t.same(byVm.items.map((j: { id: string }) => j.id).sort(), [first.id, second.id].sort());
  const byKind = json(await h.call({ url: '/v1/jobs?kind=vm.consolidate', as: 'reader' }));
  t.same(byKind.items.map((j: { id: string }) => j.id), [third.id]);
  const queued = json(await h.call({ url: '/v1/jobs?state=queued', as: 'reader' }));
  t.same(queued.items.map((j: { id: string }) => j.id), [second.id]);
  const limited = json(await h.call({ url: '/v1/jobs?limit=1', as: 'reader' }));
  t.equal(limited.items.length, 1);
  t.type(limited.next, 'string');

  // writer may not cancel other's job; admin may.
  const refused = await h.call({ method: 'POST', url: `/v1/jobs/${second.id}/cancel`, as: 'writer' });
  t.equal(refused.statusCode, 403);
  t.match(json(refused).detail, /admin/);
  const byOwner = await h.call({ method: 'POST', url: `/v1/jobs/${second.id}/cancel`, as: 'other' });
  t.equal(byOwner.statusCode, 200);
  t.equal(json(byOwner).state, 'cancelled');

  const running = await h.call({ method: 'POST', url: `/v1/jobs/${first.id}/cancel`, as: 'admin' });
  t.equal(running.statusCode, 200);
  gate.release();
  const final = await h.engine.waitForJob(first.id, 10_000);
  t.equal(final.state, 'cancelled');

  const again = await h.call({ method: 'POST', url: `/v1/jobs/${first.id}/cancel`, as: 'writer' });
  t.equal(again.statusCode, 409);
  t.equal(json(again).code, 'SNAPVISOR_ERR_JOB_FINISHED');
  t.equal(again.headers['content-type'], 'application/problem+json');
});

t.test('Idempotency-Key: a replay returns the same job and status, one job stored; reuse with another body is 422', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');
  const request = { method: 'POST' as const, url: `/v1/vms/${vmId}/snapshots`, headers: { 'idempotency-key': 'key-123' } };
  const first = await h.call({ ...request, payload: { name: 'once', mode: 'memory' } });
  t.equal(first.statusCode, 202);
  // Same body, keys in another order: still the same request.
  const replay = await h.call({ ...request, payload: { mode: 'memory', name: 'once' } });
  t.equal(replay.statusCode, 202);
  t.equal(json(replay).id, json(first).id);
  t.equal(replay.headers.location, first.headers.location);
  t.equal(replay.headers['idempotent-replayed'], 'true');
  await h.engine.waitForJob(json(first).id, 10_000);
  t.equal((await h.engine.listJobs({ limit: 100 })).items.length, 1);
  t.equal(h.provider.callsOf('createSnapshot').length, 1);

  const before = await h.snapshotOfStore();
  const reused = await h.call({ ...request, payload: { name: 'twice', mode: 'memory' } });
  t.equal(reused.statusCode, 422);
  t.equal(json(reused).code, 'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED');
  t.equal(json(reused).type, 'urn:snapvisor:problem:invalid');
  const otherVm = await h.call({ ...request, url: `/v1/vms/${await h.vmId('build')}/snapshots`, payload: { name: 'once', mode: 'memory' } });
  t.equal(otherVm.statusCode, 422);
  t.same(await h.snapshotOfStore(), before);

  const badKey = await h.call({ ...request, headers: { 'idempotency-key': 'has space' }, payload: { name: 'x', mode: 'memory' } });
  t.equal(badKey.statusCode, 400);
  t.equal(json(badKey).code, 'SNAPVISOR_ERR_INVALID_IDEMPOTENCY_KEY');
});

t.test('audit: accepted and refused (403, 422) mutations are recorded with principal, status and job', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');
  const ok = json(await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'a', mode: 'memory' } }));
  await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'a', mode: 'crash' } });
  // Failed authentication: counted in /metrics, never audited (api-audit.test.ts).
  await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'a', mode: 'memory' }, as: null });
  await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'a', mode: 'memory' }, as: 'reader' });
  await h.call({ url: `/v1/vms/${vmId}`, as: 'reader' });
  const entries = await new Promise<Awaited<ReturnType<typeof h.store.audit.list>>>((resolve) => {
    const poll = async () => {
      const list = await h.store.audit.list({ limit: 10 });
      if (list.length >= 3) resolve(list);
      else setImmediate(poll);
    };
    void poll();
  });
  const rows = entries.map((e) => [e.principal, e.method, e.path, e.statusCode, e.jobId, e.detail]).reverse();
  t.same(rows, [
    ['writer', 'POST', `/v1/vms/${vmId}/snapshots`, 202, ok.id, null],
    ['writer', 'POST', `/v1/vms/${vmId}/snapshots`, 422, null, 'SNAPVISOR_ERR_MODE_UNSUPPORTED'],
    ['reader', 'POST', `/v1/vms/${vmId}/snapshots`, 403, null, 'SNAPVISOR_ERR_FORBIDDEN'],
  ]);
});
