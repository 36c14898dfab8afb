/**
 * listingAfter: the store's view after a job, without a second listing. Hand-made cases for each
 * rule, then random job sequences on the in-memory provider where, after every step, the rows built
 * from the prediction must equal the rows a full listing would give.
 */
import t from 'tap';
import { markerForJob, type ProviderSnapshot } from '../../providers/contract.ts';
import { listingAfter, type SucceededChange } from '../../src/domain/listing-after.ts';
import { reconcileSnapshots, type KnownJob } from '../../src/domain/reconcile.ts';
import type { Snapshot } from '../../src/domain/types.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { createFakeProvider } from '../fixtures/fake-provider.ts';

const NOW = '2025-02-01T00:00:00.000Z';

let ids = 0;
/** Ids unique across the whole file: rows of one test are reconciled with several generators. */
function idGen() {
  return () => `id-${++ids}`;
}

/** Rows after reconciling `observed` into `stored` (the plan applied in memory, as the store does). */
function apply(stored: Snapshot[], observed: readonly ProviderSnapshot[], newId: () => string, knownJobs: ReadonlyMap<string, KnownJob> = new Map()): Snapshot[] {
  const plan = reconcileSnapshots({ vmId: 'vm', stored, observed, knownJobs, now: NOW, newId });
  const byId = new Map(stored.map((s) => [s.id, s]));
  for (const c of [...plan.updates, ...plan.gone]) byId.set(c.before.id, c.after);
  for (const s of plan.inserts) byId.set(s.id, s);
  return [...byId.values()];
}

/** A comparable picture of the present rows: ref → parent ref, and which one is current. */
function picture(rows: readonly Snapshot[]): { tree: Record<string, string | null>; current: string[] } {
  const present = rows.filter((r) => r.state === 'present');
  const refOf = new Map(present.map((r) => [r.id, r.providerRef]));
  const tree: Record<string, string | null> = {};
  for (const r of present) tree[r.providerRef] = r.parentId === null ? null : (refOf.get(r.parentId) ?? `?${r.parentId}`);
  return { tree, current: present.filter((r) => r.current).map((r) => r.providerRef).sort() };
}

const ps = (ref: string, parentRef: string | null, current = false): ProviderSnapshot => ({
  providerRef: ref,
  name: ref,
  description: '',
  parentRef,
  current,
  createdAt: null,
  mode: null,
  marker: null,
  ready: true,
});

/** Stored rows for a listing (first sync). */
function seeded(listing: ProviderSnapshot[], newId = idGen()): Snapshot[] {
  return apply([], listing, newId);
}

t.test('each rule', async (t) => {
  // a ─ b ─ c (current)
  //      └─ d
  const base = [ps('a', null), ps('b', 'a'), ps('c', 'b', true), ps('d', 'b')];
  const rows = seeded(base);
  const after = (change: SucceededChange) => picture(apply(rows, listingAfter(rows, change), idGen()));

  t.same(after({ kind: 'created', snapshot: ps('e', 'c', true) }), { tree: { a: null, b: 'a', c: 'b', d: 'b', e: 'c' }, current: ['e'] }, 'a new current snapshot takes the current flag');
  t.same(after({ kind: 'created', snapshot: ps('e', 'c', false) }), { tree: { a: null, b: 'a', c: 'b', d: 'b', e: 'c' }, current: ['c'] }, 'a new snapshot the provider does not call current leaves the flag');
  t.same(after({ kind: 'deleted', providerRef: 'c', children: false }), { tree: { a: null, b: 'a', d: 'b' }, current: ['b'] }, 'deleting the current snapshot makes its parent current');
  t.same(after({ kind: 'deleted', providerRef: 'b', children: false }), { tree: { a: null, c: 'a', d: 'a' }, current: ['c'] }, 'children move to the parent');
  t.same(after({ kind: 'deleted', providerRef: 'b', children: true }), { tree: { a: null }, current: ['a'] }, 'a subtree with the current snapshot: its parent becomes current');
  t.same(after({ kind: 'deleted', providerRef: 'a', children: true }), { tree: {}, current: [] }, 'everything deleted');
  t.same(after({ kind: 'deleted', providerRef: 'zz', children: false }), picture(rows), 'deleting an unknown ref changes nothing');
  t.same(after({ kind: 'reverted', providerRef: 'd' }), { tree: { a: null, b: 'a', c: 'b', d: 'b' }, current: ['d'] }, 'revert moves the current flag');

  const gone = apply(rows, listingAfter(rows, { kind: 'deleted', providerRef: 'c', children: false }), idGen());
  t.equal(gone.find((r) => r.providerRef === 'c')?.state, 'gone', 'a deleted row is kept, marked gone');
  t.ok(gone.find((r) => r.providerRef === 'c')?.deletedAt, 'with the time');
});

