import type { JobCheckpoint } from '../../providers/contract.ts';
import type { BudgetGuard } from '../domain/create-budget.ts';
import { fairTag } from '../domain/fair-claim.ts';
import type { Iso, Job, JobError, JobKind, JobParams, JobResult, JobState, SnapshotMode } from '../domain/types.ts';
import { JOB_STATES } from '../domain/types.ts';
import type { Db } from './db.ts';
import { findKey, insertKey } from './idempotency.ts';
import { bool, decodeCursor, encodeCursor, json, str, strOrNull, type Row } from './rows.ts';
import { InvalidCursorError } from './vms.ts';

export interface NewJob {
  id: string;
  kind: JobKind;
  targetId: string;
  vmId: string;
  snapshotId: string | null;
  params: JobParams;
  maxAttempts: number;
  requestedBy: string;
  createdAt: string;
  /** Normally queued; a job answered at submit time (a dry run) is stored already final. */
  state?: JobState;
  /** The snapshot group that made it (absent: none). */
  groupId?: string | null;
  result?: JobResult | null;
  /** The policy and run that submitted it (policies: retention owns what its creates make). */
  policyId?: string | null;
  policyRunId?: string | null;
}

export type SubmitOutcome =
  | { outcome: 'created'; job: Job }
  | { outcome: 'replayed'; job: Job }
  | { outcome: 'key-reused'; jobId: string }
  /** The principal already has `maxQueued` (or more) queued jobs: nothing was written. */
  | { outcome: 'queue-full'; queued: number };

export interface SubmitOptions {
  /** Refuse a queued job when its principal already has this many queued (the per-token cap). */
  maxQueued?: number;
}

export interface JobListQuery {
  state?: JobState;
  vmId?: string;
  kind?: JobKind;
  /** Only jobs a run of this policy submitted. */
  policyId?: string;
  limit: number;
  cursor?: string;
}

export interface FinishUpdate {
  state: 'succeeded' | 'failed' | 'cancelled';
  result?: JobResult | null;
  error?: JobError | null;
  at: string;
  /** A final progress message held back by the worker, written with the final state (one statement). */
  progressMessage?: string | null;
}

export interface RequeueUpdate {
  nextAttemptAt: string;
  /** Last error, kept visible while the job waits for its next attempt. */
  error: JobError | null;
}

/** A claim candidate: just what the worker checks before trying to claim it (the kind: creates may be budgeted). */
export type JobCandidate = Pick<Job, 'id' | 'vmId' | 'targetId' | 'kind'>;

/** A claim candidate of the fair claim (domain/fair-claim.ts): also whose it is. */
export type FairJobCandidate = JobCandidate & { principal: string };

export interface ClaimOptions {
  /**
   * Create budget keys (domain/create-budget.ts) to record one event each for, at `now`, in the same
   * transaction as the claim — only when the claim wins. The claim also clears the progress message
   * (the "waiting for the create budget" it may show).
   */
  budgetKeys?: readonly string[];
  /**
   * The budgets the claim must still be within when it is made (domain/create-budget.ts
   * budgetGuards): the claim loses (null) when a guard's key already has `max` events later than
   * `since` on the job's target. Checked where claims on a target are serialised, so replicas that
   * decided at the same moment cannot overshoot a budget between their decision and their claim.
   */
  budgetGuards?: readonly BudgetGuard[];
  /** The claiming replica's lease on the job (lease_owner, lease_until), renewed by renewLeases while it runs. */
  lease?: JobLease;
}

export type { BudgetGuard } from '../domain/create-budget.ts';

/** Who runs a job and until when, unless renewed (several replicas on one PostgreSQL database). */
export interface JobLease {
  /** The replica (Store.cluster.replicaId). */
  owner: string;
  until: Iso;
}

