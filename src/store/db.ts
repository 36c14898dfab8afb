/**
 * The SQLite connection: pragmas, migrations, and a prepared-statement cache shared by the
 * repositories. better-sqlite3 is synchronous; repositories wrap results in Promises so a
 * Postgres store can later implement the same interfaces.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../../providers/contract.ts';
import { latestVersion, MIGRATIONS, type Migration } from './migrations/index.ts';
import { StoreFullError, storeWriteFailure, type StoreWriteFailure } from './write-failure.ts';

export type Statement = Database.Statement<unknown[], unknown>;

export interface Db {
  raw: Database.Database;
  /** Prepared once per SQL text, then reused. */
  stmt(sql: string): Statement;
  /** Runs fn in one IMMEDIATE transaction (writers serialise at BEGIN, not at the first write). */
  tx<T>(fn: () => T): T;
  /** Told once per statement or commit that failed because of the storage (full disk, I/O error). */
  onWriteFailure(listener: (reason: StoreWriteFailure) => void): void;
  /**
   * Commits a write that changes nothing (the header's application_id set to itself), so it fails
   * exactly when any commit would: a full disk shows first when the write-ahead log has to grow,
   * which a read or a rolled-back transaction never makes it do. Throws what such a commit throws.
   */
  probeWrite(): void;
}

export class StoreVersionError extends Error {
  override readonly name = 'StoreVersionError';
}

/** The database file is damaged, or its state would make opening it lose data: start nothing. */
export class DatabaseDamagedError extends Error {
  override readonly name = 'DatabaseDamagedError';
}

/**
 * Refuses a database that cannot be used safely, before anything writes to it: a missing file
 * whose write-ahead log is still there (opening would create an empty database and drop that
 * log's transactions), a file that fails PRAGMA quick_check, or rows that break a foreign key.
 * The checks read through a read-only connection, which never checkpoints a log into the file.
 */
export function checkDatabaseFile(path: string): void {
  if (path === ':memory:' || path === '') return;
  if (!existsSync(path)) {
    if (existsSync(`${path}-wal`)) {
      throw new DatabaseDamagedError(
        `database ${path} is missing but its write-ahead log ${path}-wal is there: refusing to create an empty database over it (put the database file back, or restore a backup with snapvisor restore)`,
      );
    }
    return;
  }
  let ro: Database.Database;
  try {
    ro = new Database(path, { readonly: true, fileMustExist: true, timeout: 5000 });
  } catch (e) {
    throw new DatabaseDamagedError(`database ${path} cannot be opened: ${(e as Error).message}`);
  }
  try {
    let problems: string[];
    try {
      // SQLite's report may span lines ("*** in database main ***\nTree 30 page 108: …"): the message stays one line.
      problems = (ro.pragma('quick_check') as Array<{ quick_check: string }>)
        .map((r) => r.quick_check.replace(/\*\*\* in database \w+ \*\*\*\s*/g, '').replace(/\s*\n\s*/g, '; ').trim())
        .filter((l) => l !== 'ok' && l !== '');
      if (problems.length === 0) {
        const fk = ro.pragma('foreign_key_check') as Array<{ table: string; rowid: number | null; parent: string }>;
        if (fk.length > 0) {
          const first = fk[0]!;
          problems = [`${fk.length} row(s) break a foreign key (first: ${first.table} rowid ${first.rowid} → ${first.parent})`];
        }
      }
    } catch (e) {
      problems = [(e as Error).message.replace(/\s*\n\s*/g, '; ')];
    }
    if (problems.length > 0) {
      throw new DatabaseDamagedError(`database ${path} is damaged: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? ` (+${problems.length - 3} more)` : ''}; restore the last good backup (snapvisor restore)`);
    }
  } finally {
    ro.close();
  }
}

export function openDb(path: string, log?: Logger, migrations: readonly Migration[] = MIGRATIONS): Db {
  checkDatabaseFile(path);
  const raw = new Database(path);
  try {
    if (path !== ':memory:' && path !== '') raw.pragma('journal_mode = WAL');
    raw.pragma('foreign_keys = ON');
    raw.pragma('busy_timeout = 5000');
    raw.pragma('synchronous = NORMAL');
    migrate(raw, migrations, log);
  } catch (err) {
    raw.close();
    throw err;
  }
  const cache = new Map<string, Statement>();
  const listeners: Array<(reason: StoreWriteFailure) => void> = [];
  // A failure inside a transaction passes through the statement and then the commit wrapper: counted once.
  const told = new WeakSet<object>();
  /** Tells the listeners about a storage failure and turns a full disk into StoreFullError. */
  const translate = (err: unknown): unknown => {
    const reason = storeWriteFailure(err);
    if (reason === null) return err;
    if (typeof err === 'object' && err !== null && !told.has(err)) {
      told.add(err);
      for (const l of listeners) l(reason);
    }
    if (reason !== 'full' || err instanceof StoreFullError) return err;
    const full = new StoreFullError(err);
    told.add(full);
    return full;
  };
  const guard = <A extends unknown[], R>(fn: (...args: A) => R) => (...args: A): R => {
    try {
      return fn(...args);
    } catch (err) {
      throw translate(err);
    }
  };
  const tx = <T>(fn: () => T): T => guard(() => raw.transaction(fn).immediate())();
  return {
    raw,
    stmt(sql) {
      let s = cache.get(sql);
      if (!s) {
        s = raw.prepare(sql);
        s.run = guard(s.run.bind(s));
        s.all = guard(s.all.bind(s));
        if (s.reader && !s.readonly) {
          // A write with RETURNING read by get() stops after the first row: its autocommit happens
          // at the reset, whose failure (a full disk) better-sqlite3 drops — the caller would get the
          // updated row while nothing was written. Run to the end instead, which reports it.
          const all = s.all;
          s.get = (...args: unknown[]) => all(...args)[0];
        } else {
          s.get = guard(s.get.bind(s));
        }
        cache.set(sql, s);
      }
      return s;
    },
    tx,
    onWriteFailure(listener) {
      listeners.push(listener);
    },
    probeWrite() {
      tx(() => {
        const id = raw.pragma('application_id', { simple: true }) as number;
        raw.pragma(`application_id = ${Number(id) | 0}`);
      });
    },
  };
}

/** A newer Snapvisor migrated this database; running old code on it could corrupt it (both databases). */
export function refuseNewerSchema(current: number, migrations: readonly Migration[]): void {
  const latest = latestVersion(migrations);
  if (current > latest) {
    throw new StoreVersionError(
      `[snapvisor] [store] database schema version ${current} is newer than this build knows (${latest}); upgrade Snapvisor`,
    );
  }
}

function migrate(raw: Database.Database, migrations: readonly Migration[], log?: Logger): void {
  const current = raw.pragma('user_version', { simple: true }) as number;
  refuseNewerSchema(current, migrations);
  for (const m of migrations) {
    if (m.version <= current) continue;
    raw.transaction(() => {
      raw.exec(m.sql);
      raw.pragma(`user_version = ${m.version}`);
    }).immediate();
    log?.info({ migration: m.version, name: m.name }, 'store migration applied');
  }
}
