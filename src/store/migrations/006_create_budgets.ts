/**
 * Create budgets (capabilities.limits.createRate, e.g. Azure's 7 incremental snapshots per disk every
 * 5 minutes) and what a provider reports beyond the common fields:
 * - vms.disks: the VM's DiskInfo[] from the last inventory that reported them (JSON; null: never reported);
 * - snapshots.details: ProviderSnapshot.details (JSON; null: none);
 * - create_budget_events: one row per budget key for every claimed attempt of a create job on a target
 *   declaring createRate; the worker counts them in a sliding window and prunes the old ones.
 */
export const sql = `
ALTER TABLE vms ADD COLUMN disks TEXT;
ALTER TABLE snapshots ADD COLUMN details TEXT;
CREATE TABLE create_budget_events (
  target_id  TEXT NOT NULL REFERENCES targets(id),
  key        TEXT NOT NULL,
  at         TEXT NOT NULL,
  job_id     TEXT NOT NULL REFERENCES jobs(id)
) STRICT;
CREATE INDEX create_budget_events_key_at ON create_budget_events(target_id, key, at);
CREATE INDEX create_budget_events_job ON create_budget_events(job_id);
`;
