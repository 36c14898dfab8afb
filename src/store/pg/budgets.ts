/** Create budget events on PostgreSQL (see src/store/budgets.ts); written by the job claim. */
import { PRUNE_BUDGET_EVENTS_SQL, RECENT_BUDGET_EVENTS_SQL, toBudgetEvent, type CreateBudgetRepo } from '../budgets.ts';
import type { PgDb } from './db.ts';

export function createPgBudgetRepo(db: PgDb): CreateBudgetRepo {
  return {
    async recent(targetId, since) {
      return (await db.all<{ key: string; at: string; job_id: string }>(RECENT_BUDGET_EVENTS_SQL, [targetId, since])).map(toBudgetEvent);
    },
    async restamp(jobId, at) {
      // One statement (greatest: PostgreSQL's max of two values); the events belong to one job, whose
      // one worker restamps them.
      return db.run(
        `UPDATE create_budget_events SET at = greatest(at, ?)
           WHERE job_id = ? AND at = (SELECT max(at) FROM create_budget_events WHERE job_id = ?)`,
        [at, jobId, jobId],
      );
    },
    async prune(before) {
      return db.run(PRUNE_BUDGET_EVENTS_SQL, [before]);
    },
  };
}
