/**
 * The snapshots and disks of each resource group, as last listed, kept for `ttlMs`.
 *
 * Why: every snapshot call needs the VM's sets, their parents and the per-disk counts, and ARM can
 * only list a whole resource group. Without this, each create of 200 VMs sharing a group lists
 * every snapshot of all of them (thousands, paged), before and after — quadratic in the group's
 * size. With it, a group is listed at most once per `ttlMs` however many jobs run, concurrent loads
 * are shared, and this adapter's own writes (PUT, PATCH, DELETE answers) are applied to the kept
 * list at once, also when they land while a listing is on the wire.
 *
 * What may be stale, for at most `ttlMs`: changes made outside Snapvisor, and a write whose answer
 * never came (a dropped connection) — after which the caller invalidates. Neither can make a
 * duplicate: a create's member names are deterministic, and a re-PUT of a name is an update.
 */
import type { Disk, Snapshot } from '@azure/arm-compute';

export interface GroupListing {
  snapshots: Snapshot[];
  disks: Disk[];
}

type Op = { seq: number; kind: 'snapshot' | 'disk'; id: string; value: Snapshot | Disk | null };

interface Entry {
  at: number;
  snapshots: Map<string, Snapshot>;
  disks: Map<string, Disk>;
}

export interface ListingCache {
  /** The group's listing: kept if younger than the TTL, else loaded (one load at a time per group). */
  get(group: string, load: () => Promise<GroupListing>): Promise<GroupListing>;
  /** A snapshot as ARM answered a write (null: deleted). */
  snapshot(id: string, value: Snapshot | null): void;
  /** A disk as ARM answered a write (null: deleted). */
  disk(id: string, value: Disk | null): void;
  /** Forget every listing: the next call lists again (after a write whose outcome is unknown). */
  invalidate(): void;
}

const key = (s: string) => s.toLowerCase();
const groupOf = (id: string) => /\/resourceGroups\/([^/]+)\//i.exec(id)?.[1]?.toLowerCase() ?? '';

export function createListingCache(ttlMs: number, now: () => number = Date.now): ListingCache {
  const entries = new Map<string, Entry>();
  const loading = new Map<string, Promise<GroupListing>>();
  /** Writes since the oldest load still on the wire started: replayed onto what it returns. */
  let ops: Op[] = [];
  let seq = 0;
  let generation = 0;

  const apply = (entry: Entry, op: Op) => {
    const map = op.kind === 'snapshot' ? entry.snapshots : entry.disks;
    if (op.value === null) map.delete(op.id);
    else map.set(op.id, op.value as Snapshot & Disk);
  };
  const view = (e: Entry): GroupListing => ({ snapshots: [...e.snapshots.values()], disks: [...e.disks.values()] });

  function record(kind: Op['kind'], id: string, value: Snapshot | Disk | null): void {
    const op: Op = { seq: ++seq, kind, id: key(id), value };
    const entry = entries.get(groupOf(id));
    if (entry) apply(entry, op);
    if (loading.size > 0) ops.push(op);
  }

  return {
    async get(group, load) {
      const g = key(group);
      const entry = entries.get(g);
      if (entry && now() - entry.at < ttlMs) return view(entry);
      const running = loading.get(g);
      if (running) return running;
      const startSeq = seq;
      const startGeneration = generation;
      const started = now();
      const p = (async () => {
        try {
          const listed = await load();
          const fresh: Entry = {
            at: started,
            snapshots: new Map(listed.snapshots.map((s) => [key(s.id ?? ''), s])),
            disks: new Map(listed.disks.map((d) => [key(d.id ?? ''), d])),
          };
          for (const op of ops) if (op.seq > startSeq && groupOf(op.id) === g) apply(fresh, op);
          // An invalidation while listing: the answer may predate the unknown write; use it once.
          if (ttlMs > 0 && generation === startGeneration) entries.set(g, fresh);
          return view(fresh);
        } finally {
          loading.delete(g);
          if (loading.size === 0) ops = [];
        }
      })();
      loading.set(g, p);
      return p;
    },
    snapshot: (id, value) => record('snapshot', id, value),
    disk: (id, value) => record('disk', id, value),
    invalidate() {
      generation++;
      entries.clear();
    },
  };
}
