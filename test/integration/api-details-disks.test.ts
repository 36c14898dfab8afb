// A snapshot's provider details and a VM's disks on the wire: `details` (object or null) in the flat
// and tree views and on one snapshot, `disks` on a VM; a details change moves the listing's ETag.
import t from 'tap';
import { build } from './api-helper.ts';

const DISKS = [
  { slot: 'os', path: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/osdisk1', chainDepth: 0 },
  { slot: 'lun0', path: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/data1' },
];

t.test('details and disks in the API', async (t) => {
  const h = await build(t, {
    provider: {
      vms: [
        { name: 'az1', disks: DISKS, snapshots: [{ name: 'set', details: { diskSnapshots: ['os', 'data'], missingDisks: [] } }, { name: 'plain' }] },
        { name: 'bare' },
      ],
    },
  });
  const vm = await h.vmId('az1');
  const one = await h.call({ method: 'GET', url: `/v1/vms/${vm}`, as: 'reader' });
  t.equal(one.statusCode, 200);
  t.same(one.json().disks, DISKS);
  const bare = await h.call({ method: 'GET', url: `/v1/vms/${await h.vmId('bare')}`, as: 'reader' });
  t.same(bare.json().disks, [], 'a VM whose disks are unknown: []');
  const page = await h.call({ method: 'GET', url: '/v1/vms?name=az', as: 'reader' });
  t.same(page.json().items[0].disks, DISKS, 'in the list too');

  const flat = await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots`, as: 'reader' });
  const byName = new Map<string, { id: string; details: unknown }>(flat.json().items.map((s: { name: string; id: string; details: unknown }) => [s.name, s]));
  t.same(byName.get('set')!.details, { diskSnapshots: ['os', 'data'], missingDisks: [] });
  t.equal(byName.get('plain')!.details, null);
  const single = await h.call({ method: 'GET', url: `/v1/snapshots/${byName.get('set')!.id}`, as: 'reader' });
  t.same(single.json().details, { diskSnapshots: ['os', 'data'], missingDisks: [] });
  const tree = await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots?view=tree`, as: 'reader' });
  t.same(tree.json().roots[0].details, { diskSnapshots: ['os', 'data'], missingDisks: [] }, 'the tree view projects details too');
  t.equal(tree.json().roots[0].children[0].details, null);

  // A details change on the provider moves the ETag after a sync.
  const etag = tree.headers.etag as string;
  const fake = [...h.provider.vms.values()].find((v) => v.name === 'az1')!;
  fake.snapshots[0]!.details = { diskSnapshots: ['os'], missingDisks: ['data'] };
  const synced = await h.call({ method: 'POST', url: '/v1/targets/lab/sync', as: 'admin' });
  t.ok(synced.statusCode < 300, `sync answered ${synced.statusCode}`);
  const after = await h.call({ method: 'GET', url: `/v1/vms/${vm}/snapshots?view=tree`, as: 'reader', headers: { 'if-none-match': etag } });
  t.equal(after.statusCode, 200, 'stale ETag → full answer');
  t.same(after.json().roots[0].details, { diskSnapshots: ['os'], missingDisks: ['data'] });

  const spec = await h.call({ method: 'GET', url: '/openapi.json', as: 'reader' });
  const text = spec.body;
  t.match(text, /"details"/, 'documented in the OpenAPI document');
  t.match(text, /"disks"/);
});
