/**
 * POST /v1/jobs/{jobId}/retry end to end: the real API and engine over the real VirtualBox adapter
 * and the VBoxManage simulator. A create failed by a simulator fault is retried as a new job that
 * makes exactly one snapshot; Idempotency-Key replays the retry; a cancelled job can be retried, a
 * running or succeeded one cannot (409); a snapshot group's job is sent to its group's retry (409);
 * a read-only token is refused (403); an unknown job is a 404. Refusals store nothing. The CLI's
 * `job retry` follows the new job.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import type { SnapshotGroup } from '../../src/domain/group.ts';
import { FINAL_JOB_STATES, type Job, type JobState } from '../../src/domain/types.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { cliFor } from './api-helper.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

const WRITER = 'retry-writer-token-7a2c5e-0123456789';
const READER = 'retry-reader-token-3b8d1f-0123456789';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'snapvisor-job-retry-'));
const lab = createVboxLab({ dir, stepMs: 2, vms: [{ name: 'app-a', state: 'poweroff' }, { name: 'app-b', state: 'poweroff' }] });
const log = silentLogger();
const vbox = createVirtualBoxProvider('vbox', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 30 }, { log });
const store = openStore(':memory:');
const registry = registryOf([{ spec: { name: 'vbox', kind: 'virtualbox', demo: false, concurrency: 2, options: {} }, provider: vbox }]);
const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 20, maxMs: 50 } } });
await engine.start();
const app = await buildApp({
  engine,
  auth: {
    tokens: [
      { name: 'ops', sha256: sha(WRITER), scopes: ['read', 'write'] },
      { name: 'viewer', sha256: sha(READER), scopes: ['read'] },
    ],
  },
  version: '0.0.0-test',
});
t.teardown(async () => {
  await app.close();
  await engine.stop({ graceMs: 200 });
  await registry.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const call = (method: 'GET' | 'POST', url: string, options: { payload?: object; token?: string; headers?: Record<string, string> } = {}) =>
  app.inject({ method, url, headers: { authorization: `Bearer ${options.token ?? WRITER}`, ...options.headers }, ...(options.payload === undefined ? {} : { payload: options.payload }) });

const ids = new Map((await engine.listVms({ limit: 100 })).items.map((v) => [v.name, v.id]));
const vmId = (name: string) => ids.get(name) ?? '';
const simSnapshots = (vm: string, name: string) => Object.values(lab.readState().vms.find((v) => v.name === vm)!.snapshots).filter((s) => s.name === name);
const jobCount = async () => (await engine.listJobs({ limit: 1000 })).items.length;

/** The job once `reached` holds, waiting on its events (the current state is read after subscribing). */
async function until(jobId: string, reached: (job: Job) => boolean): Promise<Job> {
  let wake!: (job: Job) => void;
  const woken = new Promise<Job>((resolve) => (wake = resolve));
  const unsubscribe = engine.subscribe((e) => {
    if (e.type === 'job' && e.job.id === jobId && reached(e.job)) wake(e.job);
  });
  try {
    const now = await engine.getJob(jobId);
    return reached(now) ? now : await woken;
  } finally {
    unsubscribe();
  }
}
const final = (jobId: string) => until(jobId, (j) => FINAL_JOB_STATES.includes(j.state));
const inState = (state: JobState) => (j: Job) => j.state === state;

t.test('a failed create, retried: a new job with the same request that makes exactly one snapshot; the key replays it', async (t) => {
  lab.setFault('take', 'app-a', { type: 'fail', message: 'Failed to take snapshot', code: 'NS_ERROR_FAILURE' });
  const created = await call('POST', `/v1/vms/${vmId('app-a')}/snapshots`, { payload: { name: 'before-upgrade', description: 'kept', mode: 'offline' } });
  t.equal(created.statusCode, 202, created.body);
  const failed = await final(created.json().id);
  t.equal(failed.state, 'failed');
  t.match(failed.error?.message ?? '', /Failed to take snapshot/);
  t.equal(simSnapshots('app-a', 'before-upgrade').length, 0);
  lab.setFault('take', 'app-a', null);

  const headers = { 'idempotency-key': 'retry-before-upgrade-1' };
  const res = await call('POST', `/v1/jobs/${failed.id}/retry`, { headers });
  t.equal(res.statusCode, 202, res.body);
  const retry = res.json();
  t.not(retry.id, failed.id, 'a new job');
  t.equal(res.headers['location'], `/v1/jobs/${retry.id}`);
  t.match(retry, { kind: 'snapshot.create', vmId: vmId('app-a'), requestedBy: 'ops', groupId: null, policyId: null });
  t.same((await engine.getJob(retry.id)).params, failed.params, 'the same name, description and mode');
  const done = await final(retry.id);
  t.equal(done.state, 'succeeded', JSON.stringify(done.error));
  t.equal(simSnapshots('app-a', 'before-upgrade').length, 1, 'exactly one snapshot on the hypervisor');
  t.equal((await engine.listSnapshots(vmId('app-a'), { includeGone: false })).filter((s) => s.name === 'before-upgrade').length, 1, 'and in the store');

  const jobs = await jobCount();
  const replay = await call('POST', `/v1/jobs/${failed.id}/retry`, { headers });
  t.equal(replay.statusCode, 202, replay.body);
  t.equal(replay.json().id, retry.id, 'the same key gives the first retry back');
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(await jobCount(), jobs, 'no new job');
  t.equal(simSnapshots('app-a', 'before-upgrade').length, 1, 'still one snapshot');

  const again = await call('POST', `/v1/jobs/${retry.id}/retry`);
  t.equal(again.statusCode, 409, 'a succeeded job is not retried');
  t.match(again.headers['content-type'], /application\/problem\+json/);
  t.match(again.json(), { code: 'SNAPVISOR_ERR_JOB_NOT_RETRYABLE', state: 'succeeded' });
  t.equal(await jobCount(), jobs);
});

