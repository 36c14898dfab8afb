/**
 * Idempotency keys on PostgreSQL. The keys are written inside jobs.submit's and groups.create's
 * transactions; the primary key (principal, key) is what holds across replicas: of two
 * concurrent requests with one key, the second insert fails (unique violation) and its request is
 * answered again as a replay (see isKeyConflict).
 */
import { FIND_KEY_SQL, INSERT_KEY_SQL, insertKeyParams, toIdempotencyRecord, type IdempotencyRecord, type IdempotencyRepo } from '../idempotency.ts';
import type { Row } from '../rows.ts';
import type { PgDb, PgQueryable } from './db.ts';

export async function findPgKey(q: PgQueryable, principal: string, key: string): Promise<IdempotencyRecord | null> {
  const r = await q.get<Row>(FIND_KEY_SQL, [principal, key]);
  return r ? toIdempotencyRecord(r) : null;
}

export async function insertPgKey(q: PgQueryable, rec: IdempotencyRecord): Promise<void> {
  await q.run(INSERT_KEY_SQL, insertKeyParams(rec));
}

/** The error of an idempotency key inserted by another replica since this transaction looked (unique_violation). */
export function isKeyConflict(err: unknown): boolean {
  const e = err as { code?: unknown; table?: unknown } | null;
  return e?.code === '23505' && e.table === 'idempotency_keys';
}

/**
 * Runs `fn` in a transaction; when it lost an idempotency key to a concurrent request, runs it once
 * more: the winner has committed by then (the loser's insert waited for it), so `fn` finds the key
 * and answers a replay.
 */
export async function txKeyRace<T>(db: PgDb, fn: (q: PgQueryable) => Promise<T>): Promise<T> {
  try {
    return await db.tx(fn);
  } catch (err) {
    if (!isKeyConflict(err)) throw err;
    return db.tx(fn);
  }
}

export function createPgIdempotencyRepo(db: PgDb): IdempotencyRepo {
  return { find: (principal, key) => findPgKey(db, principal, key) };
}
