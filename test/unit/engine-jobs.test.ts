/**
 * Engine table tests: job lifecycle against the fake provider, a ':memory:' store and an injected
 * clock. Backoff waits are crossed by advancing the clock, never by sleeping.
 */
import t from 'tap';
import { markerForJob, ProviderError } from '../../providers/contract.ts';
import { SnapvisorError } from '../../src/domain/errors.ts';
import type { Job } from '../../src/domain/types.ts';
import { harness, meta, until, type Harness } from './engine-harness.ts';

const VMS = { vms: [{ name: 'web01', snapshots: [{ name: 'base' }] }, { name: 'web02' }] };

const createReq = async (h: Harness, name = 'nightly', vm = 'web01') =>
  ({ kind: 'snapshot.create' as const, vmId: await h.vmId(vm), name, description: 'from test', mode: 'memory' as const });

/** Waits until the job is back in the queue after a failed attempt. */
const requeued = (h: Harness, id: string, attempts: number) =>
  until(async () => {
    const j = await h.engine.getJob(id);
    return j.state === 'queued' && j.attempts === attempts ? j : undefined;
  });

const markerCount = (h: Harness, vm: string, jobId: string) =>
  [...h.provider.vms.values()].find((v) => v.name === vm)!.snapshots.filter((s) => s.marker === markerForJob(jobId)).length;

t.test('create → succeeded with result.snapshotId; the snapshot is in the store as snapvisor-owned', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }] });
  const { job, replayed } = await h.engine.submit(await createReq(h), meta());
  t.equal(replayed, false);
  t.equal(job.state, 'queued');
  const done = await h.settle(job.id);
  t.match(done, { state: 'succeeded', attempts: 1, progress: 100, error: null });
  const snap = await h.engine.getSnapshot(done.result!.snapshotId!);
  t.match(snap, { name: 'nightly', description: 'from test', owner: 'snapvisor', jobId: job.id, mode: 'memory', state: 'present', current: true });
  t.equal(snap.parentId, await h.snapshotId('web01', 'base'), 'child of the previous current snapshot');
  t.equal(done.snapshotId, snap.id, 'the job row points at what it made');
  t.same(h.provider.callsOf('createSnapshot').map((c) => c.spec?.marker), [markerForJob(job.id)], 'marker derived from the job id');
  const tree = await h.engine.snapshotTree(await h.vmId('web01'));
  t.match(tree, { currentSnapshotId: snap.id, maxDepth: 2 });
  const vm = await h.engine.getVm(await h.vmId('web01'));
  t.match(vm, { snapshotCount: 2, chainDepth: 2, currentSnapshotId: snap.id, targetName: 'lab' });
  t.ok(h.events.some((e) => e.type === 'job' && e.job.id === job.id && e.job.state === 'running'), 'running event');
  t.ok(h.events.some((e) => e.type === 'snapshot' && e.action === 'created' && e.snapshot.id === snap.id), 'snapshot event');
  t.match((await h.engine.metrics()).body, /snapvisor_jobs_finished_total\{kind="snapshot.create",state="succeeded"\} 1/);
});

interface RetryRow {
  name: string;
  errors: ProviderError[];
  afterApply?: boolean;
  /** Expected next_attempt_at offsets (ms after the failure) for each requeue. */
  delays: number[];
  final: Partial<Job>;
  createCalls: number;
  snapshots: number;
}

const transient = () => new ProviderError('virtualbox', 'transient', 'connection reset');
const rows: RetryRow[] = [
  {
    name: 'transient error → retried with 1 s then 2 s backoff, then succeeds',
    errors: [transient(), transient()],
    delays: [1_000, 2_000],
    final: { state: 'succeeded', attempts: 3 },
    createCalls: 3,
    snapshots: 1,
  },
  {
    name: 'throttled honours retryAfter when larger than the backoff',
    errors: [new ProviderError('virtualbox', 'throttled', 'slow down', { retryAfterMs: 30_000 })],
    delays: [30_000],
    final: { state: 'succeeded', attempts: 2 },
    createCalls: 2,
    snapshots: 1,
  },
  {
    name: 'uncertain (timeout after sending) → the retry finds the marker: exactly one snapshot',
    errors: [new ProviderError('virtualbox', 'transient', 'timed out waiting for VBoxManage', { retry: 'uncertain' })],
    afterApply: true,
    delays: [1_000],
    final: { state: 'succeeded', attempts: 2 },
    createCalls: 1,
    snapshots: 1,
  },
  {
    name: 'final error → failed at once, no retry, error kept with its native code',
    errors: [new ProviderError('virtualbox', 'conflict', 'machine is locked', { nativeCode: 'VBOX_E_INVALID_OBJECT_STATE' })],
    delays: [],
    final: { state: 'failed', attempts: 1, error: { kind: 'conflict', message: '[snapvisor] [virtualbox] machine is locked', code: 'VBOX_E_INVALID_OBJECT_STATE' } },
    createCalls: 1,
    snapshots: 0,
  },
];

