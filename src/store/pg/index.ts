/**
 * The PostgreSQL store: the same repositories as SQLite's (src/store/index.ts), for several
 * daemon replicas sharing one database. Opened with `database: postgres://…` (or SNAPVISOR_DB).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../../providers/contract.ts';
import type { Store } from '../index.ts';
import { redactUrl } from '../location.ts';
import { createPgBudgetRepo } from './budgets.ts';
import { openPgDb, pgWriteFailure, type PgDb } from './db.ts';
import { createPgGroupRepo } from './groups.ts';
import { createPgIdempotencyRepo } from './idempotency.ts';
import { createPgJobRepo } from './jobs.ts';

/** Repositories not ported yet answer with this (never silently): the store refuses to start with them in use. */
function notPorted<T extends object>(name: string): T {
  return new Proxy({} as T, {
    get(_t, prop) {
      if (prop === 'then') return undefined;
      return () => Promise.reject(new Error(`PostgreSQL store: ${name}.${String(prop)} is not implemented`));
    },
  });
}

export async function openPgStore(url: string, opts: { log?: Logger; poolSize?: number } = {}): Promise<Store> {
  const db: PgDb = await openPgDb(url, { log: opts.log, max: opts.poolSize });
  let closed = false;
  return {
    dialect: 'postgres',
    cluster: { shared: true, replicaId: randomUUID() },
    targets: notPorted('targets'),
    vms: notPorted('vms'),
    snapshots: notPorted('snapshots'),
    jobs: createPgJobRepo(db),
    budgets: createPgBudgetRepo(db),
    idempotency: createPgIdempotencyRepo(db),
    audit: notPorted('audit'),
    groups: createPgGroupRepo(db),
    policies: notPorted('policies'),
    drift: notPorted('drift'),
    webhooks: notPorted('webhooks'),
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
    async healthy() {
      if (closed) return false;
      try {
        return (await db.get('SELECT 1 AS ok')) !== undefined;
      } catch {
        return false;
      }
    },
    async writeProbe() {
      if (closed) return 'failed';
      try {
        // A commit that holds a transaction id: it fails exactly when a write would (read-only standby, full disk).
        await db.tx(async (q) => {
          await q.get('SELECT pg_current_xact_id()');
        });
        return null;
      } catch (err) {
        return pgWriteFailure(err) ?? 'failed';
      }
    },
    onWriteFailure: (listener) => db.onWriteFailure(listener),
    location: redactUrl(url),
    async backup() {
      throw new BackupUnsupportedError();
    },
  };
}

/** PostgreSQL is backed up by its own tools (pg_dump, base backups), not by the daemon. */
export class BackupUnsupportedError extends Error {
  override readonly name = 'BackupUnsupportedError';
  constructor() {
    super('the database is PostgreSQL: back it up with pg_dump or your PostgreSQL backups, not through Snapvisor');
  }
}
