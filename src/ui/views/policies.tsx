/**
 * Policies, read from the API: their settings, what a run now would do (the planner's steps, doing
 * nothing), and their recent runs, live. Creating and changing policies stays with the API and the
 * CLI; a write-scope token can start a run now.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, query, seg } from '../api.ts';
import type { ViewProps } from '../app.tsx';
import { ConfirmDialog } from '../components/confirm.tsx';
import { ProblemBanner } from '../components/problem.tsx';
import { LocalTime } from '../components/time.tsx';
import { useResource } from '../components/use-resource.ts';
import { live } from '../events.ts';
import { href } from '../router.ts';
import { session } from '../session.ts';
import { PLAN_ACTIONS, type Page, type Policy, type PolicyPlan, type PolicyRun, type PolicyRunKind, type Retention, type Selector } from '../types.ts';

function selectorSummary(s: Selector): string {
  const parts: string[] = [];
  if (s.vms !== undefined) parts.push(`${s.vms.length} VM${s.vms.length === 1 ? '' : 's'} by id`);
  if (s.targets !== undefined) parts.push(`target ${s.targets.join(', ')}`);
  if (s.namePattern !== undefined) parts.push(`name ${s.namePattern}`);
  return parts.join('; ') || 'nothing';
}

function retentionSummary(r: Retention): string {
  const parts = [`last ${r.keepLast}`];
  if (r.keepHourly) parts.push(`${r.keepHourly} hourly`);
  if (r.keepDaily) parts.push(`${r.keepDaily} daily`);
  if (r.keepWeekly) parts.push(`${r.keepWeekly} weekly`);
  if (r.keepMonthly) parts.push(`${r.keepMonthly} monthly`);
  if (r.maxAge !== undefined) parts.push(`at most ${r.maxAge} old`);
  return parts.join(', ');
}

function EditingNote() {
  return (
    <p class="muted">
      Policies are created and changed through the API or the CLI (<code>snapvisor policies</code>); see the <a href="/docs">API documentation</a>.
    </p>
  );
}

export function PoliciesView(_props: ViewProps) {
  const list = useResource(() => api.get<{ items: Policy[] }>('/v1/policies'), []);
  const items = list.data?.items ?? [];
  return (
    <>
      <h1>Policies</h1>
      <EditingNote />
      <ProblemBanner error={list.error} />
      <div class="table-wrap">
        <table class="policies" aria-busy={list.loading}>
          <caption>Policies</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Schedule</th>
              <th scope="col">Mode</th>
              <th scope="col">Selects</th>
              <th scope="col">Keeps</th>
              <th scope="col">Enabled</th>
            </tr>
          </thead>
          <tbody>
            {items.map((p) => (
              <tr key={p.id}>
                <td><a href={href(['policies', p.id])}>{p.name}</a></td>
                <td><code>{p.schedule}</code> <span class="muted">{p.timezone}</span></td>
                <td>{p.mode}</td>
                <td>{selectorSummary(p.selector)}</td>
                <td>{retentionSummary(p.retention)}</td>
                <td>{p.enabled ? 'yes' : <span class="warn">no (paused)</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && items.length === 0 && <p>No policies yet.</p>}
    </>
  );
}

export function PolicyView({ id }: ViewProps) {
  const policyId = id!;
  const policy = useResource(() => api.get<Policy>(`/v1/policies/${seg(policyId)}`), [policyId]);
  const [kind, setKind] = useState<PolicyRunKind>('snapshot');
  const plan = useResource(() => api.get<PolicyPlan>(`/v1/policies/${seg(policyId)}/plan${query({ kind })}`), [policyId, kind]);
  const runs = useResource(() => api.get<Page<PolicyRun>>(`/v1/policies/${seg(policyId)}/runs${query({ limit: 20 })}`), [policyId]);
  const [asking, setAsking] = useState(false);
  const [started, setStarted] = useState<PolicyRun | null>(null);
  const [actionError, setActionError] = useState<unknown>(null);

  useEffect(() => live.subscribe((e) => {
    if (e.type !== 'policy-run' || e.run.policyId !== policyId) return;
    runs.reload();
    plan.reload();
    setStarted((s) => (s !== null && s.id === e.run.id ? e.run : s));
  }), [policyId, runs.reload, plan.reload]);

  const runNow = async () => {
    setAsking(false);
    try {
      setActionError(null);
      setStarted(await api.post<PolicyRun>(`/v1/policies/${seg(policyId)}/run${query({ kind })}`, {}));
      runs.reload();
    } catch (err) {
      setActionError(err);
    }
  };

  if (policy.error) return <><h1>Policy</h1><ProblemBanner error={policy.error} /></>;
  if (!policy.data) return <p aria-live="polite">Loading…</p>;
  const p = policy.data;
  const steps = plan.data?.kind === kind ? plan.data.steps : [];
  return (
    <>
      <p class="crumbs"><a href={href(['policies'])}>Policies</a></p>
      <h1>{p.name}</h1>
      <EditingNote />
      <section aria-labelledby="settings-heading" class="panel">
        <h2 id="settings-heading">Settings</h2>
        <dl class="fields">
          <dt>Enabled</dt><dd>{p.enabled ? 'yes' : 'no (paused)'}</dd>
          <dt>Schedule</dt><dd><code>{p.schedule}</code> in {p.timezone}</dd>
          <dt>Mode</dt><dd>{p.mode}</dd>
          <dt>Selects</dt><dd>{selectorSummary(p.selector)}</dd>
          <dt>Keeps</dt><dd>{retentionSummary(p.retention)}</dd>
          <dt>Chain depth limit</dt><dd>{p.maxChainDepth ?? <span class="muted">none</span>}</dd>
          <dt>Consolidation schedule</dt><dd>{p.consolidationSchedule === null ? <span class="muted">none</span> : <code>{p.consolidationSchedule}</code>}</dd>
          <dt>Created</dt><dd><LocalTime iso={p.createdAt} /></dd>
          <dt>Changed</dt><dd><LocalTime iso={p.updatedAt} /></dd>
          <dt>Id</dt><dd><code>{p.id}</code></dd>
        </dl>
      </section>

      <section aria-labelledby="plan-heading" class="panel">
        <h2 id="plan-heading">If it ran now</h2>
        <form class="filters" onSubmit={(e) => e.preventDefault()}>
          <label>
            Run kind
            <select value={kind} onChange={(e) => { setStarted(null); setKind(e.currentTarget.value === 'consolidate' ? 'consolidate' : 'snapshot'); }}>
              <option value="snapshot">snapshot (create, then retention)</option>
              <option value="consolidate">consolidate</option>
            </select>
          </label>
          {session.can('write') && (
            <button type="button" class="primary" onClick={() => setAsking(true)}>Run now</button>
          )}
        </form>
        <ProblemBanner error={actionError ?? plan.error} />
        {started && (
          <p role="status" class="notice">
            Run started ({started.kind}, {started.trigger}): <span class={`state state-${started.state}`}>{started.state}</span>
            {started.message !== null && <> — {started.message}</>}
            {started.jobIds.length > 0 && <> — <a href={href(['jobs'], { policy: policyId })}>{started.jobIds.length} job{started.jobIds.length === 1 ? '' : 's'}</a></>}
          </p>
        )}
        {plan.data && (
          <>
            <p class="counts">
              {PLAN_ACTIONS.map((a) => (
                <span key={a} class={`count count-${a}`}>{steps.filter((s) => s.action === a).length} {a}</span>
              ))}
              <span class="muted">planned at <LocalTime iso={plan.data.at} /></span>
            </p>
            <div class="table-wrap">
              <table class="plan" aria-busy={plan.loading}>
                <caption>Plan of a {kind} run</caption>
                <thead>
                  <tr>
                    <th scope="col">Action</th>
                    <th scope="col">VM</th>
                    <th scope="col">Target</th>
                    <th scope="col">Snapshot</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {steps.map((s, i) => (
                    <tr key={`${s.vmId}/${s.action}/${s.snapshotId ?? s.snapshotName ?? i}`} class={`step-${s.action}`}>
                      <td><span class={`action action-${s.action}`}>{s.action}</span></td>
                      <td><a href={href(['vms', s.vmId])}>{s.vmName}</a></td>
                      <td>{s.targetName}</td>
                      <td>{s.snapshotName ?? <span class="muted">—</span>}</td>
                      <td>{s.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {steps.length === 0 && <p class="muted">Nothing to do: no VM matches, or every VM is as the policy wants it.</p>}
          </>
        )}
      </section>

      <section aria-labelledby="runs-heading" class="panel">
        <h2 id="runs-heading">Recent runs</h2>
        <ProblemBanner error={runs.error} />
        {runs.data && runs.data.items.length > 0 && <div class="table-wrap">
          <table class="runs" aria-busy={runs.loading}>
            <caption>Runs</caption>
            <thead>
              <tr>
                <th scope="col">State</th>
                <th scope="col">Kind</th>
                <th scope="col">Trigger</th>
                <th scope="col">Started</th>
                <th scope="col">Finished</th>
                <th scope="col" class="num">Jobs</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {runs.data?.items.map((r) => (
                <tr key={r.id}>
                  <td><span class={`state state-${r.state}`}>{r.state}</span></td>
                  <td>{r.kind}</td>
                  <td>{r.trigger}</td>
                  <td><LocalTime iso={r.startedAt} /></td>
                  <td><LocalTime iso={r.finishedAt} /></td>
                  <td class="num">{r.jobIds.length > 0 ? <a href={href(['jobs'], { policy: policyId })}>{r.jobIds.length}</a> : 0}</td>
                  <td>{r.message ?? <span class="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>}
        {runs.data && runs.data.items.length === 0 && <p class="muted">No runs yet.</p>}
      </section>

      {asking && (
        <ConfirmDialog title={`Run ${p.name} now?`} action="Run now" onConfirm={runNow} onCancel={() => setAsking(false)}>
          <p>
            {kind === 'snapshot'
              ? 'Each selected VM gets its snapshot now, then the retention rules delete what they no longer keep (the plan above).'
              : 'Each selected VM whose chain is too deep is consolidated now (the plan above).'}
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}
