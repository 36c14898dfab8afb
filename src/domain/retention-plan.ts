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
import { bucketKeys, bucketLabel, localWallMs, type BucketKeys } from './local-calendar.ts';
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

const GFS = [
  { field: 'keepHourly', bucket: 'hour', word: 'hourly' },
  { field: 'keepDaily', bucket: 'day', word: 'daily' },
  { field: 'keepWeekly', bucket: 'week', word: 'weekly' },
  { field: 'keepMonthly', bucket: 'month', word: 'monthly' },
] as const;

interface Dated {
  snapshot: PlannedSnapshot;
  ms: number;
  wallMs: number;
  keys: BucketKeys;
  reasons: string[];
  tooOld: boolean;
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const { policy, now } = input;
  const rule = policy.retention;
  const nowMs = now.getTime();
  const plan: RetentionPlan = { keep: [], delete: [], untouched: [] };

  const dated: Dated[] = [];
  for (const snapshot of input.snapshots) {
    const notOwned = notOwnedReason(snapshot, policy.id);
    if (notOwned !== null) {
      plan.untouched.push({ id: snapshot.id, reason: notOwned });
      continue;
    }
    const ms = snapshot.createdAt === null ? Number.NaN : Date.parse(snapshot.createdAt);
    if (Number.isNaN(ms)) {
      // Without a date no rule can place it; deleting it could delete the newest one.
      plan.keep.push({ id: snapshot.id, reasons: ['unknown age'] });
      continue;
    }
    const wallMs = localWallMs(policy.timezone, ms);
    dated.push({ snapshot, ms, wallMs, keys: bucketKeys(wallMs), reasons: [], tooOld: false });
  }
  // Newest first; one dated after `now` (the clock went back) sorts as the newest it is.
  dated.sort((a, b) => b.ms - a.ms || (a.snapshot.id < b.snapshot.id ? -1 : a.snapshot.id > b.snapshot.id ? 1 : 0));

  const keepLast = Math.max(1, rule.keepLast);
  for (let i = 0; i < dated.length && i < keepLast; i++) dated[i]!.reasons.push(`last ${i + 1} of ${keepLast}`);

  const cutoff = maxAgeCutoff(rule, policy.timezone, nowMs);
  if (cutoff !== null) {
    for (const d of dated) d.tooOld = d.ms < cutoff;
  }

  for (const { field, bucket, word } of GFS) {
    let left = rule[field] ?? 0;
    if (left <= 0) continue;
    const seen = new Set<number>();
    for (const d of dated) {
      const key = d.keys[bucket];
      if (seen.has(key)) continue;
      seen.add(key);
      // The bucket counts even when maxAge then drops its snapshot: maxAge limits, it never widens.
      if (!d.tooOld) d.reasons.push(`${word} ${bucketLabel(bucket, d.wallMs)}`);
      if (--left === 0) break;
    }
  }

  const deleted: Dated[] = [];
  for (const d of dated) {
    if (d.reasons.length > 0) plan.keep.push({ id: d.snapshot.id, reasons: d.reasons });
    else deleted.push(d);
  }
  // Oldest first: a run cut short leaves the newest ones.
  for (let i = deleted.length - 1; i >= 0; i--) {
    const d = deleted[i]!;
    plan.delete.push({ id: d.snapshot.id, reason: d.tooOld ? `older than maxAge ${rule.maxAge ?? ''}`.trimEnd() : 'not kept by any rule' });
  }
  return plan;
}

/** Instants before this are older than maxAge (calendar units in the policy's zone), or null. */
function maxAgeCutoff(rule: RetentionRule, timezone: string, nowMs: number): number | null {
  if (rule.maxAge === undefined) return null;
  const duration = Duration.fromISO(rule.maxAge);
  if (!duration.isValid) return null;
  return DateTime.fromMillis(nowMs, { zone: timezone }).minus(duration).toMillis();
}

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
