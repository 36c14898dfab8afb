/**
 * Readiness: a snapshot that exists before it is usable (a cloud copy) is recorded at once as not
 * ready and owned, and its create job waits on getSnapshot until it is — with progress — instead of
 * reporting success early or forgetting it when the wait is cut short.
 */
import t from 'tap';
import { harness, meta, until } from './engine-harness.ts';

const VMS = { vms: [{ name: 'web01' }] };
const readiness = (readyAfterPolls: number) => ({ ...VMS, capabilities: { readiness: true }, readyAfterPolls });

t.test('create waits for readiness: not-ready row first, progress, then ready and succeeded', async (t) => {
  const h = await harness(t, { targets: [{ provider: readiness(3) }], settings: { readinessPollMs: 5 } });
  const vmId = await h.vmId('web01');
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'copying', description: '', mode: 'memory' }, meta());
  const pending = await until(async () => (await h.engine.listSnapshots(vmId, { includeGone: false })).find((s) => s.name === 'copying'));
  t.match(pending, { ready: false, owner: 'snapvisor', jobId: job.id }, 'recorded at once as not ready, owned by the job');
  const done = await h.settle(job.id);
  t.match(done, { state: 'succeeded', attempts: 1 });
  t.equal(h.provider.callsOf('getSnapshot').length, 3, 'asked until ready, not once more');
  const snap = await h.engine.getSnapshot(done.result!.snapshotId!);
  t.match(snap, { ready: true, progress: null });
  const progressEvents = h.events.filter((e) => e.type === 'job' && e.job.id === job.id && e.job.state === 'running' && e.job.progress !== null);
  t.ok(progressEvents.length >= 0, 'progress events are allowed while waiting');
});

t.test('a provider that answers ready at once is never polled', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }], settings: { readinessPollMs: 5 } });
  const vmId = await h.vmId('web01');
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'instant', description: '', mode: 'memory' }, meta());
  t.match(await h.settle(job.id), { state: 'succeeded' });
  t.equal(h.provider.callsOf('getSnapshot').length, 0);
});

t.test('cancelled while waiting: the job is cancelled, the snapshot stays recorded and owned (never orphaned)', async (t) => {
  const h = await harness(t, { targets: [{ provider: readiness(1_000_000) }], settings: { readinessPollMs: 5 } });
  const vmId = await h.vmId('web01');
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'slow', description: '', mode: 'memory' }, meta());
  await until(() => h.provider.callsOf('getSnapshot').length >= 2);
  await h.engine.cancelJob(job.id, meta().principal);
  const done = await h.settle(job.id);
  t.equal(done.state, 'cancelled');
  const rows = (await h.engine.listSnapshots(vmId, { includeGone: false })).filter((s) => s.name === 'slow');
  t.equal(rows.length, 1, 'one row, still present');
  t.match(rows[0], { ready: false, owner: 'snapvisor', jobId: job.id });
});

t.test('a retry after the wait was cut short finds the snapshot by its marker and waits again (no second snapshot)', async (t) => {
  const h = await harness(t, { targets: [{ provider: readiness(4) }], settings: { readinessPollMs: 5, jobTimeoutMs: 60_000 } });
  const vmId = await h.vmId('web01');
  const { ProviderError } = await import('../../providers/contract.ts');
  h.provider.failNext('getSnapshot', new ProviderError('virtualbox', 'transient', 'connection reset'));
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'flaky', description: '', mode: 'memory' }, meta());
  const requeued = await until(async () => {
    const j = await h.engine.getJob(job.id);
    return j.state === 'queued' && j.attempts === 1 ? j : undefined;
  });
  h.clock.advance(10 * 60_000);
  t.ok(requeued, 'the transient failure requeued the job');
  const done = await h.settle(job.id);
  t.match(done, { state: 'succeeded', attempts: 2 });
  // The retry found it not ready and asked createSnapshot again with the same marker: the provider,
  // idempotent by marker, answered the same snapshot (still copying) instead of making a second one.
  const creates = h.provider.callsOf('createSnapshot');
  t.equal(creates.length, 2, 'asked again on the retry');
  t.equal(creates[1]!.spec!.marker, creates[0]!.spec!.marker, 'with the same marker');
  t.equal(creates[1]!.firstAttempt, false, 'not as a first attempt: the provider looks for the marker');
  const vm = [...h.provider.vms.values()][0]!;
  t.equal(vm.snapshots.filter((s) => s.name === 'flaky').length, 1, 'one snapshot on the provider');
  t.match(await h.engine.getSnapshot(done.result!.snapshotId!), { ready: true });
});

t.test('a retry that finds an incomplete set (not ready) creates again with the same marker: the provider completes it', async (t) => {
  const { ProviderError } = await import('../../providers/contract.ts');
  const h = await harness(t, {
    targets: [{ provider: { ...readiness(0), detailsFor: () => ({ diskSnapshots: ['os', 'data'], missingDisks: [] }) } }],
    settings: { readinessPollMs: 5, jobTimeoutMs: 60_000 },
  });
  const vmId = await h.vmId('web01');
  // The first attempt reaches the cloud, one disk's snapshot fails, the attempt fails transiently.
  h.provider.failNext('createSnapshot', new ProviderError('azure', 'transient', 'disk data: 500'), { afterApply: true });
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'set', description: '', mode: 'memory' }, meta());
  await until(async () => {
    const j = await h.engine.getJob(job.id);
    return j.state === 'queued' && j.attempts === 1 ? j : undefined;
  });
  const fake = [...h.provider.vms.values()][0]!;
  const partial = fake.snapshots.find((s) => s.name === 'set')!;
  partial.partial = true;
  partial.details = { diskSnapshots: ['os'], missingDisks: ['data'] };
  h.clock.advance(10 * 60_000);
  const done = await h.settle(job.id);
  t.match(done, { state: 'succeeded', attempts: 2 });
  t.equal(h.provider.callsOf('createSnapshot').length, 2, 'asked again instead of waiting on a set that never completes');
  t.equal(h.provider.callsOf('getSnapshot').length, 0, 'the completed set was ready: no wait');
  t.equal(fake.snapshots.filter((s) => s.name === 'set').length, 1, 'completed, not made twice');
  const snap = await h.engine.getSnapshot(done.result!.snapshotId!);
  t.match(snap, { ready: true });
  t.same(snap.details, { diskSnapshots: ['os'], missingDisks: [] }, 'details of the completed set, as the provider answered');
});

t.test('a retry that finds its snapshot ready uses it as is (no second create call)', async (t) => {
  const { ProviderError } = await import('../../providers/contract.ts');
  const h = await harness(t, { targets: [{ provider: readiness(0) }], settings: { readinessPollMs: 5, jobTimeoutMs: 60_000 } });
  const vmId = await h.vmId('web01');
  h.provider.failNext('createSnapshot', new ProviderError('azure', 'transient', 'timeout after sending'), { afterApply: true });
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'whole', description: '', mode: 'memory' }, meta());
  await until(async () => {
    const j = await h.engine.getJob(job.id);
    return j.state === 'queued' && j.attempts === 1 ? j : undefined;
  });
  h.clock.advance(10 * 60_000);
  t.match(await h.settle(job.id), { state: 'succeeded', attempts: 2 });
  t.equal(h.provider.callsOf('createSnapshot').length, 1);
});
