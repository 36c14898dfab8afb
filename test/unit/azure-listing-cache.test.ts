/**
 * The Azure adapter's resource-group listing cache: reused within its TTL, one load at a time per
 * group, and this adapter's own writes applied at once — also when they land while a listing is on
 * the wire (else a create made during a listing would vanish from the kept list for a whole TTL).
 */
import t from 'tap';
import type { Snapshot } from '@azure/arm-compute';
import { createListingCache, type GroupListing } from '../../providers/azure/listing-cache.ts';

const snap = (rg: string, name: string, tags: Record<string, string> = {}): Snapshot =>
  ({ id: `/subscriptions/s/resourceGroups/${rg}/providers/Microsoft.Compute/snapshots/${name}`, name, location: 'westeurope', tags }) as Snapshot;

function loader(listing: () => GroupListing) {
  let loads = 0;
  let release: (() => void) | null = null;
  let hold = false;
  return {
    get loads() {
      return loads;
    },
    holdNext() {
      hold = true;
    },
    release() {
      release?.();
    },
    load: async (): Promise<GroupListing> => {
      loads++;
      const value = listing();
      if (hold) {
        hold = false;
        await new Promise<void>((r) => (release = r));
      }
      return value;
    },
  };
}

const names = (l: GroupListing) => l.snapshots.map((s) => s.name).sort();

t.test('reused within the TTL, listed again after it; ttl 0 lists every time', async (t) => {
  let now = 1000;
  const cache = createListingCache(10_000, () => now);
  const l = loader(() => ({ snapshots: [snap('rg', 'a')], disks: [] }));
  t.same(names(await cache.get('rg', l.load)), ['a']);
  await cache.get('RG', l.load);
  t.equal(l.loads, 1, 'group names compare case-insensitively, as ARM does');
  now += 10_000;
  await cache.get('rg', l.load);
  t.equal(l.loads, 2);
  const none = createListingCache(0);
  const l0 = loader(() => ({ snapshots: [], disks: [] }));
  await none.get('rg', l0.load);
  await none.get('rg', l0.load);
  t.equal(l0.loads, 2);
});

t.test('concurrent callers share one load', async (t) => {
  const cache = createListingCache(10_000);
  const l = loader(() => ({ snapshots: [snap('rg', 'a')], disks: [] }));
  const all = await Promise.all(Array.from({ length: 20 }, () => cache.get('rg', l.load)));
  t.equal(l.loads, 1);
  t.ok(all.every((x) => names(x).join() === 'a'));
});

t.test("the adapter's writes show at once, also those made while a listing is on the wire", async (t) => {
  const cache = createListingCache(10_000);
  const l = loader(() => ({ snapshots: [snap('rg', 'a'), snap('rg', 'b')], disks: [] }));
  await cache.get('rg', l.load);
  cache.snapshot(snap('rg', 'c').id!, snap('rg', 'c'));
  cache.snapshot(snap('rg', 'a').id!, null);
  cache.snapshot(snap('rg', 'b').id!, snap('rg', 'b', { parent: 'x' }));
  const kept = await cache.get('rg', l.load);
  t.same(names(kept), ['b', 'c']);
  t.same(kept.snapshots.find((s) => s.name === 'b')?.tags, { parent: 'x' });
  t.equal(l.loads, 1);

  // A listing that was read before a create landed must not hide the create.
  const racing = createListingCache(10_000);
  const slow = loader(() => ({ snapshots: [snap('rg', 'old')], disks: [] }));
  slow.holdNext();
  const pending = racing.get('rg', slow.load);
  await new Promise((r) => setImmediate(r));
  racing.snapshot(snap('rg', 'new').id!, snap('rg', 'new'));
  racing.snapshot(snap('other', 'elsewhere').id!, snap('other', 'elsewhere'));
  slow.release();
  t.same(names(await pending), ['new', 'old'], "a write during the load is replayed onto its answer (only its own group's)");
  t.same(names(await racing.get('rg', slow.load)), ['new', 'old'], 'and kept');
});

t.test('invalidate: the next call lists again; a listing that raced an invalidation is used once, not kept', async (t) => {
  const cache = createListingCache(10_000);
  const l = loader(() => ({ snapshots: [], disks: [] }));
  await cache.get('rg', l.load);
  cache.invalidate();
  await cache.get('rg', l.load);
  t.equal(l.loads, 2);
  cache.invalidate();
  l.holdNext();
  const pending = cache.get('rg', l.load);
  await new Promise((r) => setImmediate(r));
  cache.invalidate();
  l.release();
  await pending;
  await cache.get('rg', l.load);
  t.equal(l.loads, 4, 'the raced listing was not kept');
});

t.test('a failed load is not kept and does not block the next one', async (t) => {
  const cache = createListingCache(10_000);
  await t.rejects(cache.get('rg', async () => Promise.reject(new Error('boom'))), /boom/);
  const l = loader(() => ({ snapshots: [snap('rg', 'a')], disks: [] }));
  t.same(names(await cache.get('rg', l.load)), ['a']);
});
