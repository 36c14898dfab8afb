/**
 * The job queue on PostgreSQL, shared by several daemon replicas. What SQLite gets from its single
 * writer (one statement sees and changes the queue alone), PostgreSQL gets from locks, each named
 * where it is taken:
 * - a claim holds its target's advisory lock (claimLock): the per-VM and per-target limits are
 *   checked and the job claimed with no other claim on that target in between;
 * - a submit with a queue cap holds its principal's advisory lock (queueLock) while it counts and
 *   inserts, so two replicas cannot both fill the last place;
 * - an idempotency key is held by its primary key (see ./idempotency.ts);
 * - leases: a running job belongs to the replica named in lease_owner until lease_until; a
 *   replica that died stops renewing, and another takes the job over after that (takeOver).
 * Everything else is one statement, or a row lock (SELECT … FOR UPDATE) where it reads then writes.
 */
import { fairTag } from '../../domain/fair-claim.ts';
import type { Job, JobKind } from '../../domain/types.ts';
import {
  COUNT_QUEUED_SQL,
  countsByState,
  createModeOf,
  DUE_SQL,
  enc,
  FAIR_CANDIDATES_SQL,
  FAIR_TAG_INPUTS_SQL,
  fairTagInputsParams,
  finishParams,
  INSERT_JOB_SQL,
  insertJobParams,
  JOB_SQL,
  jobListPage,
  jobListQuery,
  progressPercent,
  toJob,
  type JobRepo,
  type NewJob,
  type SubmitOutcome,
} from '../jobs.ts';
import type { JobCheckpoint } from '../../../providers/contract.ts';
import { json, type Row } from '../rows.ts';
import { positional, type PgDb, type PgQueryable } from './db.ts';
import { insertPgKey, txKeyRace } from './idempotency.ts';

/**
 * Serialises the claims on one target across replicas until the transaction ends. A VM belongs to
 * one target, so this also serialises the claims on each VM.
 */
const CLAIM_LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtextextended('snapvisor.claim.target:' || ?, 0))`;

/** Serialises the capped submissions of one principal across replicas until the transaction ends. */
const QUEUE_LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtextextended('snapvisor.queue.principal:' || ?, 0))`;

/** Takes the principal's queue lock (in the caller's transaction), then counts its queued jobs. */
export async function lockedQueuedCount(q: PgQueryable, principal: string): Promise<number> {
  await q.get(QUEUE_LOCK_SQL, [principal]);
  // A statement after the lock's: its snapshot sees every submission that held the lock before us.
  return Number((await q.get<{ n: number }>(COUNT_QUEUED_SQL, [principal]))!.n);
}

/**
 * Inserts one job inside the caller's transaction (the twin of insertJob): a queued job gets its
 * fair tag from the principal's queued jobs as this transaction sees them. Two replicas inserting
 * for one principal at once may give equal tags: the tag orders, it does not guard anything.
 */
export async function insertPgJob(q: PgQueryable, job: NewJob): Promise<Job> {
  let tag = 0;
  if ((job.state ?? 'queued') === 'queued') {
    const r = (await q.get<{ round: number | null; vm_last: number | null }>(FAIR_TAG_INPUTS_SQL, fairTagInputsParams(job)))!;
    tag = fairTag(r.round, r.vm_last);
  }
  return toJob((await q.get<Row>(`${INSERT_JOB_SQL} RETURNING *`, insertJobParams(job, tag)))!);
}

/**
 * The claim. The inner SELECT … FOR UPDATE SKIP LOCKED takes the job's row (another replica's
 * claim of the same job that holds it makes this one lose at once, not wait); the subqueries
 * check the limits against the running jobs. It must run AFTER CLAIM_LOCK_SQL, as a statement of
 * its own: under READ COMMITTED each statement reads one snapshot, taken when the statement starts.
 * Were the lock taken inside this statement, the snapshot would predate it and miss the running
 * job a claim that held the lock just committed — two jobs would run on one VM (the race test in
 * test/unit/store-pg-job-races.test.ts fails that way with the lock in a CTE of this statement).
 */
const claimSql = (clearMessage: boolean) => `UPDATE jobs SET state = 'running', claim_ticket = ?, claimed_at = ?, started_at = coalesce(started_at, ?),
     attempts = attempts + 1, next_attempt_at = NULL, lease_owner = ?, lease_until = ?${clearMessage ? ', progress_message = NULL' : ''}
   WHERE id = (SELECT id FROM jobs WHERE id = ? AND state = 'queued' AND claim_ticket IS NULL FOR UPDATE SKIP LOCKED)
     AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.vm_id = jobs.vm_id AND r.state = 'running')
     AND (SELECT count(*) FROM jobs r WHERE r.target_id = jobs.target_id AND r.state = 'running') < ?`;

