/**
 * Fair queues and the per-token cap, through the real API and engine driving the real VirtualBox
 * adapter against the VBoxManage simulator (slowed, so that jobs pile up): one token's queue for
 * one VM does not make another token's job, nor the same token's job for another VM, wait for all
 * of it; a token at its cap gets 429 problem+json with Retry-After and nothing is stored.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const TOKENS = { x: 'fair-x-token-91c2e7-0123456', y: 'fair-y-token-3d8a50-0123456', ops: 'fair-ops-token-6b14f0-012345' } as const;
type Who = keyof typeof TOKENS;
const sha256 = (v: string) => createHash('sha256').update(v).digest('hex');

interface JobBody {
  id: string;
  state: string;
  vmId: string;
  createdAt: string;
  startedAt: string | null;
  requestedBy: string;
}

async function setup(t: TapTest, options: { stepMs: number; maxQueued?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-fair-'));
  const lab = createVboxLab({ dir, stepMs: options.stepMs, vms: [{ name: 'app-a', state: 'running' }, { name: 'app-b', state: 'running' }] });
  const log = silentLogger();
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 60 }, { log });
  const store = openStore(':memory:');
  // Concurrency 1: every job waits for the one before it, so the order they start in is the choice.
  const registry = registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 1, options: {} }, provider }]);
  const engine = createEngine({
    store,
    registry,
    log,
    settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 1, ...(options.maxQueued !== undefined ? { maxQueuedPerPrincipal: options.maxQueued } : {}) },
  });
  await engine.start();
  const app = await buildApp({
    engine,
    auth: {
      tokens: [
        { name: 'x', sha256: sha256(TOKENS.x), scopes: ['read', 'write'] },
        { name: 'y', sha256: sha256(TOKENS.y), scopes: ['read', 'write'] },
        { name: 'ops', sha256: sha256(TOKENS.ops), scopes: ['read', 'write', 'admin'] },
      ],
    },
    version: '0.0.0-test',
  });
  t.teardown(async () => {
    await app.close();
    await engine.stop({ graceMs: 100 });
    await registry.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const vms = new Map((await engine.listVms({ limit: 10 })).items.map((v) => [v.name, v.id]));
  const create = (as: Who, vm: string, name: string, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url: `/v1/vms/${vms.get(vm)}/snapshots`,
      headers: { authorization: `Bearer ${TOKENS[as]}`, ...headers },
      payload: { name, mode: 'memory' },
    });
  const job = async (id: string) => (await app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: { authorization: `Bearer ${TOKENS.ops}` } })).json() as JobBody;
  const allFinal = async (ids: string[]) => {
    for (const id of ids) {
      const j = await engine.waitForJob(id, 60_000);
      if (j.state !== 'succeeded') throw new Error(`job ${id} ended ${j.state}: ${JSON.stringify(j.error)}`);
    }
    return Promise.all(ids.map(job));
  };
  return { app, engine, store, lab, vms, create, job, allFinal };
}

/** A's jobs that started after B was submitted and before B started: the ones B waited for. */
const overtaking = (a: JobBody[], b: JobBody) => a.filter((j) => j.startedAt! > b.createdAt && j.startedAt! < b.startedAt!);

const A_JOBS = 6;

t.test('another token\'s job for another VM starts with the next free slot, not after the first token\'s whole queue', async (t) => {
  const h = await setup(t, { stepMs: 30 });
  const a: string[] = [];
  for (let i = 0; i < A_JOBS; i++) {
    const res = await h.create('x', 'app-a', `a-${i}`);
    t.equal(res.statusCode, 202);
    a.push(res.json<JobBody>().id);
  }
  const res = await h.create('y', 'app-b', 'b-0');
  t.equal(res.statusCode, 202);
  const b = res.json<JobBody>().id;
  const queuedWhenBCame = (await Promise.all(a.map(h.job))).filter((j) => j.state === 'queued').length;
  t.ok(queuedWhenBCame >= 2, `A still had ${queuedWhenBCame} queued jobs when B was submitted (the test needs a queue)`);

  const [bJob, ...aJobs] = await h.allFinal([b, ...a]);
  t.same(overtaking(aJobs, bJob!).map((j) => j.id), [], 'no job of A started between B\'s submission and its start');
  t.ok(aJobs.filter((j) => j.startedAt! > bJob!.startedAt!).length >= 1, 'B started while A still had jobs queued');
  t.same(Object.keys(h.lab.readState().vms.find((v) => v.name === 'app-a')!.snapshots).length, A_JOBS, 'A\'s jobs all ran');
});

