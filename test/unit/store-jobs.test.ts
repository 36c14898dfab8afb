/**
 * The job queue's store, on both dialects (moved from store-repos.test.ts, plus what the queue's
 * other methods promise: checkpoints, recovery hand-over, stale claims, retention, create budgets).
 * Races between replicas on PostgreSQL: store-pg-job-races.test.ts.
 */
import t from 'tap';
import type { NewJob } from '../../src/store/index.ts';
import { forEachDialect, openTestStore, type Dialect } from './store-dialects.ts';
import { SEED_AT as AT, seedTargetsAndVms } from './store-seed.ts';

async function seed(t: Parameters<typeof openTestStore>[0], dialect: Dialect) {
  const { store, url } = await openTestStore(t, dialect);
  const ids = await seedTargetsAndVms(store, url, ['lab', 'other'], [
    { id: 'v1', target: 'lab', name: 'web01' },
    { id: 'v2', target: 'lab', name: 'web02' },
    { id: 'v3', target: 'lab', name: 'db01' },
    { id: 'v4', target: 'other', name: 'Web03' },
  ]);
  return { store, url, lab: { id: ids['lab']! }, other: { id: ids['other']! } };
}

const createJob = (targetId: string, id: string, vmId: string, createdAt = AT, extra: Partial<NewJob> = {}): NewJob => ({
  id,
  kind: 'snapshot.create',
  targetId,
  vmId,
  snapshotId: null,
  params: { name: id, description: '', mode: 'memory' },
  maxAttempts: 3,
  requestedBy: 'ops',
  createdAt,
  ...extra,
});

t.test('jobs: submit with idempotency, claim rules, release by ticket only', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const newJob = (id: string, vmId: string, createdAt = AT) => createJob(lab.id, id, vmId, createdAt);
  const key = { principal: 'ops', key: 'k1', requestHash: 'h1' };
  t.match(await store.jobs.submit(newJob('j1', 'v1'), key), { outcome: 'created', job: { id: 'j1', state: 'queued' } });
  t.match(await store.jobs.submit(newJob('j1b', 'v1'), key), { outcome: 'replayed', job: { id: 'j1' } });
  t.match(await store.jobs.submit(newJob('j1c', 'v1'), { ...key, requestHash: 'h2' }), { outcome: 'key-reused', jobId: 'j1' });
  t.equal(await store.jobs.get('j1b'), null, 'replay inserted nothing');
  t.match(await store.jobs.submit(newJob('j1d', 'v1'), { ...key, principal: 'someone-else' }), { outcome: 'created' }, 'keys are per principal');
  await store.jobs.submit(newJob('j2', 'v2', '2025-01-01T00:00:01.000Z'));
  await store.jobs.submit(newJob('j3', 'v3', '2025-01-01T00:00:02.000Z'));

  t.same((await store.jobs.due(AT, 10)).map((j) => j.id), ['j1', 'j1d'], 'only jobs due at AT, oldest first');
  const claimed = await store.jobs.tryClaim('j1', 'T1', AT, 2);
  t.match(claimed, { state: 'running', attempts: 1 });
  t.equal(await store.jobs.tryClaim('j1', 'T2', AT, 2), null, 'a claimed job cannot be claimed again');
  t.equal(await store.jobs.tryClaim('j1d', 'T3', AT, 2), null, 'one running job per VM');
  t.notOk((await store.jobs.due(AT, 10)).some((j) => j.vmId === 'v1'), 'a busy VM offers no candidates');
  const later = '2025-01-01T00:01:00.000Z';
  t.ok(await store.jobs.tryClaim('j2', 'T4', later, 2));
  t.equal(await store.jobs.tryClaim('j3', 'T5', later, 2), null, 'per-target limit reached');

  t.equal(await store.jobs.finish('j1', 'wrong', { state: 'succeeded', at: later }), null, 'release needs the ticket');
  t.equal(await store.jobs.setProgress('j1', 'wrong', 50, null), null);
  t.match(await store.jobs.setProgress('j1', 'T1', 50, 'half'), { progress: 50, progressMessage: 'half' });
  t.match(await store.jobs.requeue('j1', 'T1', { nextAttemptAt: later, error: { kind: 'transient', message: 'x' } }), {
    state: 'queued',
    attempts: 1,
    nextAttemptAt: later,
    error: { kind: 'transient' },
  });
  t.equal(await store.jobs.finish('j1', 'T1', { state: 'succeeded', at: later }), null, 'the old ticket is dead after release');
  t.match(await store.jobs.finish('j2', 'T4', { state: 'succeeded', result: { snapshotId: null as unknown as string }, at: later }), {
    state: 'succeeded',
    progress: 100,
    finishedAt: later,
  });
  t.ok(await store.jobs.tryClaim('j3', 'T5', later, 2), 'a slot freed up');

  t.match(await store.jobs.cancelQueued('j1', later, { kind: 'cancelled', message: 'c' }), { state: 'cancelled' });
  t.equal(await store.jobs.cancelQueued('j3', later, { kind: 'cancelled', message: 'c' }), null, 'running jobs are not cancelled directly');
  t.match(await store.jobs.requestCancel('j3'), { cancelRequested: true, state: 'running' });
  t.match(await store.jobs.countByState(), { queued: 1, running: 1, succeeded: 1, cancelled: 1, failed: 0 });
  t.same([...(await store.jobs.createModes(['j3', 'nope'])).entries()], [['j3', { mode: 'memory', policyId: null }]]);
  t.match(await store.jobs.takeOver('j3', 'T9', later), { state: 'running' });
  t.ok(await store.jobs.finish('j3', 'T9', { state: 'failed', error: { kind: 'internal', message: 'x' }, at: later }));
}));

