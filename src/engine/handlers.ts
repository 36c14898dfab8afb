/**
 * What each job kind does on the hypervisor, then how the store learns the result: from what the
 * provider answered (sync.record — no second listing of the VM; the periodic sync reads the whole
 * truth), except after a consolidation, which can change much more than one snapshot (full re-read).
 */
import { markerForJob, type CallContext, type ProviderSnapshot } from '../../providers/contract.ts';
import { sleep } from '../../providers/shared/sleep.ts';
import { SnapvisorError } from '../domain/errors.ts';
import { descendantIds } from '../domain/tree.ts';
import type { CreateParams, DeleteParams, Job, JobResult, Vm } from '../domain/types.ts';
import type { BoundTarget, Core } from './core.ts';
import type { Sync } from './sync.ts';

export interface HandlerInput {
  core: Core;
  sync: Sync;
  job: Job;
  target: BoundTarget;
  vm: Vm;
  ctx: CallContext;
}

export async function runHandler(input: HandlerInput): Promise<JobResult> {
  switch (input.job.kind) {
    case 'snapshot.create':
      return create(input);
    case 'snapshot.revert':
      return revert(input);
    case 'snapshot.delete':
      return remove(input);
    case 'snapshot.delete-all':
      return removeAll(input);
    case 'vm.consolidate':
      return consolidate(input);
  }
}

/** The snapshot a create job made, looked up by its marker on the hypervisor. */
export async function findByMarker(input: Omit<HandlerInput, 'sync' | 'job'> & { jobId: string }): Promise<ProviderSnapshot | null> {
  const { core, target, vm, ctx, jobId } = input;
  const marker = markerForJob(jobId);
  const list = await core.call(target.provider, 'listSnapshots', () => target.provider.listSnapshots(vm.providerVmId, ctx));
  return list.find((s) => s.marker === marker) ?? null;
}

/** Records the created snapshot and returns the job result naming it. */
export async function recordCreated(input: Pick<HandlerInput, 'core' | 'sync' | 'vm'>, made: ProviderSnapshot): Promise<JobResult> {
  const { core, sync, vm } = input;
  const plan = await sync.record(vm, { kind: 'created', snapshot: made });
  // The row the plan wrote, else (already recorded, unchanged) the stored one.
  const row =
    plan.inserts.find((s) => s.providerRef === made.providerRef) ??
    plan.updates.find((c) => c.after.providerRef === made.providerRef)?.after ??
    (await core.store.snapshots.getByRef(vm.id, made.providerRef));
  if (!row) {
    throw new SnapvisorError('internal', 'SNAPVISOR_ERR_SNAPSHOT_NOT_RECORDED', 'the snapshot was created but could not be recorded');
  }
  return { snapshotId: row.id };
}

/**
 * A snapshot that exists but is not usable yet (a cloud still copying it) is recorded as not ready
 * at once — visible and owned — and the job waits on getSnapshot until it is, with the copy's progress.
 */
async function untilReady(input: HandlerInput, made: ProviderSnapshot): Promise<void> {
  const { core, sync, target, vm, ctx } = input;
  let snap = made;
  while (!snap.ready) {
    ctx.progress(snap.progress ?? 0, `snapshot '${snap.name}' is not ready yet${snap.progress === undefined ? '' : ` (${snap.progress} %)`}`);
    await sleep(core.settings.readinessPollMs, ctx.signal, () =>
      // The snapshot exists either way: a retry finds it by its marker and goes on waiting.
      new SnapvisorError('transient', 'SNAPVISOR_ERR_READINESS_WAIT_ABORTED', `stopped waiting for snapshot '${snap.name}' to be ready`, { retry: 'uncertain' }),
    );
    const ref = snap.providerRef;
    const fresh = await core.call(target.provider, 'getSnapshot', () => target.provider.getSnapshot(vm.providerVmId, ref, ctx));
    if (fresh.ready !== snap.ready || fresh.progress !== snap.progress) await sync.record(vm, { kind: 'created', snapshot: fresh });
    snap = fresh;
  }
}

/**
 * A create on a target with create budgets: when the provider's call ends, however it ends, the
 * attempt's budget events (written at the claim) move to now. The hypervisor counts the create from
 * when it accepted it, which can be long after the claim on a busy target (Azure: 429s seen in the
 * benchmark when counted from the claim); from the end of the call is never too early.
 */
async function budgeted<T>(input: HandlerInput, fn: () => Promise<T>): Promise<T> {
  const { core, target, job } = input;
  if ((target.provider.capabilities().limits.createRate ?? []).length === 0) return fn();
  try {
    return await fn();
  } finally {
    await core.store.budgets.restamp(job.id, core.iso());
  }
}

async function create(input: HandlerInput): Promise<JobResult> {
  const { core, target, vm, ctx, job } = input;
  const params = job.params as CreateParams;
  // A retry looks first: the earlier attempt may have reached the hypervisor before it failed.
  const earlier = job.attempts > 1 ? await findByMarker({ ...input, jobId: job.id }) : null;
  if (earlier) ctx.log.info({ providerRef: earlier.providerRef, ready: earlier.ready }, 'earlier attempt had created the snapshot');
  // A found snapshot that is not ready may be one the earlier attempt left incomplete (an Azure set
  // missing a disk's snapshot), which waiting would never finish: createSnapshot again with the same
  // marker completes it (the contract makes it idempotent by marker), or returns it as it is when it
  // is merely still copying. A ready one is used as is.
  // An offline create whose earlier attempt shut the VM down is not done when the snapshot exists:
  // createSnapshot again (idempotent by marker) with ctx.resume also starts the VM again.
  const powerToRestore = job.checkpoint?.offline?.powerBefore === 'running';
  const made =
    earlier?.ready === true && !powerToRestore
      ? earlier
      : await budgeted(input, () =>
          core.call(target.provider, 'createSnapshot', () =>
            target.provider.createSnapshot(
              vm.providerVmId,
              { name: params.name, description: params.description, mode: params.mode, marker: markerForJob(job.id), ...(params.options ? { options: params.options } : {}) },
              ctx,
            ),
          ),
        );
  const result = await recordCreated(input, made);
  await untilReady(input, made);
  return result;
}

