/**
 * The SQLite connection: pragmas, migrations, and a prepared-statement cache shared by the
 * repositories. better-sqlite3 is synchronous; repositories wrap results in Promises so a
 * Postgres store can later implement the same interfaces.
 */
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

export function openDb(path: string, log?: Logger, migrations: readonly Migration[] = MIGRATIONS): Db {
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
