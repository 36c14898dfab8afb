/**
 * One daemon per database: an exclusive lock taken before recovery touches any job, held until
 * the process ends.
 *
 * The lock file is `<database>.lock`, beside the database. It is a tiny SQLite file: the holder
 * keeps an IMMEDIATE transaction open on it (a RESERVED lock: the operating system's byte-range
 * lock on the file), so a second taker fails at once with SQLITE_BUSY. The operating system drops
 * that lock when the holder dies, even on SIGKILL, a reboot or a container being replaced: no pid
 * is ever trusted to say whether the holder lives (pids are reused, and in a container the daemon
 * has the same small pid at every start). Readers are not blocked, so the file also records who
 * holds it — pid, hostname, start time, command — for the message a second instance prints.
 *
 * A holder row left by a process that died without releasing is a stale lock: the next taker
 * gets the lock (the OS lock is gone) and reports the row it took over. The file itself is never
 * deleted: unlinking a lock file someone else has open would let two processes each lock a
 * different file of the same name.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';

export interface LockHolder {
  pid: number;
  hostname: string;
  /** ISO time the holder took the lock. */
  startedAt: string;
  /** What holds it: 'daemon', 'restore'. */
  command: string;
}

export interface DatabaseLock {
  readonly file: string;
  /** The holder row of a process that died holding the lock (taken over), else null. */
  readonly staleHolder: LockHolder | null;
  /** Clears the holder row and drops the lock. Idempotent. */
  release(): void;
}

export class DatabaseLockedError extends Error {
  override readonly name = 'DatabaseLockedError';
  constructor(
    readonly database: string,
    readonly lockFile: string,
    readonly holder: LockHolder | null,
  ) {
    super(`database ${database} is in use by ${describeHolder(holder)} (lock ${lockFile})`);
  }
}

export class LockFileError extends Error {
  override readonly name = 'LockFileError';
}

export const lockFileOf = (database: string): string => `${database}.lock`;

/** True for the databases that have no file, and so need no lock. */
export const isMemoryDatabase = (database: string): boolean => database === ':memory:' || database === '';

export function describeHolder(holder: LockHolder | null): string {
  if (!holder) return 'another process';
  const what = holder.command === 'daemon' ? 'another Snapvisor daemon' : `snapvisor ${holder.command}`;
  return `${what} (pid ${holder.pid} on ${holder.hostname}, since ${holder.startedAt})`;
}

const isBusy = (e: unknown) => {
  const code = (e as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
};

function readHolder(db: Database.Database): LockHolder | null {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'holder'").get();
  if (!exists) return null;
  const row = db.prepare('SELECT pid, hostname, started_at AS startedAt, command FROM holder LIMIT 1').get() as LockHolder | undefined;
  return row ?? null;
}

/**
 * Takes the lock of `database` for this process, or throws DatabaseLockedError naming the holder.
 * The directory of the database must exist.
 */
export function acquireDatabaseLock(database: string, options: { command: string; now?: () => Date } = { command: 'daemon' }): DatabaseLock {
  const file = lockFileOf(database);
  let db: Database.Database;
  try {
    db = new Database(file, { timeout: 0 });
  } catch (e) {
    throw new LockFileError(`cannot open the lock file ${file}: ${(e as Error).message}`);
  }
  const locked = (afterOwnCommit: boolean): never => {
    // The holder may be committing its row this instant (readers then wait a moment).
    let holder: LockHolder | null = null;
    try {
      db.pragma('busy_timeout = 1000');
      holder = readHolder(db);
      // Our own row, read before the taker that slipped in has committed its own: not the holder.
      if (afterOwnCommit && holder?.pid === process.pid && holder.hostname === hostname()) holder = null;
    } catch {
      // unreadable: the message says "another process"
    }
    db.close();
    throw new DatabaseLockedError(database, file, holder);
  };
  let staleHolder: LockHolder | null;
  try {
    // The row is only information (the OS lock is the truth): no fsync at take or release.
    db.pragma('synchronous = OFF');
    db.pragma('busy_timeout = 0');
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (e) {
      if (isBusy(e)) locked(false);
      throw e;
    }
    staleHolder = readHolder(db);
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, hostname TEXT NOT NULL, started_at TEXT NOT NULL, command TEXT NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder (pid, hostname, started_at, command) VALUES (?, ?, ?, ?)').run(process.pid, hostname(), (options.now?.() ?? new Date()).toISOString(), options.command);
    // Committing needs readers (a second instance reading the row) out of the way for a moment.
    db.pragma('busy_timeout = 2000');
    db.exec('COMMIT');
    db.pragma('busy_timeout = 0');
    try {
      db.exec('BEGIN IMMEDIATE');
    } catch (e) {
      // Another taker got in between the commit and here: it holds the lock now.
      if (isBusy(e)) locked(true);
      throw e;
    }
  } catch (e) {
    if (e instanceof DatabaseLockedError) throw e;
    if (db.open) db.close();
    throw new LockFileError(`cannot take the lock ${file}: ${(e as Error).message} (if it is damaged and no Snapvisor runs, remove it)`);
  }
  let released = false;
  return {
    file,
    staleHolder,
    release() {
      if (released) return;
      released = true;
      try {
        db.pragma('busy_timeout = 1000');
        db.exec('DELETE FROM holder');
        db.exec('COMMIT');
      } catch {
        // The lock goes with the connection all the same; the row then reads as a stale holder.
      }
      db.close();
    },
  };
}

/**
 * Who holds the lock of `database` now (for doctor): `held` when a live process has it, with its
 * row. It creates nothing. When a row is there, whether its writer still lives is asked by trying
 * the lock for an instant (a start coinciding with that instant is refused as locked: retry it).
 */
export function lockHolder(database: string): { held: boolean; holder: LockHolder | null } {
  const file = lockFileOf(database);
  if (isMemoryDatabase(database) || !existsSync(file)) return { held: false, holder: null };
  const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 1000 });
  try {
    const holder = readHolder(db);
    // A row is written only under the lock and removed at release: a row with no live lock behind
    // it is stale. Only trying the lock tells them apart: a write lock, no wait, given back at once.
    if (!holder) return { held: false, holder: null };
    const probe = new Database(file, { timeout: 0, fileMustExist: true });
    try {
      probe.exec('BEGIN IMMEDIATE');
      probe.exec('ROLLBACK');
      return { held: false, holder };
    } catch (e) {
      if (isBusy(e)) return { held: true, holder };
      throw e;
    } finally {
      probe.close();
    }
  } finally {
    db.close();
  }
}
