/**
 * Which of one VM's snapshots a policy keeps and which it deletes. Pure: `now` is a parameter.
 *
 * Semantics follow restic's `forget` (https://restic.readthedocs.io/en/stable/060_forget.html):
 * every keep-rule is applied on its own to the snapshots sorted newest first and a snapshot is
 * kept when any rule keeps it; `keepDaily: n` means "for the last n days which have one or more
 * snapshots, keep the newest one of each day" (days without a snapshot do not count). Proxmox's
 * prune differs (each rule there skips what an earlier rule kept); we do not do that. Unlike
 * restic, buckets are the calendar of the policy's time zone, not the host's, and `maxAge` is a
 * limit rather than a keep-rule (see RetentionRule in ./policy.ts).
 */
import { DateTime, Duration } from 'luxon';
import { bucketLabel, localWallMs, monthKey, weekKey } from './local-calendar.ts';
import type { PlannedSnapshot, Policy, RetentionRule } from './policy.ts';

export interface RetentionPlan {
  keep: Array<{ id: string; reasons: string[] }>;
  delete: Array<{ id: string; reason: string }>;
  /** Snapshots the policy does not own: never kept or deleted by it. */
  untouched: Array<{ id: string; reason: string }>;
}

export interface RetentionInput {
  policy: Pick<Policy, 'id' | 'retention' | 'timezone'>;
  /** One VM's present snapshots. */
  snapshots: readonly PlannedSnapshot[];
  now: Date;
}

export const UNTOUCHED_EXTERNAL = 'external';
export const UNTOUCHED_MANUAL = 'manual (not made by a policy)';
export const UNTOUCHED_OTHER_POLICY = 'another policy';

/** Why a snapshot is not the policy's to keep or delete, or null when the policy owns it. */
export function notOwnedReason(snapshot: PlannedSnapshot, policyId: string): string | null {
  if (snapshot.owner !== 'snapvisor') return UNTOUCHED_EXTERNAL;
  if (snapshot.policyId === null) return UNTOUCHED_MANUAL;
  if (snapshot.policyId !== policyId) return UNTOUCHED_OTHER_POLICY;
  return null;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * Scratch space for one call, reused by the next (the planner is synchronous): per owned, dated
 * snapshot its instant and wall-clock instant, indexed by position in `dated`. The planner sees a
 * fleet's million snapshots per run (bench/policy-planner.ts), so no object per snapshot.
 */
let msOf = new Float64Array(256);
let wallOf = new Float64Array(256);

function reserve(n: number): void {
  if (msOf.length >= n) return;
  const size = Math.max(n, msOf.length * 2);
  msOf = new Float64Array(size);
  wallOf = new Float64Array(size);
}

type KeyOf = (wallMs: number) => number;
const hourOf: KeyOf = (w) => Math.floor(w / HOUR_MS);
const dayOf: KeyOf = (w) => Math.floor(w / DAY_MS);
const weekOf: KeyOf = (w) => weekKey(Math.floor(w / DAY_MS));
const monthOf: KeyOf = (w) => monthKey(Math.floor(w / DAY_MS));

export function planRetention(input: RetentionInput): RetentionPlan {
  return retention(input, true);
}

/**
 * Only the deletions (the other lists empty): what a run needs. Same walk as planRetention, minus
 * the reason strings and the untouched list, which are most of its allocations on a fleet.
 */
export function retentionDeletes(input: RetentionInput): RetentionPlan['delete'] {
  return retention(input, false).delete;
}

const KEPT: string[] = [];

function retention(input: RetentionInput, explain: boolean): RetentionPlan {
  const { policy, now } = input;
  const rule = policy.retention;
  const nowMs = now.getTime();
  const plan: RetentionPlan = { keep: [], delete: [], untouched: [] };

  reserve(input.snapshots.length);
  const dated: PlannedSnapshot[] = [];
  for (const snapshot of input.snapshots) {
    const notOwned = notOwnedReason(snapshot, policy.id);
    if (notOwned !== null) {
      if (explain) plan.untouched.push({ id: snapshot.id, reason: notOwned });
      continue;
    }
    const ms = snapshot.createdAt === null ? Number.NaN : Date.parse(snapshot.createdAt);
    if (Number.isNaN(ms)) {
      // Without a date no rule can place it; deleting it could delete the newest one.
      if (explain) plan.keep.push({ id: snapshot.id, reasons: ['unknown age'] });
      continue;
    }
    msOf[dated.length] = ms;
    wallOf[dated.length] = localWallMs(policy.timezone, ms);
    dated.push(snapshot);
  }
  const n = dated.length;
  // Newest first; one dated after `now` (the clock went back) sorts as the newest it is.
  const order: number[] = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => msOf[b]! - msOf[a]! || (dated[a]!.id < dated[b]!.id ? -1 : dated[a]!.id > dated[b]!.id ? 1 : 0));

  // reasons[k]: why the k-th newest is kept (null: not kept).
  const reasons: Array<string[] | null> = new Array<string[] | null>(n).fill(null);
  const keepFor = (k: number, reason: string) => {
    if (!explain) {
      reasons[k] = KEPT;
      return;
    }
    const r = reasons[k];
    if (r === null || r === undefined) reasons[k] = [reason];
    else r.push(reason);
  };

  const keepLast = Math.max(1, rule.keepLast);
  for (let k = 0; k < n && k < keepLast; k++) keepFor(k, explain ? `last ${k + 1} of ${keepLast}` : '');

  const cutoff = maxAgeCutoff(rule, policy.timezone, nowMs) ?? -Infinity;

  /**
   * restic's bucket walk: newest first, the first snapshot of each new bucket is that bucket's
   * newest; stop after `count` buckets. A Set, not "differs from the previous key": a DST change
   * must not make one bucket count twice.
   */
  const keepBuckets = (count: number | undefined, keyOf: KeyOf, word: string, kind: Parameters<typeof bucketLabel>[0]) => {
    let left = count ?? 0;
    if (left <= 0) return;
    const seen = new Set<number>();
    for (let k = 0; k < n; k++) {
      const i = order[k]!;
      const key = keyOf(wallOf[i]!);
      if (seen.has(key)) continue;
      seen.add(key);
      // The bucket counts even when maxAge then drops its snapshot: maxAge limits, it never widens.
      if (msOf[i]! >= cutoff) keepFor(k, explain ? `${word} ${bucketLabel(kind, wallOf[i]!)}` : '');
      if (--left === 0) return;
    }
  };
  keepBuckets(rule.keepHourly, hourOf, 'hourly', 'hour');
  keepBuckets(rule.keepDaily, dayOf, 'daily', 'day');
  keepBuckets(rule.keepWeekly, weekOf, 'weekly', 'week');
  keepBuckets(rule.keepMonthly, monthOf, 'monthly', 'month');

  for (let k = 0; k < n; k++) {
    const r = reasons[k];
    if (explain && r !== null && r !== undefined) plan.keep.push({ id: dated[order[k]!]!.id, reasons: r });
  }
  // Oldest first: a run cut short leaves the newest ones.
  const tooOldReason = `older than maxAge ${rule.maxAge ?? ''}`.trimEnd();
  for (let k = n - 1; k >= 0; k--) {
    if (reasons[k] !== null) continue;
    const i = order[k]!;
    plan.delete.push({ id: dated[i]!.id, reason: msOf[i]! < cutoff ? tooOldReason : 'not kept by any rule' });
  }
  return plan;
}

