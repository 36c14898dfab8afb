/**
 * Policies end to end through the in-process API, the real engine and store, and the real
 * VirtualBox adapter against the VBoxManage simulator: validation (400 naming the field, 409 on a
 * name in use), plan, runs as jobs (visible with /v1/jobs?policy=), retention that deletes only the
 * policy's own snapshots (a manual one, an external one made in the simulator and another
 * policy's survive; keepLast holds), no overlap (skipped), a run resumed on a second engine after
 * a stop mid-run without doubling its snapshot, PATCH/DELETE, and the CLI's plan table.
 */
import t from 'tap';
import { cliFor } from './api-helper.ts';
import type { PolicyRun } from '../../src/domain/policy.ts';
import { daemonOn, ended, policyBody, READER, setupLab, WRITER } from './policy-helper.ts';

t.test('a bad field is a 400 naming it; a name in use is a 409; reading needs read, writing write', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['bad cron', { schedule: '61 * * * *' }, /schedule/],
    ['six fields', { schedule: '0 0 2 * * *' }, /schedule/],
    ['unknown zone', { timezone: 'Mars/Olympus_Mons' }, /timezone/],
    ['bad maxAge', { retention: { keepLast: 1, maxAge: 'thirty days' } }, /retention\.maxAge|retention\/maxAge/],
    ['keepLast 0', { retention: { keepLast: 0 } }, /retention\/keepLast/],
    ['unknown field', { colour: 'blue' }, /colour/],
    ['empty selector', { selector: {} }, /selector/],
    ['bad consolidation cron', { consolidationSchedule: 'every day' }, /consolidationSchedule/],
  ];
  for (const [what, over, field] of cases) {
    const res = await d.call('POST', '/v1/policies', policyBody(over));
    t.equal(res.statusCode, 400, `${what}: 400`);
    t.match(res.headers['content-type'], /application\/problem\+json/, what);
    t.match(JSON.stringify(res.json()), field, `${what}: names the field`);
  }
  t.same((await d.call('GET', '/v1/policies')).json(), { items: [] }, 'nothing was stored');

  t.equal((await d.call('POST', '/v1/policies', policyBody(), READER)).statusCode, 403, 'a read token cannot create');
  const created = await d.call('POST', '/v1/policies', policyBody());
  t.equal(created.statusCode, 201);
  t.match(created.headers.location, /^\/v1\/policies\/\S+$/);
  t.match(created.json(), { name: 'nightly', timezone: 'Europe/Berlin', enabled: true, maxChainDepth: null, consolidationSchedule: null });
  const dup = await d.call('POST', '/v1/policies', policyBody());
  t.equal(dup.statusCode, 409);
  t.match(dup.json(), { code: 'SNAPVISOR_ERR_POLICY_NAME_TAKEN', field: 'name' });
  t.equal((await d.call('GET', `/v1/policies/${created.json().id}`, undefined, READER)).statusCode, 200, 'a read token reads');
  t.equal((await d.call('GET', '/v1/policies/nope')).statusCode, 404);
  t.equal((await d.call('GET', '/v1/policies/nope/plan')).statusCode, 404);
  t.equal((await d.call('GET', `/v1/policies/${created.json().id}/plan?kind=weekly`)).statusCode, 400, 'unknown kind');
});