for (const row of rows) {
  t.test(row.name, async (t) => {
    const h = await harness(t, { targets: [{ provider: VMS }] });
    for (const e of row.errors) h.provider.failNext('createSnapshot', e, { afterApply: row.afterApply ?? false });
    const { job } = await h.engine.submit(await createReq(h), meta());
    for (const [i, delay] of row.delays.entries()) {
      const waiting = await requeued(h, job.id, i + 1);
      t.equal(Date.parse(waiting.nextAttemptAt!) - h.clock.now().getTime(), delay, `requeue ${i + 1} waits ${delay} ms`);
      t.ok(waiting.error, 'last error visible while waiting');
      h.clock.advance(delay - 1);
      await h.engine.claimRound();
      t.equal((await h.engine.getJob(job.id)).state, 'queued', 'not before its time');
      h.clock.advance(1);
    }
    const done = await h.settle(job.id);
    t.match(done, row.final);
    t.equal(h.provider.callsOf('createSnapshot').length, row.createCalls, 'createSnapshot calls');
    t.equal(markerCount(h, 'web01', job.id), row.snapshots, 'snapshots with the job marker');
    if (done.state === 'succeeded') {
      t.equal(done.error, null, 'error cleared on success');
      t.equal((await h.engine.getSnapshot(done.result!.snapshotId!)).jobId, job.id);
    }
  });
}

t.test('transient errors until maxAttempts → failed with the last error', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }], settings: { maxAttempts: 2 } });
  h.provider.failNext('createSnapshot', transient());
  h.provider.failNext('createSnapshot', transient());
  const { job } = await h.engine.submit(await createReq(h), meta());
  await requeued(h, job.id, 1);
  h.clock.advance(1_000);
  t.match(await h.settle(job.id), { state: 'failed', attempts: 2, error: { kind: 'transient' } });
  t.same(h.provider.callsOf('createSnapshot').map((c) => c.firstAttempt), [true, false], 'only the first attempt may skip the marker lookup');
});

t.test('an unexpected error fails the job as internal with a generic message', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }] });
  const original = h.provider.createSnapshot;
  h.provider.createSnapshot = async () => {
    throw new TypeError('secret detail: password=hunter2');
  };
  t.teardown(() => void (h.provider.createSnapshot = original));
  const { job } = await h.engine.submit(await createReq(h), meta());
  const done = await h.settle(job.id);
  t.match(done, { state: 'failed', error: { kind: 'internal' } });
  t.notMatch(JSON.stringify(done.error), /hunter2|secret/, 'the detail does not leak');
});

t.test('per-attempt timeout aborts the call; the retry creates exactly one snapshot', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }], settings: { jobTimeoutMs: 30 } });
  h.provider.hold('createSnapshot'); // never released: only the timeout ends it
  const { job } = await h.engine.submit(await createReq(h), meta());
  const waiting = await requeued(h, job.id, 1);
  t.match(waiting.error, { kind: 'transient' });
  h.clock.advance(1_000);
  t.match(await h.settle(job.id), { state: 'succeeded', attempts: 2 });
  t.equal(markerCount(h, 'web01', job.id), 1);
});