async function snapshotOf(input: HandlerInput) {
  const id = input.job.snapshotId;
  const snapshot = id === null ? null : await input.core.store.snapshots.get(id);
  if (!snapshot) throw new SnapvisorError('not_found', 'SNAPVISOR_ERR_SNAPSHOT_NOT_FOUND', `snapshot '${id ?? ''}' not found`);
  return snapshot;
}

async function revert(input: HandlerInput): Promise<JobResult> {
  const { core, sync, target, vm, ctx } = input;
  const snapshot = await snapshotOf(input);
  const revertSnapshot = target.provider.revertSnapshot?.bind(target.provider);
  // Submit refuses this up front; the configuration may have changed while the job waited.
  if (!revertSnapshot) throw cannot(target, 'revert to a snapshot');
  const outcome = await core.call(target.provider, 'revertSnapshot', () => revertSnapshot(vm.providerVmId, snapshot.providerRef, ctx));
  await sync.record(vm, { kind: 'reverted', providerRef: snapshot.providerRef });
  // Reverting changes the power state (a memory snapshot comes back running, an offline one off).
  await sync.recordPower(target, vm, outcome);
  return { snapshotId: snapshot.id };
}

async function remove(input: HandlerInput): Promise<JobResult> {
  const { core, sync, target, vm, ctx, job } = input;
  const snapshot = await snapshotOf(input);
  const params = job.params as DeleteParams;
  const before = await core.store.snapshots.listByVm(vm.id, { includeGone: false });
  const doomed = [snapshot.id, ...(params.children ? descendantIds(before, snapshot.id) : [])];
  // Provider first, then the rows: a failure never leaves a row saying "gone" for a snapshot that
  // is still there.
  await core.call(target.provider, 'deleteSnapshot', () =>
    target.provider.deleteSnapshot(vm.providerVmId, snapshot.providerRef, { children: params.children }, ctx),
  );
  await sync.record(vm, { kind: 'deleted', providerRef: snapshot.providerRef, children: params.children });
  const gone: string[] = [];
  for (const id of doomed) if ((await core.store.snapshots.get(id))?.state === 'gone') gone.push(id);
  return { snapshotId: snapshot.id, snapshotIds: gone };
}

/**
 * Every snapshot the VM has now: the hypervisor's own operation when it has one, else each root
 * with its children, one after the other (a retry deletes what is left; an empty VM is success).
 * Then a full re-read of the VM: afterwards it has no snapshots, whatever the rows said before.
 */
async function removeAll(input: HandlerInput): Promise<JobResult> {
  const { core, sync, target, vm, ctx } = input;
  const { provider } = target;
  const before = await core.store.snapshots.listByVm(vm.id, { includeGone: false });
  if (provider.deleteAllSnapshots) {
    const native = provider.deleteAllSnapshots.bind(provider);
    await core.call(provider, 'deleteAllSnapshots', () => native(vm.providerVmId, ctx));
  } else {
    if (!provider.capabilities().deleteChildren) throw cannot(target, 'remove all snapshots of a VM');
    const present = await core.call(provider, 'listSnapshots', () => provider.listSnapshots(vm.providerVmId, ctx));
    const roots = present.filter((s) => s.parentRef === null || !present.some((p) => p.providerRef === s.parentRef));
    for (const [i, root] of roots.entries()) {
      ctx.progress(Math.round((i / roots.length) * 100), `deleting snapshot '${root.name}' and its children (${i + 1} of ${roots.length})`);
      await core.call(provider, 'deleteSnapshot', () => provider.deleteSnapshot(vm.providerVmId, root.providerRef, { children: true }, ctx));
    }
  }
  await sync.syncVm(target, vm);
  const gone: string[] = [];
  for (const s of before) if ((await core.store.snapshots.get(s.id))?.state === 'gone') gone.push(s.id);
  return { snapshotIds: gone, message: `removed ${gone.length} snapshot(s)` };
}

async function consolidate(input: HandlerInput): Promise<JobResult> {
  const { core, sync, target, vm, ctx } = input;
  const consolidateVm = target.provider.consolidate?.bind(target.provider);
  if (!consolidateVm) throw cannot(target, 'consolidate disks');
  const report = await core.call(target.provider, 'consolidate', () => consolidateVm(vm.providerVmId, ctx));
  await sync.syncVm(target, vm);
  await sync.syncInventory(target).catch((err: unknown) => ctx.log.warn({ err: String(err) }, 'inventory refresh after consolidate failed'));
  return { message: report.message };
}

const cannot = (target: BoundTarget, what: string) =>
  new SnapvisorError('unsupported', 'SNAPVISOR_ERR_UNSUPPORTED', `target '${target.spec.name}' cannot ${what}`);
