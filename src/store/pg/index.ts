/**
 * The PostgreSQL store: the same repositories as SQLite's (src/store/index.ts), for several
 * daemon replicas sharing one database. Opened with `database: postgres://…` (or SNAPVISOR_DB).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../../providers/contract.ts';
import { within } from '../../../providers/shared/sleep.ts';
import type { Store } from '../index.ts';
import { redactUrl } from '../location.ts';
import { createPgAuditRepo } from './audit.ts';
import { createPgBudgetRepo } from './budgets.ts';
import { createPgCluster, type PgClusterOptions } from './cluster.ts';
import { openPgDb, pgWriteFailure, type PgDb } from './db.ts';
import { createPgDriftRepo } from './drift.ts';
import { createPgGroupRepo } from './groups.ts';
import { createPgIdempotencyRepo } from './idempotency.ts';
import { createPgJobRepo } from './jobs.ts';
import { createPgPolicyRepo } from './policies.ts';
import { createPgSnapshotRepo } from './snapshots.ts';
import { createPgTargetRepo } from './targets.ts';
import { createPgVmRepo } from './vms.ts';
import { createPgWebhookOutboxRepo } from './webhooks.ts';


export interface PgStoreOptions {
  log?: Logger;
  poolSize?: number;
  /** Leader election and messages between replicas (store/pg/cluster.ts): its timings, for tests. */
  cluster?: Pick<PgClusterOptions, 'leaderRetryMs' | 'checkMs' | 'maxBackoffMs'>;
}

export async function openPgStore(url: string, opts: PgStoreOptions = {}): Promise<Store> {
  const db: PgDb = await openPgDb(url, { log: opts.log, max: opts.poolSize });
  const cluster = createPgCluster({ ...opts.cluster, url, db, replicaId: randomUUID(), ...(opts.log ? { log: opts.log.child({ component: 'cluster' }) } : {}) });
  let closed = false;
  return {
    dialect: 'postgres',
    cluster,
    targets: createPgTargetRepo(db),
    vms: createPgVmRepo(db),
    snapshots: createPgSnapshotRepo(db),
    jobs: createPgJobRepo(db),
    budgets: createPgBudgetRepo(db),
    idempotency: createPgIdempotencyRepo(db),
    audit: createPgAuditRepo(db),
    groups: createPgGroupRepo(db),
    policies: createPgPolicyRepo(db),
    drift: createPgDriftRepo(db),
    webhooks: createPgWebhookOutboxRepo(db),
    async close() {
      if (closed) return;
      closed = true;
      await cluster.close();
      await db.close();
    },
    async healthy() {
      if (closed) return false;
      try {
        // /readyz must answer while the server is away, not after the pool's connection timeout.
        const answer = db.get('SELECT 1 AS ok');
        if (!(await within(answer, HEALTH_TIMEOUT_MS))) return false;
        return (await answer) !== undefined;
      } catch {
        return false;
      }
    },
    async writeProbe() {
      if (closed) return 'failed';
      try {
        // A commit that holds a transaction id: it fails exactly when a write would (read-only standby, full disk).
        const probe = db.tx(async (q) => {
          await q.get('SELECT pg_current_xact_id()');
        });
        if (!(await within(probe, HEALTH_TIMEOUT_MS))) return 'failed';
        await probe;
        return null;
      } catch (err) {
        return pgWriteFailure(err) ?? 'failed';
      }
    },
    onWriteFailure: (listener) => db.onWriteFailure(listener),
    location: redactUrl(url),
    async backup() {
      // The engine refuses first (422); a store-level caller gets the same answer.
      throw new Error('the database is PostgreSQL: back it up with pg_dump or base backups, not through Snapvisor');
    },
  };
}

const HEALTH_TIMEOUT_MS = 2000;


