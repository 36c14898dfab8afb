import type { Db } from './db.ts';
import { str, type Row } from './rows.ts';

export interface IdempotencyRecord {
  principal: string;
  key: string;
  requestHash: string;
  jobId: string;
  createdAt: string;
}

/** Read side; writes happen inside `jobs.submit`, in the job's own transaction. */
export interface IdempotencyRepo {
  find(principal: string, key: string): Promise<IdempotencyRecord | null>;
}

export const FIND_KEY_SQL = 'SELECT * FROM idempotency_keys WHERE principal = ? AND key = ?';
export const INSERT_KEY_SQL = 'INSERT INTO idempotency_keys (principal, key, request_hash, job_id, created_at) VALUES (?, ?, ?, ?, ?)';

export const toIdempotencyRecord = (r: Row): IdempotencyRecord =>
  ({ principal: str(r.principal), key: str(r.key), requestHash: str(r.request_hash), jobId: str(r.job_id), createdAt: str(r.created_at) });

export const insertKeyParams = (rec: IdempotencyRecord): unknown[] => [rec.principal, rec.key, rec.requestHash, rec.jobId, rec.createdAt];

export function findKey(db: Db, principal: string, key: string): IdempotencyRecord | null {
  const r = db.stmt(FIND_KEY_SQL).get(principal, key) as Row | undefined;
  return r ? toIdempotencyRecord(r) : null;
}

export function insertKey(db: Db, rec: IdempotencyRecord): void {
  db.stmt(INSERT_KEY_SQL).run(...insertKeyParams(rec));
}

export function createIdempotencyRepo(db: Db): IdempotencyRepo {
  return { find: async (principal, key) => findKey(db, principal, key) };
}
