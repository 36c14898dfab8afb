/**
 * Policies: what a scheduled run snapshots, keeps and consolidates. Pure types, no I/O; the
 * planners (src/domain/retention-plan.ts, src/domain/policy-plan.ts) are functions of
 * (trees, policies, now) and the scheduler (src/engine/scheduler.ts) only fires them.
 */
import type { Iso, SnapshotMode } from './types.ts';

/**
 * Which VMs a policy (or a snapshot group) covers. Every given field must match (AND); inside
 * `vms` and `targets` any entry matches (OR). An empty selector matches nothing, never everything.
 * VM labels/tags are not read from any provider's inventory yet, so there is no `labels` field:
 * a selector that could never match would be a silent downgrade.
 */
export interface Selector {
  /** Snapvisor VM ids. */
  vms?: string[];
  /** Target names. */
  targets?: string[];
  /** Glob over the VM name (picomatch: `*`, `?`, `[a-z]`, `{a,b}`), case-sensitive. */
  namePattern?: string;
}

/**
 * Grandfather-father-son retention. A snapshot is kept when any rule keeps it; `maxAge` (ISO 8601
 * duration, e.g. `P30D`) removes what is older unless `keepLast` keeps it: never fewer than
 * keepLast. Hourly/daily/weekly (ISO week, Monday)/monthly buckets are the policy's time zone's
 * calendar; the newest snapshot in each of the newest N buckets is kept.
 */
export interface RetentionRule {
  keepLast: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  maxAge?: string;
}

export interface Policy {
  id: string;
  name: string;
  selector: Selector;
  /** 5-field cron (minute hour day-of-month month day-of-week), evaluated in `timezone`. */
  schedule: string;
  /** IANA time zone name, e.g. Europe/Berlin. */
  timezone: string;
  mode: SnapshotMode;
  retention: RetentionRule;
  /** A chain deeper than this needs consolidation (null: no limit). */
  maxChainDepth: number | null;
  /** 5-field cron for consolidation runs in `timezone` (null: consolidate only when asked). */
  consolidationSchedule: string | null;
  enabled: boolean;
  createdAt: Iso;
  updatedAt: Iso;
}

/** A snapshot as the planners see it. `policyId` is the policy whose run made it (null otherwise). */
export interface PlannedSnapshot {
  id: string;
  vmId: string;
  parentId: string | null;
  name: string;
  owner: 'snapvisor' | 'external';
  policyId: string | null;
  current: boolean;
  createdAt: Iso | null;
}

export type PolicyRunKind = 'snapshot' | 'consolidate';
/** schedule: a cron slot; catch-up: the one run for slots missed while the daemon was down; manual: POST …/run. */
export type PolicyRunTrigger = 'schedule' | 'catch-up' | 'manual';
/** skipped: the slot came while the previous run of the same policy and kind was still going. */
export type PolicyRunState = 'running' | 'succeeded' | 'partial' | 'failed' | 'skipped';

/** One run of a policy: a persisted record first, then its jobs (each visible in /v1/jobs). */
export interface PolicyRun {
  id: string;
  policyId: string;
  kind: PolicyRunKind;
  trigger: PolicyRunTrigger;
  /** The cron slot it ran for (null for manual runs). */
  scheduledFor: Iso | null;
  startedAt: Iso;
  finishedAt: Iso | null;
  state: PolicyRunState;
  jobIds: string[];
  message: string | null;
}
