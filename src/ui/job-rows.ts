import type { Job } from './types.ts';

/** A job list after a job event: the job replaced where it is, or put first when new. */
export function upsertJob(jobs: Job[], job: Job): Job[] {
  const i = jobs.findIndex((j) => j.id === job.id);
  if (i === -1) return [job, ...jobs];
  const next = [...jobs];
  next[i] = job;
  return next;
}

export const isCancellable = (job: Job) => job.state === 'queued' || job.state === 'running';
/** What POST /v1/jobs/{id}/retry accepts; a group's job is retried through its group. */
export const isRetryable = (job: Job) => (job.state === 'failed' || job.state === 'cancelled') && job.groupId === null;
