/** What drift detection reads (one target at a time) and the last drift fingerprint per target (migration 012). */
import type { DeletingJob, DriftSnapshot } from '../domain/drift.ts';
import type { Iso, JobKind, JobState, SnapshotOwner, SnapshotState } from '../domain/types.ts';
import type { Db } from './db.ts';
import { bool, json, str, strOrNull, type Row } from './rows.ts';

export interface DriftState {
  fingerprint: string;
  summary: Record<string, unknown>;
  checkedAt: Iso;
}

export interface DriftRepo {
  /** Present snapshots of the target's VMs, and those gone at or after `goneSince` (in no particular order). */
  snapshotsOfTarget(targetId: string, goneSince: Iso): Promise<DriftSnapshot[]>;
  /** Jobs of the target that may have removed snapshots (delete, delete-all, consolidate) and that started. */
  deletingJobs(targetId: string): Promise<DeletingJob[]>;
  lastState(target: string): Promise<DriftState | null>;
  saveState(target: string, state: DriftState): Promise<void>;
}

/** Columns in the order toDriftSnapshot reads them (SQLite reads these rows as arrays: 200,000 snapshots are cheaper so). */
export const DRIFT_SNAPSHOTS = `SELECT s.id, s.vm_id, s.parent_id, s.name, s.owner, s.state, s.is_current, s.created_at, s.deleted_at
             FROM vms v JOIN snapshots s ON s.vm_id = v.id
            WHERE v.target_id = ? AND (s.state = 'present' OR s.deleted_at >= ?)`;

export const toDriftSnapshot = (r: readonly unknown[]): DriftSnapshot => ({
  id: str(r[0]),
  vmId: str(r[1]),
  parentId: strOrNull(r[2]),
  name: str(r[3]),
  owner: str(r[4]) as SnapshotOwner,
  state: str(r[5]) as SnapshotState,
  current: bool(r[6]),
  createdAt: strOrNull(r[7]),
  deletedAt: strOrNull(r[8]),
});

export const DELETING_JOBS = `SELECT id, kind, state, vm_id, snapshot_id, params, started_at FROM jobs
            WHERE target_id = ? AND kind IN ('snapshot.delete', 'snapshot.delete-all', 'vm.consolidate') AND started_at IS NOT NULL`;

export const toDeletingJob = (r: Row): DeletingJob => {
  const params = json<{ children?: boolean; dryRun?: boolean }>(r.params) ?? {};
  return {
    id: str(r.id),
    kind: str(r.kind) as JobKind,
    state: str(r.state) as JobState,
    vmId: str(r.vm_id),
    snapshotId: strOrNull(r.snapshot_id),
    children: params.children === true,
    dryRun: params.dryRun === true,
    startedAt: str(r.started_at),
  };
};

export const DRIFT_STATE = 'SELECT * FROM drift_state WHERE target_name = ?';
export const toDriftState = (r: Row): DriftState => ({ fingerprint: str(r.fingerprint), summary: json<Record<string, unknown>>(r.summary) ?? {}, checkedAt: str(r.checked_at) });

/** An upsert on the primary key: valid, and one statement, on both databases. */
export const SAVE_DRIFT_STATE = `INSERT INTO drift_state (target_name, fingerprint, summary, checked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(target_name) DO UPDATE SET fingerprint = excluded.fingerprint, summary = excluded.summary, checked_at = excluded.checked_at`;
export const driftStateValues = (target: string, state: DriftState): unknown[] => [target, state.fingerprint, JSON.stringify(state.summary), state.checkedAt];

export function createDriftRepo(db: Db): DriftRepo {
  return {
    async snapshotsOfTarget(targetId, goneSince) {
      return (db.stmt(DRIFT_SNAPSHOTS).raw().all(targetId, goneSince) as unknown[][]).map(toDriftSnapshot);
    },
    async deletingJobs(targetId) {
      return (db.stmt(DELETING_JOBS).all(targetId) as Row[]).map(toDeletingJob);
    },
    async lastState(target) {
      const r = db.stmt(DRIFT_STATE).get(target) as Row | undefined;
      return r ? toDriftState(r) : null;
    },
    async saveState(target, state) {
      db.stmt(SAVE_DRIFT_STATE).run(...driftStateValues(target, state));
    },
  };
}