t.test('plan, run as jobs, retention deletes only the policy\'s own snapshots and keeps keepLast', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const web01 = await d.vmId('web01');

  // A user's own snapshot, one made outside Snapvisor, and another policy's: none may be deleted.
  const manual = await d.call('POST', `/v1/vms/${web01}/snapshots?wait=30`, { name: 'manual', mode: 'memory' });
  t.equal(manual.statusCode, 200, manual.body);
  lab.addExternalSnapshot('web01', { name: 'external', online: true });
  await d.engine.syncTarget('lab');
  const other = (await d.call('POST', '/v1/policies', policyBody({ name: 'other', retention: { keepLast: 1 } }))).json<{ id: string }>();
  const otherRun = (await d.call('POST', `/v1/policies/${other.id}/run`)).json<PolicyRun>();
  t.equal((await ended(d.engine, other.id, otherRun.id)).state, 'succeeded');

  const created = await d.call('POST', '/v1/policies', policyBody({ selector: { namePattern: 'web0[1]' } }));
  const policy = created.json<{ id: string }>();

  const plan = await d.call('GET', `/v1/policies/${policy.id}/plan`);
  t.equal(plan.statusCode, 200);
  const steps = plan.json<{ steps: Array<{ vmName: string; action: string; snapshotName?: string }> }>().steps;
  t.match(steps, [{ vmName: 'web01', action: 'create', snapshotName: /^nightly-\d{4}-\d{2}-\d{2}T\d{4}$/ }], 'one create, for web01 only');
  t.equal(steps.length, 1, 'nothing to delete yet');
  t.equal((await d.call('GET', `/v1/jobs?policy=${policy.id}`)).json<{ items: unknown[] }>().items.length, 0, 'a plan does nothing');

  const runs: PolicyRun[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await d.call('POST', `/v1/policies/${policy.id}/run`);
    t.equal(res.statusCode, 202);
    t.equal(res.headers.location, `/v1/policies/${policy.id}/runs/${res.json<PolicyRun>().id}`);
    t.match(res.json(), { state: 'running', trigger: 'manual', kind: 'snapshot', policyId: policy.id });
    runs.push(await ended(d.engine, policy.id, res.json<PolicyRun>().id));
    // The Location is the run itself, readable with a read token.
    const followed = await d.call('GET', String(res.headers.location), undefined, READER);
    t.equal(followed.statusCode, 200);
    t.match(followed.json(), { id: res.json<PolicyRun>().id, state: 'succeeded', trigger: 'manual' });
  }
  t.equal((await d.call('GET', `/v1/policies/${policy.id}/runs/${otherRun.id}`)).statusCode, 404, "another policy's run is not this policy's");
  t.same(runs.map((r) => r.state), ['succeeded', 'succeeded', 'succeeded'], JSON.stringify(runs.map((r) => r.message)));

  const present = (await d.engine.listSnapshots(web01, { includeGone: false })).map((s) => ({ name: s.name, owner: s.owner, policyId: s.policyId }));
  const mine = present.filter((s) => s.policyId === policy.id);
  t.equal(mine.length, 2, 'keepLast 2: two of the three runs\' snapshots are left');
  t.ok(present.some((s) => s.name === 'manual' && s.owner === 'snapvisor' && s.policyId === null), 'the manual snapshot survives');
  t.ok(present.some((s) => s.name === 'external' && s.owner === 'external'), 'the external snapshot survives');
  t.ok(present.some((s) => s.policyId === other.id), "the other policy's snapshot survives");
  const onHypervisor = Object.values(lab.readState().vms.find((v) => v.name === 'web01')!.snapshots).map((s) => s.name);
  t.equal(onHypervisor.length, 5, `the simulator holds manual, external, other's and two of nightly's: ${onHypervisor.join(', ')}`);
  t.equal(Object.keys(lab.readState().vms.find((v) => v.name === 'web02')!.snapshots).length, 0, 'an unselected VM is untouched');

  const jobs = (await d.call('GET', `/v1/jobs?policy=${policy.id}`)).json<{ items: Array<{ kind: string; state: string; policyId: string; policyRunId: string; requestedBy: string }> }>().items;
  t.same(jobs.map((j) => j.kind).sort(), ['snapshot.create', 'snapshot.create', 'snapshot.create', 'snapshot.delete'], 'three creates and one delete');
  t.ok(jobs.every((j) => j.state === 'succeeded' && j.policyId === policy.id && j.requestedBy === `policy:${policy.id}`));
  t.same(new Set(jobs.map((j) => j.policyRunId)), new Set(runs.map((r) => r.id)));
  t.same(runs[2]!.jobIds.length, 2, 'the third run: its create and its delete');

  const page = await d.call('GET', `/v1/policies/${policy.id}/runs?limit=2`);
  t.equal(page.json<{ items: PolicyRun[] }>().items.length, 2);
  t.ok(page.json<{ next: string | null }>().next, 'paged');
  const metrics = await d.call('GET', '/metrics');
  t.match(metrics.body, /snapvisor_policy_runs_total\{kind="snapshot",trigger="manual",result="succeeded"\} 4/);

  // The plan now shows the delete the next run would make, oldest first.
  const next = (await d.call('GET', `/v1/policies/${policy.id}/plan`)).json<{ steps: Array<{ action: string }> }>().steps.map((s) => s.action);
  t.same(next, ['create', 'delete']);
});

