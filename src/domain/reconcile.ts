/**
 * Snapshot reconcile: what the store must change so a VM's rows match the hypervisor's flat list.
 * Pure: the caller passes the stored rows, the provider's answer, the jobs Snapvisor knows (by the
 * markers found), the time and an id generator. Rows are never deleted: a snapshot that vanished is
 * marked gone (kept for history), one that comes back is revived.
 */
import { jobIdFromMarker, type ProviderSnapshot } from '../../providers/contract.ts';
import { jsonEqual } from './json-equal.ts';
import { wholePercent } from './percent.ts';
import type { Iso, Snapshot, SnapshotMode } from './types.ts';

export type SnapshotFields = Pick<
  Snapshot,
  'parentId' | 'name' | 'description' | 'mode' | 'owner' | 'jobId' | 'policyId' | 'state' | 'current' | 'ready' | 'progress' | 'details' | 'createdAt' | 'deletedAt'
>;

export interface SnapshotChange {
  before: Snapshot;
  after: Snapshot;
  /** Only the fields that differ. */
  set: Partial<SnapshotFields>;
}

export interface SnapshotPlan {
  inserts: Snapshot[];
  updates: SnapshotChange[];
  /** Rows that vanished from the hypervisor (state → gone, deletedAt → now). */
  gone: SnapshotChange[];
}

export interface KnownJob {
  /** The mode the job asked for; recorded when the hypervisor cannot tell the mode itself. */
  mode: SnapshotMode | null;
  /** The policy whose run submitted the job (null or absent: a user's request). */
  policyId?: string | null;
}

export interface SnapshotReconcileInput {
  vmId: string;
  /** Every stored row of the VM, present and gone. */
  stored: readonly Snapshot[];
  observed: readonly ProviderSnapshot[];
  /** Jobs Snapvisor knows, by id; a marker naming one of them makes the snapshot `owner: snapvisor`. */
  knownJobs: ReadonlyMap<string, KnownJob>;
  now: Iso;
  newId: () => string;
}

export function reconcileSnapshots(input: SnapshotReconcileInput): SnapshotPlan {
  const { vmId, stored, knownJobs, now, newId } = input;
  const observed = dedupeBy(input.observed, (s) => s.providerRef);
  const storedByRef = new Map(stored.map((s) => [s.providerRef, s]));
  const idByRef = new Map<string, string>();
  for (const o of observed) idByRef.set(o.providerRef, storedByRef.get(o.providerRef)?.id ?? newId());

  const plan: SnapshotPlan = { inserts: [], updates: [], gone: [] };
  for (const o of observed) {
    const id = idByRef.get(o.providerRef)!;
    const markerJobId = jobIdFromMarker(o.marker);
    const job = markerJobId === null ? undefined : knownJobs.get(markerJobId);
    const parentId = o.parentRef === null ? null : (idByRef.get(o.parentRef) ?? null);
    const existing = storedByRef.get(o.providerRef);
    if (!existing) {
      plan.inserts.push({
        id,
        vmId,
        providerRef: o.providerRef,
        parentId,
        name: o.name,
        description: o.description,
        mode: o.mode ?? job?.mode ?? null,
        owner: job ? 'snapvisor' : 'external',
        jobId: job ? markerJobId : null,
        policyId: job?.policyId ?? null,
        state: 'present',
        current: o.current,
        ready: o.ready,
        progress: o.ready ? null : wholePercent(o.progress),
        details: o.details ?? null,
        createdAt: o.createdAt,
        firstSeenAt: now,
        deletedAt: null,
      });
      continue;
    }
    const want: Partial<SnapshotFields> = {
      parentId,
      name: o.name,
      description: o.description,
      current: o.current,
      ready: o.ready,
      progress: o.ready ? null : wholePercent(o.progress),
      details: o.details ?? null,
      state: 'present',
      deletedAt: null,
    };
    if (existing.mode === null && (o.mode ?? job?.mode ?? null) !== null) want.mode = o.mode ?? job!.mode;
    if (existing.createdAt === null && o.createdAt !== null) want.createdAt = o.createdAt;
    if (job && existing.owner === 'external') {
      want.owner = 'snapvisor';
      want.jobId = markerJobId;
      want.policyId = job.policyId ?? null;
    }
    const change = diff(existing, want);
    if (change) plan.updates.push(change);
  }

  const seen = new Set(observed.map((o) => o.providerRef));
  for (const s of stored) {
    if (s.state !== 'present' || seen.has(s.providerRef)) continue;
    plan.gone.push(diff(s, { state: 'gone', current: false, deletedAt: now })!);
  }
  plan.inserts = parentsFirst(plan.inserts);
  return plan;
}

function diff(before: Snapshot, want: Partial<SnapshotFields>): SnapshotChange | null {
  const set: Partial<SnapshotFields> = {};
  let changed = false;
  for (const key of Object.keys(want) as Array<keyof SnapshotFields>) {
    if (key === 'details' ? !jsonEqual(before.details, want.details) : before[key] !== want[key]) {
      (set as Record<string, unknown>)[key] = want[key];
      changed = true;
    }
  }
  return changed ? { before, after: { ...before, ...set }, set } : null;
}

function dedupeBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => {
    const k = key(t);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Orders new rows so a parent comes before its children (stable otherwise). */
function parentsFirst(rows: Snapshot[]): Snapshot[] {
  const ids = new Set(rows.map((r) => r.id));
  const out: Snapshot[] = [];
  const placed = new Set<string>();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const place = (r: Snapshot, guard: Set<string>) => {
    if (placed.has(r.id) || guard.has(r.id)) return;
    guard.add(r.id);
    if (r.parentId !== null && ids.has(r.parentId)) place(byId.get(r.parentId)!, guard);
    placed.add(r.id);
    out.push(r);
  };
  for (const r of rows) place(r, new Set());
  return out;
}
