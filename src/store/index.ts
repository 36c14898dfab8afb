/**
 * The store: repositories over one SQLite database (the embedded default) or one PostgreSQL
 * database shared by several replicas (src/store/pg/). Every repository method returns a Promise
 * and no SQL leaves this folder: the engine and the API never know which one they have.
 */
import type { Logger } from '../../providers/contract.ts';
import { createAuditRepo, type AuditRepo } from './audit.ts';
import { backupConnection, type BackupReport } from './backup.ts';
import { createBudgetRepo, type CreateBudgetRepo } from './budgets.ts';
import { createDriftRepo, type DriftRepo } from './drift.ts';
import { localCluster, type Cluster } from './cluster.ts';
import { openDb } from './db.ts';
import { isPostgresUrl } from './location.ts';
import { createGroupRepo, type GroupRepo } from './groups.ts';
import { createIdempotencyRepo, type IdempotencyRepo } from './idempotency.ts';
import { createJobRepo, type JobRepo } from './jobs.ts';
import { createPolicyRepo, type PolicyRepo } from './policies.ts';
import { createSnapshotRepo, type SnapshotRepo } from './snapshots.ts';
import { createTargetRepo, type TargetRepo } from './targets.ts';
import { createVmRepo, type VmRepo } from './vms.ts';
import { createWebhookOutboxRepo, type WebhookOutboxRepo } from './webhooks.ts';
import { storeWriteFailure, type StoreWriteFailure } from './write-failure.ts';

export type { AuditRepo, NewAuditEntry } from './audit.ts';
export type { Cluster } from './cluster.ts';
export type { BackupReport } from './backup.ts';
export type { CreateBudgetEvent, CreateBudgetRepo } from './budgets.ts';
export { DatabaseDamagedError, StoreVersionError } from './db.ts';
export { isPostgresUrl, redactUrl } from './location.ts';
export type { IdempotencyRecord, IdempotencyRepo } from './idempotency.ts';
export type { GroupCreateOutcome, GroupRefresh, GroupRepo, NewGroup, NewGroupMember } from './groups.ts';
export type { ClaimOptions, FairJobCandidate, FinishUpdate, JobCandidate, JobLease, JobListQuery, JobRepo, NewJob, RequeueUpdate, SubmitOptions, SubmitOutcome } from './jobs.ts';
export type { SnapshotRepo } from './snapshots.ts';
export type { NewPolicyRun, PolicyRepo, PolicyWrite } from './policies.ts';
export type { TargetHealthUpdate, TargetRepo } from './targets.ts';
export { InvalidCursorError } from './vms.ts';
export { INSUFFICIENT_STORAGE, isStoreFull, StoreFullError, storeWriteFailure, type StoreWriteFailure } from './write-failure.ts';
export type { VmListQuery, VmRepo, VmStats, VmWithStats } from './vms.ts';
export type { DriftRepo, DriftState } from './drift.ts';
export type { NewOutboxRow, OutboxRow, WebhookOutboxRepo } from './webhooks.ts';

export interface Store {
  /** Which database: 'postgres' may be shared by several daemon replicas. */
  readonly dialect: 'sqlite' | 'postgres';
  /** The replicas sharing this store, and this one's id (store/cluster.ts). */
  readonly cluster: Cluster;
  targets: TargetRepo;
  vms: VmRepo;
  snapshots: SnapshotRepo;
  jobs: JobRepo;
  /** Create budget events (capabilities.limits.createRate). */
  budgets: CreateBudgetRepo;
  idempotency: IdempotencyRepo;
  audit: AuditRepo;
  /** Snapshot groups (domain/group.ts). */
  groups: GroupRepo;
  policies: PolicyRepo;
  /** Drift detection's reads and its last fingerprint per target. */
  drift: DriftRepo;
  /** Webhook deliveries (an outbox). */
  webhooks: WebhookOutboxRepo;
  close(): Promise<void>;
  /** The database answers a trivial query. */
  healthy(): Promise<boolean>;
  /**
   * Whether a write commits now (a real commit that changes nothing): null when it does, else why
   * not — 'full' (no space left for the database), 'io', 'readonly', or 'failed' for anything else.
   */
  writeProbe(): Promise<StoreWriteFailure | 'failed' | null>;
  /** Called once per statement or commit that failed because of the storage. */
  onWriteFailure(listener: (reason: StoreWriteFailure) => void): void;
  /** The database file (':memory:' for an in-memory store), or PostgreSQL's URL without its password. */
  readonly location: string;
  /** An online, consistent copy of the database into the new file `destination`, checked before it is reported. */
  backup(destination: string): Promise<BackupReport>;
}

export function openStore(path: string, opts: { log?: Logger } = {}): Store {
  const db = openDb(path, opts.log);
  let closed = false;
  return {
    dialect: 'sqlite',
    cluster: localCluster(),
    targets: createTargetRepo(db),
    vms: createVmRepo(db),
    snapshots: createSnapshotRepo(db),
    jobs: createJobRepo(db),
    budgets: createBudgetRepo(db),
    idempotency: createIdempotencyRepo(db),
    audit: createAuditRepo(db),
    groups: createGroupRepo(db),
    policies: createPolicyRepo(db),
    drift: createDriftRepo(db),
    webhooks: createWebhookOutboxRepo(db),
    async close() {
      if (closed) return;
      closed = true;
      db.raw.close();
    },
    async healthy() {
      if (closed) return false;
      try {
        return db.stmt('SELECT 1 AS ok').get() !== undefined;
      } catch {
        return false;
      }
    },
    async writeProbe() {
      if (closed) return 'failed';
      try {
        db.probeWrite();
        return null;
      } catch (err) {
        return storeWriteFailure(err) ?? 'failed';
      }
    },
    onWriteFailure: (listener) => db.onWriteFailure(listener),
    location: path,
    backup: (destination) => backupConnection(db.raw, destination),
  };
}

/** Opens the store `location` names: a postgres:// URL, else a SQLite file (or ':memory:'). */
export async function connectStore(location: string, opts: { log?: Logger; poolSize?: number } = {}): Promise<Store> {
  // Loaded only for PostgreSQL: an embedded daemon never loads the driver.
  if (isPostgresUrl(location)) return (await import('./pg/index.ts')).openPgStore(location, opts);
  return openStore(location, opts);
}
