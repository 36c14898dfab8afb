import type { AuditEntry } from '../domain/types.ts';
import type { Db } from './db.ts';
import { str, strOrNull, type Row } from './rows.ts';

export type NewAuditEntry = Omit<AuditEntry, 'id'>;

export interface AuditRepo {
  insert(entry: NewAuditEntry): Promise<void>;
  /** Newest first. */
  list(options: { limit: number; beforeId?: number }): Promise<AuditEntry[]>;
  /** Deletes at most `limit` entries recorded before `before`, oldest first; returns how many (retention, in batches). */
  prune(before: string, limit: number): Promise<number>;
}

export const toAuditEntry = (r: Row): AuditEntry => ({
  id: Number(r.id),
  at: str(r.at),
  principal: str(r.principal),
  method: str(r.method),
  path: str(r.path),
  statusCode: Number(r.status_code),
  jobId: strOrNull(r.job_id),
  detail: strOrNull(r.detail),
});

export const INSERT_AUDIT = 'INSERT INTO audit_log (at, principal, method, path, status_code, job_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)';
export const AUDIT_NEWEST = 'SELECT * FROM audit_log ORDER BY id DESC LIMIT ?';
export const AUDIT_BEFORE = 'SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?';
export const PRUNE_AUDIT = 'DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)';
export const auditValues = (e: NewAuditEntry): unknown[] => [e.at, e.principal, e.method, e.path, e.statusCode, e.jobId, e.detail];

export function createAuditRepo(db: Db): AuditRepo {
  return {
    async insert(e) {
      db.stmt(INSERT_AUDIT).run(...auditValues(e));
    },
    async list({ limit, beforeId }) {
      const rows =
        beforeId === undefined
          ? db.stmt(AUDIT_NEWEST).all(limit)
          : db.stmt(AUDIT_BEFORE).all(beforeId, limit);
      return (rows as Row[]).map(toAuditEntry);
    },
    async prune(before, limit) {
      return db.stmt(PRUNE_AUDIT).run(before, limit).changes;
    },
  };
}