export interface JobRepo {
  /**
   * Inserts the job and, with a key, its idempotency row, in one transaction; a queued job gets its
   * fair tag (domain/fair-claim.ts) there. With `maxQueued`, a queued job is refused (queue-full,
   * nothing written) when its principal already has that many queued — counted in the same
   * transaction, so concurrent submissions cannot overshoot. A replay is answered before the cap.
   */
  submit(job: NewJob, idempotency?: { principal: string; key: string; requestHash: string }, options?: SubmitOptions): Promise<SubmitOutcome>;
  get(id: string): Promise<Job | null>;
  /** Newest first, keyset pagination on (created_at, id). */
  list(query: JobListQuery): Promise<{ items: Job[]; next: string | null }>;
  /** Queued jobs due at `now` whose VM has no running job, oldest first (what a claim needs of them). */
  due(now: string, limit: number): Promise<JobCandidate[]>;
  /** The principals that have queued jobs (any target, due or not), by name. */
  queuedPrincipals(): Promise<string[]>;
  /**
   * Up to `limit` of one principal's jobs on one target that may start at `now`: queued, due, their
   * VM has no running job and no older due queued job (a VM's jobs start in submit order), in the
   * principal's fair order (fair tag, then age).
   */
  fairCandidates(targetId: string, principal: string, now: string, limit: number): Promise<FairJobCandidate[]>;
  /** How many queued jobs the principal has (any target, due or not). */
  countQueued(principal: string): Promise<number>;
  /**
   * Claims a queued job with `ticket`: wins only if the row is still unclaimed, its VM has no
   * running job and its target has fewer than `maxRunningPerTarget` running. Returns the claimed
   * job (state running, attempts + 1) or null.
   */
  tryClaim(id: string, ticket: string, now: string, maxRunningPerTarget: number, options?: ClaimOptions): Promise<Job | null>;
  /**
   * Leaves a queued, unclaimed job queued until `nextAttemptAt`, showing `message` as its progress
   * message (a create waiting for its target's create budget). Null when the job is not queued and
   * unclaimed any more.
   */
  deferQueued(id: string, nextAttemptAt: string, message: string): Promise<Job | null>;
  setProgress(id: string, ticket: string, percent: number, message: string | null): Promise<Job | null>;
  /**
   * Merges `record` (by key) into the job's checkpoint (CallContext.checkpoint), durably before it
   * resolves. Only the holder of the ticket can write it: null when the claim is not held any more.
   */
  checkpoint(id: string, ticket: string, record: JobCheckpoint): Promise<Job | null>;
  /** Final state; only the holder of the ticket can finish the job. */
  finish(id: string, ticket: string, update: FinishUpdate): Promise<Job | null>;
  /** Back to queued; only the holder of the ticket can release it. */
  requeue(id: string, ticket: string, update: RequeueUpdate): Promise<Job | null>;
  /**
   * Leaves a `running` job for the next start's recovery: the daemon stopped while the attempt may
   * have reached the hypervisor. The state stays `running` (recovery asks the hypervisor, by the
   * job's marker, what happened), the attempt keeps counting (so the retry is never taken for a
   * first attempt that may skip that look-up), the claim is dropped (no process owns the job any
   * more: a late settlement of the interrupted attempt finds no ticket and changes nothing), and
   * `error` says why. Only the holder of the ticket can do it.
   */
  leaveForRecovery(id: string, ticket: string, error: JobError): Promise<Job | null>;
  /** queued → cancelled; null when the job was not queued. */
  cancelQueued(id: string, at: string, error: JobError): Promise<Job | null>;
  requestCancel(id: string): Promise<Job | null>;
  listByState(state: JobState): Promise<Job[]>;
  /**
   * Running jobs that recovery may take over at `now`: their claim was dropped (leaveForRecovery),
   * or their lease ended before `now` (its replica is gone), or they have no lease. SQLite has one
   * daemon per file (store/lock.ts), so there every running job is recoverable: call it at start only.
   */
  recoverable(now: string): Promise<Job[]>;
  /**
   * Takes over the claim of a running job recovery found (see recoverable): wins only while the job
   * is still recoverable at `now` (on SQLite: still running), then holds `lease` if given.
   */
  takeOver(id: string, ticket: string, now: string, lease?: JobLease): Promise<Job | null>;
  /** Renews the lease of every running job `owner` holds (its claim not dropped): lease_until = until. Returns how many. */
  renewLeases(owner: string, until: string): Promise<number>;
  /** Clears claim tickets left on queued rows (a claim that never became running). */
  clearStaleClaims(): Promise<number>;
  countByState(): Promise<Record<JobState, number>>;
  /**
   * Retention: deletes at most `limit` jobs in a final state (succeeded, failed, cancelled) that
   * finished before `before` — never a queued or running one — oldest first, in one transaction with
   * their idempotency keys (a key lives as long as its job: a retry after that is a new request) and
   * their create budget events. Snapshot rows keep their job_id (no foreign key): it still names the
   * job whose marker the hypervisor carries. Returns how many jobs were deleted.
   */
  pruneFinished(before: string, limit: number): Promise<number>;
  /** The create jobs among `ids` that exist, with the mode they asked for. */
  createModes(ids: readonly string[]): Promise<Map<string, { mode: SnapshotMode | null; policyId: string | null }>>;
}

