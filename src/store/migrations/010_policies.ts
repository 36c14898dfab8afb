/**
 * Policies and their runs (issue 13). A run is written before any of its jobs, and jobs and the
 * snapshots they make carry the policy's id, so retention can tell a policy's own snapshots from a
 * user's (manual), from ones made outside Snapvisor (external) and from another policy's.
 *
 * No foreign keys to policies: deleting a policy keeps its runs' history, and its snapshots keep
 * their policy_id (still owned by that policy, never by another one).
 * At most one running run per (policy, kind): the partial unique index makes overlap impossible even
 * if two starts race.
 */
export const sql = `
CREATE TABLE policies (
  id                      TEXT PRIMARY KEY,
  name                    TEXT NOT NULL UNIQUE,
  selector                TEXT NOT NULL,
  schedule                TEXT NOT NULL,
  timezone                TEXT NOT NULL,
  mode                    TEXT NOT NULL,
  retention               TEXT NOT NULL,
  max_chain_depth         INTEGER,
  consolidation_schedule  TEXT,
  enabled                 INTEGER NOT NULL DEFAULT 1,
  created_at              TEXT NOT NULL,
  updated_at              TEXT NOT NULL
) STRICT;

CREATE TABLE policy_runs (
  id             TEXT PRIMARY KEY,
  policy_id      TEXT NOT NULL,
  kind           TEXT NOT NULL CHECK (kind IN ('snapshot', 'consolidate')),
  trigger        TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
  scheduled_for  TEXT,
  started_at     TEXT NOT NULL,
  finished_at    TEXT,
  state          TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'partial', 'failed', 'skipped')),
  message        TEXT
) STRICT;
CREATE INDEX policy_runs_policy_started ON policy_runs(policy_id, started_at, id);
CREATE INDEX policy_runs_slot ON policy_runs(policy_id, kind, scheduled_for);
CREATE UNIQUE INDEX policy_runs_one_running ON policy_runs(policy_id, kind) WHERE state = 'running';

-- The jobs a run submitted, in submit order (kept when job retention prunes the job rows).
CREATE TABLE policy_run_jobs (
  run_id  TEXT NOT NULL REFERENCES policy_runs(id),
  seq     INTEGER NOT NULL,
  job_id  TEXT NOT NULL,
  PRIMARY KEY (run_id, job_id)
) STRICT;

ALTER TABLE jobs ADD COLUMN policy_id TEXT;
ALTER TABLE jobs ADD COLUMN policy_run_id TEXT;
CREATE INDEX jobs_policy_created ON jobs(policy_id, created_at, id) WHERE policy_id IS NOT NULL;

ALTER TABLE snapshots ADD COLUMN policy_id TEXT;
`;