t.test('runs never overlap: a second start while one is going is recorded skipped', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const policy = (await d.call('POST', '/v1/policies', policyBody())).json<{ id: string }>();
  lab.setFault('take', 'web01', { type: 'hang', times: 1 });
  const first = (await d.call('POST', `/v1/policies/${policy.id}/run`)).json<PolicyRun>();
  t.equal(first.state, 'running');
  const second = await d.call('POST', `/v1/policies/${policy.id}/run`);
  t.equal(second.statusCode, 202);
  t.match(second.json(), { state: 'skipped', message: new RegExp(first.id) });
  const consolidate = (await d.call('POST', `/v1/policies/${policy.id}/run?kind=consolidate`)).json<PolicyRun>();
  t.not(consolidate.state, 'skipped', 'another kind is not blocked');
  // The hung take would only end at the command timeout: cancel its job (the policy's principal is not the writer's).
  const job = (await d.call('GET', `/v1/jobs?policy=${policy.id}&kind=snapshot.create`)).json<{ items: Array<{ id: string }> }>().items[0]!;
  await d.engine.cancelJob(job.id, 'test');
  const done = await ended(d.engine, policy.id, first.id);
  t.equal(done.state, 'failed', 'its only job was cancelled: nothing went right');
  const skips = (await d.engine.listPolicyRuns(policy.id, { limit: 10 })).items.filter((r) => r.state === 'skipped');
  t.equal(skips.length, 1);
});

t.test('a run stopped mid-way is resumed by the next engine on the same database without doubling its snapshot', async (t) => {
  const { lab, database } = setupLab(t);
  const first = await daemonOn(t, lab, database);
  const policy = (await first.call('POST', '/v1/policies', policyBody({ retention: { keepLast: 5 } }))).json<{ id: string }>();
  // The take makes the snapshot and prints its answer, then never exits: the daemon stops meanwhile.
  lab.setFault('take', 'web01', { type: 'hang-after', times: 1 });
  const started = (await first.call('POST', `/v1/policies/${policy.id}/run`)).json<PolicyRun>();
  await new Promise<void>((resolve) => {
    const check = () => (lab.readState().vms.find((v) => v.name === 'web01')!.root !== null ? resolve() : setImmediate(check));
    check();
  });
  await first.close(100);

  const second = await daemonOn(t, lab, database);
  const done = await ended(second.engine, policy.id, started.id);
  t.equal(done.state, 'succeeded', done.message ?? '');
  const made = Object.values(lab.readState().vms.find((v) => v.name === 'web01')!.snapshots);
  t.equal(made.length, 1, `one snapshot on the hypervisor, not two: ${made.map((s) => s.name).join(', ')}`);
  const jobs = (await second.call('GET', `/v1/jobs?policy=${policy.id}`)).json<{ items: Array<{ kind: string; state: string }> }>().items;
  t.same(jobs.map((j) => [j.kind, j.state]), [['snapshot.create', 'succeeded']], 'one create job, recovered');
  const snapshots = await second.engine.listSnapshots(await second.vmId('web01'), { includeGone: false });
  t.match(snapshots, [{ policyId: policy.id, owner: 'snapvisor' }]);
});

t.test('PATCH changes some fields (validated as a create), DELETE keeps runs and the snapshots owned', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const policy = (await d.call('POST', '/v1/policies', policyBody({ retention: { keepLast: 1 } }))).json<{ id: string; updatedAt: string }>();
  const bad = await d.call('PATCH', `/v1/policies/${policy.id}`, { timezone: 'Nowhere/Land' });
  t.equal(bad.statusCode, 400);
  t.match(bad.json(), { field: 'timezone' });
  t.equal((await d.call('PATCH', `/v1/policies/${policy.id}`, {})).statusCode, 400, 'an empty patch');
  t.equal((await d.call('PATCH', `/v1/policies/${policy.id}`, { id: 'x' })).statusCode, 400, 'id is not a field to set');
  const patched = await d.call('PATCH', `/v1/policies/${policy.id}`, { enabled: false, schedule: '0 */4 * * *' });
  t.equal(patched.statusCode, 200);
  t.match(patched.json(), { enabled: false, schedule: '0 */4 * * *', timezone: 'Europe/Berlin', name: 'nightly', retention: { keepLast: 1 } });
  t.equal(d.engine.policyRuns.schedulable().length, 0, 'a disabled policy is not scheduled');
  await d.call('PATCH', `/v1/policies/${policy.id}`, { enabled: true });
  t.match(d.engine.policyRuns.schedulable(), [{ policy: { id: policy.id, schedule: '0 */4 * * *' }, lastScheduledFor: { snapshot: null, consolidate: null } }]);

  const other = (await d.call('POST', '/v1/policies', policyBody({ name: 'other' }))).json<{ id: string }>();
  t.equal((await d.call('PATCH', `/v1/policies/${policy.id}`, { name: 'other' })).statusCode, 409, 'renaming onto another name');

  const run = (await d.call('POST', `/v1/policies/${policy.id}/run`)).json<PolicyRun>();
  await ended(d.engine, policy.id, run.id);
  t.equal((await d.call('DELETE', `/v1/policies/${policy.id}`, undefined, READER)).statusCode, 403);
  t.equal((await d.call('DELETE', `/v1/policies/${policy.id}`)).statusCode, 204);
  t.equal((await d.call('GET', `/v1/policies/${policy.id}`)).statusCode, 404);
  t.equal((await d.call('DELETE', `/v1/policies/${policy.id}`)).statusCode, 404);
  const history = await d.call('GET', `/v1/policies/${policy.id}/runs`);
  t.equal(history.statusCode, 200, 'the runs of a deleted policy stay readable');
  t.equal(history.json<{ items: PolicyRun[] }>().items[0]!.id, run.id);
  const left = await d.engine.listSnapshots(await d.vmId('web01'), { includeGone: false });
  t.match(left, [{ policyId: policy.id }], 'its snapshot stays, still its own');

  // Another policy on the same VM with keepLast 1 never deletes it.
  const otherRun = (await d.call('POST', `/v1/policies/${other.id}/run`)).json<PolicyRun>();
  await ended(d.engine, other.id, otherRun.id);
  const after = await d.engine.listSnapshots(await d.vmId('web01'), { includeGone: false });
  t.equal(after.filter((s) => s.policyId === policy.id).length, 1, "the deleted policy's snapshot survives the other policy");

  const audited = (await d.store.audit.list({ limit: 100 })).filter((a) => a.path.startsWith('/v1/policies'));
  t.ok(audited.some((a) => a.method === 'DELETE' && a.statusCode === 204), 'mutations are audited');
});