export const toJob = (r: Row): Job => ({
  id: str(r.id),
  kind: str(r.kind) as JobKind,
  state: str(r.state) as JobState,
  targetId: str(r.target_id),
  vmId: str(r.vm_id),
  snapshotId: strOrNull(r.snapshot_id),
  params: json<JobParams>(r.params)!,
  progress: Number(r.progress),
  progressMessage: strOrNull(r.progress_message),
  attempts: Number(r.attempts),
  maxAttempts: Number(r.max_attempts),
  nextAttemptAt: strOrNull(r.next_attempt_at),
  cancelRequested: bool(r.cancel_requested),
  result: json<JobResult>(r.result),
  error: json<JobError>(r.error),
  requestedBy: str(r.requested_by),
  createdAt: str(r.created_at),
  startedAt: strOrNull(r.started_at),
  finishedAt: strOrNull(r.finished_at),
  checkpoint: json<JobCheckpoint>(r.checkpoint),
  groupId: strOrNull(r.group_id),
  policyId: strOrNull(r.policy_id),
  policyRunId: strOrNull(r.policy_run_id),
});

/** A JSON column's value: null stays NULL. */
export const enc = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/** Queued jobs due at ?1 whose VM has no running job, oldest first, at most ?2 (exported for its query-plan test). */
export const DUE_SQL = `SELECT j.id, j.vm_id, j.target_id, j.kind FROM jobs j WHERE j.state = 'queued' AND j.next_attempt_at <= ?
     AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.vm_id = j.vm_id AND r.state = 'running')
   ORDER BY j.created_at, j.id LIMIT ?`;

/** One principal's claimable jobs on one target in fair order (exported for its query-plan test). */
export const FAIR_CANDIDATES_SQL = `SELECT j.id, j.vm_id, j.target_id, j.kind, j.requested_by FROM jobs j
   WHERE j.state = 'queued' AND j.requested_by = @principal AND j.target_id = @targetId AND j.next_attempt_at <= @now
     AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.vm_id = j.vm_id AND r.state = 'running')
     AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.vm_id = j.vm_id AND e.state = 'queued' AND e.next_attempt_at <= @now
                       AND (e.created_at, e.id) < (j.created_at, j.id))
   ORDER BY j.fair_tag, j.created_at, j.id LIMIT @limit`;

/**
 * The next principal (by name) after ? with a queued job: one index seek each, however long the
 * queue. Without the hint SQLite walks every queued row of jobs_state_created (state = ?) instead.
 */
export const NEXT_QUEUED_PRINCIPAL_SQL = `SELECT min(requested_by) AS p FROM jobs INDEXED BY jobs_queued_fair WHERE state = 'queued' AND requested_by > ?`;

