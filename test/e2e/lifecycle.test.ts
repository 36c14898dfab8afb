// Operating the real daemon process as a service (issue 17): a closed stdout does not kill it, a
// SIGTERM stops it within the grace period plus 2 s even with a provider call that never returns
// (and the next start recovers the interrupted job once), a second signal exits at once, the log
// level changes at run time, and logs are JSON on a pipe but readable lines on a terminal.
import { spawn, spawnSync } from 'node:child_process';
import t from 'tap';
import { openStore } from '../../src/store/index.ts';
import { api, freePort, REPO, startDaemon, until, type Daemon } from './daemon.ts';
import { finalJob, firstVm, markedSnapshots, READ_TOKEN, TOKEN, vboxDaemonSetup, type JobBody, type VboxDaemonSetup } from './vbox-daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const GRACE_SEC = 2;

/** Exit of a daemon sent `signal`, and how long after the signal it was gone. */
async function stopTimed(d: Daemon, signal: NodeJS.Signals) {
  const sent = Date.now();
  const exit = await d.kill(signal);
  return { ...exit, ms: Date.now() - sent };
}

/** The job as the store has it, read with the daemon stopped. */
async function storedJob(ctx: VboxDaemonSetup, jobId: string) {
  const store = openStore(ctx.database);
  try {
    return await store.jobs.get(jobId);
  } finally {
    store.close();
  }
}

