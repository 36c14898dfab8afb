/**
 * One VM: its snapshot tree, what can be done to it (only what the token's scopes and the target's
 * capabilities allow, and modes the target lacks shown with the provider's reason), and the jobs
 * started on it, live.
 */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, query, seg } from '../api.ts';
import type { ViewProps } from '../app.tsx';
import { ConfirmDialog } from '../components/confirm.tsx';
import { JobProgress } from '../components/job-progress.tsx';
import { ProblemBanner } from '../components/problem.tsx';
import { ownerOf, SnapshotTree } from '../components/snapshot-tree.tsx';
import { LocalTime } from '../components/time.tsx';
import { useResource } from '../components/use-resource.ts';
import { live } from '../events.ts';
import { href } from '../router.ts';
import { session } from '../session.ts';
import { addStartedJob, applyJobEvent } from '../job-updates.ts';
import { allNodes } from '../tree-rows.ts';
import { FINAL_JOB_STATES, type Job, type Page, type SnapshotNode, type SnapshotTree as Tree, type Target, type Vm } from '../types.ts';
import { CreateSnapshotDialog } from './create-snapshot.tsx';

type Pending = { title: string; action: string; body: string; run: () => Promise<Job> };

export function VmView({ id }: ViewProps) {
  const vmId = id!;
  const vm = useResource(() => api.get<Vm>(`/v1/vms/${seg(vmId)}`), [vmId]);
  const tree = useResource(() => api.get<Tree>(`/v1/vms/${seg(vmId)}/snapshots?view=tree`), [vmId]);
  const targetName = vm.data?.targetName;
  const target = useResource(
    () => (targetName === undefined ? Promise.resolve(null) : api.get<Target>(`/v1/targets/${seg(targetName)}`)),
    [targetName],
  );
  const recent = useResource(() => api.get<Page<Job>>(`/v1/jobs${query({ vm: vmId, limit: 10 })}`), [vmId]);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [pending, setPending] = useState<Pending | null>(null);
  const [creating, setCreating] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);

  // Jobs the stream brought while the list loaded are newer than the list's copies.
  useEffect(() => {
    const loaded = recent.data?.items ?? [];
    setJobs((current) => loaded.reduceRight((list, job) => addStartedJob(list, job), current).sort((a, b) => b.createdAt.localeCompare(a.createdAt)));
  }, [recent.data]);
  useEffect(
    () =>
      live.subscribe((e) => {
        if (e.type === 'job' && e.job.vmId === vmId) {
          setJobs((current) => applyJobEvent(current, e.job));
          if (FINAL_JOB_STATES.includes(e.job.state)) {
            tree.reload();
            vm.reload();
          }
        } else if (e.type === 'snapshot' && e.snapshot.vmId === vmId) {
          tree.reload();
        } else if (e.type === 'vm' && e.vm.id === vmId) {
          vm.reload();
        }
      }),
    [vmId, tree.reload, vm.reload],
  );

  const nodes = useMemo(() => allNodes(tree.data?.roots ?? []), [tree.data]);
  const chosen = nodes.find((n) => n.id === selected) ?? null;
  const caps = target.data?.capabilities;
  const canWrite = session.can('write');

  const started = (job: Job) => setJobs((current) => addStartedJob(current, job));
  const confirm = async () => {
    const p = pending;
    setPending(null);
    if (!p) return;
    try {
      setActionError(null);
      started(await p.run());
    } catch (err) {
      setActionError(err);
    }
  };

  if (vm.error) return <><h1>VM</h1><ProblemBanner error={vm.error} /></>;
  if (!vm.data) return <p aria-live="polite">Loading…</p>;
  const v = vm.data;
  return (
    <>
      <p class="crumbs"><a href={href(['vms'])}>VMs</a> / {v.targetName}</p>
      <h1><bdi>{v.name}</bdi></h1>
      <p class="facts">
        <span class={`power power-${v.powerState}`}>{v.powerState}</span>
        <span>{v.snapshotCount} {v.snapshotCount === 1 ? 'snapshot' : 'snapshots'}</span>
        <span>chain depth {v.chainDepth}</span>
        {v.consolidationNeeded && <span class="warn">consolidation needed</span>}
        {v.goneAt !== null && <span class="bad">gone from its target</span>}
      </p>
      <ProblemBanner error={actionError ?? tree.error ?? target.error} />
      {canWrite && caps && (
        <div class="toolbar">
          <button type="button" class="primary" onClick={() => setCreating(true)}>Create snapshot</button>
          {caps.deleteAll && (
            <button type="button" class="danger" disabled={nodes.length === 0} onClick={() => setPending({
              title: `Delete every snapshot of ${v.name}?`, action: 'Delete all',
              body: `All ${nodes.length} snapshots are removed from the hypervisor. This cannot be undone.`,
              run: () => api.del<Job>(`/v1/vms/${seg(vmId)}/snapshots`),
            })}>Delete all snapshots</button>
          )}
          {caps.consolidate && (
            <button type="button" onClick={() => setPending({
              title: `Consolidate the disks of ${v.name}?`, action: 'Consolidate',
              body: 'Merges the disk chain; snapshots already deleted cannot come back afterwards.',
              run: () => api.post<Job>(`/v1/vms/${seg(vmId)}/consolidate`, {}),
            })}>Consolidate</button>
          )}
        </div>
      )}
      <div class="vm-layout">
        <section aria-labelledby="tree-heading" class="tree-panel">
          <h2 id="tree-heading">Snapshots</h2>
          {tree.data && <SnapshotTree roots={tree.data.roots} selected={selected} onSelect={setSelected} />}
        </section>
        <section aria-label="Snapshot details" class="details">
          <h2>Details</h2>
          {chosen === null ? <p class="muted">Select a snapshot.</p> : (
            <SnapshotDetails
              snapshot={chosen}
              canWrite={canWrite}
              canRevert={caps?.revert ?? false}
              canDeleteChildren={caps?.deleteChildren ?? false}
              ask={setPending}
            />
          )}
        </section>
      </div>
      <section aria-label="Jobs for this VM" class="vm-jobs">
        <h2>Jobs</h2>
        {jobs.length === 0 ? <p class="muted">No jobs yet.</p> : (
          <ul class="job-list">
            {jobs.map((job) => (
              <li key={job.id}>
                <a href={href(['jobs', job.id])}>{job.kind}</a>{' '}
                <JobProgress job={job} label={`Progress of ${job.kind} job`} />
                {job.progressMessage && <span class="muted"> {job.progressMessage}</span>}
                {job.error && <span class="bad"> {job.error.message}</span>}
                <span class="muted"> <LocalTime iso={job.createdAt} /></span>
              </li>
            ))}
          </ul>
        )}
      </section>
      {creating && caps && (
        <CreateSnapshotDialog vm={v} capabilities={caps} onClose={() => setCreating(false)} onStarted={(job) => { setCreating(false); started(job); }} />
      )}
      {pending && (
        <ConfirmDialog title={pending.title} action={pending.action} danger onConfirm={confirm} onCancel={() => setPending(null)}>
          <p>{pending.body}</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function SnapshotDetails({ snapshot: s, canWrite, canRevert, canDeleteChildren, ask }: {
  snapshot: SnapshotNode;
  canWrite: boolean;
  canRevert: boolean;
  canDeleteChildren: boolean;
  ask: (p: Pending) => void;
}) {
  const descendants = allNodes(s.children).length;
  return (
    <>
      <h3><bdi>{s.name}</bdi></h3>
      <dl>
        <dt>Mode</dt><dd>{s.mode ?? 'unknown'}</dd>
        <dt>Owner</dt><dd>{ownerOf(s)}{s.policyId !== null && <> (<a href={href(['policies', s.policyId])}>policy</a>)</>}</dd>
        {s.createdAt !== null ? <><dt>Created</dt><dd><LocalTime iso={s.createdAt} /></dd></> : <><dt>First seen</dt><dd><LocalTime iso={s.firstSeenAt} /> <span class="muted">(the hypervisor does not report when it was taken)</span></dd></>}
        {s.jobId !== null && <><dt>Made by</dt><dd><a href={href(['jobs', s.jobId])}>its job</a></dd></>}
        <dt>Current</dt><dd>{s.current ? 'yes' : 'no'}</dd>
        <dt>Children</dt><dd>{descendants}</dd>
        {s.description !== '' && <><dt>Description</dt><dd class="pre">{s.description}</dd></>}
        <dt>Id</dt><dd><code>{s.id}</code></dd>
      </dl>
      {canWrite && (
        <div class="toolbar">
          {canRevert && (
            <button type="button" onClick={() => ask({
              title: `Revert to ${s.name}?`, action: 'Revert',
              body: 'The VM returns to the state of this snapshot; what it did since the current snapshot was taken is lost.',
              run: () => api.post<Job>(`/v1/snapshots/${seg(s.id)}/revert`, {}),
            })}>Revert</button>
          )}
          <button type="button" class="danger" onClick={() => ask({
            title: `Delete ${s.name}?`, action: 'Delete',
            body: descendants > 0 ? `Its ${descendants} descendants stay and are re-parented.` : 'This cannot be undone.',
            run: () => api.del<Job>(`/v1/snapshots/${seg(s.id)}`),
          })}>Delete</button>
          {canDeleteChildren && (
            <button type="button" class="danger" onClick={() => ask({
              title: `Delete ${s.name} and everything below it?`, action: 'Delete with children',
              body: `${descendants + 1} snapshots are removed. This cannot be undone.`,
              run: () => api.del<Job>(`/v1/snapshots/${seg(s.id)}${query({ children: true })}`),
            })}>Delete with children</button>
          )}
        </div>
      )}
    </>
  );
}
