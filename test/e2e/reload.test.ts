// Reloading the configuration of the real daemon (SIGHUP and POST /v1/admin/reload) while jobs
// run and wait: nothing in flight is lost, an added target becomes usable, a removed target's
// queued jobs are cancelled with the reason, tokens are swapped, an invalid file is refused with
// the key while the old configuration keeps working, and the demo refuses to reload.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, startDaemon, until, type Daemon } from './daemon.ts';

const ADMIN = 'e2e-admin-7d31c0-5e8d0b6a9f3c';
const OLD_READER = 'e2e-old-reader-55ab-5e8d0b6a9f3c';
const NEW_READER = 'e2e-new-reader-91fe-5e8d0b6a9f3c';
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

interface JobBody { id: string; state: string; result: { snapshotId?: string } | null; error: { kind: string; message: string } | null }
interface Problem { status: number; code: string; detail: string; problems?: Array<{ path: string; message: string }> }

const FINAL = ['succeeded', 'failed', 'cancelled'];

function setup(t: TapTest, labs: Record<string, { vm: string; stepMs: number }>) {
  const dir = t.testdir({});
  const made: Record<string, VboxLab> = {};
  for (const [name, spec] of Object.entries(labs)) {
    made[name] = createVboxLab({ dir: path.join(dir, name), vms: [{ name: spec.vm, state: 'running' }], stepMs: spec.stepMs });
  }
  // A simulator still working when a test ends outlives the daemon (its own process group).
  t.teardown(() => {
    for (const lab of Object.values(made)) spawnSync('pkill', ['-KILL', '-f', lab.dir]);
  });
  const file = path.join(dir, 'snapvisor.yaml');
  const target = (name: string, extra = '') =>
    `  - { name: ${name}, kind: virtualbox, vboxmanage: ${JSON.stringify(made[name]!.vboxmanage)}, commandTimeoutSec: 60${extra} }`;
  const write = (o: { targets: string[]; tokens?: string[]; database?: string }) =>
    writeFileSync(
      file,
      [
        'tokens:',
        ...(o.tokens ?? ['  - { name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }']),
        `database: ${JSON.stringify(path.join(dir, o.database ?? 'snapvisor.db'))}`,
        'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 10 }',
        'targets:',
        ...o.targets,
        '',
      ].join('\n'),
    );
  const env = { SNAPVISOR_CONFIG: file, E2E_TOKEN: ADMIN, OLD_READER };
  return { dir, labs: made, target, write, env };
}

async function vmIdOf(d: Daemon, target: string, name: string): Promise<string> {
  return until(`VM ${name} synced`, async () => {
    const vms = await api<{ items: Array<{ id: string; name: string }> }>(d, ADMIN, 'GET', `/v1/vms?target=${target}`);
    return vms.status === 200 ? vms.body.items.find((v) => v.name === name)?.id : undefined;
  });
}

const create = (d: Daemon, vmId: string, name: string) => api<JobBody>(d, ADMIN, 'POST', `/v1/vms/${vmId}/snapshots`, { name, mode: 'memory' });
const job = async (d: Daemon, id: string) => (await api<JobBody>(d, ADMIN, 'GET', `/v1/jobs/${id}`)).body;
const final = (d: Daemon, id: string) => until(`job ${id} final`, async () => {
  const j = await job(d, id);
  return FINAL.includes(j.state) ? j : undefined;
}, 60_000);
const takeUnderWay = (lab: VboxLab) => until('take under way', async () => lab.readState().vms[0]!.pending?.kind === 'take');
const marked = (lab: VboxLab, jobId: string) => Object.values(lab.readState().vms[0]!.snapshots).filter((s) => s.description.includes(`snapvisor:${jobId}`));

