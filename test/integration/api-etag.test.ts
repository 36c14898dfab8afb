// A VM's snapshot listing carries an ETag tied to the VM's snapshot revision: unchanged → 304 and
// the cached body; any change (a job, a snapshot made outside Snapvisor) → a new ETag and new body.
import t from 'tap';
import { build } from './api-helper.ts';

t.test('ETag and If-None-Match on the snapshot listing', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('db-1');
  const url = `/v1/vms/${vm}/snapshots?view=tree`;
  const first = await h.call({ method: 'GET', url, as: 'reader' });
  t.equal(first.statusCode, 200);
  const etag = first.headers.etag as string;
  t.match(etag, /^"[^"]+"$/, 'strong ETag');
  t.equal(first.headers['cache-control'], 'private, no-cache');
  t.equal(first.json().roots[0].name, 'base');

  const again = await h.call({ method: 'GET', url, as: 'reader' });
  t.equal(again.body, first.body, 'same body from the cache');
  t.equal(again.headers['content-type'], 'application/json; charset=utf-8');

  const notModified = await h.call({ method: 'GET', url, as: 'reader', headers: { 'if-none-match': etag } });
  t.equal(notModified.statusCode, 304);
  t.equal(notModified.body, '');

  const flat = await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots`, as: 'reader' });
  t.not(flat.headers.etag, etag, 'each view has its own ETag');
  t.ok(Array.isArray(flat.json().items));

  // A job changes the tree: the old ETag no longer matches and the body shows the new snapshot.
  const created = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots?wait=10`, payload: { name: 'after', mode: 'offline' } });
  t.equal(created.json().state, 'succeeded');
  const changed = await h.call({ method: 'GET', url, as: 'reader', headers: { 'if-none-match': etag } });
  t.equal(changed.statusCode, 200, 'stale ETag → full answer');
  t.not(changed.headers.etag, etag);
  const names: string[] = [];
  const walk = (nodes: Array<{ name: string; children: unknown[] }>) => nodes.forEach((n) => (names.push(n.name), walk(n.children as typeof nodes)));
  walk(changed.json().roots);
  t.same(names.sort(), ['after', 'base', 'patched']);

  // A snapshot made outside Snapvisor shows up after a sync, again with a new ETag.
  const before = changed.headers.etag;
  h.provider.addExternalSnapshot((await h.engine.getVm(vm)).providerVmId, 'by hand');
  const synced = await h.call({ method: 'POST', url: '/v1/targets/lab/sync', as: 'admin' });
  t.equal(synced.statusCode, 200);
  const afterSync = await h.call({ method: 'GET', url, as: 'reader' });
  t.not(afterSync.headers.etag, before);
  t.match(afterSync.body, /by hand/);

  const unknown = await h.call({ method: 'GET', url: '/v1/vms/00000000-0000-4000-8000-000000000000/snapshots', as: 'reader' });
  t.equal(unknown.statusCode, 404);
  t.notOk(unknown.headers.etag, 'no ETag on an error');
});

t.test('the hand-serialised tree has exactly the schema fields, like the flat view', async (t) => {
  const { SNAPSHOT_FIELDS } = await import('../../src/api/schemas/snapshots.ts');
  const h = await build(t);
  const vm = await h.vmId('db-1');
  const tree = (await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots?view=tree`, as: 'reader' })).json();
  const flat = (await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots`, as: 'reader' })).json();
  t.same(Object.keys(tree).sort(), ['currentSnapshotId', 'maxDepth', 'roots', 'view', 'vmId']);
  const nodes: Array<Record<string, unknown>> = [];
  const walk = (list: Array<Record<string, unknown>>) => list.forEach((n) => (nodes.push(n), walk(n.children as typeof list)));
  walk(tree.roots);
  t.equal(nodes.length, flat.items.length);
  for (const node of nodes) {
    t.same(Object.keys(node).sort(), [...SNAPSHOT_FIELDS, 'depth', 'children'].sort(), `fields of ${String(node.name)}`);
    const { depth: _depth, children: _children, ...fields } = node;
    t.same(fields, flat.items.find((s: { id: string }) => s.id === node.id), 'same values as the schema-serialised flat view');
  }
});
