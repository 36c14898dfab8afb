/**
 * Create budget events: one row per budget key for every claimed attempt of a create job on a target
 * declaring `limits.createRate` (written by JobRepo.tryClaim in the claim's transaction). The worker
 * reads a target's recent ones once per claim round and prunes the old ones now and then.
 */
import type { Db } from './db.ts';

export interface CreateBudgetEvent {
  key: string;
  at: string;
  jobId: string;
}

export interface CreateBudgetRepo {
  /** A target's events at or after `since` (every key: after pruning there are few). */
  recent(targetId: string, since: string): Promise<CreateBudgetEvent[]>;
  /** Deletes every event older than `before`; returns how many. */
  prune(before: string): Promise<number>;
  /**
   * Moves the events of the job's latest attempt to `at` (never earlier): the provider's create call
   * has just ended. The hypervisor counts a create from when it accepted it, somewhere between the
   * claim (when the event was written) and now; counting from now is the safe side.
   */
  restamp(jobId: string, at: string): Promise<number>;
}

export const RECENT_BUDGET_EVENTS_SQL = 'SELECT key, at, job_id FROM create_budget_events WHERE target_id = ? AND at >= ?';
export const PRUNE_BUDGET_EVENTS_SQL = 'DELETE FROM create_budget_events WHERE at < ?';

export const toBudgetEvent = (r: { key: string; at: string; job_id: string }): CreateBudgetEvent => ({ key: r.key, at: r.at, jobId: r.job_id });

export function createBudgetRepo(db: Db): CreateBudgetRepo {
  return {
    async recent(targetId, since) {
      const rows = db.stmt(RECENT_BUDGET_EVENTS_SQL).all(targetId, since) as Array<{ key: string; at: string; job_id: string }>;
      return rows.map(toBudgetEvent);
    },
    async restamp(jobId, at) {
      return db
        .stmt(
          `UPDATE create_budget_events SET at = max(at, ?)
             WHERE job_id = ? AND at = (SELECT max(at) FROM create_budget_events WHERE job_id = ?)`,
        )
        .run(at, jobId, jobId).changes;
    },
    async prune(before) {
      return db.stmt(PRUNE_BUDGET_EVENTS_SQL).run(before).changes;
    },
  };
}