t.test('jobs: list newest first with filters and cursor', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  for (let i = 0; i < 5; i++) {
    await store.jobs.submit({
      id: `j${i}`,
      kind: i % 2 ? 'snapshot.revert' : 'snapshot.create',
      targetId: lab.id,
      vmId: i < 3 ? 'v1' : 'v2',
      snapshotId: null,
      params: { snapshotId: 'x' },
      maxAttempts: 1,
      requestedBy: 'ops',
      createdAt: `2025-01-01T00:00:0${i}.000Z`,
    });
  }
  const first = await store.jobs.list({ limit: 2 });
  t.same(first.items.map((j) => j.id), ['j4', 'j3']);
  const second = await store.jobs.list({ limit: 2, cursor: first.next! });
  t.same(second.items.map((j) => j.id), ['j2', 'j1']);
  t.same((await store.jobs.list({ limit: 10, vmId: 'v1', kind: 'snapshot.create' })).items.map((j) => j.id), ['j2', 'j0']);
  t.same((await store.jobs.list({ limit: 10, state: 'succeeded' })).items, []);
  await t.rejects(store.jobs.list({ limit: 2, cursor: 'garbage' }), { name: 'InvalidCursorError' });
}));

t.test('jobs: due names the kind; deferQueued only moves a queued unclaimed job; a budgeted claim records its events with it', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const job = (id: string, vmId: string, kind: 'snapshot.create' | 'vm.consolidate' = 'snapshot.create') => ({
    id, kind, targetId: lab.id, vmId, snapshotId: null,
    params: kind === 'snapshot.create' ? { name: id, description: '', mode: 'memory' as const } : { dryRun: false },
    maxAttempts: 3, requestedBy: 'ops', createdAt: AT,
  });
  await store.jobs.submit(job('c1', 'v1'));
  await store.jobs.submit(job('k1', 'v2', 'vm.consolidate'));
  await store.jobs.submit(job('c3', 'v3'));
  t.same((await store.jobs.due(AT, 10)).map((c) => [c.id, c.kind]).sort(), [['c1', 'snapshot.create'], ['c3', 'snapshot.create'], ['k1', 'vm.consolidate']]);

  const later = '2025-01-01T00:05:00.000Z';
  t.match(await store.jobs.deferQueued('c3', later, 'waiting for the create budget: x'), {
    state: 'queued', nextAttemptAt: later, progressMessage: 'waiting for the create budget: x', attempts: 0,
  });
  t.notOk((await store.jobs.due(AT, 10)).some((c) => c.id === 'c3'), 'not due before the budget frees');
  t.ok((await store.jobs.due(later, 10)).some((c) => c.id === 'c3'), 'due again then');

  const claimed = await store.jobs.tryClaim('c1', 'T1', AT, 4, { budgetKeys: ['disk:/d/os', 'disk:/d/data'] });
  t.match(claimed, { state: 'running', attempts: 1 });
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => [e.key, e.at, e.jobId]).sort(), [['disk:/d/data', AT, 'c1'], ['disk:/d/os', AT, 'c1']]);
  t.equal(await store.jobs.deferQueued('c1', later, 'x'), null, 'a running job is not deferred');
  t.equal(await store.jobs.tryClaim('c1', 'T2', AT, 4, { budgetKeys: ['disk:/d/os'] }), null, 'a lost claim…');
  t.equal((await store.budgets.recent(lab.id, AT)).length, 2, '…records nothing');

  const c3 = await store.jobs.tryClaim('c3', 'T3', later, 4, { budgetKeys: ['vm:v3'] });
  t.match(c3, { state: 'running', progressMessage: null }, 'the waiting message is cleared by the claim');
  t.same((await store.budgets.recent(lab.id, '2025-01-01T00:04:00.000Z')).map((e) => e.key), ['vm:v3'], 'recent: at or after since');
  t.equal(await store.budgets.prune(later), 2, 'prune deletes what is older than before');
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => e.key), ['vm:v3']);
}));

