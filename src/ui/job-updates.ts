/**
 * Jobs reach a view twice: in the answer to the request that made them and on the live stream, in
 * either order. The stream is the authority (its events come in order, retries included, when a job
 * goes back to queued); the request's answer only adds a job the stream has not shown yet, so a
 * late 202 (`queued`) never moves a job backwards. Pure, unit-tested.
 */
import type { Job } from './types.ts';

export interface JobLike {
  id: string;
}

/** A job event from the live stream: replaces the known copy, or is added at the top. */
export function applyJobEvent<T extends JobLike>(jobs: readonly T[], job: T): T[] {
  const i = jobs.findIndex((j) => j.id === job.id);
  if (i === -1) return [job, ...jobs];
  const next = [...jobs];
  next[i] = job;
  return next;
}

/** A job from a request's answer: added when the stream has not brought it already. */
export function addStartedJob<T extends JobLike>(jobs: readonly T[], job: T): T[] {
  return jobs.some((j) => j.id === job.id) ? [...jobs] : [job, ...jobs];
}

export const isCancellable = (job: Pick<Job, 'state'>) => job.state === 'queued' || job.state === 'running';
/** What POST /v1/jobs/{id}/retry accepts; a group's job is retried through its group. */
export const isRetryable = (job: Pick<Job, 'state' | 'groupId'>) => (job.state === 'failed' || job.state === 'cancelled') && job.groupId === null;
