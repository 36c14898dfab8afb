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

export function findKey(db: Db, principal: string, key: string): IdempotencyRecord | null {
  const r = db.stmt('SELECT * FROM idempotency_keys WHERE principal = ? AND key = ?').get(principal, key) as Row | undefined;
  return r
    ? { principal: str(r.principal), key: str(r.key), requestHash: str(r.request_hash), jobId: str(r.job_id), createdAt: str(r.created_at) }
    : null;
}

export function insertKey(db: Db, rec: IdempotencyRecord): void {
  db.stmt('INSERT INTO idempotency_keys (principal, key, request_hash, job_id, created_at) VALUES (?, ?, ?, ?, ?)').run(
    rec.principal,
    rec.key,
    rec.requestHash,
    rec.jobId,
    rec.createdAt,
  );
}

export function createIdempotencyRepo(db: Db): IdempotencyRepo {
  return { find: async (principal, key) => findKey(db, principal, key) };
}
