/**
 * Failures of the storage under the database (a full disk, an I/O error, a read-only file), told
 * apart from the SQL mistakes they otherwise look like. A full disk becomes one error the API and
 * the worker can recognise without knowing SQLite: a Postgres store would throw the same one for
 * its own "disk full".
 */
import { DATABASE_UNAVAILABLE, INSUFFICIENT_STORAGE, SnapvisorError } from '../domain/errors.ts';

export type StoreWriteFailure = 'full' | 'io' | 'readonly';

export { DATABASE_UNAVAILABLE, INSUFFICIENT_STORAGE };

/** The disk holding the database is full: nothing was written (SQLite rolled the statement back). */
export class StoreFullError extends SnapvisorError {
  override readonly name = 'StoreFullError';
  constructor(cause: unknown) {
    super('transient', INSUFFICIENT_STORAGE, 'the disk holding the database is full; nothing was written', { retry: 'transient', cause });
  }
}

/**
 * The database server is away (PostgreSQL restarting, failing over, unreachable): the statement may
 * or may not have been committed, so a request is answered 503 and retried with its Idempotency-Key.
 */
export class StoreUnavailableError extends SnapvisorError {
  override readonly name = 'StoreUnavailableError';
  constructor(cause: unknown) {
    super('transient', DATABASE_UNAVAILABLE, 'the database did not answer', { retry: 'transient', cause });
  }
}

export const isStoreFull = (err: unknown): err is StoreFullError => err instanceof SnapvisorError && err.code === INSUFFICIENT_STORAGE;

/** Why a statement failed, when the storage is to blame (SQLite's primary result codes). */
export function storeWriteFailure(err: unknown): StoreWriteFailure | null {
  if (isStoreFull(err)) return 'full';
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (code === 'SQLITE_FULL') return 'full';
  if (code.startsWith('SQLITE_IOERR')) return 'io';
  if (code.startsWith('SQLITE_READONLY')) return 'readonly';
  return null;
}