t.test('POST /v1/admin/reload with jobs running and queued: nothing lost, an added target is usable, tokens swapped', async (t) => {
  const ctx = setup(t, { lab1: { vm: 'app-1', stepMs: 200 }, lab2: { vm: 'db-1', stepMs: 20 } });
  const tokens = ['  - { name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }'];
  ctx.write({ targets: [ctx.target('lab1')], tokens: [...tokens, '  - { name: old, value: env:OLD_READER, scopes: [read] }'] });
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const app1 = await vmIdOf(d, 'lab1', 'app-1');
  t.equal((await api(d, OLD_READER, 'GET', '/v1/targets')).status, 200, 'the old reader token works before');

  const running = (await create(d, app1, 'in flight')).body;
  await takeUnderWay(ctx.labs.lab1!);
  const queued = (await create(d, app1, 'queued behind it')).body;
  t.equal((await job(d, running.id)).state, 'running');
  t.equal((await job(d, queued.id)).state, 'queued', 'one job per VM: the second waits');

  const newHash = createHash('sha256').update(NEW_READER).digest('hex');
  ctx.write({
    targets: [ctx.target('lab1'), ctx.target('lab2')],
    tokens: [...tokens, `  - { name: new, sha256: ${newHash}, scopes: [read] }`],
    database: 'elsewhere.db',
  });
  const reloaded = await api<Record<string, unknown>>(d, ADMIN, 'POST', '/v1/admin/reload');
  t.equal(reloaded.status, 200, JSON.stringify(reloaded.body));
  t.same(reloaded.body, {
    source: ctx.env.SNAPVISOR_CONFIG,
    targets: { added: ['lab2'], changed: [], removed: [], unchanged: ['lab1'] },
    tokens: { count: 2, added: ['new'], changed: [], removed: ['old'] },
    cancelledJobs: [],
    restartRequired: ['/database'],
  });
  t.equal((await job(d, running.id)).state, 'running', 'the running job goes on through the reload');

  t.equal((await api(d, OLD_READER, 'GET', '/v1/targets')).status, 401, 'a removed token is refused at once');
  const listed = await api<{ items: Array<{ name: string }> }>(d, NEW_READER, 'GET', '/v1/targets');
  t.equal(listed.status, 200, 'an added token works at once');
  t.same(listed.body.items.map((x) => x.name), ['lab1', 'lab2']);
  t.equal((await api(d, NEW_READER, 'POST', '/v1/admin/reload')).status, 403, 'reload needs the admin scope');

  t.equal((await final(d, running.id)).state, 'succeeded');
  t.equal((await final(d, queued.id)).state, 'succeeded', 'the queued job ran after the reload');
  t.equal(marked(ctx.labs.lab1!, running.id).length, 1);
  t.equal(marked(ctx.labs.lab1!, queued.id).length, 1);

  const db1 = await vmIdOf(d, 'lab2', 'db-1');
  const onAdded = await api<JobBody>(d, ADMIN, 'POST', `/v1/vms/${db1}/snapshots?wait=30`, { name: 'on the added target', mode: 'memory' });
  t.equal(onAdded.body.state, 'succeeded', 'the added target runs jobs');

  const line = d.logs().find((l) => l.msg === 'configuration reloaded');
  t.match(line, { trigger: 'api', principal: 'e2e', targets: { added: ['lab2'] }, tokens: { count: 2 } }, 'one log line says what changed');
  t.notOk(JSON.stringify(d.logs()).includes(NEW_READER), 'no token value in the logs');
  t.ok(d.logs().some((l) => l.msg === 'changed settings take effect only after a restart; they keep their running values'));
  t.notOk(d.logs().some((l) => l.msg === 'provider of a reconfigured or removed target closed'), 'the unchanged target kept its provider');
  t.equal((await d.kill('SIGTERM')).code, 0);
});

t.test("SIGHUP: a removed target's queued job is cancelled with the reason, running jobs on removed and changed targets finish", async (t) => {
  const ctx = setup(t, { lab1: { vm: 'app-1', stepMs: 200 }, lab2: { vm: 'db-1', stepMs: 200 } });
  ctx.write({ targets: [ctx.target('lab1'), ctx.target('lab2')] });
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const app1 = await vmIdOf(d, 'lab1', 'app-1');
  const db1 = await vmIdOf(d, 'lab2', 'db-1');

  const onChanged = (await create(d, app1, 'on a changed target')).body;
  const onRemoved = (await create(d, db1, 'on a removed target')).body;
  await takeUnderWay(ctx.labs.lab1!);
  await takeUnderWay(ctx.labs.lab2!);
  const waiting = (await create(d, db1, 'waits on the removed target')).body;
  t.equal((await job(d, waiting.id)).state, 'queued');

  ctx.write({ targets: [ctx.target('lab1', ', offline: { shutdownTimeoutSec: 30 }')] });
  d.proc.kill('SIGHUP');
  const line = await until('reload logged', async () => d.logs().find((l) => l.msg === 'configuration reloaded'));
  t.match(line, { trigger: 'SIGHUP', targets: { changed: ['lab1'], removed: ['lab2'], added: [], unchanged: [] }, cancelledJobs: [waiting.id] });

  const cancelled = await job(d, waiting.id);
  t.equal(cancelled.state, 'cancelled');
  t.equal(cancelled.error?.message, "target 'lab2' was removed from the configuration by a reload", 'the reason names the target');
  const removedDone = await final(d, onRemoved.id);
  t.equal(removedDone.state, 'succeeded', 'the running job on the removed target finished');
  t.equal((await final(d, onChanged.id)).state, 'succeeded', 'the running job on the changed target finished');
  t.equal(marked(ctx.labs.lab2!, onRemoved.id).length, 1);
  t.equal(marked(ctx.labs.lab2!, waiting.id).length, 0, 'the cancelled job never ran');
  await until('retired providers closed', async () =>
    d.logs().filter((l) => l.msg === 'provider of a reconfigured or removed target closed').length === 2);

  const targets = await api<{ items: Array<{ name: string }> }>(d, ADMIN, 'GET', '/v1/targets');
  t.same(targets.body.items.map((x) => x.name), ['lab1']);
  t.equal((await api(d, ADMIN, 'GET', `/v1/vms/${db1}`)).status, 200, "the removed target's VM stays readable");
  const snaps = await api<{ items: Array<{ id: string }> }>(d, ADMIN, 'GET', `/v1/vms/${db1}/snapshots`);
  t.ok(snaps.body.items.some((s) => s.id === removedDone.result?.snapshotId), 'with the snapshot its last job made');
  const refused = await api<Problem>(d, ADMIN, 'POST', `/v1/vms/${db1}/snapshots`, { name: 'no', mode: 'memory' });
  t.equal(refused.body.code, 'SNAPVISOR_ERR_TARGET_NOT_CONFIGURED');

  const after = await api<JobBody>(d, ADMIN, 'POST', `/v1/vms/${app1}/snapshots?wait=30`, { name: 'after the reload', mode: 'memory' });
  t.equal(after.body.state, 'succeeded', 'the changed target runs new jobs on its new provider');
  t.equal((await d.kill('SIGTERM')).code, 0);
});