/** A create job on app-1 that is inside its `snapshot take` call. */
async function createUnderWay(t: TapTest, ctx: VboxDaemonSetup, d: Daemon, until_: 'running' | 'take pending') {
  const vmId = await firstVm(d);
  const created = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'interrupted', mode: 'memory' });
  t.equal(created.status, 202);
  // With a hang fault on take, a running job is inside a call that will not return (listing, then taking).
  if (until_ === 'take pending') await until('take under way', async () => ctx.lab.readState().vms[0]!.pending?.kind === 'take');
  else await until('job running', async () => (await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${created.body.id}`)).body.state === 'running');
  return created.body.id;
}

function recoveryLines(d: Daemon, jobId: string) {
  return d.logs().filter((l) => l.jobId === jobId && String(l.msg).startsWith('recovery:'));
}

t.test('stdout closed by its reader (EPIPE): the daemon goes on, counts the errors, says so once on stderr', async (t) => {
  const port = await freePort();
  // Demo mode: the start-up banner is written to stdout too, straight after `listening`.
  const d = await startDaemon({ cwd: t.testdir({}), port, stdout: 'closed', env: { SNAPVISOR_TOKEN: 'demo-token-e2e-3c81-5e8d0b6a9f3c' } });
  t.teardown(() => d.kill('SIGKILL'));
  const token = 'demo-token-e2e-3c81-5e8d0b6a9f3c';
  t.equal((await fetch(`${d.url}/healthz`)).status, 200, 'answers /healthz');
  const vms = await until('demo VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string }> }>(d, token, 'GET', '/v1/vms');
    return r.body.items.length >= 5 ? r.body.items : undefined;
  });
  const created = await api<JobBody>(d, token, 'POST', `/v1/vms/${vms.find((v) => v.name === 'web-01')!.id}/snapshots?wait=60`, { name: 'no stdout', mode: 'memory' });
  t.equal(created.body.state, 'succeeded', 'a job still runs');
  const metrics = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.text());
  const errors = Number(/^snapvisor_log_write_errors_total\{code="EPIPE"\} (\d+)$/m.exec(metrics)?.[1]);
  t.ok(errors >= 1, `write errors counted (${errors})`);
  t.ok(Number(/^snapvisor_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1]) > 0, 'lost lines counted');
  const notices = d.stderr().split('\n').filter((l) => l.includes('cannot write to stdout'));
  t.equal(notices.length, 1, 'one line on stderr');
  t.match(notices[0], /EPIPE/);
  t.notMatch(d.stderr(), /Unhandled|Error: write/, 'no crash report');
  const exit = await d.kill('SIGTERM');
  t.equal(exit.code, 0, 'and it still stops cleanly');
});

t.test('SIGTERM with a provider call that never returns: gone within grace + 2 s, the job recovered once at the next start', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 20, shutdownGraceSec: GRACE_SEC });
  ctx.lab.setFault('take', 'app-1', { type: 'hang' });
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  const jobId = await createUnderWay(t, ctx, d1, 'running');
  const exit = await stopTimed(d1, 'SIGTERM');
  t.equal(exit.code, 0, 'a clean exit');
  t.ok(exit.ms < GRACE_SEC * 1000 + 2_000, `gone ${exit.ms} ms after SIGTERM (grace ${GRACE_SEC} s)`);
  t.ok(exit.ms >= GRACE_SEC * 1000 - 100, 'the job had its grace period');
  t.ok(d1.logs().some((l) => l.msg === 'stopped'), 'stopped through the orderly path');
  const stored = await storedJob(ctx, jobId);
  t.match(stored, { state: 'running', attempts: 1, error: { code: 'SNAPVISOR_ERR_SHUTDOWN_UNCERTAIN' } }, 'left running, uncertain, for recovery');

  ctx.lab.setFault('take', 'app-1', null);
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await finalJob(d2, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(final.error, null, 'the uncertainty is cleared');
  t.match(recoveryLines(d2, jobId), [{ msg: /had not completed; requeued/ }], 'recovered once: nothing on the hypervisor, so requeued');
  t.equal(recoveryLines(d2, jobId).length, 1);
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'taken exactly once');
  t.equal((await d2.kill('SIGTERM')).code, 0);
});

t.test('SIGTERM during a long take the hypervisor goes on with: the next start finds it done, no second snapshot', async (t) => {
  // 10 steps of 1.5 s: the take outlasts the grace; the aborted client leaves it to finish server-side.
  const ctx = vboxDaemonSetup(t, { stepMs: 1_500, shutdownGraceSec: GRACE_SEC });
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  const jobId = await createUnderWay(t, ctx, d1, 'take pending');
  const exit = await stopTimed(d1, 'SIGTERM');
  t.equal(exit.code, 0);
  t.ok(exit.ms < GRACE_SEC * 1000 + 2_000, `gone ${exit.ms} ms after SIGTERM`);
  t.match(await storedJob(ctx, jobId), { state: 'running', error: { code: 'SNAPVISOR_ERR_SHUTDOWN_UNCERTAIN' } });

  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await finalJob(d2, jobId, 60_000);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(recoveryLines(d2, jobId).length, 1, 'one recovery decision');
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'exactly one snapshot carries the job marker');
  const list = await api<{ items: Array<{ id: string; name: string; state: string }> }>(d2, TOKEN, 'GET', `/v1/vms/${await firstVm(d2)}/snapshots`);
  t.same(list.body.items.filter((s) => s.name === 'interrupted' && s.state === 'present').map((s) => s.id), [final.result!.snapshotId]);
  t.equal((await d2.kill('SIGTERM')).code, 0);
});

t.test('a second signal exits at once, the store stays usable and the job is recovered', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 20, shutdownGraceSec: 30 });
  ctx.lab.setFault('take', 'app-1', { type: 'hang' });
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  const jobId = await createUnderWay(t, ctx, d1, 'running');
  d1.proc.kill('SIGTERM');
  await until('shutdown begun', async () => d1.logs().some((l) => String(l.msg).startsWith('shutting down')), 5_000, 20);
  const exit = await stopTimed(d1, 'SIGINT');
  t.equal(exit.code, 1);
  // 10 s, a third of the grace: a loaded machine took 1.4 s to reap the process; waiting out the grace takes 30.
  t.ok(exit.ms < 10_000, `gone ${exit.ms} ms after the second signal, not after the 30 s grace`);
  t.match(await storedJob(ctx, jobId), { state: 'running' }, 'the job is still marked running: recovery will look');

  ctx.lab.setFault('take', 'app-1', null);
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  t.equal((await finalJob(d2, jobId)).state, 'succeeded');
  t.equal(recoveryLines(d2, jobId).length, 1);
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1);
});

t.test('PUT /v1/admin/log-level changes the level at run time (admin only, problem+json for a bad level)', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 20 });
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const debugLines = () => d.logs().filter((l) => l.level === 20).length;
  await api(d, TOKEN, 'GET', '/v1/targets');
  t.equal(debugLines(), 0, 'info by default: no debug lines');
  t.same((await api(d, TOKEN, 'GET', '/v1/admin/log-level')).body, { level: 'info' });

  const changed = await api(d, TOKEN, 'PUT', '/v1/admin/log-level', { level: 'debug' });
  t.equal(changed.status, 200);
  t.same(changed.body, { previous: 'info', level: 'debug' });
  await api(d, TOKEN, 'GET', '/v1/targets');
  await until('debug lines', async () => d.logs().some((l) => l.level === 20 && l.msg === 'incoming request'), 5_000, 20);
  t.ok(d.logs().some((l) => l.msg === 'log level changed' && l.from === 'info' && l.to === 'debug'), 'the change is logged');

  const bad = await fetch(`${d.url}/v1/admin/log-level`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ level: 'verbose' }),
  });
  t.equal(bad.status, 400);
  t.match(bad.headers.get('content-type'), /application\/problem\+json/);
  t.match(await bad.json(), { status: 400, type: String, title: String });

  const reader = await api(d, READ_TOKEN, 'PUT', '/v1/admin/log-level', { level: 'trace' });
  t.equal(reader.status, 403, 'a read token cannot change it');
  t.same((await api(d, READ_TOKEN, 'GET', '/v1/admin/log-level')).status, 403, 'nor read it');

  t.same((await api(d, TOKEN, 'PUT', '/v1/admin/log-level', { level: 'warn' })).body, { previous: 'debug', level: 'warn' });
  const before = d.logs().length;
  await api(d, TOKEN, 'GET', '/v1/targets');
  t.equal(d.logs().slice(before).filter((l) => Number(l.level) < 40).length, 0, 'at warn, requests log nothing');
});

t.test('logs: JSON lines on a pipe, readable lines on a terminal', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 20 });
  // On a pipe (every other test reads them): one JSON object per line.
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const lines = d.stdout().split('\n').filter(Boolean);
  t.ok(lines.length > 0 && lines.every((l) => l.startsWith('{"level":')), 'JSON lines');
  t.equal((await d.kill('SIGTERM')).code, 0);

  // On a terminal: `script` gives the daemon a pseudo-terminal as its stdout.
  const port = await freePort();
  const env = { ...process.env, ...ctx.env, SNAPVISOR_PORT: String(port), SNAPVISOR_HOST: '127.0.0.1' };
  const start = `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(`${REPO}scripts/start.mjs`)}`;
  const tty = spawn('script', ['-qfec', start, '/dev/null'], { cwd: ctx.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  tty.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const ttyExit = new Promise((resolve) => tty.on('exit', resolve));
  t.teardown(() => {
    if (tty.exitCode === null) tty.kill('SIGKILL');
  });
  await until('listening on a terminal', async () => /listening/.test(out), 30_000);
  t.match(out, /INFO.*listening/, 'level word and message');
  t.match(out, /\x1b\[/, 'coloured');
  t.notMatch(out, /\{"level":/, 'no JSON');
  // The daemon is `script`'s child; stop it by its pid.
  const pid = Number(spawnSync('pgrep', ['-P', String(tty.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0]);
  t.ok(pid > 0, 'daemon pid found');
  process.kill(pid, 'SIGTERM');
  await ttyExit;
  t.match(out, /stopped/);
});
