/**
 * Engine table tests: locking, cancellation, graceful stop, crash recovery and the reconciler.
 * Crash recovery is simulated by writing a `running` job row plus the hypervisor state a killed
 * daemon would have left, then starting an engine on that store.
 */
import t from 'tap';
import { markerForJob } from '../../providers/contract.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { ABORT_WAIT_MS } from '../../src/engine/worker.ts';
import type { JobParams } from '../../src/domain/types.ts';
import { fakeRegistry, fakeSpec, silentLogger } from '../fixtures/fake-provider.ts';
import { harness, meta, TEST_SETTINGS, until, type Harness } from './engine-harness.ts';

const create = async (h: Harness, vm: string, name = 'snap') =>
  h.engine.submit({ kind: 'snapshot.create', vmId: await h.vmId(vm), name, description: '', mode: 'memory' }, meta());

/** Waits for a worker claim round that started after now: whatever it could claim, it claimed. */
const tick = (h: Harness) => h.engine.claimRound();

t.test('one running job per VM: two creates on one VM never overlap', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const first = await create(h, 'web01', 'one');
  const second = await create(h, 'web01', 'two');
  await gate.reached;
  await tick(h);
  t.equal(h.provider.callsOf('createSnapshot').length, 1, 'second create waits');
  t.equal((await h.engine.getJob(second.job.id)).state, 'queued');
  gate.release();
  t.match(await h.settle(first.job.id), { state: 'succeeded' });
  t.match(await h.settle(second.job.id), { state: 'succeeded' });
  const names = [...h.provider.vms.values()][0]!.snapshots.map((s) => s.name);
  t.same(names, ['one', 'two'], 'in submit order, chained');
});

t.test('per-target concurrency: at most `concurrency` jobs run on a target', async (t) => {
  const h = await harness(t, {
    targets: [
      { spec: { concurrency: 2 }, provider: { vms: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] } },
      { provider: { vms: [{ name: 'elsewhere' }] } },
    ],
  });
  const gates = [h.provider.hold('createSnapshot'), h.provider.hold('createSnapshot'), h.provider.hold('createSnapshot')];
  const jobs = [await create(h, 'a'), await create(h, 'b'), await create(h, 'c')];
  await Promise.all([gates[0]!.reached, gates[1]!.reached]);
  const other = await create(h, 'elsewhere');
  t.match(await h.settle(other.job.id), { state: 'succeeded' }, 'another target is not held up');
  t.equal(h.provider.callsOf('createSnapshot').length, 2, 'third job waits for a slot');
  t.equal((await h.engine.getJob(jobs[2]!.job.id)).state, 'queued');
  gates[0]!.release();
  await gates[2]!.reached;
  gates[1]!.release();
  gates[2]!.release();
  for (const j of jobs) t.match(await h.settle(j.job.id), { state: 'succeeded' });
});

t.test('cancel a queued job: cancelled at once, never runs', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const busy = await create(h, 'web01', 'busy');
  const waiting = await create(h, 'web01', 'waiting');
  await gate.reached;
  const cancelled = await h.engine.cancelJob(waiting.job.id, 'ops');
  t.match(cancelled, { state: 'cancelled', error: { kind: 'cancelled' } });
  gate.release();
  await h.settle(busy.job.id);
  await tick(h);
  t.equal(h.provider.callsOf('createSnapshot').length, 1, 'the cancelled job never reached the provider');
  await t.rejects(h.engine.cancelJob(waiting.job.id, 'ops'), { kind: 'conflict', code: 'SNAPVISOR_ERR_JOB_FINISHED' });
  await t.rejects(h.engine.cancelJob('nope', 'ops'), { kind: 'not_found', code: 'SNAPVISOR_ERR_JOB_NOT_FOUND' });
});

