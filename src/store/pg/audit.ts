/** The audit log on PostgreSQL (the interface, row mapping and shared SQL: src/store/audit.ts); ids are an identity column (migration 001). */
import { AUDIT_BEFORE, AUDIT_NEWEST, auditValues, INSERT_AUDIT, PRUNE_AUDIT, toAuditEntry, type AuditRepo } from '../audit.ts';
import type { Row } from '../rows.ts';
import type { PgDb } from './db.ts';

export function createPgAuditRepo(db: PgDb): AuditRepo {
  return {
    async insert(e) {
      await db.run(INSERT_AUDIT, auditValues(e));
    },
    async list({ limit, beforeId }) {
      const rows = beforeId === undefined ? await db.all<Row>(AUDIT_NEWEST, [limit]) : await db.all<Row>(AUDIT_BEFORE, [beforeId, limit]);
      return rows.map(toAuditEntry);
    },
    async prune(before, limit) {
      return db.run(PRUNE_AUDIT, [before, limit]);
    },
  };
}
