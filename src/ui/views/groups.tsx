/**
 * Snapshot groups: the list, one page at a time, and one group's members with their jobs, live
 * (member jobs carry the group id). A write-scope token can retry the failed members, revert every
 * member to its group snapshot, or delete the group's snapshots, each after a question.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, query, seg } from '../api.ts';
import type { ViewProps } from '../app.tsx';
import { ConfirmDialog } from '../components/confirm.tsx';
import { JobProgress } from '../components/job-progress.tsx';
import { Pager, usePages } from '../components/pager.tsx';
import { ProblemBanner } from '../components/problem.tsx';
import { LocalTime } from '../components/time.tsx';
import { useResource } from '../components/use-resource.ts';
import { live } from '../events.ts';
import { applyJobEvent } from '../job-updates.ts';
import { href } from '../router.ts';
import { session } from '../session.ts';
import { FINAL_JOB_STATES, type GroupMember, type Job, type Page, type SnapshotGroup } from '../types.ts';

const PAGE_SIZE = 50;

/** Last member start − first member start: how far apart the snapshots were taken. */
function Spread({ ms }: { ms: number | null }) {
  if (ms === null) return <span class="muted">—</span>;
  return <>{ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`}</>;
}

function GroupState({ group }: { group: SnapshotGroup }) {
  return <span class={`state state-${group.state}`}>{group.state}</span>;
}

export function GroupsView(_props: ViewProps) {
  const pages = usePages();
  const { cursor, firstPage } = pages;
  const page = useResource(() => api.get<Page<SnapshotGroup>>(`/v1/snapshot-groups${query({ limit: PAGE_SIZE, cursor })}`), [cursor]);
  const shown = page.data?.items ?? [];
  // A member job that ends changes its group's state; a group job not shown here may be a new group.
  useEffect(() => live.subscribe((e) => {
    if (e.type !== 'job' || e.job.groupId === null) return;
    const known = shown.some((g) => g.id === e.job.groupId);
    if ((known && FINAL_JOB_STATES.includes(e.job.state)) || (!known && firstPage)) page.reload();
  }), [shown, firstPage, page.reload]);

  return (
    <>
      <h1>Snapshot groups</h1>
      <p class="muted">
        A group snapshots many VMs in one request (<code>snapvisor group create</code> or POST /v1/snapshot-groups; see the <a href="/docs">API documentation</a>).
      </p>
      <ProblemBanner error={page.error} />
      <div class="table-wrap">
        <table class="groups" aria-busy={page.loading}>
          <caption>Snapshot groups</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col" class="num">Members</th>
              <th scope="col">Mode</th>
              <th scope="col">Requested by</th>
              <th scope="col">Created</th>
              <th scope="col" class="num">Spread</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((g) => (
              <tr key={g.id}>
                <td><a href={href(['groups', g.id])}>{g.name}</a></td>
                <td><GroupState group={g} /></td>
                <td class="num">{g.members.length}</td>
                <td>{g.mode}</td>
                <td>{g.requestedBy}</td>
                <td><LocalTime iso={g.createdAt} /></td>
                <td class="num"><Spread ms={g.spreadMs} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.data && shown.length === 0 && <p>No snapshot groups yet.</p>}
      <Pager pages={pages} next={page.data?.next} />
    </>
  );
}

type GroupAction = { button: string; title: string; body: string; danger: boolean; run: () => Promise<{ jobs: Job[] }> };

export function GroupView({ id }: ViewProps) {
  const groupId = id!;
  const group = useResource(() => api.get<SnapshotGroup>(`/v1/snapshot-groups/${seg(groupId)}`), [groupId]);
  // The newest job event of each member job: progress between the group's own updates.
  const [jobs, setJobs] = useState<ReadonlyMap<string, Job>>(new Map());
  const [pending, setPending] = useState<GroupAction | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [lastAction, setLastAction] = useState<string | null>(null);
  // The jobs the last action made: a revert's or a delete's jobs are not the members' create jobs.
  const [started, setStarted] = useState<Job[]>([]);

  useEffect(() => live.subscribe((e) => {
    if (e.type !== 'job' || e.job.groupId !== groupId) return;
    setJobs((m) => new Map(m).set(e.job.id, e.job));
    setStarted((list) => (list.some((j) => j.id === e.job.id) ? applyJobEvent(list, e.job) : list));
    if (FINAL_JOB_STATES.includes(e.job.state)) group.reload();
  }), [groupId, group.reload]);

  const confirm = async () => {
    const p = pending;
    setPending(null);
    if (!p) return;
    try {
      setActionError(null);
      const result = await p.run();
      setStarted(result.jobs);
      setLastAction(`${p.button}: ${result.jobs.length} job${result.jobs.length === 1 ? '' : 's'} submitted.`);
      group.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  if (group.error && !group.data) return <><h1>Snapshot group</h1><ProblemBanner error={group.error} /></>;
  if (!group.data) return <p aria-live="polite">Loading…</p>;
  const g = group.data;
  const failed = g.members.filter((m) => m.state === 'failed' || m.state === 'cancelled');
  const withSnapshot = g.members.filter((m) => m.snapshotId !== null);
  const complete = withSnapshot.length === g.members.length && g.members.every((m) => m.state === 'succeeded');
  const deleted = g.state === 'deleted';
  const path = `/v1/snapshot-groups/${seg(groupId)}`;

  return (
    <>
      <p class="crumbs"><a href={href(['groups'])}>Snapshot groups</a></p>
      <h1>{g.name}</h1>
      <p class="facts">
        <GroupState group={g} />
        <span>{g.members.length} members</span>
        <span>mode {g.mode}</span>
        <span>spread <Spread ms={g.spreadMs} /></span>
        <span>by {g.requestedBy}</span>
        <span>created <LocalTime iso={g.createdAt} /></span>
        {g.finishedAt !== null && <span>finished <LocalTime iso={g.finishedAt} /></span>}
      </p>
      {g.description !== '' && <p class="pre">{g.description}</p>}
      <ProblemBanner error={actionError} />
      {lastAction !== null && <p role="status" class="notice">{lastAction}</p>}
      {session.can('write') && !deleted && (
        <div class="toolbar">
          <button type="button" disabled={failed.length === 0} title={failed.length === 0 ? 'No member failed' : undefined} onClick={() => setPending({
            button: 'Retry failed members', title: `Retry ${failed.length} failed member${failed.length === 1 ? '' : 's'} of ${g.name}?`, danger: false,
            body: `A new create job for each member that failed or was cancelled (${failed.map((m) => m.vmName).join(', ')}); the snapshots already made stay.`,
            run: () => api.post<{ jobs: Job[] }>(`${path}/retry`, {}),
          })}>Retry failed members</button>
          <button type="button" class="danger" disabled={!complete} title={complete ? undefined : 'Every member needs its snapshot first'} onClick={() => setPending({
            button: 'Revert group', title: `Revert all ${g.members.length} VMs of ${g.name}?`, danger: true,
            body: 'Every member VM returns to its snapshot of this group; what each did since is lost.',
            run: () => api.post<{ jobs: Job[] }>(`${path}/revert`, {}),
          })}>Revert group</button>
          <button type="button" class="danger" disabled={withSnapshot.length === 0} onClick={() => setPending({
            button: 'Delete group snapshots', title: `Delete the ${withSnapshot.length} snapshots of ${g.name}?`, danger: true,
            body: 'Every snapshot this group made is removed from its hypervisor; the group stays in the list, as deleted. This cannot be undone.',
            run: () => api.del<{ jobs: Job[] }>(path),
          })}>Delete group snapshots</button>
        </div>
      )}
      <div class="table-wrap">
        <table class="members">
          <caption>Members</caption>
          <thead>
            <tr>
              <th scope="col">VM</th>
              <th scope="col">Target</th>
              <th scope="col">Job</th>
              <th scope="col">Started</th>
              <th scope="col">Snapshot</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {g.members.map((m) => <MemberRow key={m.vmId} member={m} snapshotName={g.name} job={jobs.get(m.jobId)} />)}
          </tbody>
        </table>
      </div>
      {started.length > 0 && (
        <section aria-label="Jobs started here" class="vm-jobs">
          <h2>Jobs started here</h2>
          <ul class="job-list">
            {started.map((job) => {
              const vmName = g.members.find((m) => m.vmId === job.vmId)?.vmName ?? job.vmId;
              return (
                <li key={job.id}>
                  <a href={href(['jobs', job.id])}>{job.kind}</a> on {vmName}{' '}
                  <JobProgress job={job} label={`Progress of ${job.kind} on ${vmName}`} />
                  {job.error && <span class="bad"> {job.error.message}</span>}
                </li>
              );
            })}
          </ul>
        </section>
      )}
      {pending && (
        <ConfirmDialog title={pending.title} action={pending.button} danger={pending.danger} onConfirm={confirm} onCancel={() => setPending(null)}>
          <p>{pending.body}</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function MemberRow({ member: m, snapshotName, job }: { member: GroupMember; snapshotName: string; job: Job | undefined }) {
  // The live job when it has news; otherwise the member as the group last reported it.
  const state = job?.state ?? m.state;
  const progress = job?.progress ?? (m.state === 'succeeded' ? 100 : 0);
  const error = job?.error ?? m.error;
  return (
    <tr>
      <td><a href={href(['vms', m.vmId])}>{m.vmName}</a></td>
      <td>{m.target}</td>
      <td class="job-cell">
        <JobProgress job={{ state, progress }} label={`Progress of ${m.vmName}`} />{' '}
        <a href={href(['jobs', m.jobId])} class="small" aria-label={`Job of ${m.vmName}`}>job</a>
      </td>
      <td><LocalTime iso={job?.startedAt ?? m.startedAt} /></td>
      <td>{m.snapshotId !== null ? <a href={href(['vms', m.vmId])}>{snapshotName}</a> : <span class="muted">—</span>}</td>
      <td class="error-cell">{error ? <span class="bad">{error.message}</span> : <span class="muted">—</span>}</td>
    </tr>
  );
}