t.test('revert and delete', async (t) => {
  const h = await harness(t, {
    targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off', snapshots: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] }] } }],
  });
  const [a, b, c] = [await h.snapshotId('web01', 'a'), await h.snapshotId('web01', 'b'), await h.snapshotId('web01', 'c')];
  const rev = await h.engine.submit({ kind: 'snapshot.revert', snapshotId: a }, meta());
  t.match(await h.settle(rev.job.id), { state: 'succeeded', result: { snapshotId: a } });
  t.equal((await h.engine.snapshotTree(await h.vmId('web01'))).currentSnapshotId, a, 'current moved');

  const del = await h.engine.submit({ kind: 'snapshot.delete', snapshotId: b, children: false }, meta());
  t.match(await h.settle(del.job.id), { state: 'succeeded', result: { snapshotIds: [b] } });
  t.match(await h.engine.getSnapshot(b), { state: 'gone', deletedAt: h.clock.now().toISOString() });
  t.equal((await h.engine.getSnapshot(c)).parentId, a, 'child re-parented as VirtualBox does');

  const delTree = await h.engine.submit({ kind: 'snapshot.delete', snapshotId: a, children: true }, meta());
  t.match(await h.settle(delTree.job.id), { state: 'succeeded', result: { snapshotIds: [a, c] } });
  t.same(await h.engine.listSnapshots(await h.vmId('web01'), { includeGone: false }), []);
  t.equal((await h.engine.listSnapshots(await h.vmId('web01'), { includeGone: true })).length, 3, 'history kept');
});

t.test('revert records the power state the provider answered for that VM alone (no inventory pass)', async (t) => {
  const h = await harness(t, {
    targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off', snapshots: [{ name: 'mem', mode: 'memory' }, { name: 'later' }] }, { name: 'web02', powerState: 'running' }] } }],
  });
  const vmId = await h.vmId('web01');
  const other = await h.vmId('web02');
  t.equal((await h.engine.getVm(vmId)).powerState, 'off');
  // Behind our back: web02 stopped. A full inventory pass would notice; recording the revert must not touch it.
  [...h.provider.vms.values()].find((v) => v.name === 'web02')!.powerState = 'off';
  const listsBefore = h.provider.callsOf('listVms').length;
  const rev = await h.engine.submit({ kind: 'snapshot.revert', snapshotId: await h.snapshotId('web01', 'mem') }, meta());
  t.match(await h.settle(rev.job.id), { state: 'succeeded' });
  t.equal((await h.engine.getVm(vmId)).powerState, 'running', 'a memory snapshot comes back running');
  t.equal(h.provider.callsOf('listVms').length, listsBefore, 'no listVms');
  t.equal((await h.engine.getVm(other)).powerState, 'running', 'other VMs left to the periodic sync');
  t.ok(h.events.some((e) => e.type === 'vm' && e.action === 'updated' && e.vm.id === vmId && e.vm.powerState === 'running'), 'a VM event says so');
});

t.test('consolidate: real job calls the provider; dry run is answered at submit with the plan', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', consolidationNeeded: true }] } }] });
  const vmId = await h.vmId('web01');
  const dry = await h.engine.submit({ kind: 'vm.consolidate', vmId, dryRun: true }, meta());
  t.match(dry.job, { state: 'succeeded', result: { message: /would consolidate/ } });
  t.equal(h.provider.callsOf('consolidate').length, 0, 'dry run never touches the hypervisor');
  const real = await h.engine.submit({ kind: 'vm.consolidate', vmId, dryRun: false }, meta());
  t.match(await h.settle(real.job.id), { state: 'succeeded', result: { message: 'disk chains consolidated' } });
  t.equal((await h.engine.getVm(vmId)).consolidationNeeded, false, 'inventory refreshed');
});

interface RefusalRow {
  name: string;
  request: (h: Harness) => Promise<Parameters<Harness['engine']['submit']>[0]>;
  kind: string;
  code: string;
  caps?: Record<string, unknown>;
}