t.test('cancel a running job: its signal fires and it ends cancelled', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const { job } = await create(h, 'web01');
  await gate.reached;
  t.match(await h.engine.cancelJob(job.id, 'ops'), { cancelRequested: true });
  t.match(await h.settle(job.id), { state: 'cancelled', error: { kind: 'cancelled' } });
  t.equal([...h.provider.vms.values()][0]!.snapshots.length, 0, 'nothing was made');
});

t.test('waitForJob returns the running job when the timeout passes first', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const { job } = await create(h, 'web01');
  await gate.reached;
  t.match(await h.engine.waitForJob(job.id, 10), { state: 'running' });
  gate.release();
  t.match(await h.engine.waitForJob(job.id, 2_000), { state: 'succeeded' });
});

t.test('graceful stop: a job still running after graceMs is left running (uncertain), and the next start finishes it once', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const { job } = await create(h, 'web01');
  await gate.reached;
  await h.engine.stop({ graceMs: 10 });
  t.match(
    await h.store.jobs.get(job.id),
    { state: 'running', attempts: 1, error: { code: 'SNAPVISOR_ERR_SHUTDOWN_UNCERTAIN' } },
    'left for recovery, the attempt counted (a retry is never taken for a first attempt)',
  );
  const next = createEngine({ store: h.store, registry: fakeRegistry([{ spec: fakeSpec('lab'), provider: h.provider }]), log: silentLogger(), now: h.clock.now, settings: TEST_SETTINGS });
  t.teardown(() => next.stop({ graceMs: 0 }));
  await next.start();
  t.match(await next.waitForJob(job.id, 3_000), { state: 'succeeded' });
  t.equal([...h.provider.vms.values()][0]!.snapshots.filter((s) => s.marker === markerForJob(job.id)).length, 1);
});

t.test('graceful stop is bounded: a call that ignores its signal is left running (uncertain) about 1 s after the grace', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot', { ignoreSignal: true });
  t.teardown(() => gate.release());
  const { job } = await create(h, 'web01');
  await gate.reached;
  const started = Date.now();
  await h.engine.stop({ graceMs: 50 });
  const took = Date.now() - started;
  t.ok(took < 50 + ABORT_WAIT_MS + 500, `stop returned after ${took} ms`);
  t.match(await h.store.jobs.get(job.id), { state: 'running', attempts: 1, error: { code: 'SNAPVISOR_ERR_SHUTDOWN_UNCERTAIN' } });
});

t.test('graceful stop lets a job that finishes within graceMs succeed', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const gate = h.provider.hold('createSnapshot');
  const { job } = await create(h, 'web01');
  await gate.reached;
  const stopping = h.engine.stop({ graceMs: 2_000 });
  gate.release();
  await stopping;
  t.match(await h.store.jobs.get(job.id), { state: 'succeeded' });
});

interface RecoveryRow {
  name: string;
  kind: 'snapshot.create' | 'snapshot.delete' | 'snapshot.revert';
  /** What the killed daemon had done on the hypervisor before dying. */
  hypervisorDid: boolean;
  cancelRequested?: boolean;
  want: { state: string; calls: Record<string, number> };
}

const recoveries: RecoveryRow[] = [
  { name: 'create whose snapshot exists → succeeded, not created again', kind: 'snapshot.create', hypervisorDid: true, want: { state: 'succeeded', calls: { createSnapshot: 0 } } },
  { name: 'create with no snapshot → requeued and run once', kind: 'snapshot.create', hypervisorDid: false, want: { state: 'succeeded', calls: { createSnapshot: 1 } } },
  { name: 'cancelled create with no snapshot → cancelled', kind: 'snapshot.create', hypervisorDid: false, cancelRequested: true, want: { state: 'cancelled', calls: { createSnapshot: 0 } } },
  { name: 'delete already done → succeeded without a second delete', kind: 'snapshot.delete', hypervisorDid: true, want: { state: 'succeeded', calls: { deleteSnapshot: 0 } } },
  { name: 'delete not done → requeued and run', kind: 'snapshot.delete', hypervisorDid: false, want: { state: 'succeeded', calls: { deleteSnapshot: 1 } } },
  { name: 'revert → requeued and run again', kind: 'snapshot.revert', hypervisorDid: false, want: { state: 'succeeded', calls: { revertSnapshot: 1 } } },
];

