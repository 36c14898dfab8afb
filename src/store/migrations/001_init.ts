/**
 * First schema. Timestamps are ISO 8601 UTC strings (lexicographic order = time order), ids are
 * UUIDs minted by Snapvisor; the provider's own ids live in provider_vm_id / provider_ref.
 *
 * Indexes are chosen for the hot paths at 10,000 VMs / 200,000 snapshots:
 * - a VM's tree: snapshots(vm_id, state) covers "all present snapshots of one VM";
 * - the VM list: vms(target_id, name, id) / vms(name, id) give the keyset order with or without a
 *   target filter (the name filter is a substring match evaluated on those rows);
 * - the worker: jobs(state, next_attempt_at) for claimable jobs, jobs(vm_id, state) and
 *   jobs(target_id, state) for the per-VM lock and the per-target concurrency check inside the claim.
 */
export const sql = `
CREATE TABLE targets (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL UNIQUE,
  kind            TEXT NOT NULL,
  demo            INTEGER NOT NULL DEFAULT 0,
  healthy         INTEGER,
  health_message  TEXT,
  version         TEXT,
  checked_at      TEXT
) STRICT;

CREATE TABLE vms (
  id                    TEXT PRIMARY KEY,
  target_id             TEXT NOT NULL REFERENCES targets(id),
  provider_vm_id        TEXT NOT NULL,
  name                  TEXT NOT NULL,
  power_state           TEXT NOT NULL,
  raw_power_state       TEXT NOT NULL,
  consolidation_needed  INTEGER NOT NULL DEFAULT 0,
  first_seen_at         TEXT NOT NULL,
  last_seen_at          TEXT NOT NULL,
  gone_at               TEXT,
  UNIQUE (target_id, provider_vm_id)
) STRICT;
CREATE INDEX vms_target_name ON vms(target_id, name, id);
CREATE INDEX vms_name ON vms(name, id);

CREATE TABLE snapshots (
  id             TEXT PRIMARY KEY,
  vm_id          TEXT NOT NULL REFERENCES vms(id),
  provider_ref   TEXT NOT NULL,
  -- deferred: a sync inserts a new parent and its new children in one transaction, in any order
  parent_id      TEXT REFERENCES snapshots(id) DEFERRABLE INITIALLY DEFERRED,
  name           TEXT NOT NULL,
  description    TEXT NOT NULL DEFAULT '',
  mode           TEXT,
  owner          TEXT NOT NULL CHECK (owner IN ('snapvisor', 'external')),
  job_id         TEXT,
  state          TEXT NOT NULL CHECK (state IN ('present', 'gone')),
  is_current     INTEGER NOT NULL DEFAULT 0,
  created_at     TEXT,
  first_seen_at  TEXT NOT NULL,
  deleted_at     TEXT,
  UNIQUE (vm_id, provider_ref)
) STRICT;
CREATE INDEX snapshots_vm_state ON snapshots(vm_id, state);
CREATE INDEX snapshots_parent ON snapshots(parent_id);
CREATE INDEX snapshots_job ON snapshots(job_id) WHERE job_id IS NOT NULL;

CREATE TABLE jobs (
  id                TEXT PRIMARY KEY,
  kind              TEXT NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  target_id         TEXT NOT NULL REFERENCES targets(id),
  vm_id             TEXT NOT NULL REFERENCES vms(id),
  snapshot_id       TEXT REFERENCES snapshots(id),
  params            TEXT NOT NULL,
  progress          INTEGER NOT NULL DEFAULT 0,
  progress_message  TEXT,
  attempts          INTEGER NOT NULL DEFAULT 0,
  max_attempts      INTEGER NOT NULL,
  next_attempt_at   TEXT,
  claim_ticket      TEXT,
  claimed_at        TEXT,
  cancel_requested  INTEGER NOT NULL DEFAULT 0,
  result            TEXT,
  error             TEXT,
  requested_by      TEXT NOT NULL,
  created_at        TEXT NOT NULL,
  started_at        TEXT,
  finished_at       TEXT
) STRICT;
CREATE INDEX jobs_state_due ON jobs(state, next_attempt_at);
CREATE INDEX jobs_vm_state ON jobs(vm_id, state);
CREATE INDEX jobs_target_state ON jobs(target_id, state);
CREATE INDEX jobs_created ON jobs(created_at, id);
CREATE INDEX jobs_state_created ON jobs(state, created_at, id);
CREATE INDEX jobs_vm_created ON jobs(vm_id, created_at, id);

CREATE TABLE idempotency_keys (
  principal     TEXT NOT NULL,
  key           TEXT NOT NULL,
  request_hash  TEXT NOT NULL,
  job_id        TEXT NOT NULL REFERENCES jobs(id),
  created_at    TEXT NOT NULL,
  PRIMARY KEY (principal, key)
) STRICT;

CREATE TABLE audit_log (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  at           TEXT NOT NULL,
  principal    TEXT NOT NULL,
  method       TEXT NOT NULL,
  path         TEXT NOT NULL,
  status_code  INTEGER NOT NULL,
  job_id       TEXT,
  detail       TEXT
) STRICT;
CREATE INDEX audit_at ON audit_log(at);
`;

/**
 * PostgreSQL: the same tables, and
 * - the audit id is an identity column (SQLite's AUTOINCREMENT);
 * - snapshots get a `rowid` identity column: SQLite's rowid (insertion order) breaks ties of equal
 *   timestamps — the provider's order of the snapshots one sync found — and a column of the same
 *   name keeps those ORDER BY texts shared by both databases;
 * - the VM name indexes use the "C" collation, the one the VM list names (byte order, as SQLite's
 *   BINARY), so they serve it whatever the database's default collation is.
 */
export const postgres = sql
  .replace('id           INTEGER PRIMARY KEY AUTOINCREMENT', 'id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY')
  .replace('  deleted_at     TEXT,\n', '  deleted_at     TEXT,\n  rowid          BIGINT GENERATED ALWAYS AS IDENTITY,\n')
  .replace('CREATE INDEX vms_target_name ON vms(target_id, name, id);', 'CREATE INDEX vms_target_name ON vms(target_id, name COLLATE "C", id COLLATE "C");')
  .replace('CREATE INDEX vms_name ON vms(name, id);', 'CREATE INDEX vms_name ON vms(name COLLATE "C", id COLLATE "C");');