t.test('an invalid new configuration is refused with the key (route and SIGHUP); the old one keeps working', async (t) => {
  const ctx = setup(t, { lab1: { vm: 'app-1', stepMs: 20 } });
  ctx.write({ targets: [ctx.target('lab1')] });
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const app1 = await vmIdOf(d, 'lab1', 'app-1');

  // An adapter option problem: found by the adapter's own schema, named by the target's index.
  ctx.write({ targets: [ctx.target('lab1', ', bogus: 1')] });
  const byRoute = await api<Problem>(d, ADMIN, 'POST', '/v1/admin/reload');
  t.equal(byRoute.status, 400);
  t.match(byRoute.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(byRoute.body.code, 'SNAPVISOR_ERR_CONFIG_INVALID');
  t.match(byRoute.body.problems, [{ path: '/targets/0', message: /unknown option 'bogus'/ }]);
  t.match(byRoute.body.detail, /running configuration is unchanged/);

  // A file-level problem, by SIGHUP: a log line with the key.
  ctx.write({ targets: [ctx.target('lab1')], tokens: ['  - { name: e2e, scopes: [read] }'] });
  d.proc.kill('SIGHUP');
  const refused = await until('refusal logged', async () =>
    d.logs().find((l) => l.msg === 'configuration reload refused; the running configuration is unchanged' && l.trigger === 'SIGHUP'));
  t.match(refused, { problems: [{ path: '/tokens/0', message: 'give exactly one of value or sha256' }] });
  t.equal(d.proc.exitCode, null, 'still running');

  const ok = await api<JobBody>(d, ADMIN, 'POST', `/v1/vms/${app1}/snapshots?wait=30`, { name: 'still works', mode: 'memory' });
  t.equal(ok.body.state, 'succeeded', 'the old token and target keep working');
  t.notOk(d.logs().some((l) => l.msg === 'configuration reloaded'));

  ctx.write({ targets: [ctx.target('lab1')] });
  const fixed = await api<{ targets: { unchanged: string[] } }>(d, ADMIN, 'POST', '/v1/admin/reload');
  t.equal(fixed.status, 200);
  t.same(fixed.body.targets.unchanged, ['lab1'], 'once fixed, the reload goes through');
  t.equal((await d.kill('SIGTERM')).code, 0);
});

t.test('demo mode: reload is refused with the reason, SIGHUP does not stop the daemon', async (t) => {
  const cwd = t.testdir({});
  const d = await startDaemon({ cwd, env: { SNAPVISOR_TOKEN: ADMIN } });
  t.teardown(() => d.kill('SIGKILL'));
  const res = await api<Problem>(d, ADMIN, 'POST', '/v1/admin/reload');
  t.equal(res.status, 409);
  t.equal(res.body.code, 'SNAPVISOR_ERR_RELOAD_DEMO');
  d.proc.kill('SIGHUP');
  await until('refusal logged', async () => d.logs().find((l) => l.msg === 'configuration reload refused; the running configuration is unchanged' && l.trigger === 'SIGHUP'));
  t.equal((await fetch(`${d.url}/healthz`)).status, 200, 'still serving');
  t.equal((await d.kill('SIGTERM')).code, 0);
});