for (const row of recoveries) {
  t.test(`crash recovery: ${row.name}`, async (t) => {
    const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off', snapshots: [{ name: 'base' }, { name: 'leaf' }] }] } }], start: false });
    await h.engine.syncTarget('lab');
    const vmId = await h.vmId('web01');
    const fakeVm = [...h.provider.vms.values()][0]!;
    const leaf = await h.snapshotId('web01', 'leaf');
    const target = (await h.store.targets.get('lab'))!;
    const jobId = '00000000-0000-4000-8000-000000000001';
    const params: JobParams =
      row.kind === 'snapshot.create' ? { name: 'nightly', description: '', mode: 'memory' } : row.kind === 'snapshot.delete' ? { snapshotId: leaf, children: false } : { snapshotId: leaf };
    await h.store.jobs.submit({
      id: jobId,
      kind: row.kind,
      targetId: target.id,
      vmId,
      snapshotId: row.kind === 'snapshot.create' ? null : leaf,
      params,
      maxAttempts: 5,
      requestedBy: 'ops',
      createdAt: h.clock.now().toISOString(),
    });
    t.ok(await h.store.jobs.tryClaim(jobId, 'dead-process-ticket', h.clock.now().toISOString(), 4));
    if (row.cancelRequested) await h.store.jobs.requestCancel(jobId);
    if (row.hypervisorDid && row.kind === 'snapshot.create') {
      fakeVm.snapshots.push({ ref: 'made-before-crash', name: 'nightly', description: '', parentRef: fakeVm.currentRef, createdAt: h.clock.now().toISOString(), mode: 'memory', marker: markerForJob(jobId), pendingPolls: 0 });
      fakeVm.currentRef = 'made-before-crash';
    }
    if (row.hypervisorDid && row.kind === 'snapshot.delete') h.provider.removeSnapshot(fakeVm.id, fakeVm.snapshots[1]!.ref);

    await h.engine.start();
    const done = await h.settle(jobId);
    t.equal(done.state, row.want.state);
    for (const [op, n] of Object.entries(row.want.calls)) t.equal(h.provider.callsOf(op as 'createSnapshot').length, n, `${op} calls`);
    if (row.kind === 'snapshot.create') {
      t.equal(fakeVm.snapshots.filter((s) => s.marker === markerForJob(jobId)).length, done.state === 'succeeded' ? 1 : 0, 'exactly one snapshot when succeeded');
      if (done.state === 'succeeded') t.match(await h.engine.getSnapshot(done.result!.snapshotId!), { owner: 'snapvisor', jobId, name: 'nightly' });
    }
    if (row.kind === 'snapshot.delete') t.match(await h.engine.getSnapshot(leaf), { state: 'gone' });
  });
}

t.test('sync: external snapshots appear, vanished ones are marked gone, VMs come and go', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', snapshots: [{ name: 'a' }, { name: 'b' }] }, { name: 'web02' }] } }] });
  const vm = [...h.provider.vms.values()].find((v) => v.name === 'web01')!;
  const b = await h.snapshotId('web01', 'b');
  h.provider.removeSnapshot(vm.id, vm.snapshots[1]!.ref);
  h.provider.addExternalSnapshot(vm.id, 'made-by-hand');
  const web02 = await h.vmId('web02');
  h.provider.removeVm([...h.provider.vms.values()].find((v) => v.name === 'web02')!.id);
  h.provider.addVm({ name: 'web03' });
  const view = await h.engine.syncTarget('lab');
  t.equal(view.vmCount, 2);
  t.match(await h.engine.getSnapshot(b), { state: 'gone', current: false });
  t.match(await h.engine.getSnapshot(await h.snapshotId('web01', 'made-by-hand')), { owner: 'external', jobId: null, current: true, parentId: await h.snapshotId('web01', 'a') });
  t.match(await h.engine.getVm(web02), { goneAt: h.clock.now().toISOString() });
  t.same((await h.engine.listVms({ limit: 10 })).items.map((v) => v.name), ['web01', 'web03']);
  t.same((await h.engine.listVms({ limit: 10, includeGone: true, name: 'WEB0', target: 'lab' })).items.map((v) => v.name), ['web01', 'web02', 'web03']);
  await t.rejects(h.engine.listVms({ limit: 10, target: 'nope' }), { code: 'SNAPVISOR_ERR_TARGET_NOT_FOUND' });
  await t.rejects(h.engine.listVms({ limit: 10, cursor: '!!' }), { code: 'SNAPVISOR_ERR_INVALID_CURSOR' });
  t.ok(h.events.some((e) => e.type === 'vm' && e.action === 'gone' && e.vm.id === web02));
});