t.test('budgets: restamp moves the latest attempt\'s events forward, never back', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  await store.jobs.submit(createJob(lab.id, 'c1', 'v1'));
  const t1 = '2025-01-01T00:01:00.000Z';
  const t2 = '2025-01-01T00:02:00.000Z';
  await store.jobs.tryClaim('c1', 'T1', AT, 4, { budgetKeys: ['disk:a'] });
  await store.jobs.requeue('c1', 'T1', { nextAttemptAt: AT, error: null });
  await store.jobs.tryClaim('c1', 'T2', t1, 4, { budgetKeys: ['disk:a'] });
  t.equal(await store.budgets.restamp('c1', t2), 1, 'only the latest attempt\'s event');
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => e.at).sort(), [AT, t2]);
  t.equal(await store.budgets.restamp('c1', t1), 1);
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => e.at).sort(), [AT, t2], 'an earlier time leaves it');
}));

t.test('jobs: checkpoints merge by key for the ticket\'s holder only', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  await store.jobs.submit(createJob(lab.id, 'j1', 'v1'));
  t.equal(await store.jobs.checkpoint('j1', 'T1', { a: { x: 1 } } as never), null, 'not claimed: nothing written');
  await store.jobs.tryClaim('j1', 'T1', AT, 4);
  await store.jobs.checkpoint('j1', 'T1', { a: { x: 1 } } as never);
  await Promise.all([store.jobs.checkpoint('j1', 'T1', { b: { y: 2 } } as never), store.jobs.checkpoint('j1', 'T1', { c: { z: 3 } } as never)]);
  t.same((await store.jobs.get('j1'))!.checkpoint, { a: { x: 1 }, b: { y: 2 }, c: { z: 3 } }, 'concurrent merges keep each other\'s keys');
  t.match(await store.jobs.checkpoint('j1', 'T1', { a: { x: 9 } } as never), { checkpoint: { a: { x: 9 }, b: { y: 2 } } }, 'a key is replaced');
  t.equal(await store.jobs.checkpoint('j1', 'other', { d: {} } as never), null, 'another ticket writes nothing');
}));

t.test('jobs: left for recovery, taken over; stale claims; leases renewed for the owner\'s running jobs', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const until = '2025-01-01T00:10:00.000Z';
  await store.jobs.submit(createJob(lab.id, 'j1', 'v1'));
  await store.jobs.submit(createJob(lab.id, 'j2', 'v2'));
  await store.jobs.submit(createJob(lab.id, 'j3', 'v3'));
  t.match(await store.jobs.tryClaim('j1', 'T1', AT, 4, { lease: { owner: 'me', until: AT } }), { state: 'running' });
  await store.jobs.tryClaim('j2', 'T2', AT, 4, { lease: { owner: 'other', until: AT } });
  t.equal(await store.jobs.renewLeases('me', until), 1, 'only the owner\'s');
  t.equal(await store.jobs.leaveForRecovery('j1', 'wrong', { kind: 'internal', message: 'x' }), null);
  t.match(await store.jobs.leaveForRecovery('j1', 'T1', { kind: 'internal', message: 'stopped' }), { state: 'running', attempts: 1, error: { message: 'stopped' } });
  t.equal(await store.jobs.renewLeases('me', until), 0, 'a dropped claim is not renewed');
  t.equal(await store.jobs.setProgress('j1', 'T1', 10, null), null, 'the old ticket is dead');
  t.ok((await store.jobs.recoverable(AT)).some((j) => j.id === 'j1'), 'a dropped claim is recoverable');
  t.match(await store.jobs.takeOver('j1', 'R1', AT, { owner: 'me', until }), { state: 'running', attempts: 1 });
  t.ok(await store.jobs.finish('j1', 'R1', { state: 'succeeded', at: AT }), 'the new ticket holds it');
  t.equal(await store.jobs.takeOver('j3', 'R3', AT), null, 'a queued job is not taken over');
  t.equal(await store.jobs.clearStaleClaims(), 0, 'no queued job holds a ticket');
  t.same((await store.jobs.listByState('running')).map((j) => j.id), ['j2']);
}));

