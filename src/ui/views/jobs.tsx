/**
 * Jobs, newest first, one page at a time, filtered by state (kept in the URL), following the live
 * stream: rows move on as their jobs do, and new jobs that match the filter appear at the top of the
 * first page. One job's page shows every field, live, with the same Cancel and Retry.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, query, seg } from '../api.ts';
import type { ViewProps } from '../app.tsx';
import { JobActions } from '../components/job-actions.tsx';
import { JobProgress } from '../components/job-progress.tsx';
import { Pager, usePages } from '../components/pager.tsx';
import { ProblemBanner } from '../components/problem.tsx';
import { LocalTime } from '../components/time.tsx';
import { useResource } from '../components/use-resource.ts';
import { VmLink } from '../components/vm-link.tsx';
import { live } from '../events.ts';
import { addStartedJob, applyJobEvent } from '../job-updates.ts';
import { href, navigate } from '../router.ts';
import type { Job, JobState, Page, Snapshot } from '../types.ts';

const PAGE_SIZE = 50;
const STATES: readonly JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

function stateParam(raw: string | null): JobState | '' {
  return STATES.find((s) => s === raw) ?? '';
}

export function JobsView({ route }: ViewProps) {
  const state = stateParam(route.params.get('state'));
  // Set by links from a policy's runs: the jobs its runs submitted.
  const policy = route.params.get('policy') ?? '';
  const pages = usePages();
  const { cursor, firstPage } = pages;
  const page = useResource(() => api.get<Page<Job>>(`/v1/jobs${query({ state, policy, limit: PAGE_SIZE, cursor })}`), [state, policy, cursor]);
  const [rows, setRows] = useState<Job[]>([]);
  useEffect(() => setRows(page.data?.items ?? []), [page.data]);
  useEffect(() => live.subscribe((e) => {
    if (e.type !== 'job') return;
    setRows((current) => {
      if (current.some((j) => j.id === e.job.id)) return applyJobEvent(current, e.job);
      // A job this page has not shown: new ones belong at the top of the first page only.
      if (!firstPage || (state !== '' && e.job.state !== state) || (policy !== '' && e.job.policyId !== policy)) return current;
      return applyJobEvent(current, e.job);
    });
  }), [state, policy, firstPage]);

  const onDone = (job: Job, action: 'cancel' | 'retry') => {
    if (action === 'retry') navigate(href(['jobs', job.id]));
    // The stream brings the cancelled state; the answer only matters if it came first.
    else setRows((current) => addStartedJob(current, job));
  };

  return (
    <>
      <h1>Jobs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          State
          <select value={state} onChange={(e) => { pages.reset(); navigate(href(['jobs'], { state: e.currentTarget.value, policy }), true); }}>
            <option value="">all</option>
            {STATES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        {policy !== '' && (
          <p class="filter-note">
            Jobs of <a href={href(['policies', policy])}>one policy</a>'s runs · <a href={href(['jobs'], { state })}>all jobs</a>
          </p>
        )}
      </form>
      <ProblemBanner error={page.error} />
      <div class="table-wrap">
        <table class="jobs" aria-busy={page.loading}>
          <caption>Jobs</caption>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">VM</th>
              <th scope="col">State and progress</th>
              <th scope="col">Requested by</th>
              <th scope="col">Created</th>
              <th scope="col">Error</th>
              <th scope="col"><span class="visually-hidden">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {rows.map((job) => (
              <tr key={job.id}>
                <td class="kind-cell">
                  <a href={href(['jobs', job.id])}>{job.kind}</a>
                  {job.groupId !== null && <a class="badge" href={href(['groups', job.groupId])} title="A snapshot group's job: retried through its group">group</a>}
                  {job.policyId !== null && <a class="badge owner-policy" href={href(['policies', job.policyId])}>policy</a>}
                </td>
                <td><VmLink vmId={job.vmId} /></td>
                <td><JobProgress job={job} label={`Progress of job ${job.id}`} /></td>
                <td>{job.requestedBy}</td>
                <td><LocalTime iso={job.createdAt} /></td>
                <td class="error-cell">{job.error ? <span class="bad">{job.error.message}</span> : <span class="muted">—</span>}</td>
                <td class="row-actions"><JobActions job={job} onDone={onDone} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.data && rows.length === 0 && <p>No jobs{state ? ` in state ${state}` : ''}.</p>}
      <Pager pages={pages} next={page.data?.next} />
    </>
  );
}

export function JobView({ id }: ViewProps) {
  const jobId = id!;
  const loaded = useResource(() => api.get<Job>(`/v1/jobs/${seg(jobId)}`), [jobId]);
  const [job, setJob] = useState<Job | null>(null);
  useEffect(() => setJob(loaded.data), [loaded.data]);
  useEffect(() => live.subscribe((e) => {
    if (e.type === 'job' && e.job.id === jobId) setJob(e.job);
  }), [jobId]);
  const snapshotId = job?.result?.snapshotId ?? job?.snapshotId ?? null;
  const snapshot = useResource(
    () => (snapshotId === null ? Promise.resolve(null) : api.get<Snapshot>(`/v1/snapshots/${seg(snapshotId)}`)),
    [snapshotId],
  );

  if (loaded.error) return <><h1>Job</h1><ProblemBanner error={loaded.error} /></>;
  if (!job) return <p aria-live="polite">Loading…</p>;
  const onDone = (next: Job, action: 'cancel' | 'retry') => {
    if (action === 'retry') navigate(href(['jobs', next.id]));
    else setJob(next);
  };
  return (
    <>
      <p class="crumbs"><a href={href(['jobs'])}>Jobs</a></p>
      <h1>Job {job.kind}</h1>
      <div class="toolbar"><JobActions job={job} onDone={onDone} /></div>
      {job.groupId !== null && (job.state === 'failed' || job.state === 'cancelled') && (
        <p class="muted">This job belongs to a snapshot group: retry it from <a href={href(['groups', job.groupId])}>its group</a>, so the new job stays a member.</p>
      )}
      <dl class="fields">
        <dt>State</dt><dd><JobProgress job={job} label={`Progress of job ${job.id}`} /></dd>
        <dt>Progress message</dt><dd>{job.progressMessage ?? <span class="muted">—</span>}</dd>
        <dt>VM</dt><dd><VmLink vmId={job.vmId} /></dd>
        <dt>Snapshot</dt>
        <dd>
          {snapshotId === null ? <span class="muted">—</span> : (
            <>
              <a href={href(['vms', job.vmId])}>{snapshot.data?.name ?? snapshotId}</a>
              {snapshot.data?.state === 'gone' && <span class="muted"> (gone)</span>}
            </>
          )}
        </dd>
        <dt>Attempts</dt><dd>{job.attempts}</dd>
        {job.error && (
          <>
            <dt>Error</dt>
            <dd class="bad">{job.error.message}</dd>
            <dt>Error kind</dt>
            <dd>{job.error.kind}{job.error.code !== undefined && <> (<code>{job.error.code}</code>)</>}</dd>
          </>
        )}
        {job.result?.message !== undefined && <><dt>Result</dt><dd class="pre">{job.result.message}</dd></>}
        {job.result?.snapshotIds !== undefined && <><dt>Snapshots</dt><dd>{job.result.snapshotIds.length}</dd></>}
        <dt>Requested by</dt><dd>{job.requestedBy}</dd>
        <dt>Created</dt><dd><LocalTime iso={job.createdAt} /></dd>
        <dt>Started</dt><dd><LocalTime iso={job.startedAt} /></dd>
        <dt>Finished</dt><dd><LocalTime iso={job.finishedAt} /></dd>
        {job.groupId !== null && <><dt>Snapshot group</dt><dd><a href={href(['groups', job.groupId])}>{job.groupId}</a></dd></>}
        {job.policyId !== null && <><dt>Policy</dt><dd><a href={href(['policies', job.policyId])}>{job.policyId}</a></dd></>}
        <dt>Id</dt><dd><code>{job.id}</code></dd>
      </dl>
    </>
  );
}
