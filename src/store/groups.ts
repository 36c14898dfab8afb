/**
 * Snapshot groups (domain/group.ts). A group, its members' create jobs and the request's
 * idempotency key are written in one transaction, so no crash leaves a group without its jobs.
 * Reads derive the state, start times and errors from the members' current jobs; the copies kept
 * on the rows (see migration 011) stand in once retention has deleted those jobs.
 */
import { groupState, startSpreadMs } from '../domain/group-state.ts';
import type { GroupMember, GroupState, SnapshotGroup } from '../domain/group.ts';
import type { Selector } from '../domain/policy.ts';
import type { JobError, JobState, SnapshotMode } from '../domain/types.ts';
import type { Db } from './db.ts';
import { findKey, insertKey } from './idempotency.ts';
import { COUNT_QUEUED_SQL, insertJob, type NewJob } from './jobs.ts';
import { decodeCursor, encodeCursor, intOrNull, json, str, strOrNull, type Row } from './rows.ts';
import { InvalidCursorError } from './vms.ts';

export interface NewGroup {
  id: string;
  name: string;
  description: string;
  mode: SnapshotMode;
  selector: Selector | null;
  createdAt: string;
  requestedBy: string;
}

/** A member and its create job (queued, `groupId` set). */
export interface NewGroupMember {
  vmId: string;
  target: string;
  job: NewJob;
}

export type GroupCreateOutcome =
  | { outcome: 'created'; groupId: string }
  | { outcome: 'replayed'; groupId: string }
  | { outcome: 'key-reused' }
  /** The principal's queued jobs plus this group's would pass `maxQueued`: nothing was written. */
  | { outcome: 'queue-full'; queued: number };

/** A group's state before and after `refresh`: what the engine counts in its metrics. */
export interface GroupRefresh {
  before: { state: GroupState; finishedAt: string | null };
  group: SnapshotGroup;
}

export interface GroupRepo {
  /**
   * Group row, one queued create job per member, the member rows and (with a key) the idempotency
   * row naming the first member's job, in one transaction. A key seen before with the same request
   * hash answers `replayed` with the group of that job; with another hash `key-reused`.
   */
  create(
    group: NewGroup,
    members: readonly NewGroupMember[],
    idempotency?: { principal: string; key: string; requestHash: string },
    options?: { maxQueued?: number },
  ): Promise<GroupCreateOutcome>;
  get(id: string): Promise<SnapshotGroup | null>;
  /** Newest first, keyset pagination on (created_at, id). */
  list(query: { limit: number; cursor?: string }): Promise<{ items: SnapshotGroup[]; next: string | null }>;
  /** New create jobs for some members (a retry): each member's job becomes the new one; the group runs again. */
  retry(groupId: string, jobs: readonly NewJob[]): Promise<void>;
  /** Jobs acting on the group's snapshots (reverts, deletes), in one transaction; `deleted` marks the group deleted at `at`. */
  addJobs(groupId: string, jobs: readonly NewJob[], deleted?: { at: string }): Promise<void>;
  /** Writes the derived state, spread, finish time and member copies; null for an unknown group. */
  refresh(groupId: string): Promise<GroupRefresh | null>;
  /** Groups stored as running (what start-up refreshes: their jobs may have ended while the daemon was down). */
  runningIds(): Promise<string[]>;
}

export interface GroupRow {
  id: string;
  name: string;
  description: string;
  mode: SnapshotMode;
  selector: Selector | null;
  state: GroupState;
  createdAt: string;
  requestedBy: string;
  finishedAt: string | null;
  spreadMs: number | null;
}

export const toGroupRow = (r: Row): GroupRow => ({
  id: str(r.id),
  name: str(r.name),
  description: str(r.description),
  mode: str(r.mode) as SnapshotMode,
  selector: json<Selector>(r.selector),
  state: str(r.state) as GroupState,
  createdAt: str(r.created_at),
  requestedBy: str(r.requested_by),
  finishedAt: strOrNull(r.finished_at),
  spreadMs: intOrNull(r.spread_ms),
});

