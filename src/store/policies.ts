/**
 * Policies and their runs. A run row is written before any of its jobs; at most one run per
 * (policy, kind) is `running` (a partial unique index), so a second start records a `skipped` run;
 * at most one run per scheduled slot (migration 014), so a second start of a slot is answered with
 * the run already made (`duplicate`).
 */
import type { Policy, PolicyRun, PolicyRunKind, PolicyRunState, PolicyRunTrigger, RetentionRule, Selector } from '../domain/policy.ts';
import type { Iso, SnapshotMode } from '../domain/types.ts';
import type { Db } from './db.ts';
import { isUniqueViolation } from './constraints.ts';
import { bool, decodeCursor, encodeCursor, int, intOrNull, json, str, strOrNull, type Row } from './rows.ts';
import { InvalidCursorError } from './vms.ts';

/** A write refused because another policy has the name. */
export type PolicyWrite = { outcome: 'ok'; policy: Policy } | { outcome: 'name-taken' } | { outcome: 'not-found' };

export type NewPolicyRun = Pick<PolicyRun, 'id' | 'policyId' | 'kind' | 'trigger' | 'scheduledFor' | 'startedAt'>;

/**
 * What startRun made: the new run (running or skipped), or — `duplicate` — the run another start
 * already made for the same scheduled slot (two replicas firing one slot), which the caller must
 * not start again.
 */
export interface StartedRun {
  run: PolicyRun;
  duplicate: boolean;
}

export interface PolicyRepo {
  insert(policy: Policy): Promise<PolicyWrite>;
  /** Replaces every field but id and createdAt. */
  update(policy: Policy): Promise<PolicyWrite>;
  get(id: string): Promise<Policy | null>;
  /** By name. */
  list(): Promise<Policy[]>;
  /** The policy row only: its runs stay (history), its snapshots keep their policy_id. */
  delete(id: string): Promise<boolean>;

  /**
   * Inserts the run as `running`, or — when a run of the same policy and kind is still running —
   * as `skipped` (finished at once, its message naming the running one), in one transaction.
   * A scheduled (not manual) run whose slot already has a run inserts nothing: that run comes
   * back with `duplicate: true`.
   */
  startRun(run: NewPolicyRun): Promise<StartedRun>;
  /** Records a job the run submitted (again: no change). */
  addRunJob(runId: string, jobId: string): Promise<void>;
  /** Ends a running run; null when it is not running (any more). */
  finishRun(runId: string, state: Exclude<PolicyRunState, 'running' | 'skipped'>, message: string | null, at: Iso): Promise<PolicyRun | null>;
  getRun(id: string): Promise<PolicyRun | null>;
  /** A policy's runs, newest first, keyset pagination on (started_at, id). */
  listRuns(policyId: string, query: { limit: number; cursor?: string }): Promise<{ items: PolicyRun[]; next: string | null }>;
  /** Runs left `running` (by a daemon that stopped or crashed), oldest first. */
  runningRuns(): Promise<PolicyRun[]>;
  /** The latest cron slot each kind of the policy ran for (a skipped slot counts), null when never. */
  lastScheduledFor(policyId: string): Promise<{ snapshot: Iso | null; consolidate: Iso | null }>;
}

export const toPolicy = (r: Row): Policy => ({
  id: str(r.id),
  name: str(r.name),
  selector: json<Selector>(r.selector)!,
  schedule: str(r.schedule),
  timezone: str(r.timezone),
  mode: str(r.mode) as SnapshotMode,
  retention: json<RetentionRule>(r.retention)!,
  maxChainDepth: intOrNull(r.max_chain_depth),
  consolidationSchedule: strOrNull(r.consolidation_schedule),
  enabled: bool(r.enabled),
  createdAt: str(r.created_at),
  updatedAt: str(r.updated_at),
});

/** A policy_runs row and the ids of the jobs it submitted (POLICY_RUN_JOBS). */
export const toPolicyRun = (r: Row, jobIds: string[]): PolicyRun => ({
  id: str(r.id),
  policyId: str(r.policy_id),
  kind: str(r.kind) as PolicyRunKind,
  trigger: str(r.trigger) as PolicyRunTrigger,
  scheduledFor: strOrNull(r.scheduled_for),
  startedAt: str(r.started_at),
  finishedAt: strOrNull(r.finished_at),
  state: str(r.state) as PolicyRunState,
  jobIds,
  message: strOrNull(r.message),
});

export const POLICY_BY_ID = 'SELECT * FROM policies WHERE id = ?';
export const INSERT_POLICY = `INSERT INTO policies (name, selector, schedule, timezone, mode, retention, max_chain_depth, consolidation_schedule, enabled, id, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
export const UPDATE_POLICY = `UPDATE policies SET name = ?, selector = ?, schedule = ?, timezone = ?, mode = ?, retention = ?, max_chain_depth = ?,
                 consolidation_schedule = ?, enabled = ?, updated_at = ? WHERE id = ?`;
export const DELETE_POLICY = 'DELETE FROM policies WHERE id = ?';
export const RUN_BY_ID = 'SELECT * FROM policy_runs WHERE id = ?';
export const POLICY_RUN_JOBS = 'SELECT job_id FROM policy_run_jobs WHERE run_id = ? ORDER BY seq';
/** The run already made for a scheduled slot (migration 014's policy_runs_slot_once). */
export const RUN_OF_SLOT = `SELECT * FROM policy_runs WHERE policy_id = ? AND kind = ? AND scheduled_for = ? AND trigger <> 'manual'`;
export const RUNNING_RUN = `SELECT id FROM policy_runs WHERE policy_id = ? AND kind = ? AND state = 'running'`;
export const INSERT_RUN = `INSERT INTO policy_runs (id, policy_id, kind, trigger, scheduled_for, started_at, finished_at, state, message)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
export const FINISH_RUN = `UPDATE policy_runs SET state = ?, message = ?, finished_at = ? WHERE id = ? AND state = 'running'`;
export const LAST_SLOT = 'SELECT max(scheduled_for) AS s FROM policy_runs WHERE policy_id = ? AND kind = ?';

