/**
 * The REST API's shapes as the console reads them: only the fields it uses. The console is a plain
 * client of the public API (the OpenAPI document at /openapi.json is the full contract).
 */
export type Scope = 'read' | 'write' | 'admin';
export type SnapshotMode = 'memory' | 'crash' | 'quiesced' | 'offline';
export const SNAPSHOT_MODES: readonly SnapshotMode[] = ['memory', 'crash', 'quiesced', 'offline'];
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export interface Whoami {
  name: string;
  scopes: Scope[];
}

export type ModeSupport = { supported: true; revertRefused?: string } | { supported: false; reason: string };

export interface Capabilities {
  modes: Record<SnapshotMode, ModeSupport>;
  revert: boolean;
  deleteChildren: boolean;
  deleteAll: boolean;
  consolidate: boolean;
  descriptions: boolean;
  limits: { maxNameBytes: number };
}

export interface Target {
  name: string;
  kind: string;
  demo: boolean;
  health: { reachable: boolean; version?: string | null; authOk?: boolean | null; message?: string | null; checkedAt: string | null };
  capabilities: Capabilities;
  vmCount: number;
}

export interface Vm {
  id: string;
  targetName: string;
  name: string;
  powerState: string;
  rawPowerState: string;
  consolidationNeeded: boolean;
  snapshotCount: number;
  chainDepth: number;
  currentSnapshotId: string | null;
  goneAt: string | null;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export interface Snapshot {
  id: string;
  vmId: string;
  parentId: string | null;
  name: string;
  description: string;
  mode: SnapshotMode | null;
  owner: 'snapvisor' | 'external';
  /** The job that made it (null: made outside Snapvisor). */
  jobId: string | null;
  policyId: string | null;
  state: 'present' | 'gone';
  current: boolean;
  ready: boolean;
  progress: number | null;
  createdAt: string | null;
  firstSeenAt: string;
}

export interface SnapshotNode extends Snapshot {
  depth: number;
  children: SnapshotNode[];
}

export interface SnapshotTree {
  vmId: string;
  roots: SnapshotNode[];
  currentSnapshotId: string | null;
  maxDepth: number;
}

export interface Job {
  id: string;
  kind: string;
  state: JobState;
  progress: number;
  progressMessage: string | null;
  attempts: number;
  result: { snapshotId?: string; snapshotIds?: string[]; message?: string } | null;
  error: { kind: string; message: string; code?: string } | null;
  vmId: string;
  snapshotId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  requestedBy: string;
  groupId: string | null;
  policyId: string | null;
  policyRunId: string | null;
}

/** RFC 9457 problem details, as every API error is. */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail: string;
  code?: string;
  requestId?: string;
  errors?: Array<{ path: string; message: string }>;
}

export interface Selector {
  vms?: string[];
  targets?: string[];
  namePattern?: string;
}

export interface Retention {
  keepLast: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  maxAge?: string;
}

export type PolicyRunKind = 'snapshot' | 'consolidate';

export interface Policy {
  id: string;
  name: string;
  selector: Selector;
  schedule: string;
  timezone: string;
  mode: SnapshotMode;
  retention: Retention;
  maxChainDepth: number | null;
  consolidationSchedule: string | null;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export type PlanAction = 'create' | 'delete' | 'consolidate' | 'skip';
export const PLAN_ACTIONS: readonly PlanAction[] = ['create', 'delete', 'consolidate', 'skip'];

export interface PlanStep {
  vmId: string;
  vmName: string;
  targetName: string;
  action: PlanAction;
  snapshotId?: string;
  snapshotName?: string;
  reason: string;
}

export interface PolicyPlan {
  policyId: string;
  kind: PolicyRunKind;
  at: string;
  steps: PlanStep[];
}

export interface PolicyRun {
  id: string;
  policyId: string;
  kind: PolicyRunKind;
  trigger: 'schedule' | 'catch-up' | 'manual';
  scheduledFor: string | null;
  startedAt: string;
  finishedAt: string | null;
  state: 'running' | 'succeeded' | 'partial' | 'failed' | 'skipped';
  jobIds: string[];
  message: string | null;
}

export interface GroupMember {
  vmId: string;
  vmName: string;
  target: string;
  jobId: string;
  state: JobState;
  snapshotId: string | null;
  startedAt: string | null;
  error: { kind: string; message: string; code?: string } | null;
}

export interface SnapshotGroup {
  id: string;
  name: string;
  description: string;
  mode: SnapshotMode;
  selector: Selector | null;
  state: 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled' | 'deleted';
  createdAt: string;
  requestedBy: string;
  finishedAt: string | null;
  spreadMs: number | null;
  members: GroupMember[];
}
