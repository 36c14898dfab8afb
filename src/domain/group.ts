/**
 * Snapshot groups (the unified snapshot): one request that snapshots many VMs across targets and
 * providers. Pure types, no I/O. A group's state is never stored as truth: it is derived from its
 * members' create jobs (src/domain/group-state.ts), so a crash between two writes cannot leave it wrong.
 */
import type { Selector } from './policy.ts';
import type { Iso, JobError, JobState, SnapshotMode } from './types.ts';

/**
 * running: some member's create job is queued or running. succeeded: every member made its
 * snapshot. partial: some failed, the others made theirs (each made snapshot stays and is listed;
 * retry completes the group). failed / cancelled: no member made one. deleted: DELETE was asked
 * (a delete job per member snapshot); the record stays.
 */
export const GROUP_STATES = ['running', 'succeeded', 'partial', 'failed', 'cancelled', 'deleted'] as const;
export type GroupState = (typeof GROUP_STATES)[number];
/** The states a finished group can be in (what `snapvisor_snapshot_groups_total{result}` counts). */
export const GROUP_RESULTS = ['succeeded', 'partial', 'failed', 'cancelled'] as const;
export type GroupResult = (typeof GROUP_RESULTS)[number];

export interface GroupMember {
  vmId: string;
  vmName: string;
  /** Target name. */
  target: string;
  /** The member's current create job (a retry replaces it with the new one). */
  jobId: string;
  /** The state of that job. */
  state: JobState;
  /** The snapshot it made, once made. */
  snapshotId: string | null;
  /** When the create job actually started running (its first claim), null before. */
  startedAt: Iso | null;
  error: JobError | null;
}

export interface SnapshotGroup {
  id: string;
  name: string;
  description: string;
  mode: SnapshotMode;
  /** The selector the members were chosen by (null when the request listed the VMs). */
  selector: Selector | null;
  state: GroupState;
  createdAt: Iso;
  requestedBy: string;
  /** When the group last reached a final state (null while running). */
  finishedAt: Iso | null;
  /** Last member start − first member start, in milliseconds (null until a member started). */
  spreadMs: number | null;
  members: GroupMember[];
}