/** PostgreSQL: a running job is recoverable once no live replica holds it (see JobRepo.recoverable). */
const RECOVERABLE_WHERE = `state = 'running' AND (claim_ticket IS NULL OR lease_until IS NULL OR lease_until < ?)`;

/** The principals with queued jobs, one index seek each (a skip scan): the queue's length does not matter. */
const QUEUED_PRINCIPALS_SQL = `WITH RECURSIVE p(name) AS (
     (SELECT requested_by FROM jobs WHERE state = 'queued' ORDER BY requested_by LIMIT 1)
     UNION ALL
     SELECT (SELECT requested_by FROM jobs WHERE state = 'queued' AND requested_by > p.name ORDER BY requested_by LIMIT 1)
       FROM p WHERE p.name IS NOT NULL)
   SELECT name FROM p WHERE name IS NOT NULL`;

const FINAL = `('succeeded', 'failed', 'cancelled')`;

export function createPgJobRepo(db: PgDb): JobRepo {
  /** Runs an UPDATE on one job with RETURNING *: the updated job, or null when no row matched. */
  const update = async (q: PgQueryable, sql: string, params: readonly unknown[]): Promise<Job | null> => {
    const r = await q.get<Row>(`${sql} RETURNING *`, params);
    return r ? toJob(r) : null;
  };
  const get = async (q: PgQueryable, id: string): Promise<Job | null> => {
    const r = await q.get<Row>('SELECT * FROM jobs WHERE id = ?', [id]);
    return r ? toJob(r) : null;
  };

  return {
    async submit(job, idem, options = {}) {
      return txKeyRace(db, async (q): Promise<SubmitOutcome> => {
        if (idem) {
          // The key with its job in one statement (one snapshot): retention deletes both in one
          // transaction, so this never sees a key whose job another replica just pruned.
          const prior = await q.get<Row>(
            `SELECT k.request_hash AS key_request_hash, j.* FROM idempotency_keys k JOIN jobs j ON j.id = k.job_id WHERE k.principal = ? AND k.key = ?`,
            [idem.principal, idem.key],
          );
          if (prior) {
            if (prior.key_request_hash !== idem.requestHash) return { outcome: 'key-reused', jobId: String(prior.id) };
            return { outcome: 'replayed', job: toJob(prior) };
          }
        }
        if ((job.state ?? 'queued') === 'queued' && options.maxQueued !== undefined) {
          const queued = await lockedQueuedCount(q, job.requestedBy);
          if (queued >= options.maxQueued) return { outcome: 'queue-full', queued };
        }
        const created = await insertPgJob(q, job);
        if (idem) await insertPgKey(q, { ...idem, jobId: job.id, createdAt: job.createdAt });
        return { outcome: 'created', job: created };
      });
    },
    get: (id) => get(db, id),
    async list(query) {
      const { sql, params } = jobListQuery(query);
      return jobListPage(await db.all<Row>(sql, params), query.limit);
    },
    async due(now, limit) {
      const rows = await db.all<{ id: string; vm_id: string; target_id: string; kind: string }>(DUE_SQL, [now, limit]);
      return rows.map((r) => ({ id: r.id, vmId: r.vm_id, targetId: r.target_id, kind: r.kind as JobKind }));
    },
    async queuedPrincipals() {
      // The skip scan follows the index's collation; the answer is in SQLite's (BINARY: UTF-8 bytes).
      return (await db.all<{ name: string }>(QUEUED_PRINCIPALS_SQL)).map((r) => r.name).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    },
    async fairCandidates(targetId, principal, now, limit) {
      const { sql, params } = positional(FAIR_CANDIDATES_SQL, { principal, targetId, now, limit });
      const rows = await db.all<{ id: string; vm_id: string; target_id: string; kind: string; requested_by: string }>(sql, params);
      return rows.map((r) => ({ id: r.id, vmId: r.vm_id, targetId: r.target_id, kind: r.kind as JobKind, principal: r.requested_by }));
    },
    async countQueued(principal) {
      return Number((await db.get<{ n: number }>(COUNT_QUEUED_SQL, [principal]))!.n);
    },
    async tryClaim(id, ticket, now, maxRunningPerTarget, options = {}) {
      const keys = options.budgetKeys ?? [];
      // Which target's lock to take (a job's target never changes); a job already taken loses here,
      // without a transaction or a lock.
      const job = await db.get<{ target_id: string }>(`SELECT target_id FROM jobs WHERE id = ? AND state = 'queued' AND claim_ticket IS NULL`, [id]);
      if (!job) return null;
      return db.tx(async (q) => {
        await q.get(CLAIM_LOCK_SQL, [job.target_id]);
        // Under the target's lock: another replica's claim of a create sharing a budget key has committed its events.
        for (const g of options.budgetGuards ?? []) {
          const r = await q.get<{ n: number }>(JOB_SQL.countBudgetEvents, [job.target_id, g.key, g.since]);
          if (Number(r?.n ?? 0) >= g.max) return null;
        }
        const claimed = await update(
          q,
          claimSql(keys.length > 0),
          [ticket, now, now, options.lease?.owner ?? null, options.lease?.until ?? null, id, maxRunningPerTarget],
        );
        if (!claimed) return null;
        // Budget events only for a claim that won, in its transaction: a lost claim records nothing.
        if (keys.length > 0) {
          await q.run(
            `INSERT INTO create_budget_events (target_id, key, at, job_id) SELECT ?, k, ?, ? FROM unnest(?::text[]) AS k`,
            [claimed.targetId, now, claimed.id, keys],
          );
        }
        return claimed;
      });
    },
    deferQueued: (id, nextAttemptAt, message) => update(db, JOB_SQL.deferQueued, [nextAttemptAt, message, id]),
    setProgress: (id, ticket, percent, message) => update(db, JOB_SQL.setProgress, [progressPercent(percent), message, id, ticket]),
    async checkpoint(id, ticket, record) {
      return db.tx(async (q) => {
        // The row lock makes two writers of one checkpoint merge one after the other, not over each other.
        const r = await q.get<Row>('SELECT checkpoint FROM jobs WHERE id = ? AND claim_ticket = ? FOR UPDATE', [id, ticket]);
        if (!r) return null;
        const merged: JobCheckpoint = { ...(json<JobCheckpoint>(r.checkpoint) ?? {}), ...record };
        return update(q, JOB_SQL.setCheckpoint, [JSON.stringify(merged), id, ticket]);
      });
    },
    finish: (id, ticket, u) => update(db, JOB_SQL.finish, finishParams(id, ticket, u)),
    requeue: (id, ticket, u) => update(db, JOB_SQL.requeue, [u.nextAttemptAt, enc(u.error), id, ticket]),
    leaveForRecovery: (id, ticket, error) => update(db, JOB_SQL.leaveForRecovery, [enc(error), id, ticket]),
    cancelQueued: (id, at, error) => update(db, JOB_SQL.cancelQueued, [at, enc(error), id]),
    requestCancel: (id) => update(db, JOB_SQL.requestCancel, [id]),
    async listByState(state) {
      return (await db.all<Row>(JOB_SQL.listByState, [state])).map(toJob);
    },
    async recoverable(now) {
      return (await db.all<Row>(`SELECT * FROM jobs WHERE ${RECOVERABLE_WHERE} ORDER BY created_at, id`, [now])).map(toJob);
    },
    async takeOver(id, ticket, now, lease) {
      // One statement: of two replicas taking over one job, the second waits for the first's row
      // lock, then finds the job no longer recoverable (the first's lease) and loses.
      return update(
        db,
        `UPDATE jobs SET claim_ticket = ?, claimed_at = ?, lease_owner = ?, lease_until = ? WHERE id = ? AND ${RECOVERABLE_WHERE}`,
        [ticket, now, lease?.owner ?? null, lease?.until ?? null, id, now],
      );
    },
    renewLeases: (owner, until) => db.run(JOB_SQL.renewLeases, [until, owner]),
    clearStaleClaims: () => db.run(JOB_SQL.clearStaleClaims),
    async countByState() {
      return countsByState(await db.all<Row>(JOB_SQL.countByState));
    },
    async pruneFinished(before, limit) {
      return db.tx(async (q) => {
        // SKIP LOCKED: two replicas' retention passes take different batches instead of waiting on one.
        const ids = (
          await q.all<{ id: string }>(
            `SELECT id FROM jobs WHERE state IN ${FINAL} AND created_at < ? AND coalesce(finished_at, created_at) < ?
               ORDER BY created_at, id LIMIT ? FOR UPDATE SKIP LOCKED`,
            [before, before, limit],
          )
        ).map((r) => r.id);
        if (ids.length === 0) return 0;
        await q.run('DELETE FROM idempotency_keys WHERE job_id = ANY(?::text[])', [ids]);
        await q.run('DELETE FROM create_budget_events WHERE job_id = ANY(?::text[])', [ids]);
        return q.run(`DELETE FROM jobs WHERE id = ANY(?::text[]) AND state IN ${FINAL}`, [ids]);
      });
    },
    async createModes(ids) {
      const rows = await db.all<Row>(`SELECT id, params, policy_id FROM jobs WHERE id = ANY(?::text[]) AND kind = 'snapshot.create'`, [[...ids]]);
      const byId = new Map(rows.map((r) => [String(r.id), r]));
      const out = new Map<string, ReturnType<typeof createModeOf>>();
      for (const id of ids) {
        const r = byId.get(id);
        if (r) out.set(id, createModeOf(r));
      }
      return out;
    },
  };
}