t.test('an unreachable target is shown unhealthy and makes the daemon unready (readiness all); other targets sync', async (t) => {
  const h = await harness(t, {
    targets: [
      { name: 'down', provider: { vms: [{ name: 'x' }], health: { reachable: false, message: 'connection refused' } } },
      { name: 'up', provider: { vms: [{ name: 'y' }] } },
    ],
  });
  t.match(await h.engine.getTarget('down'), { health: { reachable: false, message: 'connection refused' }, vmCount: 0 });
  t.match(await h.engine.getTarget('up'), { health: { reachable: true, version: 'fake-1.0' }, vmCount: 1, capabilities: { revert: true } });
  const report = await h.engine.ready();
  t.equal(report.ready, false, 'readiness all (the default): every target must have been inventoried');
  t.equal(report.reason, "unreachable: 'down' (the target is unreachable: connection refused)");
  t.same(report.targets.map((x) => [x.name, x.healthy, x.synced]), [['down', false, false], ['up', true, true]]);
  h.providers.get('up')!.failNext('check', new (await import('../../providers/contract.ts')).ProviderError('virtualbox', 'transient', 'boom'));
  t.match(await h.engine.syncTarget('up'), { health: { reachable: false } });
  t.match((await h.engine.metrics()).body, /snapvisor_provider_errors_total\{target="up",provider="virtualbox",kind="transient"\} 1/);
  await h.engine.audit({ principal: 'ops', method: 'POST', path: '/v1/x', statusCode: 202, jobId: null, detail: null });
  t.equal((await h.store.audit.list({ limit: 5 })).length, 1);
});

t.test('progress is persisted and streamed', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const { job } = await create(h, 'web01');
  await h.settle(job.id);
  await until(() => h.events.some((e) => e.type === 'job' && e.job.id === job.id && e.job.progressMessage === 'snapshot taken'));
  t.pass('progress event seen');
});

for (const waitsFor of ['its VM', 'its target'] as const) {
  t.test(`without polling, a job waiting for ${waitsFor} starts as soon as the job before it ends`, async (t) => {
    const h = await harness(t, {
      settings: { workerPollMs: 600_000 },
      targets: [{ spec: { concurrency: waitsFor === 'its VM' ? 4 : 1 }, provider: { vms: [{ name: 'web01' }, { name: 'web02' }] } }],
    });
    const first = h.provider.hold('createSnapshot');
    const a = await create(h, 'web01', 'a');
    await first.reached;
    const b = await create(h, waitsFor === 'its VM' ? 'web01' : 'web02', 'b');
    first.release();
    t.equal((await h.settle(a.job.id, 2_000)).state, 'succeeded');
    t.equal((await h.settle(b.job.id, 2_000)).state, 'succeeded', 'ran without waiting for the poll');
    const lone = await create(h, 'web02', 'c');
    t.equal((await h.settle(lone.job.id, 2_000)).state, 'succeeded', 'a submit starts its own round');
  });
}