t.test('jobs: retention prunes final jobs before a time, oldest first, with their keys and budget events', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const at = (m: number) => `2025-01-01T00:0${m}:00.000Z`;
  for (let i = 0; i < 4; i++) {
    await store.jobs.submit(createJob(lab.id, `j${i}`, `v${i === 3 ? 3 : 1}`, at(i)), { principal: 'ops', key: `k${i}`, requestHash: 'h' });
  }
  for (const id of ['j0', 'j1', 'j2']) {
    await store.jobs.tryClaim(id, `T-${id}`, at(5), 4, { budgetKeys: ['disk:a'] });
    await store.jobs.finish(id, `T-${id}`, { state: 'succeeded', at: at(6) });
  }
  t.equal(await store.jobs.pruneFinished(at(6), 10), 0, 'finished at 6 is not before 6');
  t.equal(await store.jobs.pruneFinished(at(7), 2), 2, 'at most limit');
  t.same((await store.jobs.list({ limit: 10 })).items.map((j) => j.id), ['j3', 'j2'], 'the oldest went; a queued job stays');
  t.equal(await store.idempotency.find('ops', 'k0'), null, 'its key went with it');
  t.match(await store.idempotency.find('ops', 'k2'), { jobId: 'j2', requestHash: 'h' });
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => e.jobId), ['j2'], 'and its budget events');
  t.equal(await store.jobs.pruneFinished(at(7), 10), 1);
  t.match(await store.jobs.submit(createJob(lab.id, 'n0', 'v2', at(8)), { principal: 'ops', key: 'k0', requestHash: 'other' }), { outcome: 'created' }, 'a pruned key is free again');
}));

t.test('budgets: a claim whose guard\'s key is already at its max in the window loses and records nothing', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, url } = await openTestStore(t, dialect);
  const ids = await seedTargetsAndVms(store, url, ['lab'], [{ id: 'v1', target: 'lab' }, { id: 'v2', target: 'lab' }]);
  const lab = ids['lab']!;
  const job = (id: string, vmId: string): NewJob => ({
    id, kind: 'snapshot.create', targetId: lab, vmId, snapshotId: null, params: { name: id, description: '', mode: 'crash' },
    maxAttempts: 3, requestedBy: 'ops', createdAt: AT,
  });
  await store.jobs.submit(job('g1', 'v1'));
  await store.jobs.submit(job('g2', 'v2'));
  const guard = { key: 'disk:/shared', max: 1, since: '2024-12-31T23:55:00.000Z' };
  t.ok(await store.jobs.tryClaim('g1', 'T1', AT, 4, { budgetKeys: ['disk:/shared'], budgetGuards: [guard] }));
  t.equal(await store.jobs.tryClaim('g2', 'T2', AT, 4, { budgetKeys: ['disk:/shared'], budgetGuards: [guard] }), null, 'the shared disk is at its budget');
  t.match(await store.jobs.get('g2'), { state: 'queued', attempts: 0 });
  t.equal((await store.budgets.recent(lab, '2024-12-31T23:55:00.000Z')).length, 1, 'nothing recorded by the lost claim');
  t.ok(await store.jobs.tryClaim('g2', 'T3', AT, 4, { budgetKeys: ['disk:/shared'], budgetGuards: [{ ...guard, since: AT }] }), 'an event at the window\'s start no longer counts');
}));