/** Instants before this are older than maxAge (calendar units in the policy's zone), or null. */
function maxAgeCutoff(rule: RetentionRule, timezone: string, nowMs: number): number | null {
  if (rule.maxAge === undefined) return null;
  // One policy plans every VM at the same now: luxon once, not once per VM.
  if (lastCutoff !== null && lastCutoff.maxAge === rule.maxAge && lastCutoff.timezone === timezone && lastCutoff.nowMs === nowMs) return lastCutoff.cutoff;
  const duration = Duration.fromISO(rule.maxAge);
  const cutoff = duration.isValid ? DateTime.fromMillis(nowMs, { zone: timezone }).minus(duration).toMillis() : null;
  lastCutoff = { maxAge: rule.maxAge, timezone, nowMs, cutoff };
  return cutoff;
}

let lastCutoff: { maxAge: string; timezone: string; nowMs: number; cutoff: number | null } | null = null;

const COUNTS = ['keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly'] as const;

/** Why a retention rule is refused ("field: why"), or null. The API turns it into a 400. */
export function retentionProblem(rule: RetentionRule): string | null {
  if (!Number.isSafeInteger(rule.keepLast) || rule.keepLast < 1) return 'keepLast: must be an integer ≥ 1';
  for (const field of COUNTS) {
    const value = rule[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) return `${field}: must be an integer ≥ 0`;
  }
  if (rule.maxAge !== undefined) {
    const duration = Duration.fromISO(rule.maxAge);
    if (!duration.isValid) return `maxAge: ${JSON.stringify(rule.maxAge)} is not an ISO 8601 duration (e.g. P30D, PT12H)`;
    const values = Object.values(duration.toObject());
    if (values.some((v) => v < 0) || !values.some((v) => v > 0)) return 'maxAge: must be a positive duration';
  }
  return null;
}
