/**
 * Numbered migrations, applied in order at open. PRAGMA user_version holds the number of the
 * last one applied. Add a file NNN_what.ts exporting `sql` and append it here; never edit one
 * that has shipped.
 */
import { sql as init } from './001_init.ts';
import { sql as snapshotRev } from './002_snapshot_rev.ts';
import { sql as vmNamePrefix } from './003_vm_name_prefix.ts';
import { sql as jobQueueIndexes } from './004_job_queue_indexes.ts';
import { sql as snapshotReadiness } from './005_snapshot_readiness.ts';
import { sql as createBudgets } from './006_create_budgets.ts';
import { sql as retention } from './007_retention.ts';
import { sql as fairQueue } from './008_fair_queue.ts';
import { sql as jobCheckpoint } from './009_job_checkpoint.ts';
import { sql as policies } from './010_policies.ts';
import { sql as snapshotGroups } from './011_snapshot_groups.ts';
import { sql as webhooksDrift } from './012_webhooks_drift.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'init', sql: init },
  { version: 2, name: 'snapshot_rev', sql: snapshotRev },
  { version: 3, name: 'vm_name_prefix', sql: vmNamePrefix },
  { version: 4, name: 'job_queue_indexes', sql: jobQueueIndexes },
  { version: 5, name: 'snapshot_readiness', sql: snapshotReadiness },
  { version: 6, name: 'create_budgets', sql: createBudgets },
  { version: 7, name: 'retention', sql: retention },
  { version: 8, name: 'fair_queue', sql: fairQueue },
  { version: 9, name: 'job_checkpoint', sql: jobCheckpoint },
  { version: 10, name: 'policies', sql: policies },
  { version: 11, name: 'snapshot_groups', sql: snapshotGroups },
  { version: 12, name: 'webhooks_drift', sql: webhooksDrift },
];

/** The schema version a list of migrations brings a database to (0 for none). */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.length === 0 ? 0 : migrations[migrations.length - 1]!.version;
}

/** The schema version this build migrates a database to. */
export const SCHEMA_VERSION = latestVersion(MIGRATIONS);
