// The disk holding the daemon's database fills up (a real tmpfs, filled by a ballast file): writes
// answer 507 problem+json, /readyz names the store as unwritable, /metrics counts the refused
// writes, a create that ran on the hypervisor is never recorded failed and ends succeeded with one
// snapshot once space is back — or after a SIGKILL, at the next start. Freeing space is all it takes.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import t from 'tap';
import { api, startDaemon, until, type Daemon } from './daemon.ts';
import { smallDisk, type SmallDisk } from './small-disk.ts';
import { finalJob, firstVm, markedSnapshots, TOKEN, vboxDaemonSetup, type JobBody, type VboxDaemonSetup } from './vbox-daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
interface Problem { type: string; status: number; code: string; detail: string; requestId: string; reason?: string; store?: boolean }

function setup(t: TapTest, stepMs: number, commandTimeoutSec?: number): VboxDaemonSetup & { disk: SmallDisk } {
  const disk = smallDisk(t, 8);
  const ctx = vboxDaemonSetup(t, { stepMs, database: path.join(disk.dir, 'snapvisor.db'), ...(commandTimeoutSec ? { commandTimeoutSec } : {}) });
  return { ...ctx, disk };
}

async function readyz(d: Daemon) {
  return api<Problem & { ready: boolean }>(d, TOKEN, 'GET', '/readyz');
}

async function metric(d: Daemon, name: string): Promise<number> {
  const text = await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line === undefined ? NaN : Number(line.split(' ').pop());
}

/** The daemon's log lines about a full store for this job (written by any version of the worker). */
const sawFullStore = (d: Daemon, jobId: string) =>
  d.logs().some((l) => l.jobId === jobId && Number(l.level) >= 40 && /full/i.test(JSON.stringify(l.err ?? '')));

function quickCheck(database: string): string {
  const out = spawnSync(process.execPath, ['-e', `const D=require('better-sqlite3');const d=new D(${JSON.stringify(database)},{readonly:true});console.log(d.pragma('quick_check',{simple:true}))`], { encoding: 'utf8', cwd: process.cwd() });
  return out.stdout.trim() || out.stderr;
}

t.test('full disk: writes answer 507 problem+json, /readyz says the store is unwritable, freeing space recovers by itself', async (t) => {
  const ctx = setup(t, 10);
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const vmId = await firstVm(d);
  const before = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'before-full', mode: 'memory' });
  t.equal(before.status, 202);
  t.equal((await finalJob(d, before.body.id)).state, 'succeeded');
  await until('ready', async () => (await readyz(d)).status === 200);
  t.equal(await metric(d, 'snapvisor_store_write_failures_total{reason="full"}'), 0, 'no write failure counted yet');

  ctx.disk.fill();
  const refused = await api<Problem>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'while-full', mode: 'memory' });
  t.equal(refused.status, 507, JSON.stringify(refused.body));
  t.match(refused.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(refused.body.type, 'urn:snapvisor:problem:insufficient_storage');
  t.equal(refused.body.code, 'SNAPVISOR_ERR_INSUFFICIENT_STORAGE');
  t.equal(refused.body.requestId, refused.headers.get('x-request-id'));
  t.notMatch(JSON.stringify(refused.body), /SQLITE|at \/|\.ts:|stack/i, 'no SQLite message or stack in the body');
  const ready = await readyz(d);
  t.equal(ready.status, 503, 'not ready while the store cannot write');
  t.equal(ready.body.store, false);
  t.match(ready.body.reason, /store is unwritable: the disk holding the database is full/);
  t.ok((await metric(d, 'snapvisor_store_write_failures_total{reason="full"}')) >= 2, 'the refused writes are counted');
  // Reads still work, and the data written before is intact.
  const job = await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${before.body.id}`);
  t.equal(job.status, 200);
  t.equal(job.body.state, 'succeeded');
  const list = await api<{ items: Array<{ name: string }> }>(d, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots`);
  t.same(list.body.items.map((s) => s.name).filter((n) => n !== 'before-full'), [], 'nothing half-written');
  t.equal(markedSnapshots(ctx.lab, before.body.id).length, 1);

  ctx.disk.free();
  await until('ready again', async () => (await readyz(d)).status === 200);
  const after = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'after-full', mode: 'memory' });
  t.equal(after.status, 202, 'writes work again without a restart');
  t.equal((await finalJob(d, after.body.id)).state, 'succeeded');
  t.equal((await d.kill('SIGTERM')).code, 0);
  t.equal(quickCheck(ctx.database), 'ok', 'the database is intact');
});

