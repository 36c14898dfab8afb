/**
 * A scheduled slot runs at most once: when two replicas fire the same cron slot (an old leader that
 * has not noticed it lost the lock, and the new one), the second insert of that (policy, kind,
 * slot) is refused by this index and PolicyRepo.startRun answers with the run already made.
 * Manual runs have no slot and are not concerned.
 *
 * PostgreSQL also gets `rowid` identity columns on snapshots and webhook_outbox: SQLite's rowid
 * (insertion order) breaks ties of equal timestamps there — the provider's order of the snapshots
 * found in one sync, the order webhook events were written in — and one column of the same name
 * keeps those ORDER BY texts shared by both databases.
 *
 * And PostgreSQL's VM name indexes take the "C" collation, the one the VM list now names (byte order
 * and ASCII-only case folding, as SQLite's BINARY and LIKE), so they serve it whatever the
 * database's default collation: under C.UTF-8 or en_US, lower() also folds É to é, which SQLite's
 * LIKE does not, and a list ordered by the database's collation would page differently.
 */
export const sql = `
CREATE UNIQUE INDEX policy_runs_slot_once ON policy_runs(policy_id, kind, scheduled_for) WHERE scheduled_for IS NOT NULL AND trigger <> 'manual';
`;

export const postgres = `${sql}
ALTER TABLE snapshots ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE webhook_outbox ADD COLUMN rowid BIGINT GENERATED ALWAYS AS IDENTITY;
DROP INDEX vms_target_name_nocase;
DROP INDEX vms_name_nocase;
CREATE INDEX vms_target_name_nocase ON vms(target_id, lower(name COLLATE "C") text_pattern_ops);
CREATE INDEX vms_name_nocase ON vms(lower(name COLLATE "C") text_pattern_ops);
DROP INDEX vms_target_name;
DROP INDEX vms_name;
CREATE INDEX vms_target_name ON vms(target_id, name COLLATE "C", id COLLATE "C");
CREATE INDEX vms_name ON vms(name COLLATE "C", id COLLATE "C");
`;
