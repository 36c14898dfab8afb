/**
 * Snapvisor's vocabulary. Pure types, no I/O: the store persists these, the engine moves them
 * between states, the API serialises them.
 */
import type { CreateOptionValue, DiskInfo, JobCheckpoint, PowerState, ProviderErrorKind, ProviderKind, SnapshotMode } from '../../providers/contract.ts';

export type { CreateOptionValue, DiskInfo, PowerState, ProviderErrorKind, ProviderKind, SnapshotMode };

/** ISO 8601 UTC timestamp string. */
export type Iso = string;

export interface Target {
  id: string;
  name: string;
  kind: ProviderKind;
  /** Part of the bundled demo configuration. */
  demo: boolean;
  healthy: boolean | null;
  healthMessage: string | null;
  version: string | null;
  checkedAt: Iso | null;
}

export interface Vm {
  id: string;
  targetId: string;
  providerVmId: string;
  name: string;
  powerState: PowerState;
  rawPowerState: string;
  consolidationNeeded: boolean;
  /**
   * The VM's disks as the last inventory reported them (slot, path, chain depth); null while the
   * provider never reported any. `per: 'disk'` create budgets are keyed by them.
   */
  disks: DiskInfo[] | null;
  firstSeenAt: Iso;
  lastSeenAt: Iso;
  /** Set when the VM vanished from the hypervisor; rows are never silently dropped. */
  goneAt: Iso | null;
}

/** snapvisor: made by a Snapvisor job. external: found on the hypervisor. */
export type SnapshotOwner = 'snapvisor' | 'external';

/** present: on the hypervisor. gone: vanished or deleted (kept for history). */
export type SnapshotState = 'present' | 'gone';

export interface Snapshot {
  id: string;
  vmId: string;
  providerRef: string;
  /** Snapvisor id of the parent; null for a root. */
  parentId: string | null;
  name: string;
  description: string;
  mode: SnapshotMode | null;
  owner: SnapshotOwner;
  /** The job that made it, for owner snapvisor. */
  jobId: string | null;
  /** The policy whose run made it (null: a user's own request, or made outside Snapvisor). */
  policyId: string | null;
  state: SnapshotState;
  current: boolean;
  /** Usable now; false while the provider still copies it (a cloud disk snapshot). */
  ready: boolean;
  /** 0..100 while not ready, when the provider can tell; null otherwise. */
  progress: number | null;
  /** What the provider knows beyond the common fields (ProviderSnapshot.details), as-is; null when it told nothing. */
  details: Record<string, unknown> | null;
  createdAt: Iso | null;
  firstSeenAt: Iso;
  deletedAt: Iso | null;
}

export const JOB_KINDS = ['snapshot.create', 'snapshot.revert', 'snapshot.delete', 'snapshot.delete-all', 'vm.consolidate'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];
/** The job has ended: nothing changes it any more but a retry (which is a new job). */
export const isFinal = (job: { state: JobState }): boolean => FINAL_JOB_STATES.includes(job.state);

export interface JobError {
  kind: ProviderErrorKind | 'cancelled';
  message: string;
  /** Native code from the hypervisor, when safe to show. */
  code?: string;
}

export interface CreateParams {
  name: string;
  description: string;
  mode: SnapshotMode;
  /** Provider-specific create options the request gave (capabilities.createOptions); absent: none. */
  options?: Record<string, CreateOptionValue>;
}
export interface RevertParams {
  snapshotId: string;
}
export interface DeleteParams {
  snapshotId: string;
  children: boolean;
}
export interface ConsolidateParams {
  dryRun: boolean;
}
/** Every snapshot the VM has when the job runs (not when it was submitted). */
export interface DeleteAllParams {
  all: true;
}
export type JobParams = CreateParams | RevertParams | DeleteParams | DeleteAllParams | ConsolidateParams;

export interface JobResult {
  snapshotId?: string;
  snapshotIds?: string[];
  message?: string;
}

export interface Job {
  id: string;
  kind: JobKind;
  state: JobState;
  targetId: string;
  vmId: string;
  snapshotId: string | null;
  params: JobParams;
  progress: number;
  progressMessage: string | null;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: Iso | null;
  cancelRequested: boolean;
  result: JobResult | null;
  error: JobError | null;
  /** Token name of the caller. */
  requestedBy: string;
  createdAt: Iso;
  startedAt: Iso | null;
  finishedAt: Iso | null;
  /** What its attempts recorded through CallContext.checkpoint (an offline create's power state before); null when nothing. */
  checkpoint: JobCheckpoint | null;
  /** The snapshot group that made it (src/domain/group.ts); null for every other job. */
  groupId: string | null;
  /** The policy and the run that submitted it (null for a user's request). */
  policyId: string | null;
  policyRunId: string | null;
}

export interface AuditEntry {
  id: number;
  at: Iso;
  principal: string;
  method: string;
  path: string;
  statusCode: number;
  jobId: string | null;
  detail: string | null;
}