export const MEMBERS_SQL = `SELECT m.vm_id, m.target, m.job_id, coalesce(v.name, m.vm_id) AS vm_name,
     coalesce(j.state, m.state) AS state, coalesce(j.snapshot_id, m.snapshot_id) AS snapshot_id,
     CASE WHEN j.id IS NULL THEN m.started_at ELSE j.started_at END AS started_at,
     CASE WHEN j.id IS NULL THEN m.error ELSE j.error END AS error,
     j.finished_at AS job_finished_at
   FROM snapshot_group_members m LEFT JOIN jobs j ON j.id = m.job_id LEFT JOIN vms v ON v.id = m.vm_id
   WHERE m.group_id = ? ORDER BY m.target, vm_name, m.vm_id`;

/** The group as its jobs say it is now: its row and MEMBERS_SQL's rows. */
export function toGroup(g: GroupRow, rows: readonly Row[]): SnapshotGroup {
  const members: GroupMember[] = rows.map((r) => ({
    vmId: str(r.vm_id),
    vmName: str(r.vm_name),
    target: str(r.target),
    jobId: str(r.job_id),
    state: str(r.state) as JobState,
    snapshotId: strOrNull(r.snapshot_id),
    startedAt: strOrNull(r.started_at),
    error: json<JobError>(r.error),
  }));
  const state = groupState(members, g.state === 'deleted');
  let finishedAt: string | null = null;
  if (state === 'deleted') finishedAt = g.finishedAt;
  else if (state !== 'running') {
    const ends = rows.map((r) => strOrNull(r.job_finished_at)).filter((x): x is string => x !== null).sort();
    finishedAt = ends.length === rows.length ? ends[ends.length - 1]! : g.finishedAt;
  }
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    mode: g.mode,
    selector: g.selector,
    state,
    createdAt: g.createdAt,
    requestedBy: g.requestedBy,
    finishedAt,
    spreadMs: startSpreadMs(members.map((m) => m.startedAt)) ?? g.spreadMs,
    members,
  };
}

export const INSERT_GROUP_SQL = `INSERT INTO snapshot_groups (id, name, description, mode, selector, state, created_at, requested_by)
           VALUES (?, ?, ?, ?, ?, 'running', ?, ?)`;
export const insertGroupParams = (group: NewGroup): unknown[] =>
  [group.id, group.name, group.description, group.mode, group.selector === null ? null : JSON.stringify(group.selector), group.createdAt, group.requestedBy];
export const INSERT_MEMBER_SQL = `INSERT INTO snapshot_group_members (group_id, vm_id, target, job_id, state) VALUES (?, ?, ?, ?, 'queued')`;
export const GROUP_SQL = {
  get: 'SELECT * FROM snapshot_groups WHERE id = ?',
  groupOfJob: 'SELECT group_id FROM jobs WHERE id = ?',
  retryMember: `UPDATE snapshot_group_members SET job_id = ?, state = 'queued', snapshot_id = NULL, started_at = NULL, error = NULL
           WHERE group_id = ? AND vm_id = ?`,
  rerun: `UPDATE snapshot_groups SET state = 'running', finished_at = NULL WHERE id = ? AND state <> 'deleted'`,
  markDeleted: `UPDATE snapshot_groups SET state = 'deleted', finished_at = ? WHERE id = ?`,
  saveDerived: 'UPDATE snapshot_groups SET state = ?, finished_at = ?, spread_ms = ? WHERE id = ?',
  copyMember: 'UPDATE snapshot_group_members SET state = ?, snapshot_id = ?, started_at = ?, error = ? WHERE group_id = ? AND vm_id = ?',
  runningIds: `SELECT id FROM snapshot_groups WHERE state = 'running'`,
} as const;

/** The group list's statement (newest first, keyset on (created_at, id)), one row more than the page. */
export function groupListQuery(q: { limit: number; cursor?: string }): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  let where = '';
  if (q.cursor !== undefined) {
    const before = decodeCursor(q.cursor, 2);
    if (!before) throw new InvalidCursorError('invalid cursor');
    where = ' WHERE (created_at, id) < (?, ?)';
    params.push(before[0], before[1]);
  }
  return { sql: `SELECT * FROM snapshot_groups${where} ORDER BY created_at DESC, id DESC LIMIT ?`, params: [...params, q.limit + 1] };
}