/** The fair tag's inputs for a new queued job (?1 principal, ?2 target, ?3 VM): see fairTag. */
export const FAIR_TAG_INPUTS_SQL = `SELECT
     (SELECT min(fair_tag) FROM jobs WHERE state = 'queued' AND requested_by = ? AND target_id = ?) AS round,
     (SELECT max(fair_tag) FROM jobs WHERE state = 'queued' AND vm_id = ? AND requested_by = ?) AS vm_last`;

export const INSERT_JOB_SQL = `INSERT INTO jobs (id, kind, state, target_id, vm_id, snapshot_id, params, progress, attempts, max_attempts, next_attempt_at,
       result, requested_by, created_at, started_at, finished_at, fair_tag, group_id, policy_id, policy_run_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** FAIR_TAG_INPUTS_SQL's parameters for `job`. */
export const fairTagInputsParams = (job: NewJob): unknown[] => [job.requestedBy, job.targetId, job.vmId, job.requestedBy];

/** INSERT_JOB_SQL's parameters: `job` with its fair tag. */
export function insertJobParams(job: NewJob, tag: number): unknown[] {
  const state = job.state ?? 'queued';
  const final = state !== 'queued' && state !== 'running';
  return [
    job.id,
    job.kind,
    state,
    job.targetId,
    job.vmId,
    job.snapshotId,
    JSON.stringify(job.params),
    final && state === 'succeeded' ? 100 : 0,
    job.maxAttempts,
    final ? null : job.createdAt,
    enc(job.result),
    job.requestedBy,
    job.createdAt,
    final ? job.createdAt : null,
    final ? job.createdAt : null,
    tag,
    job.groupId ?? null,
    job.policyId ?? null,
    job.policyRunId ?? null,
  ];
}

/**
 * Inserts one job (inside the caller's transaction): a queued job gets its fair tag
 * (domain/fair-claim.ts) from the principal's queued jobs as they are now, so jobs inserted one
 * after another in one transaction (a snapshot group's) tag as if submitted one by one.
 */
export function insertJob(db: Db, job: NewJob): void {
  let tag = 0;
  if ((job.state ?? 'queued') === 'queued') {
    const r = db.stmt(FAIR_TAG_INPUTS_SQL).get(...fairTagInputsParams(job)) as { round: number | null; vm_last: number | null };
    tag = fairTag(r.round, r.vm_last);
  }
  db.stmt(INSERT_JOB_SQL).run(...insertJobParams(job, tag));
}

/** The principal's queued jobs (any target). */
export const COUNT_QUEUED_SQL = `SELECT count(*) AS n FROM jobs WHERE state = 'queued' AND requested_by = ?`;

/**
 * The job list's statement for `q` (newest first, keyset on (created_at, id)), one row more than
 * the page to tell whether there is a next one. Throws InvalidCursorError for a bad cursor.
 */
export function jobListQuery(q: JobListQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.state !== undefined) {
    where.push('state = ?');
    params.push(q.state);
  }
  if (q.vmId !== undefined) {
    where.push('vm_id = ?');
    params.push(q.vmId);
  }
  if (q.kind !== undefined) {
    where.push('kind = ?');
    params.push(q.kind);
  }
  if (q.policyId !== undefined) {
    where.push('policy_id = ?');
    params.push(q.policyId);
  }
  if (q.cursor !== undefined) {
    const before = decodeCursor(q.cursor, 2);
    if (!before) throw new InvalidCursorError('invalid cursor');
    where.push('(created_at, id) < (?, ?)');
    params.push(before[0], before[1]);
  }
  const sql = `SELECT * FROM jobs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
  return { sql, params: [...params, q.limit + 1] };
}

/** A page of the job list from jobListQuery's rows. */
export function jobListPage(rows: readonly Row[], limit: number): { items: Job[]; next: string | null } {
  const items = rows.slice(0, limit).map(toJob);
  const last = items[items.length - 1];
  return { items, next: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null };
}

/**
 * Single-statement writes valid in both dialects (each run with ` RETURNING *` where the caller
 * wants the job back). A single UPDATE is safe between PostgreSQL replicas too: a concurrent writer
 * of the same row makes it wait, then its WHERE is checked again on the row as committed.
 */
