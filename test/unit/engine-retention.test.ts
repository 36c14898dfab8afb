/**
 * Issue 10 item 3: retention deletes exactly the old audit entries and the old finished jobs (by the
 * engine's clock), never a queued or running job, in batches; a pruned job leaves its snapshot row
 * intact (job_id dangling) and takes its idempotency key with it.
 */
import t from 'tap';
import type { Job } from '../../src/domain/types.ts';
import { DEFAULT_SETTINGS } from '../../src/engine/engine.ts';
import { harness, meta } from './engine-harness.ts';

const DAY = 86_400_000;

t.test('retention prunes exactly the old finished jobs and old audit entries', async (t) => {
  const h = await harness(t, {
    targets: [{ provider: { vms: [{ name: 'web' }, { name: 'db' }, { name: 'busy' }] } }],
    // Batches of 2: several rounds per table; no background pass (firstDelayMs 0) — the test drives it.
    settings: { retention: { ...DEFAULT_SETTINGS.retention, auditDays: 30, jobsDays: 60, batchSize: 2, firstDelayMs: 0 } },
  });
  const web = await h.vmId('web');
  const create = async (vmId: string, name: string, key?: string) =>
    (await h.engine.submit({ kind: 'snapshot.create', vmId, name, description: '', mode: 'memory' }, meta('tester', key, name))).job;

  // Day 0: five finished jobs (one with an idempotency key), one failed, one cancelled.
  const old: Job[] = [];
  for (let i = 0; i < 5; i++) old.push(await h.settle((await create(web, `old-${i}`, i === 0 ? 'key-0' : undefined)).id));
  t.same(old.map((j) => j.state), Array(5).fill('succeeded'));
  h.provider.failNext('createSnapshot', new (await import('../../providers/contract.ts')).ProviderError('virtualbox', 'invalid', 'nope'));
  const failed = await h.settle((await create(web, 'fails')).id);
  t.equal(failed.state, 'failed');
  await h.engine.audit({ principal: 'ops', method: 'POST', path: '/v1/old', statusCode: 202, jobId: old[0]!.id, detail: null });

  // A job still queued since day 0 (its VM's create is held) and one running.
  const busy = await h.vmId('busy');
  const gate = h.provider.hold('createSnapshot');
  const running = await create(busy, 'running');
  await gate.reached;
  const queued = await create(busy, 'queued');
  // Cancelled while queued behind the running one.
  const cancelled = await h.engine.cancelJob((await create(busy, 'cancel-me')).id, 'tester');
  t.equal(cancelled.state, 'cancelled');

  // Day 45: a recent job and a recent audit entry; then day 61.
  h.clock.advance(45 * DAY);
  const recent = await h.settle((await create(web, 'recent')).id);
  await h.engine.audit({ principal: 'ops', method: 'POST', path: '/v1/recent', statusCode: 202, jobId: recent.id, detail: null });
  h.clock.advance(16 * DAY);

  const snapshotOfOld = await h.store.snapshots.get(old[0]!.result!.snapshotId!);
  t.equal(snapshotOfOld?.jobId, old[0]!.id);

  const report = await h.engine.pruneRetention();
  t.same(report, { audit: 1, jobs: 7 }, 'five succeeded, one failed, one cancelled; the day-0 audit entry');
  for (const j of [...old, failed, cancelled]) t.equal(await h.store.jobs.get(j.id), null, `${j.id} pruned`);
  t.ok(await h.store.jobs.get(recent.id), 'the recent job stays');
  t.equal((await h.store.jobs.get(running.id))?.state, 'running', 'the running job stays');
  t.equal((await h.store.jobs.get(queued.id))?.state, 'queued', 'the queued job stays');
  t.same((await h.store.audit.list({ limit: 10 })).map((e) => e.path), ['/v1/recent']);

  // The snapshot made by a pruned job is intact; its job_id still names the job (now 404).
  const after = await h.engine.getSnapshot(snapshotOfOld!.id);
  t.match(after, { owner: 'snapvisor', jobId: old[0]!.id, state: 'present', mode: 'memory' });
  await t.rejects(h.engine.getJob(old[0]!.id), { code: 'SNAPVISOR_ERR_JOB_NOT_FOUND' });
  // A sync (which looks markers up) leaves it as it is.
  await h.engine.syncTarget('lab');
  t.match(await h.engine.getSnapshot(snapshotOfOld!.id), { owner: 'snapvisor', jobId: old[0]!.id, state: 'present', mode: 'memory' });
  // The pruned job's idempotency key went with it: the same key now makes a new job.
  t.equal(await h.store.idempotency.find('tester', 'key-0'), null);
  const again = await create(web, 'old-0', 'key-0');
  t.not(again.id, old[0]!.id);
  await h.settle(again.id);

  t.same(await h.engine.pruneRetention(), { audit: 0, jobs: 0 }, 'a second pass finds nothing');
  gate.release();
  await h.settle(running.id);
  await h.settle(queued.id);
});

t.test('the engine prunes in the background shortly after start', async (t) => {
  const h = await harness(t, {
    targets: [{ provider: { vms: [{ name: 'web' }] } }],
    settings: { retention: { ...DEFAULT_SETTINGS.retention, auditDays: 1, firstDelayMs: 5, intervalMs: 5 } },
  });
  await h.engine.audit({ principal: 'ops', method: 'POST', path: '/v1/old', statusCode: 202, jobId: null, detail: null });
  h.clock.advance(2 * DAY);
  const deadline = Date.now() + 3_000;
  while ((await h.store.audit.list({ limit: 1 })).length > 0) {
    if (Date.now() > deadline) throw new Error('not pruned in the background');
    await new Promise((r) => setTimeout(r, 5));
  }
  t.pass('pruned by the timer');
});
