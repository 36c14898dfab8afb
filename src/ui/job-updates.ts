/**
 * Jobs reach a view twice: in the answer to the request that made them and on the live stream, in
 * either order. A later-arriving but older copy (the 202's `queued` after the stream said `running`
 * at 40 %) must not move a job backwards. Pure, unit-tested.
 */
export interface JobLike {
  id: string;
  state: string;
  progress: number;
}

const RANK: Record<string, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };

/** Whether `candidate` is at least as far along as `current` (same job). */
export function isNotOlder(candidate: JobLike, current: JobLike): boolean {
  const a = RANK[candidate.state] ?? 0;
  const b = RANK[current.state] ?? 0;
  if (a !== b) return a > b;
  // A retried attempt restarts its progress while running: a running copy with less progress is a
  // new attempt only if the stream says so, which comes in order; only the 202 can be stale, and it
  // is never running.
  return a === 1 || candidate.progress >= current.progress || a === 2;
}

/** The list with `job` added at the top, or merged in place when it is known and not older. */
export function upsertJob<T extends JobLike>(jobs: readonly T[], job: T): T[] {
  const i = jobs.findIndex((j) => j.id === job.id);
  if (i === -1) return [job, ...jobs];
  if (!isNotOlder(job, jobs[i]!)) return [...jobs];
  const next = [...jobs];
  next[i] = job;
  return next;
}