export const JOB_SQL = {
  deferQueued: `UPDATE jobs SET next_attempt_at = ?, progress_message = ? WHERE id = ? AND state = 'queued' AND claim_ticket IS NULL`,
  setProgress: 'UPDATE jobs SET progress = ?, progress_message = ? WHERE id = ? AND claim_ticket = ?',
  setCheckpoint: 'UPDATE jobs SET checkpoint = ? WHERE id = ? AND claim_ticket = ?',
  finish: `UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, claim_ticket = NULL, next_attempt_at = NULL, lease_owner = NULL, lease_until = NULL,
           progress = CASE WHEN ? = 'succeeded' THEN 100 ELSE progress END,
           progress_message = coalesce(?, progress_message),
           snapshot_id = coalesce(snapshot_id, ?)
         WHERE id = ? AND claim_ticket = ?`,
  requeue: `UPDATE jobs SET state = 'queued', claim_ticket = NULL, claimed_at = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = ?, error = ?
         WHERE id = ? AND claim_ticket = ?`,
  leaveForRecovery: `UPDATE jobs SET claim_ticket = NULL, claimed_at = NULL, lease_owner = NULL, lease_until = NULL, error = ?
         WHERE id = ? AND claim_ticket = ? AND state = 'running'`,
  cancelQueued: `UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, error = ?, next_attempt_at = NULL
         WHERE id = ? AND state = 'queued' AND claim_ticket IS NULL`,
  requestCancel: `UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state IN ('queued', 'running')`,
  listByState: 'SELECT * FROM jobs WHERE state = ? ORDER BY created_at, id',
  renewLeases: `UPDATE jobs SET lease_until = ? WHERE state = 'running' AND lease_owner = ? AND claim_ticket IS NOT NULL`,
  clearStaleClaims: `UPDATE jobs SET claim_ticket = NULL, claimed_at = NULL WHERE state = 'queued' AND claim_ticket IS NOT NULL`,
  countByState: 'SELECT state, count(*) AS n FROM jobs GROUP BY state',
  insertBudgetEvent: 'INSERT INTO create_budget_events (target_id, key, at, job_id) VALUES (?, ?, ?, ?)',
  countBudgetEvents: 'SELECT count(*) AS n FROM create_budget_events WHERE target_id = ? AND key = ? AND at > ?',
} as const;

/** finish()'s parameters for JOB_SQL.finish. */
export const finishParams = (id: string, ticket: string, u: FinishUpdate): unknown[] =>
  [u.state, enc(u.result), enc(u.error), u.at, u.state, u.progressMessage ?? null, u.result?.snapshotId ?? null, id, ticket];

/** A progress percent as stored: a whole number in 0…100. */
export const progressPercent = (percent: number): number => Math.max(0, Math.min(100, Math.round(percent)));

/** Job counts per state from JOB_SQL.countByState's rows (every state present, 0 when none). */
export function countsByState(rows: readonly Row[]): Record<JobState, number> {
  const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  for (const r of rows) counts[str(r.state) as JobState] = Number(r.n);
  return counts;
}

/** A create job's mode and policy from its params and policy_id columns. */
export function createModeOf(r: Row): { mode: SnapshotMode | null; policyId: string | null } {
  const params = json<{ mode?: SnapshotMode }>(r.params);
  return { mode: params?.mode ?? null, policyId: strOrNull(r.policy_id) };
}

