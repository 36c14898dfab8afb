// Fair queues and the per-token cap in the real daemon process (config file → engine → HTTP) with
// the VirtualBox simulator: `limits.queuedPerToken` from the file refuses the token's next queued
// job with 429 problem+json and Retry-After, counted in /metrics, while another token's job for
// another VM still starts with the next free slot, ahead of the first token's queue.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, startDaemon, until } from './daemon.ts';

const X = 'fair-e2e-x-token-5a1f-0123456';
const Y = 'fair-e2e-y-token-c72b-0123456';

interface JobBody { id: string; state: string; createdAt: string; startedAt: string | null }

t.test('the cap from the file answers 429 with Retry-After and counts it; another token\'s job is not behind the queue', async (t) => {
  const dir = t.testdir({});
  const lab = createVboxLab({ dir: path.join(dir, 'lab'), stepMs: 5, vms: [{ name: 'app-a', state: 'running' }, { name: 'app-b', state: 'running' }] });
  const config = path.join(dir, 'snapvisor.yaml');
  writeFileSync(
    config,
    [
      'tokens:',
      '  - { name: x, value: env:X_TOKEN, scopes: [read, write, admin] }',
      '  - { name: y, value: env:Y_TOKEN, scopes: [read, write] }',
      `database: ${JSON.stringify(path.join(dir, 'snapvisor.db'))}`,
      'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 0, maxAttempts: 1 }',
      'limits: { queuedPerToken: 3 }',
      'targets:',
      `  - { name: lab, kind: virtualbox, vboxmanage: ${JSON.stringify(lab.vboxmanage)}, commandTimeoutSec: 60, concurrency: 1 }`,
      '',
    ].join('\n'),
  );
  // A's first snapshot hangs on the hypervisor: it holds the target's one slot, so the rest queue.
  lab.setFault('take', 'app-a', { type: 'hang' });
  const d = await startDaemon({ cwd: dir, env: { SNAPVISOR_CONFIG: config, X_TOKEN: X, Y_TOKEN: Y } });
  t.teardown(() => d.kill('SIGKILL'));
  const vms = await until('VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string }> }>(d, X, 'GET', '/v1/vms?target=lab');
    return r.body.items.length === 2 ? new Map(r.body.items.map((v) => [v.name, v.id])) : undefined;
  });
  const create = (token: string, vm: string, name: string) => api<JobBody & { code?: string; retryAfter?: number }>(d, token, 'POST', `/v1/vms/${vms.get(vm)}/snapshots`, { name, mode: 'memory' });

  const first = await create(X, 'app-a', 'hangs');
  t.equal(first.status, 202);
  await until('first job running', async () => (await api<JobBody>(d, X, 'GET', `/v1/jobs/${first.body.id}`)).body.state === 'running');
  const queued: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await create(X, 'app-a', `a-${i}`);
    t.equal(res.status, 202);
    queued.push(res.body.id);
  }
  const refused = await create(X, 'app-a', 'one-too-many');
  t.equal(refused.status, 429);
  t.match(refused.headers.get('content-type'), /^application\/problem\+json/);
  t.equal(refused.headers.get('retry-after'), '5');
  t.match(refused.body, { code: 'SNAPVISOR_ERR_QUEUE_FULL', retryAfter: 5 });
  const jobs = await api<{ items: JobBody[] }>(d, X, 'GET', '/v1/jobs?limit=100');
  t.equal(jobs.body.items.length, 4, 'the refused request stored no job');

  const other = await create(Y, 'app-b', 'b');
  t.equal(other.status, 202, 'another token is not capped by x\'s queue');
  const metrics = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${X}` } }).then((r) => r.text());
  t.match(metrics, /snapvisor_queue_full_refusals_total\{principal="x"\} 1\b/);

  // Free the slot: cancelling the running job aborts its (hung) VBoxManage; then the queue runs.
  lab.setFault('take', 'app-a', null);
  const cancel = await api(d, X, 'POST', `/v1/jobs/${first.body.id}/cancel`);
  t.equal(cancel.status, 200);
  const final = async (id: string) =>
    until(`job ${id} final`, async () => {
      const j = (await api<JobBody>(d, X, 'GET', `/v1/jobs/${id}`)).body;
      return ['succeeded', 'failed', 'cancelled'].includes(j.state) ? j : undefined;
    }, 60_000);
  const b = await final(other.body.id);
  const a = await Promise.all(queued.map(final));
  t.equal(b.state, 'succeeded');
  t.same(a.map((j) => j.state), ['succeeded', 'succeeded', 'succeeded']);
  t.ok(a.every((j) => j.startedAt! > b.startedAt!), 'y\'s job for B started before every one of x\'s queued jobs for A');
});
