/**
 * Numbered migrations, applied in order at open, one list for both databases: SQLite's PRAGMA
 * user_version, or PostgreSQL's snapvisor_schema table, holds the number of the last one applied.
 * Add a file NNN_what.ts exporting `sql` (and `postgres` where PostgreSQL's SQL differs) and
 * append it here; never edit one that has shipped.
 */
import { postgres as initPg, sql as init } from './001_init.ts';
import { sql as snapshotRev } from './002_snapshot_rev.ts';
import { postgres as vmNamePrefixPg, sql as vmNamePrefix } from './003_vm_name_prefix.ts';
import { sql as jobQueueIndexes } from './004_job_queue_indexes.ts';
import { sql as snapshotReadiness } from './005_snapshot_readiness.ts';
import { sql as createBudgets } from './006_create_budgets.ts';
import { sql as retention } from './007_retention.ts';
import { sql as fairQueue } from './008_fair_queue.ts';
import { sql as jobCheckpoint } from './009_job_checkpoint.ts';
import { sql as policies } from './010_policies.ts';
import { sql as snapshotGroups } from './011_snapshot_groups.ts';
import { postgres as webhooksDriftPg, sql as webhooksDrift } from './012_webhooks_drift.ts';
import { sql as jobLeases } from './013_job_leases.ts';
import { sql as policySlotOnce } from './014_policy_slot_once.ts';

export interface Migration {
  version: number;
  name: string;
  /** SQLite's SQL. */
  sql: string;
  /** PostgreSQL's, where it differs; otherwise `sql` read by postgresSql(). */
  postgres?: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'init', sql: init, postgres: initPg },
  { version: 2, name: 'snapshot_rev', sql: snapshotRev },
  { version: 3, name: 'vm_name_prefix', sql: vmNamePrefix, postgres: vmNamePrefixPg },
  { version: 4, name: 'job_queue_indexes', sql: jobQueueIndexes },
  { version: 5, name: 'snapshot_readiness', sql: snapshotReadiness },
  { version: 6, name: 'create_budgets', sql: createBudgets },
  { version: 7, name: 'retention', sql: retention },
  { version: 8, name: 'fair_queue', sql: fairQueue },
  { version: 9, name: 'job_checkpoint', sql: jobCheckpoint },
  { version: 10, name: 'policies', sql: policies },
  { version: 11, name: 'snapshot_groups', sql: snapshotGroups },
  { version: 12, name: 'webhooks_drift', sql: webhooksDrift, postgres: webhooksDriftPg },
  { version: 13, name: 'job_leases', sql: jobLeases },
  { version: 14, name: 'policy_slot_once', sql: policySlotOnce },
];

/** The schema version a list of migrations brings a database to (0 for none). */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
}

/** The schema version this build migrates a database to. */
export const SCHEMA_VERSION = latestVersion(MIGRATIONS);

/**
 * A migration's PostgreSQL SQL: its own `postgres`, else its SQLite SQL, without `STRICT` (SQLite's
 * opt-in column type checking, which PostgreSQL always does) — the only difference most files have.
 */
export function postgresSql(m: Migration): string {
  return (m.postgres ?? m.sql).replace(/\)\s*STRICT\s*;/g, ');');
}