export function createJobRepo(db: Db): JobRepo {
  const get = (id: string): Job | null => {
    const r = db.stmt('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r ? toJob(r) : null;
  };
  /** Runs an `UPDATE … RETURNING *` on one job: the updated job, or null when no row matched. */
  const update = (sql: string, ...params: unknown[]): Job | null => {
    const r = db.stmt(`${sql} RETURNING *`).get(...params) as Row | undefined;
    return r ? toJob(r) : null;
  };
  const countQueued = (principal: string): number => Number((db.stmt(COUNT_QUEUED_SQL).get(principal) as { n: number }).n);

  return {
    async submit(job, idem, options = {}) {
      return db.tx((): SubmitOutcome => {
        if (idem) {
          const prior = findKey(db, idem.principal, idem.key);
          if (prior) {
            if (prior.requestHash !== idem.requestHash) return { outcome: 'key-reused', jobId: prior.jobId };
            return { outcome: 'replayed', job: get(prior.jobId)! };
          }
        }
        const state = job.state ?? 'queued';
        if (state === 'queued' && options.maxQueued !== undefined) {
          const queued = countQueued(job.requestedBy);
          if (queued >= options.maxQueued) return { outcome: 'queue-full', queued };
        }
        insertJob(db, job);
        if (idem) insertKey(db, { ...idem, jobId: job.id, createdAt: job.createdAt });
        return { outcome: 'created', job: get(job.id)! };
      });
    },
    async get(id) {
      return get(id);
    },
    async list(q) {
      const { sql, params } = jobListQuery(q);
      return jobListPage(db.stmt(sql).all(...params) as Row[], q.limit);
    },
    async due(now, limit) {
      // Only the columns a claim needs: a claim round reads up to `limit` of these, and parsing whole
      // job rows (three JSON columns each) was most of a round's cost with a queue behind it.
      const rows = db.stmt(DUE_SQL).all(now, limit) as Array<{ id: string; vm_id: string; target_id: string; kind: string }>;
      return rows.map((r) => ({ id: r.id, vmId: r.vm_id, targetId: r.target_id, kind: r.kind as JobKind }));
    },
    async queuedPrincipals() {
      const out: string[] = [];
      const next = db.stmt(NEXT_QUEUED_PRINCIPAL_SQL);
      for (let after = ''; ; ) {
        const r = next.get(after) as { p: string | null };
        if (r.p === null) return out;
        out.push(r.p);
        after = r.p;
      }
    },
    async fairCandidates(targetId, principal, now, limit) {
      const rows = db.stmt(FAIR_CANDIDATES_SQL).all({ principal, targetId, now, limit }) as Array<{ id: string; vm_id: string; target_id: string; kind: string; requested_by: string }>;
      return rows.map((r) => ({ id: r.id, vmId: r.vm_id, targetId: r.target_id, kind: r.kind as JobKind, principal: r.requested_by }));
    },
    async countQueued(principal) {
      return countQueued(principal);
    },
    async tryClaim(id, ticket, now, maxRunningPerTarget, options = {}) {
      const keys = options.budgetKeys ?? [];
      // One statement: SQLite takes the write lock before its subqueries read, so the checks and the
      // claim cannot interleave with another writer.
      const claim = (clearMessage: boolean) =>
        update(
          `UPDATE jobs SET state = 'running', claim_ticket = ?, claimed_at = ?, started_at = coalesce(started_at, ?),
               attempts = attempts + 1, next_attempt_at = NULL, lease_owner = ?, lease_until = ?${clearMessage ? ', progress_message = NULL' : ''}
             WHERE id = ? AND claim_ticket IS NULL AND state = 'queued'
               AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.vm_id = jobs.vm_id AND r.state = 'running')
               AND (SELECT count(*) FROM jobs r WHERE r.target_id = jobs.target_id AND r.state = 'running') < ?`,
          ticket, now, now, options.lease?.owner ?? null, options.lease?.until ?? null, id, maxRunningPerTarget,
        );
      // Unbudgeted claims (nearly all) stay one statement, without a transaction around it.
      if (keys.length === 0) return claim(false);
      return db.tx(() => {
        const target = db.stmt('SELECT target_id FROM jobs WHERE id = ?').get(id) as { target_id: string } | undefined;
        if (!target) return null;
        const count = db.stmt(JOB_SQL.countBudgetEvents);
        for (const g of options.budgetGuards ?? []) {
          if (Number((count.get(target.target_id, g.key, g.since) as { n: number }).n) >= g.max) return null;
        }
        const job = claim(true);
        if (!job) return null;
        const insert = db.stmt(JOB_SQL.insertBudgetEvent);
        for (const key of keys) insert.run(job.targetId, key, now, job.id);
        return job;
      });
    },
    async deferQueued(id, nextAttemptAt, message) {
      return update(JOB_SQL.deferQueued, nextAttemptAt, message, id);
    },
    async setProgress(id, ticket, percent, message) {
      return update(JOB_SQL.setProgress, progressPercent(percent), message, id, ticket);
    },
    async checkpoint(id, ticket, record) {
      return db.tx(() => {
        const r = db.stmt('SELECT checkpoint FROM jobs WHERE id = ? AND claim_ticket = ?').get(id, ticket) as Row | undefined;
        if (!r) return null;
        const merged: JobCheckpoint = { ...(json<JobCheckpoint>(r.checkpoint) ?? {}), ...record };
        return update(JOB_SQL.setCheckpoint, JSON.stringify(merged), id, ticket);
      });
    },
    async finish(id, ticket, u) {
      return update(JOB_SQL.finish, ...finishParams(id, ticket, u));
    },
    async requeue(id, ticket, u) {
      return update(JOB_SQL.requeue, u.nextAttemptAt, enc(u.error), id, ticket);
    },
    async leaveForRecovery(id, ticket, error) {
      return update(JOB_SQL.leaveForRecovery, enc(error), id, ticket);
    },
    async cancelQueued(id, at, error) {
      return update(JOB_SQL.cancelQueued, at, enc(error), id);
    },
    async requestCancel(id) {
      return update(JOB_SQL.requestCancel, id);
    },
    async listByState(state) {
      return (db.stmt(JOB_SQL.listByState).all(state) as Row[]).map(toJob);
    },
    async recoverable() {
      return (db.stmt(`SELECT * FROM jobs WHERE state = 'running' ORDER BY created_at, id`).all() as Row[]).map(toJob);
    },
    async takeOver(id, ticket, now, lease) {
      return update(
        `UPDATE jobs SET claim_ticket = ?, claimed_at = ?, lease_owner = ?, lease_until = ? WHERE id = ? AND state = 'running'`,
        ticket, now, lease?.owner ?? null, lease?.until ?? null, id,
      );
    },
    async renewLeases(owner, until) {
      return db.stmt(JOB_SQL.renewLeases).run(until, owner).changes;
    },
    async clearStaleClaims() {
      return db.stmt(JOB_SQL.clearStaleClaims).run().changes;
    },
    async countByState() {
      return countsByState(db.stmt(JOB_SQL.countByState).all() as Row[]);
    },
    async pruneFinished(before, limit) {
      return db.tx(() => {
        // created_at bounds the scan on jobs_state_created: a job finishes after it is created.
        const ids = (
          db
            .stmt(
              `SELECT id FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND created_at < ?
                 AND coalesce(finished_at, created_at) < ? ORDER BY created_at, id LIMIT ?`,
            )
            .all(before, before, limit) as Array<{ id: string }>
        ).map((r) => r.id);
        const keys = db.stmt('DELETE FROM idempotency_keys WHERE job_id = ?');
        const budget = db.stmt('DELETE FROM create_budget_events WHERE job_id = ?');
        const job = db.stmt(`DELETE FROM jobs WHERE id = ? AND state IN ('succeeded', 'failed', 'cancelled')`);
        let deleted = 0;
        for (const id of ids) {
          keys.run(id);
          budget.run(id);
          deleted += job.run(id).changes;
        }
        return deleted;
      });
    },
    async createModes(ids) {
      const out = new Map<string, { mode: SnapshotMode | null; policyId: string | null }>();
      for (const id of ids) {
        const r = db.stmt(`SELECT params, policy_id FROM jobs WHERE id = ? AND kind = 'snapshot.create'`).get(id) as Row | undefined;
        if (!r) continue;
        out.set(id, createModeOf(r));
      }
      return out;
    },
  };
}
