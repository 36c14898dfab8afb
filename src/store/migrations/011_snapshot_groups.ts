/**
 * Snapshot groups (domain/group.ts). The group's state is derived from its members' create jobs;
 * `state`, `finished_at`, `spread_ms` and the members' state/snapshot/start/error columns are copies
 * written as those jobs move, so a group still reads right after job retention deleted its jobs
 * (members keep job_id without a foreign key, as snapshots do). `jobs.group_id` marks every job a
 * group made (creates, retries, reverts, deletes).
 */
export const sql = `
CREATE TABLE snapshot_groups (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  description   TEXT NOT NULL DEFAULT '',
  mode          TEXT NOT NULL,
  selector      TEXT,
  state         TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  requested_by  TEXT NOT NULL,
  finished_at   TEXT,
  spread_ms     INTEGER
) STRICT;
CREATE INDEX snapshot_groups_created ON snapshot_groups(created_at, id);
CREATE INDEX snapshot_groups_running ON snapshot_groups(id) WHERE state = 'running';

CREATE TABLE snapshot_group_members (
  group_id      TEXT NOT NULL REFERENCES snapshot_groups(id),
  vm_id         TEXT NOT NULL,
  target        TEXT NOT NULL,
  job_id        TEXT NOT NULL,
  snapshot_id   TEXT,
  state         TEXT NOT NULL,
  started_at    TEXT,
  error         TEXT,
  PRIMARY KEY (group_id, vm_id)
) STRICT;

ALTER TABLE jobs ADD COLUMN group_id TEXT;
CREATE INDEX jobs_group ON jobs(group_id) WHERE group_id IS NOT NULL;
`;