const refusals: RefusalRow[] = [
  { name: 'unknown VM', request: async () => ({ kind: 'snapshot.create', vmId: 'nope', name: 'x', description: '', mode: 'memory' }), kind: 'not_found', code: 'SNAPVISOR_ERR_VM_NOT_FOUND' },
  { name: 'mode the target cannot do', request: async (h) => ({ ...(await createReq(h)), mode: 'crash' }), kind: 'unsupported', code: 'SNAPVISOR_ERR_MODE_UNSUPPORTED' },
  { name: 'empty name', request: async (h) => createReq(h, '   '), kind: 'invalid', code: 'SNAPVISOR_ERR_NAME_EMPTY' },
  { name: 'name over the byte limit (multi-byte)', request: async (h) => createReq(h, 'é'.repeat(128)), kind: 'invalid', code: 'SNAPVISOR_ERR_NAME_TOO_LONG' },
  { name: 'unknown snapshot', request: async () => ({ kind: 'snapshot.revert', snapshotId: 'nope' }), kind: 'not_found', code: 'SNAPVISOR_ERR_SNAPSHOT_NOT_FOUND' },
  {
    name: 'revert on a target without revert',
    caps: { revert: false },
    request: async (h) => ({ kind: 'snapshot.revert', snapshotId: await h.snapshotId('web01', 'base') }),
    kind: 'unsupported',
    code: 'SNAPVISOR_ERR_REVERT_UNSUPPORTED',
  },
  {
    name: 'delete with children on a target without it',
    caps: { deleteChildren: false },
    request: async (h) => ({ kind: 'snapshot.delete', snapshotId: await h.snapshotId('web01', 'base'), children: true }),
    kind: 'unsupported',
    code: 'SNAPVISOR_ERR_DELETE_CHILDREN_UNSUPPORTED',
  },
  {
    name: 'consolidate on a target without it',
    caps: { consolidate: false },
    request: async (h) => ({ kind: 'vm.consolidate', vmId: await h.vmId('web01'), dryRun: true }),
    kind: 'unsupported',
    code: 'SNAPVISOR_ERR_CONSOLIDATE_UNSUPPORTED',
  },
  {
    name: 'snapshot already gone',
    request: async (h) => {
      const vm = [...h.provider.vms.values()].find((v) => v.name === 'web01')!;
      h.provider.removeSnapshot(vm.id, vm.snapshots[0]!.ref);
      await h.engine.syncTarget('lab');
      return { kind: 'snapshot.delete', snapshotId: await h.snapshotId('web01', 'base'), children: false };
    },
    kind: 'not_found',
    code: 'SNAPVISOR_ERR_SNAPSHOT_GONE',
  },
  {
    name: 'VM gone from the hypervisor',
    request: async (h) => {
      const id = await h.vmId('web02');
      h.provider.removeVm([...h.provider.vms.values()].find((v) => v.name === 'web02')!.id);
      await h.engine.syncTarget('lab');
      return { kind: 'snapshot.create', vmId: id, name: 'x', description: '', mode: 'memory' };
    },
    kind: 'conflict',
    code: 'SNAPVISOR_ERR_VM_GONE',
  },
];

for (const row of refusals) {
  t.test(`refused before any row exists: ${row.name}`, async (t) => {
    const h = await harness(t, { targets: [{ provider: { ...VMS, capabilities: row.caps ?? {} } }] });
    const request = await row.request(h);
    const err = await h.engine.submit(request, meta('ops', 'k')).then(
      () => null,
      (e: unknown) => e,
    );
    t.type(err, SnapvisorError);
    t.match(err, { kind: row.kind, code: row.code });
    t.same((await h.engine.listJobs({ limit: 10 })).items, [], 'no job stored');
    t.equal(await h.store.idempotency.find('ops', 'k'), null, 'no key stored');
  });
}

t.test('unsupported mode carries the provider reason', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }] });
  const err = await h.engine.submit({ ...(await createReq(h)), mode: 'quiesced' }, meta()).catch((e: unknown) => e);
  t.match(err, { extra: { reason: /quiesce/, mode: 'quiesced', target: 'lab' } });
});

t.test('idempotency: same key and request → the first job; same key, other request → refused', async (t) => {
  const h = await harness(t, { targets: [{ provider: VMS }] });
  const req = await createReq(h);
  const first = await h.engine.submit(req, meta('ops', 'key-1', 'hash-a'));
  const again = await h.engine.submit(req, meta('ops', 'key-1', 'hash-a'));
  t.equal(again.replayed, true);
  t.equal(again.job.id, first.job.id);
  await t.rejects(h.engine.submit({ ...req, name: 'other' }, meta('ops', 'key-1', 'hash-b')), {
    kind: 'invalid',
    code: 'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED',
  });
  const other = await h.engine.submit(req, meta('someone-else', 'key-1', 'hash-a'));
  t.not(other.job.id, first.job.id, 'keys are scoped to the principal');
  await h.settle(first.job.id);
  await h.settle(other.job.id);
  t.equal((await h.engine.listJobs({ limit: 10 })).items.length, 2);
});