t.test('the same token\'s job for VM B is not behind all of its jobs for VM A', async (t) => {
  const h = await setup(t, { stepMs: 30 });
  const a: string[] = [];
  for (let i = 0; i < A_JOBS; i++) a.push((await h.create('x', 'app-a', `a-${i}`)).json<JobBody>().id);
  const b = (await h.create('x', 'app-b', 'b-0')).json<JobBody>().id;
  const [bJob, ...aJobs] = await h.allFinal([b, ...a]);
  // Fair tags: B joins A's current round, so at most the one A job of that round, queued first, goes before it.
  t.ok(overtaking(aJobs, bJob!).length <= 1, `${overtaking(aJobs, bJob!).length} of A's jobs started between B's submission and its start`);
  t.ok(aJobs.filter((j) => j.startedAt! > bJob!.startedAt!).length >= 1, 'B started while A still had jobs queued');
});

t.test('a token at its queued cap gets 429 problem+json with Retry-After; nothing is stored; other tokens and replays go on', async (t) => {
  const h = await setup(t, { stepMs: 5, maxQueued: 3 });
  // The first job hangs on the hypervisor and holds the target's one slot: the next ones stay queued.
  h.lab.setFault('take', 'app-a', { type: 'hang' });
  const first = (await h.create('x', 'app-a', 'running')).json<JobBody>();
  await h.engine.claimRound();
  t.equal((await h.job(first.id)).state, 'running');
  const queued: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await h.create('x', 'app-b', `q-${i}`, i === 0 ? { 'idempotency-key': 'fair-q-0' } : {});
    t.equal(res.statusCode, 202);
    queued.push(res.json<JobBody>().id);
  }
  const before = (await h.engine.listJobs({ limit: 100 })).items.map((j) => j.id).sort();

  const refused = await h.create('x', 'app-b', 'one-too-many');
  t.equal(refused.statusCode, 429);
  t.match(refused.headers['content-type'], /^application\/problem\+json/);
  t.equal(refused.headers['retry-after'], '5');
  t.match(refused.json(), { status: 429, code: 'SNAPVISOR_ERR_QUEUE_FULL', retryAfter: 5, queued: 3, limit: 3 });
  t.match(refused.json().detail, /limits\.queuedPerToken/);
  t.same((await h.engine.listJobs({ limit: 100 })).items.map((j) => j.id).sort(), before, 'no job was created');

  const replay = await h.create('x', 'app-b', 'q-0', { 'idempotency-key': 'fair-q-0' });
  t.equal(replay.statusCode, 202, 'a replay of an accepted request is answered, full or not');
  t.equal(replay.headers['idempotent-replayed'], 'true');
  t.equal(replay.json<JobBody>().id, queued[0]);
  const other = await h.create('y', 'app-b', 'another-token');
  t.equal(other.statusCode, 202, 'the cap is per token');

  const metrics = await h.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKENS.ops}` } });
  t.match(metrics.body, /snapvisor_queue_full_refusals_total\{principal="x"\} 1\b/);

  // A place frees when one of the token's jobs starts: cancel one, and the next submission is taken.
  const cancel = await h.app.inject({ method: 'POST', url: `/v1/jobs/${queued[2]}/cancel`, headers: { authorization: `Bearer ${TOKENS.x}` } });
  t.equal(cancel.statusCode, 200);
  t.equal((await h.create('x', 'app-b', 'fits-again')).statusCode, 202);
  h.lab.setFault('take', 'app-a', null);
});
