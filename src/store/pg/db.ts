/**
 * The PostgreSQL connection: a pool (node-postgres), the migrations, and the small query surface
 * the PostgreSQL repositories share.
 *
 * - SQL is written with SQLite's `?` placeholders, turned into `$1…$n` once per text, so a
 *   statement valid in both dialects is one constant shared by both stores.
 * - Columns keep SQLite's types (ISO-8601 TEXT timestamps, JSON as TEXT, 0/1 INTEGER flags), so
 *   both stores read rows with the same mappers; counts (bigint) are parsed as numbers.
 * - `tx()` runs READ COMMITTED and retries a serialization failure or deadlock (PostgreSQL's
 *   answer to two replicas colliding) a few times before giving up.
 * - A lost server is not fatal: idle clients that die are dropped by the pool, the next query
 *   connects again; failed queries reject and the storage failure listeners hear about them.
 */
import pg from 'pg';
import type { Logger } from '../../../providers/contract.ts';
import { MIGRATIONS, postgresSql, type Migration } from '../migrations/index.ts';
import { refuseNewerSchema } from '../db.ts';
import { StoreFullError, StoreUnavailableError, type StoreWriteFailure } from '../write-failure.ts';

/** What a repository runs statements on: the pool, or one transaction's client. */
export interface PgQueryable {
  /** All rows. */
  all<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** The first row, or undefined. */
  get<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R | undefined>;
  /** Rows changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface PgDb extends PgQueryable {
  readonly pool: pg.Pool;
  /** Runs fn in one transaction (READ COMMITTED), retried on serialization failure or deadlock. */
  tx<T>(fn: (q: PgQueryable) => Promise<T>): Promise<T>;
  /** Told once per statement that failed because of the storage (disk full, I/O error, read-only). */
  onWriteFailure(listener: (reason: StoreWriteFailure) => void): void;
  close(): Promise<void>;
}

/** A statement's text with `$1…$n`, and the `@name` each position takes (empty for `?` placeholders). */
interface Scanned {
  text: string;
  names: string[];
}

const scanned = new Map<string, Scanned>();

/**
 * One pass over SQLite-style SQL, outside quoted strings and identifiers: `?` placeholders become
 * `$1…$n`, and `@name` ones (SQLite's named parameters, a value used several times) become
 * positions too, their names kept in order. Cached per text.
 */
function scan(sql: string): Scanned {
  let out = scanned.get(sql);
  if (out !== undefined) return out;
  const names: string[] = [];
  let text = '';
  let n = 0;
  let quote: string | null = null;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    if (quote) {
      if (ch === quote) quote = null;
      text += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      text += ch;
    } else if (ch === '?') {
      text += `$${++n}`;
    } else if (ch === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))![0];
      names.push(name);
      text += `$${++n}`;
      i += name.length;
    } else {
      text += ch;
    }
  }
  out = { text, names };
  if (scanned.size < 5000) scanned.set(sql, out);
  return out;
}

/** `?` placeholders → `$1…$n` (outside quoted strings and identifiers). */
export function toPgPlaceholders(sql: string): string {
  return scan(sql).text;
}

/**
 * A statement written with SQLite's named parameters (`@name`), for PostgreSQL's positional ones:
 * the SQL to run (already numbered: the queries' own pass leaves it as it is) and the values in order.
 */
export function positional(sql: string, values: Readonly<Record<string, unknown>>): { sql: string; params: unknown[] } {
  const { names } = scan(sql);
  const params = names.map((name) => {
    if (!(name in values)) throw new Error(`SQL parameter @${name} has no value`);
    return values[name];
  });
  return { sql: scan(sql).text, params };
}

/** SQLSTATE → storage failure (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
export function pgWriteFailure(err: unknown): StoreWriteFailure | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (code === '53100') return 'full'; // disk_full
  if (code === '58030') return 'io'; // io_error
  if (code === '25006') return 'readonly'; // read_only_sql_transaction (a hot standby)
  return null;
}

/**
 * The server went away or cannot be reached, as opposed to a statement it refused: SQLSTATE class
 * 08 (connection exception), 57P01–57P03 (shutting down, crashed, starting), the socket's own
 * errors, and node-postgres's messages for a connection it lost or could not open in time.
 */
export function isConnectionLoss(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'].includes(code)) return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|connection error and is not queryable/i.test(message);
}

const RETRYABLE = new Set(['40001', '40P01']); // serialization_failure, deadlock_detected