t.test('a running job cannot be retried; once cancelled it can, with ?wait=', async (t) => {
  lab.setFault('take', 'app-b', { type: 'hang' });
  const created = await call('POST', `/v1/vms/${vmId('app-b')}/snapshots`, { payload: { name: 'nightly', mode: 'offline' } });
  const running = await until(created.json().id, inState('running'));
  const jobs = await jobCount();
  const refused = await call('POST', `/v1/jobs/${running.id}/retry`);
  t.equal(refused.statusCode, 409);
  t.match(refused.json(), { code: 'SNAPVISOR_ERR_JOB_NOT_RETRYABLE', state: 'running' });
  t.equal(await jobCount(), jobs, 'nothing stored');

  t.equal((await call('POST', `/v1/jobs/${running.id}/cancel`)).statusCode, 200);
  t.equal((await final(running.id)).state, 'cancelled');
  lab.setFault('take', 'app-b', null);
  const res = await call('POST', `/v1/jobs/${running.id}/retry?wait=60`);
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { kind: 'snapshot.create', state: 'succeeded', vmId: vmId('app-b') });
  t.equal(simSnapshots('app-b', 'nightly').length, 1);
});

t.test("a snapshot group's job is retried through its group", async (t) => {
  lab.setFault('take', 'app-a', { type: 'fail', message: 'Failed to take snapshot' });
  const res = await call('POST', '/v1/snapshot-groups', { payload: { name: 'weekly', mode: 'offline', vms: [vmId('app-a')] } });
  t.equal(res.statusCode, 202, res.body);
  const member = (res.json() as SnapshotGroup).members[0]!;
  t.equal((await final(member.jobId)).state, 'failed');
  lab.setFault('take', 'app-a', null);
  const jobs = await jobCount();
  const refused = await call('POST', `/v1/jobs/${member.jobId}/retry`);
  t.equal(refused.statusCode, 409);
  t.match(refused.json(), { code: 'SNAPVISOR_ERR_JOB_IN_GROUP', detail: /snapshot-groups\/.+\/retry/ });
  t.equal(await jobCount(), jobs);
});

t.test('refusals: a read-only token (403), an unknown job (404), a body (400)', async (t) => {
  const failed = (await engine.listJobs({ limit: 100, state: 'failed' })).items.find((j) => j.groupId === null)!;
  const jobs = await jobCount();
  const reader = await call('POST', `/v1/jobs/${failed.id}/retry`, { token: READER });
  t.equal(reader.statusCode, 403);
  t.match(reader.json(), { code: 'SNAPVISOR_ERR_FORBIDDEN' });
  const unknown = await call('POST', '/v1/jobs/00000000-0000-4000-8000-000000000000/retry');
  t.equal(unknown.statusCode, 404);
  t.match(unknown.headers['content-type'], /application\/problem\+json/);
  t.equal((await call('POST', `/v1/jobs/${failed.id}/retry`, { payload: { kind: 'snapshot.delete' } })).statusCode, 400);
  t.equal(await jobCount(), jobs, 'nothing stored');
});

t.test('the CLI: job retry <jobId> follows the new job; a succeeded one is refused (exit 1)', async (t) => {
  lab.setFault('take', 'app-b', { type: 'fail', message: 'Failed to take snapshot' });
  const created = await call('POST', `/v1/vms/${vmId('app-b')}/snapshots`, { payload: { name: 'from-cli', mode: 'offline' } });
  const failed = await final(created.json().id);
  t.equal(failed.state, 'failed');
  lab.setFault('take', 'app-b', null);
  const cli = await cliFor(app, WRITER);
  const ok = await cli(['job', 'retry', failed.id]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /succeeded snapshot /);
  t.equal(simSnapshots('app-b', 'from-cli').length, 1);
  const newId = /job ([0-9a-f-]+) succeeded/.exec(ok.stdout)?.[1] ?? '';
  const refused = await cli(['job', 'retry', newId]);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /only a failed or cancelled job can be retried/);
});
