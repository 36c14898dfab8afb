/** Snapshots on PostgreSQL (the interface, row mapping and shared SQL: src/store/snapshots.ts). */
import type { Row } from '../rows.ts';
import {
  BUMP_SNAPSHOT_REVISION,
  INSERT_SNAPSHOT_HEAD,
  SNAPSHOT_BY_ID,
  SNAPSHOT_BY_REF,
  SNAPSHOT_OF_JOB,
  SNAPSHOT_REVISION,
  SNAPSHOTS_OF_VM,
  SNAPSHOTS_OF_VM_WITH_GONE,
  snapshotInsertValues,
  snapshotSetters,
  toSnapshot,
  type SnapshotRepo,
} from '../snapshots.ts';
import { insertRows } from './batch.ts';
import type { PgDb } from './db.ts';

export function createPgSnapshotRepo(db: PgDb): SnapshotRepo {
  return {
    async get(id) {
      const r = await db.get<Row>(SNAPSHOT_BY_ID, [id]);
      return r ? toSnapshot(r) : null;
    },
    async getByRef(vmId, providerRef) {
      const r = await db.get<Row>(SNAPSHOT_BY_REF, [vmId, providerRef]);
      return r ? toSnapshot(r) : null;
    },
    async listByVm(vmId, { includeGone }) {
      return (await db.all<Row>(includeGone ? SNAPSHOTS_OF_VM_WITH_GONE : SNAPSHOTS_OF_VM, [vmId])).map(toSnapshot);
    },
    async findByJob(jobId) {
      const r = await db.get<Row>(SNAPSHOT_OF_JOB, [jobId]);
      return r ? toSnapshot(r) : null;
    },
    async apply(plan, options) {
      // The parent foreign key is DEFERRABLE INITIALLY DEFERRED (migration 001): checked at COMMIT,
      // so a child may be written before its new parent within this transaction.
      return db.tx(async (q) => {
        if (options) {
          // The VM's row lock: another replica's apply for this VM waits here, then sees the bump.
          const r = await q.get<{ snapshot_rev: number }>(`${SNAPSHOT_REVISION} FOR UPDATE`, [options.vmId]);
          if ((r?.snapshot_rev ?? null) !== options.expectedRevision) return false;
        }
        // In plan order, several rows per statement: rowid (migration 014) keeps the provider's order.
        await insertRows(q, INSERT_SNAPSHOT_HEAD, plan.inserts.map(snapshotInsertValues));
        const touched = new Set(plan.inserts.map((s) => s.vmId));
        for (const change of [...plan.updates, ...plan.gone]) {
          const set = snapshotSetters(change.set);
          if (set === null) continue;
          await q.run(`UPDATE snapshots SET ${set.sql} WHERE id = ?`, [...set.values, change.before.id]);
          touched.add(change.before.vmId);
        }
        // Each bump is one UPDATE (the row lock makes two replicas' bumps add up); taken in id
        // order so two plans touching the same VMs cannot deadlock on them.
        for (const vmId of [...touched].sort()) await q.run(BUMP_SNAPSHOT_REVISION, [vmId]);
        return true;
      });
    },
    async revision(vmId) {
      const r = await db.get<{ snapshot_rev: number }>(SNAPSHOT_REVISION, [vmId]);
      return r ? r.snapshot_rev : null;
    },
  };
}