t.test('the CLI lists policies, prints the plan as a table and runs a policy', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const cli = await cliFor(d.app, WRITER);
  const policy = (await d.call('POST', '/v1/policies', policyBody({ selector: { namePattern: 'web*' } }))).json<{ id: string }>();
  const list = await cli(['policies']);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /^ID\s+NAME\s+SCHEDULE\s+MODE\s+ENABLED\s+SELECTOR\s+KEEP\n\S+\s+nightly\s+30 2 \* \* \* Europe\/Berlin\s+memory\s+yes\s+name=web\*\s+last 2\n$/);
  const plan = await cli(['policy', 'plan', policy.id]);
  t.equal(plan.code, 0, plan.stderr);
  t.match(plan.stdout, /^VM\s+TARGET\s+ACTION\s+SNAPSHOT\s+REASON\nweb01\s+lab\s+create\s+nightly-\S+\s+\S.*\nweb02\s+lab\s+create\s+nightly-\S+\s+\S.*\n$/);
  t.equal((await cli(['policy', 'plan', policy.id, '--kind', 'weekly'])).code, 2, 'a bad kind is a usage error');
  const ran = await cli(['policy', 'run', policy.id]);
  t.equal(ran.code, 0, ran.stderr);
  t.match(ran.stdout, new RegExp(`^run \\S+ running\nits jobs: snapvisor jobs --policy ${policy.id}\n$`));
  const runId = /^run (\S+)/.exec(ran.stdout)![1]!;
  await ended(d.engine, policy.id, runId);
  const jobs = await cli(['jobs', '--policy', policy.id]);
  t.equal(jobs.stdout.trim().split('\n').length, 3, 'header and the two creates');
});

t.test('a run where one VM fails ends partial; the failed VM loses nothing, the others keep their retention', async (t) => {
  const { lab, database } = setupLab(t);
  const d = await daemonOn(t, lab, database);
  const policy = (await d.call('POST', '/v1/policies', policyBody({ selector: { namePattern: 'web*' }, retention: { keepLast: 1 } }))).json<{ id: string }>();
  const first = (await d.call('POST', `/v1/policies/${policy.id}/run`)).json<PolicyRun>();
  t.equal((await ended(d.engine, policy.id, first.id)).state, 'succeeded');
  lab.setFault('take', 'web02', { type: 'fail', message: 'VBOX_E_INVALID_VM_STATE' });
  const second = (await d.call('POST', `/v1/policies/${policy.id}/run`)).json<PolicyRun>();
  const done = await ended(d.engine, policy.id, second.id);
  t.equal(done.state, 'partial');
  t.match(done.message, /create on VM \S+: failed/);
  const count = (name: string) => Object.keys(lab.readState().vms.find((v) => v.name === name)!.snapshots).length;
  t.equal(count('web01'), 1, 'web01: the new one made, the old one deleted (keepLast 1)');
  t.equal(count('web02'), 1, "web02: its create failed, so its only snapshot is not deleted on the create's behalf");
});