const types = {
  getTypeParser(oid: number, format?: string) {
    // int8 (count(*), sums, identity ids): numbers, as SQLite gives them. Our values fit in 2^53.
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

export interface PgOpenOptions {
  log?: Logger;
  /** Pool size (default 10). */
  max?: number;
  migrations?: readonly Migration[];
  /** How long a query waits for a connection before failing (default 10 s). */
  connectionTimeoutMillis?: number;
}

export async function openPgDb(url: string, opts: PgOpenOptions = {}): Promise<PgDb> {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 10_000,
    idleTimeoutMillis: 30_000,
    types,
    application_name: 'snapvisor',
  });
  // An idle client whose server went away emits here; without a listener the process would crash.
  pool.on('error', (err) => opts.log?.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'store: idle PostgreSQL connection lost'));
  const listeners: Array<(reason: StoreWriteFailure) => void> = [];
  const translate = (err: unknown): unknown => {
    if (isConnectionLoss(err)) return new StoreUnavailableError(err);
    const reason = pgWriteFailure(err);
    if (reason === null) return err;
    for (const l of listeners) l(reason);
    return reason === 'full' ? new StoreFullError(err) : err;
  };
  const on = (c: pg.Pool | pg.PoolClient): PgQueryable => ({
    async all<R>(sql: string, params: readonly unknown[] = []) {
      try {
        return (await c.query(toPgPlaceholders(sql), params as unknown[])).rows as R[];
      } catch (err) {
        throw translate(err);
      }
    },
    async get<R>(sql: string, params: readonly unknown[] = []) {
      try {
        return (await c.query(toPgPlaceholders(sql), params as unknown[])).rows[0] as R | undefined;
      } catch (err) {
        throw translate(err);
      }
    },
    async run(sql: string, params: readonly unknown[] = []) {
      try {
        return (await c.query(toPgPlaceholders(sql), params as unknown[])).rowCount ?? 0;
      } catch (err) {
        throw translate(err);
      }
    },
  });
  try {
    await migrate(pool, opts.migrations ?? MIGRATIONS, opts.log);
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  const base = on(pool);
  return {
    pool,
    ...base,
    async tx<T>(fn: (q: PgQueryable) => Promise<T>): Promise<T> {
      for (let attempt = 1; ; attempt++) {
        let client: pg.PoolClient;
        try {
          client = await pool.connect();
        } catch (err) {
          throw translate(err);
        }
        let broken = false;
        const lost = () => (broken = true);
        client.on('error', lost);
        try {
          await client.query('BEGIN');
          const out = await fn(on(client));
          await client.query('COMMIT');
          return out;
        } catch (err) {
          try {
            await client.query('ROLLBACK');
          } catch {
            broken = true; // the connection itself failed: do not give it back to the pool
          }
          const code = (err as { code?: string }).code;
          if (code !== undefined && RETRYABLE.has(code) && attempt < 5) {
            await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
            continue;
          }
          throw translate(err);
        } finally {
          client.off('error', lost);
          client.release(broken);
        }
      }
    },
    onWriteFailure(listener) {
      listeners.push(listener);
    },
    close: () => pool.end(),
  };
}

/** One key for every replica's migration: they start together and must not migrate twice. */
const MIGRATION_LOCK = 7_266_001;

async function migrate(pool: pg.Pool, migrations: readonly Migration[], log?: Logger): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await c.query('CREATE TABLE IF NOT EXISTS snapvisor_schema (version INTEGER NOT NULL)');
      const row = (await c.query('SELECT max(version) AS v FROM snapvisor_schema')).rows[0] as { v: number | null };
      const current = row.v ?? 0;
      refuseNewerSchema(current, migrations);
      for (const m of migrations) {
        if (m.version <= current) continue;
        await c.query('BEGIN');
        try {
          await c.query(postgresSql(m));
          await c.query('INSERT INTO snapvisor_schema (version) VALUES ($1)', [m.version]);
          await c.query('COMMIT');
        } catch (err) {
          await c.query('ROLLBACK').catch(() => {});
          throw err;
        }
        log?.info({ migration: m.version, name: m.name }, 'store migration applied');
      }
    } finally {
      await c.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {});
    }
  } finally {
    c.release();
  }
}

/**
 * The schema version a PostgreSQL database is at, read without migrating it (doctor): null when it
 * has no Snapvisor schema yet. Throws what connecting throws.
 */
export async function readPgSchemaVersion(url: string, timeoutMs = 5000): Promise<number | null> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs, types });
  await c.connect();
  try {
    const exists = (await c.query(`SELECT to_regclass('snapvisor_schema') IS NOT NULL AS e`)).rows[0] as { e: boolean };
    if (!exists.e) return null;
    const row = (await c.query('SELECT max(version) AS v FROM snapvisor_schema')).rows[0] as { v: number | null };
    return row.v;
  } finally {
    await c.end().catch(() => {});
  }
}
