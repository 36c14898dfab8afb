import type { Job } from '../types.ts';

/** A job's progress as a native <progress> (announced by screen readers) with its state in words. */
export function JobProgress({ job, label }: { job: Pick<Job, 'progress' | 'state'>; label: string }) {
  const value = Math.round(job.progress);
  return (
    <span class="job-progress">
      <progress max={100} value={value} aria-label={label} />
      <span class={`state state-${job.state}`}>{job.state}</span>
      <span class="muted">{value} %</span>
    </span>
  );
}
