// One daemon per database (issue 10): a second `npm start` on the database of a running daemon —
// on the same port or on another one — exits 2 with one line naming the database and the holder's
// pid, before its recovery or worker can requeue or claim the first daemon's jobs. The first
// daemon's running and queued jobs stay as they were and complete normally; it keeps serving.
import { existsSync } from 'node:fs';
import t from 'tap';
import { api, runDaemonToExit, startDaemon, until } from './daemon.ts';
import { finalJob, firstVm, markedSnapshots, TOKEN, vboxDaemonSetup, type JobBody } from './vbox-daemon.ts';

t.test('a second daemon on the same database exits 2 and leaves the first one\'s jobs alone', async (t) => {
  // A take lasts 10 steps: 15 s, longer than the two refused starts on a loaded machine (they run
  // the built daemon and stop at the lock, about a second each), and checked to be still pending after them.
  const ctx = vboxDaemonSetup(t, { stepMs: 1500 });
  const a = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => a.kill('SIGKILL'));
  const pidA = a.proc.pid!;
  const vmId = await firstVm(a);

  // Work in flight: one create running on the hypervisor, a second queued behind it (one job per VM).
  const running = await api<JobBody>(a, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'first', mode: 'memory' });
  t.equal(running.status, 202);
  await until('take under way', async () => ctx.lab.readState().vms[0]!.pending?.kind === 'take');
  const queued = await api<JobBody>(a, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'second', mode: 'memory' });
  t.equal(queued.status, 202);
  const before = {
    running: (await api<JobBody>(a, TOKEN, 'GET', `/v1/jobs/${running.body.id}`)).body,
    queued: (await api<JobBody>(a, TOKEN, 'GET', `/v1/jobs/${queued.body.id}`)).body,
  };
  t.equal(before.running.state, 'running');
  t.equal(before.queued.state, 'queued');
  t.ok(existsSync(`${ctx.database}.lock`), 'the lock file is beside the database');

  const message = new RegExp(
    `^snapvisor: database ${ctx.database.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another Snapvisor daemon \\(pid ${pidA} on .*, since .*\\): only one daemon may use a database \\(lock .*snapvisor\\.db\\.lock\\); not started\\n$`,
  );
  const samePort = Number(new URL(a.url).port);
  const cases = [['same port', samePort], ['another port', 0]] as const;
  const results = await Promise.all(cases.map(([, port]) => runDaemonToExit({ cwd: ctx.dir, env: ctx.env, port })));
  cases.forEach(([what], i) => {
    const b = results[i]!;
    t.equal(b.code, 2, `${what}: exit code 2`);
    t.match(b.stderr, message, `${what}: one line naming the database and the holder's pid`);
    t.notMatch(b.stdout, /crash recovery|engine started|listening/, `${what}: neither recovery, the worker nor the API ran`);
  });
  const nowRunning = (await api<JobBody>(a, TOKEN, 'GET', `/v1/jobs/${running.body.id}`)).body;
  const nowQueued = (await api<JobBody>(a, TOKEN, 'GET', `/v1/jobs/${queued.body.id}`)).body;
  t.match(nowRunning, { state: 'running', attempts: before.running.attempts }, 'the running job is still running, not requeued or claimed again');
  t.match(nowQueued, { state: 'queued', attempts: before.queued.attempts }, 'the queued job is still queued, not claimed');
  t.equal(ctx.lab.readState().vms[0]!.pending?.kind, 'take', 'the hypervisor is still on the first take');

  // A keeps serving and completes both jobs normally, each exactly once on the hypervisor.
  t.equal((await fetch(`${a.url}/healthz`)).status, 200);
  t.equal((await api(a, TOKEN, 'GET', '/readyz')).status, 200);
  for (const job of [running.body, queued.body]) {
    const final = await finalJob(a, job.id, 60_000);
    t.match(final, { state: 'succeeded', attempts: 1 }, JSON.stringify(final.error));
    t.equal(markedSnapshots(ctx.lab, job.id).length, 1, 'one snapshot for the job');
  }
  t.notMatch(a.stdout(), /crash recovery/, 'A never saw its jobs recovered');
  t.equal((await a.kill('SIGTERM')).code, 0, 'A stops cleanly');

  // Released at shutdown: the next start takes the lock without reporting a stale one.
  const c = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => c.kill('SIGKILL'));
  t.notOk(c.logs().some((l) => String(l.msg).includes('taken over')), 'no stale lock after a clean stop');
  t.equal((await c.kill('SIGTERM')).code, 0);
});

t.test('a lock left by a killed daemon is taken over at the next start (logged)', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 50 });
  const a = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  const pidA = a.proc.pid!;
  t.equal((await a.kill('SIGKILL')).signal, 'SIGKILL');
  const b = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => b.kill('SIGKILL'));
  const line = await until('takeover logged', async () => b.logs().find((l) => l.msg === 'database lock left by a process that is gone: taken over'));
  t.equal(line.stalePid, pidA);
  t.equal((await b.kill('SIGTERM')).code, 0);
});

t.test('the port is bound before recovery: a daemon whose port is taken exits 2 before its engine starts', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 50 });
  const a = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => a.kill('SIGKILL'));
  const port = Number(new URL(a.url).port);
  const other = vboxDaemonSetup(t, { stepMs: 50 });
  const b = await runDaemonToExit({ cwd: other.dir, env: other.env, port });
  t.equal(b.code, 2);
  t.equal(b.stderr, `snapvisor: cannot listen on 127.0.0.1:${port}: the address is in use\n`);
  t.notMatch(b.stdout, /engine started/, 'recovery and the worker never ran');
  t.equal((await a.kill('SIGTERM')).code, 0);
});
