/**
 * Snapshot groups on PostgreSQL (see src/store/groups.ts). The create transaction follows submit's
 * rules across replicas (./jobs.ts): the principal's queue lock around the count and the inserts,
 * the idempotency key's primary key against a concurrent request with the same key.
 */
import {
  GROUP_SQL,
  groupListNext,
  groupListQuery,
  INSERT_GROUP_SQL,
  INSERT_MEMBER_SQL,
  insertGroupParams,
  MEMBERS_SQL,
  toGroup,
  toGroupRow,
  type GroupCreateOutcome,
  type GroupRefresh,
  type GroupRepo,
  type GroupRow,
} from '../groups.ts';
import { str, strOrNull, type Row } from '../rows.ts';
import type { PgDb, PgQueryable } from './db.ts';
import { insertPgKey, txKeyRace } from './idempotency.ts';
import { insertPgJob, lockedQueuedCount } from './jobs.ts';

export function createPgGroupRepo(db: PgDb): GroupRepo {
  const derive = async (q: PgQueryable, g: GroupRow) => toGroup(g, await q.all<Row>(MEMBERS_SQL, [g.id]));

  return {
    async create(group, members, idem, options = {}) {
      return txKeyRace(db, async (q): Promise<GroupCreateOutcome> => {
        if (idem) {
          // The key with its job's group in one statement (one snapshot: see jobs.submit).
          const prior = await q.get<Row>(
            `SELECT k.request_hash, j.group_id FROM idempotency_keys k JOIN jobs j ON j.id = k.job_id WHERE k.principal = ? AND k.key = ?`,
            [idem.principal, idem.key],
          );
          if (prior) {
            const groupId = strOrNull(prior.group_id);
            if (prior.request_hash !== idem.requestHash || groupId === null) return { outcome: 'key-reused' };
            return { outcome: 'replayed', groupId };
          }
        }
        if (options.maxQueued !== undefined) {
          const queued = await lockedQueuedCount(q, group.requestedBy);
          if (queued + members.length > options.maxQueued) return { outcome: 'queue-full', queued };
        }
        await q.run(INSERT_GROUP_SQL, insertGroupParams(group));
        for (const m of members) {
          await insertPgJob(q, { ...m.job, groupId: group.id });
          await q.run(INSERT_MEMBER_SQL, [group.id, m.vmId, m.target, m.job.id]);
        }
        if (idem && members[0]) await insertPgKey(q, { ...idem, jobId: members[0].job.id, createdAt: group.createdAt });
        return { outcome: 'created', groupId: group.id };
      });
    },
    async get(id) {
      const r = await db.get<Row>(GROUP_SQL.get, [id]);
      return r ? derive(db, toGroupRow(r)) : null;
    },
    async list(query) {
      const { sql, params } = groupListQuery(query);
      const rows = await db.all<Row>(sql, params);
      const page = rows.slice(0, query.limit).map(toGroupRow);
      // One group after another: a long page must not take every connection of the pool at once.
      const items = [];
      for (const g of page) items.push(await derive(db, g));
      return { items, next: groupListNext(rows.length, page, query.limit) };
    },
    async retry(groupId, jobs) {
      await db.tx(async (q) => {
        for (const job of jobs) {
          await insertPgJob(q, { ...job, groupId });
          await q.run(GROUP_SQL.retryMember, [job.id, groupId, job.vmId]);
        }
        await q.run(GROUP_SQL.rerun, [groupId]);
      });
    },
    async addJobs(groupId, jobs, deleted) {
      await db.tx(async (q) => {
        for (const job of jobs) await insertPgJob(q, { ...job, groupId });
        if (deleted) await q.run(GROUP_SQL.markDeleted, [deleted.at, groupId]);
      });
    },
    async refresh(groupId) {
      return db.tx(async (q): Promise<GroupRefresh | null> => {
        // The group's row lock: two replicas refreshing one group do it one after the other, so the
        // second's `before` is the first's result and a state change is reported (and counted) once.
        const r = await q.get<Row>(`${GROUP_SQL.get} FOR UPDATE`, [groupId]);
        if (!r) return null;
        const g = toGroupRow(r);
        const group = await derive(q, g);
        await q.run(GROUP_SQL.saveDerived, [group.state, group.finishedAt, group.spreadMs, groupId]);
        for (const m of group.members) {
          await q.run(GROUP_SQL.copyMember, [m.state, m.snapshotId, m.startedAt, m.error === null ? null : JSON.stringify(m.error), groupId, m.vmId]);
        }
        return { before: { state: g.state, finishedAt: g.finishedAt }, group };
      });
    },
    async runningIds() {
      return (await db.all<Row>(GROUP_SQL.runningIds)).map((r) => str(r.id));
    },
  };
}