/** A create under way on the (slowed) simulator when the disk fills up. */
async function createThenFill(t: TapTest, ctx: VboxDaemonSetup & { disk: SmallDisk }, d: Daemon) {
  const vmId = await firstVm(d);
  await until('ready', async () => (await readyz(d)).status === 200);
  const created = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'during-full', mode: 'memory' });
  t.equal(created.status, 202);
  const jobId = created.body.id;
  await until('take under way', async () => ctx.lab.readState().vms[0]!.pending?.kind === 'take');
  ctx.disk.fill();
  // The hypervisor finishes; the daemon then cannot record it.
  await until('snapshot made', async () => markedSnapshots(ctx.lab, jobId).length === 1 && !ctx.lab.readState().vms[0]!.pending);
  await until('the worker met the full store', async () => sawFullStore(d, jobId));
  return { vmId, jobId };
}

t.test('full disk while a create runs: never recorded failed, retried, succeeded with one snapshot once space is back', async (t) => {
  const ctx = setup(t, 100);
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const { jobId } = await createThenFill(t, ctx, d);
  const meanwhile = await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${jobId}`);
  t.equal(meanwhile.body.state, 'running', 'not failed, not finished: the store could not record it');
  await until('a retry of the write was logged', async () => d.logs().filter((l) => l.jobId === jobId && /retry/.test(String(l.msg))).length >= 2);
  t.equal((await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${jobId}`)).body.state, 'running', 'still not failed');
  ctx.disk.free();
  const final = await finalJob(d, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'exactly one snapshot carries the job marker');
  t.equal((await d.kill('SIGTERM')).code, 0);
});

t.test('full disk while a create runs, then SIGKILL: the next start (with space) records it succeeded, one snapshot', async (t) => {
  const ctx = setup(t, 100);
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  const { jobId } = await createThenFill(t, ctx, d1);
  t.equal((await api<JobBody>(d1, TOKEN, 'GET', `/v1/jobs/${jobId}`)).body.state, 'running');
  await d1.kill('SIGKILL');
  ctx.disk.free();
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await finalJob(d2, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'recovery found it by its marker and took no second one');
  t.equal((await d2.kill('SIGTERM')).code, 0);
});

t.test('space back while the refused create is being settled: the job is never recorded failed, its snapshot exists', async (t) => {
  // A hung VBoxManage ends by the command timeout (transient): short, to keep the test short.
  const ctx = setup(t, 100, 4);
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const vmId = await firstVm(d);
  await until('ready', async () => (await readyz(d)).status === 200);
  const created = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'settled-late', mode: 'memory' });
  const jobId = created.body.id;
  await until('take under way', async () => ctx.lab.readState().vms[0]!.pending?.kind === 'take');
  ctx.disk.fill();
  // The adapter's own listing right after the take goes through; the next listing of the VM hangs:
  // whatever the daemon does next on the hypervisor (a re-read after giving up on the job, or the
  // retry's look for its marker) waits there, until the command timeout, while the space comes back.
  ctx.lab.setFault('list', 'app-1', { type: 'hang', skip: 1, times: 1 });
  await until('snapshot made', async () => markedSnapshots(ctx.lab, jobId).length === 1);
  await until('the worker met the full store', async () => sawFullStore(d, jobId));
  ctx.disk.free();
  const final = await finalJob(d, jobId, 60_000);
  t.equal(final.state, 'succeeded', `its snapshot exists, so never failed: ${JSON.stringify(final.error)}`);
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'exactly one snapshot carries the job marker');
  t.equal((await d.kill('SIGTERM')).code, 0);
});