t.test('a created snapshot carrying a known job marker is recorded as Snapvisor\'s, with the job\'s mode', async (t) => {
  const rows = seeded([ps('a', null, true)]);
  const made = { ...ps('n', 'a', true), marker: markerForJob('job-1') };
  const out = apply(rows, listingAfter(rows, { kind: 'created', snapshot: made }), idGen(), new Map([['job-1', { mode: 'crash' }]]));
  const n = out.find((r) => r.providerRef === 'n');
  t.match(n, { owner: 'snapvisor', jobId: 'job-1', mode: 'crash', current: true });
  // Marker round trip: a later prediction keeps the owner (the row's job is its marker).
  const again = apply(out, listingAfter(out, { kind: 'reverted', providerRef: 'a' }), idGen(), new Map([['job-1', { mode: 'crash' }]]));
  t.match(again.find((r) => r.providerRef === 'n'), { owner: 'snapvisor', jobId: 'job-1', current: false });
});

t.test('random job sequences: prediction equals a full listing after every step', async (t) => {
  // mulberry32: small, seeded, and its low bits are not periodic (an LCG's `% 4` cycles every 4 calls).
  let seed = 20261123;
  const rand = (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) % n;
  };
  const ctx = testContext();
  for (let run = 0; run < 40; run++) {
    const fake = createFakeProvider('p', { vms: [{ id: 'vm', name: 'vm' }] });
    const newId = idGen();
    let rows: Snapshot[] = [];
    let made = 0;
    for (let step = 0; step < 30; step++) {
      const present = fake.snapshotsOf('vm');
      const op = present.length === 0 ? 0 : rand(4);
      let change: SucceededChange;
      let what: string;
      if (op === 0) {
        const name = `s${++made}`;
        const snap = await fake.createSnapshot('vm', { name, description: '', mode: 'memory', marker: markerForJob(`j${made}`) }, ctx);
        change = { kind: 'created', snapshot: snap };
        what = `create ${name}`;
      } else if (op === 1) {
        const s = present[rand(present.length)]!;
        await fake.revertSnapshot!('vm', s.providerRef, ctx);
        change = { kind: 'reverted', providerRef: s.providerRef };
        what = `revert ${s.providerRef}`;
      } else {
        const s = present[rand(present.length)]!;
        const children = op === 3;
        // The in-memory provider, like VirtualBox, refuses to delete one snapshot with two children.
        if (!children && present.filter((c) => c.parentRef === s.providerRef).length > 1) continue;
        await fake.deleteSnapshot('vm', s.providerRef, { children }, ctx);
        change = { kind: 'deleted', providerRef: s.providerRef, children };
        what = `delete ${s.providerRef}${children ? ' with children' : ''}`;
      }
      const predicted = apply(rows, listingAfter(rows, change), newId);
      const listed = apply(rows, fake.snapshotsOf('vm'), newId);
      if (JSON.stringify(picture(predicted)) !== JSON.stringify(picture(listed))) {
        t.same(picture(predicted), picture(listed), `run ${run}, step ${step}: ${what}`);
        return;
      }
      rows = predicted;
    }
  }
  t.pass('40 runs × 30 steps matched');
});