t.test('progress: a job that ends within the interval writes none but its final message; a slower one writes it', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const progressOf = (jobId: string) => h.events.flatMap((e) => (e.type === 'job' && e.job.id === jobId && e.job.state === 'running' ? [e.job.progress] : []));
  const fast = await create(h, 'web01', 'fast');
  await h.settle(fast.job.id);
  await until(() => h.events.some((e) => e.type === 'job' && e.job.id === fast.job.id && e.job.progressMessage === 'snapshot taken'));
  t.notOk(progressOf(fast.job.id).includes(50), 'no row written for 50 % of a job that took milliseconds');

  const gate = h.provider.hold('createSnapshot');
  const slow = await create(h, 'web01', 'slow');
  await gate.reached;
  h.clock.advance(300); // past the progress interval, on the engine's clock
  gate.release();
  await h.settle(slow.job.id);
  await until(() => progressOf(slow.job.id).includes(50));
  t.pass('50 % persisted and streamed once the job had run longer than the interval');
});

t.test('sync: snapshot lists carried by the inventory pass are used instead of one listSnapshots per VM', async (t) => {
  const h = await harness(t, { targets: [{ provider: { inventoryCarriesSnapshots: true, vms: [{ name: 'web01', snapshots: [{ name: 'a' }, { name: 'b' }] }, { name: 'web02' }] } }] });
  const vm = [...h.provider.vms.values()].find((v) => v.name === 'web01')!;
  t.equal((await h.engine.listSnapshots(await h.vmId('web01'), { includeGone: false })).length, 2, 'first sync recorded the carried list');
  const b = await h.snapshotId('web01', 'b');
  h.provider.removeSnapshot(vm.id, vm.snapshots[1]!.ref);
  h.provider.addExternalSnapshot(vm.id, 'made-by-hand');
  await h.engine.syncTarget('lab');
  t.match(await h.engine.getSnapshot(b), { state: 'gone' }, 'vanished one marked gone');
  t.match(await h.engine.getSnapshot(await h.snapshotId('web01', 'made-by-hand')), { owner: 'external', current: true });
  t.equal(h.provider.callsOf('listSnapshots').length, 0, 'never listed VM by VM');
});

t.test('sync: a carried snapshot list older than a job that finished meanwhile does not overwrite it', async (t) => {
  const h = await harness(t, { targets: [{ provider: { inventoryCarriesSnapshots: true, vms: [{ name: 'web01', snapshots: [{ name: 'a' }] }] } }] });
  const vmId = await h.vmId('web01');
  // The inventory is read, then held back while a job creates a snapshot and records it.
  const listVms = h.provider.listVms.bind(h.provider);
  let read!: () => void;
  const wasRead = new Promise<void>((resolve) => (read = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  h.provider.listVms = async (ctx) => {
    const answer = await listVms(ctx);
    read();
    await released;
    return answer;
  };
  const syncing = h.engine.syncTarget('lab');
  await wasRead;
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'new', description: '', mode: 'memory' }, { principal: 't', requestHash: 'h' });
  const done = await h.settle(job.id);
  t.equal(done.state, 'succeeded');
  release();
  await syncing;
  t.match(await h.engine.getSnapshot(done.result!.snapshotId!), { state: 'present', current: true }, 'the job\'s snapshot survived the stale list');
  h.provider.listVms = listVms;
  await h.engine.syncTarget('lab');
  t.match(await h.engine.getSnapshot(done.result!.snapshotId!), { state: 'present', current: true }, 'and the next pass agrees');
});

t.test('not ready until start() has run recovery (the daemon listens first), nor once stopping', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }], start: false });
  t.match(await h.engine.ready(), { ready: false, store: true }, 'store open, engine not started: 503');
  await h.engine.start();
  t.match(await h.engine.ready(), { ready: true, store: true });
  await h.engine.stop({ graceMs: 0 });
  t.match(await h.engine.ready(), { ready: false }, 'stopping');
});