/** Whether a new run has a slot that migration 014 keeps to one run. */
export const hasSlot = (run: NewPolicyRun): run is NewPolicyRun & { scheduledFor: Iso } => run.scheduledFor !== null && run.trigger !== 'manual';

/** INSERT_RUN's values: running, or skipped (finished at once) while `runningId` is still going. */
export const runInsertValues = (run: NewPolicyRun, runningId: string | null): unknown[] => {
  const skipped = runningId !== null;
  return [
    run.id,
    run.policyId,
    run.kind,
    run.trigger,
    run.scheduledFor,
    run.startedAt,
    skipped ? run.startedAt : null,
    skipped ? 'skipped' : 'running',
    skipped ? `run ${runningId} of this policy was still running` : null,
  ];
};

/** INSERT_POLICY's values, and UPDATE_POLICY's first nine. */
export const policyValues = (p: Policy): unknown[] => [
  p.name,
  JSON.stringify(p.selector),
  p.schedule,
  p.timezone,
  p.mode,
  JSON.stringify(p.retention),
  p.maxChainDepth,
  p.consolidationSchedule,
  int(p.enabled),
];

export function createPolicyRepo(db: Db): PolicyRepo {
  const jobIdsOf = (runId: string): string[] => (db.stmt(POLICY_RUN_JOBS).all(runId) as Array<{ job_id: string }>).map((r) => r.job_id);
  const toRun = (r: Row): PolicyRun => toPolicyRun(r, jobIdsOf(str(r.id)));
  const getRun = (id: string): PolicyRun | null => {
    const r = db.stmt(RUN_BY_ID).get(id) as Row | undefined;
    return r ? toRun(r) : null;
  };
  const get = (id: string): Policy | null => {
    const r = db.stmt(POLICY_BY_ID).get(id) as Row | undefined;
    return r ? toPolicy(r) : null;
  };
  const write = (fn: () => number, id: string): PolicyWrite => {
    try {
      if (fn() === 0) return { outcome: 'not-found' };
    } catch (err) {
      if (isUniqueViolation(err)) return { outcome: 'name-taken' };
      throw err;
    }
    return { outcome: 'ok', policy: get(id)! };
  };
  return {
    async insert(p) {
      return write(() => db.stmt(INSERT_POLICY).run(...policyValues(p), p.id, p.createdAt, p.updatedAt).changes, p.id);
    },
    async update(p) {
      return write(() => db.stmt(UPDATE_POLICY).run(...policyValues(p), p.updatedAt, p.id).changes, p.id);
    },
    async get(id) {
      return get(id);
    },
    async list() {
      return (db.stmt('SELECT * FROM policies ORDER BY name').all() as Row[]).map(toPolicy);
    },
    async delete(id) {
      return db.stmt(DELETE_POLICY).run(id).changes > 0;
    },

    async startRun(run) {
      // One IMMEDIATE transaction: one daemon per SQLite file, and writers serialise at BEGIN.
      return db.tx(() => {
        if (hasSlot(run)) {
          const taken = db.stmt(RUN_OF_SLOT).get(run.policyId, run.kind, run.scheduledFor) as Row | undefined;
          if (taken) return { run: toRun(taken), duplicate: true };
        }
        const going = db.stmt(RUNNING_RUN).get(run.policyId, run.kind) as { id: string } | undefined;
        db.stmt(INSERT_RUN).run(...runInsertValues(run, going?.id ?? null));
        return { run: getRun(run.id)!, duplicate: false };
      });
    },
    async addRunJob(runId, jobId) {
      db.stmt(
        `INSERT OR IGNORE INTO policy_run_jobs (run_id, seq, job_id)
         VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM policy_run_jobs WHERE run_id = ?), ?)`,
      ).run(runId, runId, jobId);
    },
    async finishRun(runId, state, message, at) {
      const changed = db.stmt(FINISH_RUN).run(state, message, at, runId).changes;
      return changed === 0 ? null : getRun(runId);
    },
    async getRun(id) {
      return getRun(id);
    },
    async listRuns(policyId, q) {
      const params: unknown[] = [policyId];
      let where = 'policy_id = ?';
      if (q.cursor !== undefined) {
        const before = decodeCursor(q.cursor, 2);
        if (!before) throw new InvalidCursorError('invalid cursor');
        where += ' AND (started_at, id) < (?, ?)';
        params.push(before[0], before[1]);
      }
      const rows = db.stmt(`SELECT * FROM policy_runs WHERE ${where} ORDER BY started_at DESC, id DESC LIMIT ?`).all(...params, q.limit + 1) as Row[];
      const items = rows.slice(0, q.limit).map(toRun);
      const last = items[items.length - 1];
      return { items, next: rows.length > q.limit && last ? encodeCursor([last.startedAt, last.id]) : null };
    },
    async runningRuns() {
      return (db.stmt(`SELECT * FROM policy_runs WHERE state = 'running' ORDER BY started_at, id`).all() as Row[]).map(toRun);
    },
    async lastScheduledFor(policyId) {
      const slot = (kind: PolicyRunKind) => strOrNull((db.stmt(LAST_SLOT).get(policyId, kind) as Row).s);
      return { snapshot: slot('snapshot'), consolidate: slot('consolidate') };
    },
  };
}
