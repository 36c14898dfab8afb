/** Drift detection's reads and state on PostgreSQL (the interface, row mapping and shared SQL: src/store/drift.ts). */
import {
  DELETING_JOBS,
  DRIFT_SNAPSHOTS,
  DRIFT_STATE,
  driftStateValues,
  SAVE_DRIFT_STATE,
  toDeletingJob,
  toDriftSnapshot,
  toDriftState,
  type DriftRepo,
} from '../drift.ts';
import type { Row } from '../rows.ts';
import type { PgDb } from './db.ts';

export function createPgDriftRepo(db: PgDb): DriftRepo {
  return {
    async snapshotsOfTarget(targetId, goneSince) {
      // A row's values come in the SELECT's column order, as SQLite's raw() arrays.
      return (await db.all<Row>(DRIFT_SNAPSHOTS, [targetId, goneSince])).map((r) => toDriftSnapshot(Object.values(r)));
    },
    async deletingJobs(targetId) {
      return (await db.all<Row>(DELETING_JOBS, [targetId])).map(toDeletingJob);
    },
    async lastState(target) {
      const r = await db.get<Row>(DRIFT_STATE, [target]);
      return r ? toDriftState(r) : null;
    },
    async saveState(target, state) {
      await db.run(SAVE_DRIFT_STATE, driftStateValues(target, state));
    },
  };
}
