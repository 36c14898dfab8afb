/**
 * Database files as wholes: an online, consistent copy (SQLite's backup API through
 * better-sqlite3), the check that a file is a usable Snapvisor database (integrity and schema
 * version), whether another process has a database open, and the restore that swaps a backup in.
 *
 * "In use" is the daemon's lock (src/store/lock.ts), and also asked of SQLite itself: a connection in WAL mode (the daemon's)
 * holds a shared lock on the database file for as long as it is open, so an EXCLUSIVE lock
 * attempt with no busy wait fails exactly while some process has the file open. The operating
 * system drops that lock when the process dies, even on SIGKILL, so nothing can go stale.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { copyFile } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { SCHEMA_VERSION } from './migrations/index.ts';
import { acquireDatabaseLock, DatabaseLockedError, describeHolder } from './lock.ts';

/** Tables every Snapvisor database has since the first migration. */
const CORE_TABLES = ['targets', 'vms', 'snapshots', 'jobs'];

export interface DatabaseFileReport {
  /** PRAGMA user_version: the last migration applied. */
  schemaVersion: number;
  /** PRAGMA integrity_check's lines: exactly ['ok'] when the file is sound. */
  integrity: string[];
  /** Core tables that are missing (empty for a Snapvisor database). */
  missingTables: string[];
  bytes: number;
}

export interface BackupReport {
  file: string;
  bytes: number;
  schemaVersion: number;
}

export class DatabaseFileError extends Error {
  override readonly name = 'DatabaseFileError';
}

/** Reads a database file without changing it: integrity, schema version, core tables. */
export function inspectDatabaseFile(file: string): DatabaseFileReport {
  if (!existsSync(file)) throw new DatabaseFileError(`${file}: no such file`);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5000 });
  } catch (e) {
    throw new DatabaseFileError(`${file}: cannot open as SQLite (${(e as Error).message})`);
  }
  try {
    const integrity = (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    const present = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name));
    return { schemaVersion, integrity, missingTables: CORE_TABLES.filter((t) => !present.has(t)), bytes: statSync(file).size };
  } catch (e) {
    // "file is not a database" surfaces at the first read, not at open.
    throw new DatabaseFileError(`${file}: not a readable SQLite database (${(e as Error).message})`);
  } finally {
    db.close();
  }
}

/** What is wrong with a database file for this build, or null when it can be used (a lower version is migrated at start). */
export function databaseFileProblem(report: DatabaseFileReport): string | null {
  if (report.integrity.length !== 1 || report.integrity[0] !== 'ok') return `integrity check failed: ${report.integrity.slice(0, 3).join('; ')}`;
  if (report.missingTables.length > 0) return `not a Snapvisor database (no ${report.missingTables.join(', ')} table)`;
  if (report.schemaVersion > SCHEMA_VERSION) return `schema version ${report.schemaVersion} is newer than this build knows (${SCHEMA_VERSION}); upgrade Snapvisor`;
  return null;
}

/**
 * Copies `source` (an open connection) to a new file `destination`, online: better-sqlite3 copies
 * pages in steps between other work, and writes made on the same connection meanwhile are carried
 * into the copy, so the result is one consistent state of the database. The copy is then
 * checked; a copy that fails the check is removed and the call throws.
 */
export async function backupConnection(source: Database.Database, destination: string, options: { allAtOnce?: boolean } = {}): Promise<BackupReport> {
  if (existsSync(destination)) throw new DatabaseFileError(`${destination} already exists`);
  try {
    // allAtOnce: one step copies every page in a single read transaction — what makes a copy
    // taken by another process consistent while the daemon writes (each step would restart).
    await (options.allAtOnce ? source.backup(destination, { progress: () => 0x7fffffff }) : source.backup(destination));
    syncFile(destination);
    const report = inspectDatabaseFile(destination);
    const problem = databaseFileProblem(report);
    if (problem) throw new DatabaseFileError(`the backup ${destination} is not usable: ${problem}`);
    return { file: destination, bytes: report.bytes, schemaVersion: report.schemaVersion };
  } catch (e) {
    rmSync(destination, { force: true });
    throw e;
  }
}

/** A backup of a database file from outside the daemon (offline, or while the daemon runs: WAL readers do not block it). */
export async function backupFile(source: string, destination: string): Promise<BackupReport> {
  if (!existsSync(source)) throw new DatabaseFileError(`${source}: no such file`);
  const db = new Database(source, { readonly: true, fileMustExist: true, timeout: 5000 });
  try {
    return await backupConnection(db, destination, { allAtOnce: true });
  } finally {
    db.close();
  }
}

/** True while some process (a running daemon) has the database open; false for a missing file. */
export function databaseInUse(file: string): boolean {
  if (!existsSync(file)) return false;
  const db = new Database(file, { timeout: 0, fileMustExist: true });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('COMMIT');
    // Nobody else has it: fold the write-ahead log into the file, so the file alone is the database.
    db.pragma('wal_checkpoint(TRUNCATE)');
    return false;
  } catch (e) {
    if ((e as { code?: string }).code === 'SQLITE_BUSY' || (e as { code?: string }).code === 'SQLITE_LOCKED') return true;
    throw e;
  } finally {
    db.close();
  }
}

export interface RestoreReport {
  database: string;
  schemaVersion: number;
  /** Where the database that was replaced now is (null when there was none). */
  previous: string | null;
}

/**
 * Puts a backup in place of `database`: refuses a backup that fails the check or is newer than
 * this build, refuses while a daemon holds the database lock (src/store/lock.ts; the restore holds
 * it itself meanwhile, so no daemon starts on half a swap) or any process has `database` open, keeps the replaced database (and
 * its -wal/-shm if any) renamed beside it, and moves the copy in with one rename so a daemon
 * starting afterwards never sees half a file.
 */
export async function restoreFile(backup: string, database: string, now: Date = new Date()): Promise<RestoreReport> {
  const report = inspectDatabaseFile(backup);
  const problem = databaseFileProblem(report);
  if (problem) throw new DatabaseFileError(`${backup}: ${problem}`);
  mkdirSync(path.dirname(database), { recursive: true });
  let lock;
  try {
    lock = acquireDatabaseLock(database, { command: 'restore' });
  } catch (e) {
    if (e instanceof DatabaseLockedError) throw new DatabaseFileError(`${database} is in use by ${describeHolder(e.holder)}: stop it first`);
    throw e;
  }
  try {
    if (databaseInUse(database)) {
      throw new DatabaseFileError(`${database} is in use by another process (is the daemon running? stop it first)`);
    }
    return await swapIn(backup, database, report.schemaVersion, now);
  } finally {
    lock.release();
  }
}

async function swapIn(backup: string, database: string, schemaVersion: number, now: Date): Promise<RestoreReport> {
  const incoming = `${database}.restore-${process.pid}.tmp`;
  await copyFile(backup, incoming);
  syncFile(incoming);
  let previous: string | null = null;
  if (existsSync(database)) {
    previous = `${database}.pre-restore-${now.toISOString().replace(/[:.]/g, '-')}`;
    renameSync(database, previous);
    for (const suffix of ['-wal', '-shm']) if (existsSync(database + suffix)) renameSync(database + suffix, previous + suffix);
  }
  renameSync(incoming, database);
  return { database, schemaVersion, previous };
}

function syncFile(file: string): void {
  const fd = openSync(file, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
