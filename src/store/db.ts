/**
 * The SQLite connection: pragmas, migrations, and a prepared-statement cache shared by the
 * repositories. better-sqlite3 is synchronous; repositories wrap results in Promises so a
 * Postgres store can later implement the same interfaces.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../../providers/contract.ts';
import { latestVersion, MIGRATIONS, type Migration } from './migrations/index.ts';

export type Statement = Database.Statement<unknown[], unknown>;

export interface Db {
  raw: Database.Database;
  /** Prepared once per SQL text, then reused. */
  stmt(sql: string): Statement;
  /** Runs fn in one IMMEDIATE transaction (writers serialise at BEGIN, not at the first write). */
  tx<T>(fn: () => T): T;
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
      problems = (ro.pragma('quick_check') as Array<{ quick_check: string }>).map((r) => r.quick_check).filter((l) => l !== 'ok');
      if (problems.length === 0) {
        const fk = ro.pragma('foreign_key_check') as Array<{ table: string; rowid: number | null; parent: string }>;
        if (fk.length > 0) {
          const first = fk[0]!;
          problems = [`${fk.length} row(s) break a foreign key (first: ${first.table} rowid ${first.rowid} → ${first.parent})`];
        }
      }
    } catch (e) {
      problems = [(e as Error).message];
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
  return {
    raw,
    stmt(sql) {
      let s = cache.get(sql);
      if (!s) {
        s = raw.prepare(sql);
        cache.set(sql, s);
      }
      return s;
    },
    tx(fn) {
      return raw.transaction(fn).immediate();
    },
  };
}

function migrate(raw: Database.Database, migrations: readonly Migration[], log?: Logger): void {
  const current = raw.pragma('user_version', { simple: true }) as number;
  const latest = latestVersion(migrations);
  if (current > latest) {
    // A newer Snapvisor wrote this file; running old code on it could corrupt it.
    throw new StoreVersionError(
      `[snapvisor] [store] database schema version ${current} is newer than this build knows (${latest}); upgrade Snapvisor`,
    );
  }
  for (const m of migrations) {
    if (m.version <= current) continue;
    raw.transaction(() => {
      raw.exec(m.sql);
      raw.pragma(`user_version = ${m.version}`);
    }).immediate();
    log?.info({ migration: m.version, name: m.name }, 'store migration applied');
  }
}