/** The page's cursor: set when groupListQuery found a row past the page. */
export const groupListNext = (rowCount: number, page: readonly GroupRow[], limit: number): string | null => {
  const last = page[page.length - 1];
  return rowCount > limit && last ? encodeCursor([last.createdAt, last.id]) : null;
};

export function createGroupRepo(db: Db): GroupRepo {
  const row = (id: string): GroupRow | null => {
    const r = db.stmt(GROUP_SQL.get).get(id) as Row | undefined;
    return r ? toGroupRow(r) : null;
  };

  /** The group as its jobs say it is now. */
  const derive = (g: GroupRow): SnapshotGroup => toGroup(g, db.stmt(MEMBERS_SQL).all(g.id) as Row[]);

  const groupOfJob = (jobId: string): string | null => {
    const r = db.stmt(GROUP_SQL.groupOfJob).get(jobId) as Row | undefined;
    return r ? strOrNull(r.group_id) : null;
  };

  const insertMember = (groupId: string, m: NewGroupMember) =>
    db.stmt(INSERT_MEMBER_SQL).run(groupId, m.vmId, m.target, m.job.id);

  return {
    async create(group, members, idem, options = {}) {
      return db.tx((): GroupCreateOutcome => {
        if (idem) {
          const prior = findKey(db, idem.principal, idem.key);
          if (prior) {
            const groupId = groupOfJob(prior.jobId);
            if (prior.requestHash !== idem.requestHash || groupId === null) return { outcome: 'key-reused' };
            return { outcome: 'replayed', groupId };
          }
        }
        if (options.maxQueued !== undefined) {
          const queued = Number((db.stmt(COUNT_QUEUED_SQL).get(group.requestedBy) as { n: number }).n);
          if (queued + members.length > options.maxQueued) return { outcome: 'queue-full', queued };
        }
        db.stmt(INSERT_GROUP_SQL).run(...insertGroupParams(group));
        for (const m of members) {
          insertJob(db, { ...m.job, groupId: group.id });
          insertMember(group.id, m);
        }
        if (idem && members[0]) insertKey(db, { ...idem, jobId: members[0].job.id, createdAt: group.createdAt });
        return { outcome: 'created', groupId: group.id };
      });
    },
    async get(id) {
      const g = row(id);
      return g ? derive(g) : null;
    },
    async list(q) {
      const { sql, params } = groupListQuery(q);
      const rows = db.stmt(sql).all(...params) as Row[];
      const page = rows.slice(0, q.limit).map(toGroupRow);
      return { items: page.map(derive), next: groupListNext(rows.length, page, q.limit) };
    },
    async retry(groupId, jobs) {
      db.tx(() => {
        const setJob = db.stmt(GROUP_SQL.retryMember);
        for (const job of jobs) {
          insertJob(db, { ...job, groupId });
          setJob.run(job.id, groupId, job.vmId);
        }
        db.stmt(GROUP_SQL.rerun).run(groupId);
      });
    },
    async addJobs(groupId, jobs, deleted) {
      db.tx(() => {
        for (const job of jobs) insertJob(db, { ...job, groupId });
        if (deleted) db.stmt(GROUP_SQL.markDeleted).run(deleted.at, groupId);
      });
    },
    async refresh(groupId) {
      return db.tx((): GroupRefresh | null => {
        const g = row(groupId);
        if (!g) return null;
        const group = derive(g);
        db.stmt(GROUP_SQL.saveDerived).run(group.state, group.finishedAt, group.spreadMs, groupId);
        const copy = db.stmt(GROUP_SQL.copyMember);
        for (const m of group.members) copy.run(m.state, m.snapshotId, m.startedAt, m.error === null ? null : JSON.stringify(m.error), groupId, m.vmId);
        return { before: { state: g.state, finishedAt: g.finishedAt }, group };
      });
    },
    async runningIds() {
      return (db.stmt(GROUP_SQL.runningIds).all() as Row[]).map((r) => str(r.id));
    },
  };
}
