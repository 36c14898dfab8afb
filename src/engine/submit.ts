/**
 * Turns a JobRequest into a queued job: validate everything against the store and the target's
 * capabilities first (no row exists for a refused request), then insert the job and its
 * idempotency key in one transaction.
 */
import { SNAPSHOT_MODES, createOptionProblems, snapshotTextProblems } from '../../providers/contract.ts';
import { planConsolidation } from '../domain/consolidation.ts';
import { SnapvisorError, notFound } from '../domain/errors.ts';
import type { ConsolidateParams, CreateParams, DeleteParams, Job, JobParams, RevertParams, Snapshot, Vm } from '../domain/types.ts';
import type { NewJob } from '../store/index.ts';
import type { JobRequest, SubmitMeta, SubmitResult } from './api.ts';
import type { BoundTarget, Core } from './core.ts';

const idempotencyReused = () =>
  new SnapvisorError(
    'invalid',
    'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED',
    'this Idempotency-Key was already used with a different request',
  );

/**
 * What a client refused by the per-token cap is told to wait. A place frees as soon as one of its
 * jobs starts, and how long that takes cannot be foretold honestly (a local snapshot takes a
 * second, a cloud copy minutes, and other tokens' jobs take turns): a fixed, short wait, since a
 * refusal costs the daemon one indexed count and no write.
 */
export const QUEUE_FULL_RETRY_AFTER_MS = 5_000;

const queueFull = (queued: number, limit: number) =>
  new SnapvisorError(
    'throttled',
    'SNAPVISOR_ERR_QUEUE_FULL',
    `this token already has ${queued} queued jobs, the most allowed (limits.queuedPerToken: ${limit}); retry once some have started`,
    { retryAfterMs: QUEUE_FULL_RETRY_AFTER_MS, extra: { queued, limit } },
  );

export async function submitJob(core: Core, request: JobRequest, meta: SubmitMeta): Promise<SubmitResult> {
  const { store } = core;
  // A replay is answered before validation: the first request may have changed what validation sees
  // (a deleted snapshot is gone now), and the client must still get its first job back.
  if (meta.idempotencyKey !== undefined) {
    const prior = await store.idempotency.find(meta.principal, meta.idempotencyKey);
    if (prior) {
      if (prior.requestHash !== meta.requestHash) throw idempotencyReused();
      const job = await store.jobs.get(prior.jobId);
      if (job) return { job, replayed: true };
    }
  }

  const draft = await validate(core, request);
  const job: NewJob = {
    id: core.newId(),
    kind: request.kind,
    targetId: draft.target.row.id,
    vmId: draft.vm.id,
    snapshotId: draft.snapshot?.id ?? null,
    params: draft.params,
    maxAttempts: core.settings.maxAttempts,
    requestedBy: meta.principal,
    createdAt: core.iso(),
    ...(meta.policy ? { policyId: meta.policy.policyId, policyRunId: meta.policy.runId } : {}),
    ...(draft.answered ? { state: 'succeeded' as const, result: draft.answered } : {}),
  };
  const outcome = await store.jobs.submit(
    job,
    meta.idempotencyKey === undefined ? undefined : { principal: meta.principal, key: meta.idempotencyKey, requestHash: meta.requestHash },
    { maxQueued: core.settings.maxQueuedPerPrincipal },
  );
  if (outcome.outcome === 'key-reused') throw idempotencyReused();
  if (outcome.outcome === 'queue-full') {
    core.metrics.queueFullRefusals.inc({ principal: meta.principal });
    throw queueFull(outcome.queued, core.settings.maxQueuedPerPrincipal);
  }
  if (outcome.outcome === 'created') {
    core.events.emit({ type: 'job', job: outcome.job });
    if (outcome.job.state === 'succeeded') core.metrics.jobsFinished.inc({ kind: outcome.job.kind, state: 'succeeded' });
  }
  return { job: outcome.job, replayed: outcome.outcome === 'replayed' };
}

/** The request that asks again for what `job` asked: its kind, VM, snapshot and params. */
export function requestOf(job: Job): JobRequest {
  switch (job.kind) {
    case 'snapshot.create': {
      const p = job.params as CreateParams;
      return { kind: job.kind, vmId: job.vmId, name: p.name, description: p.description, mode: p.mode, ...(p.options === undefined ? {} : { options: p.options }) };
    }
    case 'snapshot.revert':
      return { kind: job.kind, snapshotId: (job.params as RevertParams).snapshotId };
    case 'snapshot.delete': {
      const p = job.params as DeleteParams;
      return { kind: job.kind, snapshotId: p.snapshotId, children: p.children };
    }
    case 'snapshot.delete-all':
      return { kind: job.kind, vmId: job.vmId };
    case 'vm.consolidate':
      return { kind: job.kind, vmId: job.vmId, dryRun: (job.params as ConsolidateParams).dryRun };
  }
}

export interface Draft {
  target: BoundTarget;
  vm: Vm;
  snapshot?: Snapshot;
  params: JobParams;
  /** Set when the request is answered at submit time (consolidate dry run). */
  answered?: { message: string };
}

export async function validate(core: Core, request: JobRequest): Promise<Draft> {
  switch (request.kind) {
    case 'snapshot.create': {
      const { vm, target } = await liveVm(core, request.vmId);
      const caps = target.provider.capabilities();
      if (!(SNAPSHOT_MODES as readonly string[]).includes(request.mode)) {
        throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_MODE_INVALID', `unknown snapshot mode '${String(request.mode)}'`);
      }
      const support = caps.modes[request.mode];
      if (!support.supported) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_MODE_UNSUPPORTED', `mode '${request.mode}' is not supported by target '${target.spec.name}': ${support.reason}`, {
          extra: { mode: request.mode, target: target.spec.name, reason: support.reason },
        });
      }
      if (request.name.trim() === '') throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_NAME_EMPTY', 'snapshot name must not be empty');
      const bytes = Buffer.byteLength(request.name, 'utf8');
      if (bytes > caps.limits.maxNameBytes) {
        throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_NAME_TOO_LONG', `snapshot name is ${bytes} bytes; target '${target.spec.name}' allows ${caps.limits.maxNameBytes}`, {
          extra: { maxNameBytes: caps.limits.maxNameBytes },
        });
      }
      // The target's own rules, declared as data (the adapter checks the same ones again).
      const problems = snapshotTextProblems(caps.limits, { name: request.name, description: request.description });
      if (problems.length > 0) {
        throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_NAME_INVALID', `target '${target.spec.name}' cannot take this snapshot: ${problems.join('; ')}`, {
          extra: { problems },
        });
      }
      // No RAM to save: refused before a job exists rather than failing on the hypervisor (or, worse,
      // being taken without memory). The stored state may be stale; the provider checks again.
      if (request.mode === 'memory' && vm.powerState === 'off') {
        throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_VM_POWERED_OFF', `a memory snapshot needs a running VM; VM '${vm.name}' is powered off (use mode 'offline' or 'crash')`, {
          extra: { powerState: vm.powerState },
        });
      }
      if (request.description !== '' && !caps.descriptions) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_DESCRIPTION_UNSUPPORTED', `target '${target.spec.name}' does not keep snapshot descriptions`);
      }
      const optionProblems = createOptionProblems(caps.createOptions, request.options ?? {});
      if (optionProblems.length > 0) {
        throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_OPTION_INVALID', `target '${target.spec.name}' cannot take this snapshot: ${optionProblems.join('; ')}`, {
          extra: { problems: optionProblems },
        });
      }
      const max = caps.limits.maxSnapshotsPerVm;
      if (max !== undefined && (await core.store.snapshots.listByVm(vm.id, { includeGone: false })).length >= max) {
        throw new SnapvisorError('quota', 'SNAPVISOR_ERR_SNAPSHOT_LIMIT', `VM already has the ${max} snapshots target '${target.spec.name}' allows`);
      }
      const options = request.options !== undefined && Object.keys(request.options).length > 0 ? { options: request.options } : {};
      return { target, vm, params: { name: request.name, description: request.description, mode: request.mode, ...options } };
    }
    case 'snapshot.revert': {
      const { snapshot, vm, target } = await liveSnapshot(core, request.snapshotId);
      const caps = target.provider.capabilities();
      if (!caps.revert) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_REVERT_UNSUPPORTED', `target '${target.spec.name}' cannot revert to a snapshot`);
      }
      // A snapshot whose mode is recorded and declared unrevertable is refused here; one of unknown
      // mode (made outside Snapvisor) is left to the provider, which refuses it the same way.
      const modeSupport = snapshot.mode === null ? undefined : caps.modes[snapshot.mode];
      if (modeSupport?.supported && modeSupport.revertRefused !== undefined) {
        throw new SnapvisorError(
          'unsupported',
          'SNAPVISOR_ERR_REVERT_UNSUPPORTED',
          `target '${target.spec.name}' cannot revert to a '${snapshot.mode}' snapshot: ${modeSupport.revertRefused}`,
          { extra: { mode: snapshot.mode, reason: modeSupport.revertRefused } },
        );
      }
      return { target, vm, snapshot, params: { snapshotId: snapshot.id } };
    }
    case 'snapshot.delete': {
      const { snapshot, vm, target } = await liveSnapshot(core, request.snapshotId);
      if (request.children && !target.provider.capabilities().deleteChildren) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_DELETE_CHILDREN_UNSUPPORTED', `target '${target.spec.name}' cannot delete a snapshot with its children in one request`);
      }
      return { target, vm, snapshot, params: { snapshotId: snapshot.id, children: request.children } };
    }
    case 'snapshot.delete-all': {
      const { vm, target } = await liveVm(core, request.vmId);
      if (!target.provider.capabilities().deleteAll) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_DELETE_ALL_UNSUPPORTED', `target '${target.spec.name}' cannot remove all snapshots of a VM`);
      }
      return { target, vm, params: { all: true } };
    }
    case 'vm.consolidate': {
      const { vm, target } = await liveVm(core, request.vmId);
      const caps = target.provider.capabilities();
      if (!caps.consolidate) {
        throw new SnapvisorError('unsupported', 'SNAPVISOR_ERR_CONSOLIDATE_UNSUPPORTED', `target '${target.spec.name}' cannot consolidate disks`);
      }
      const params = { dryRun: request.dryRun };
      if (!request.dryRun) return { target, vm, params };
      return { target, vm, params, answered: { message: planConsolidation(vm, caps).message } };
    }
    default: {
      const kind: never = request;
      throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_JOB_KIND_INVALID', `unknown job kind '${String((kind as { kind: unknown }).kind)}'`);
    }
  }
}

async function liveVm(core: Core, vmId: string): Promise<{ vm: Vm; target: BoundTarget }> {
  const vm = await core.store.vms.get(vmId);
  if (!vm) throw notFound('vm', vmId);
  if (vm.goneAt !== null) {
    throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_VM_GONE', `VM '${vmId}' is no longer on its hypervisor (gone since ${vm.goneAt})`);
  }
  return { vm, target: await core.targetById(vm.targetId) };
}

async function liveSnapshot(core: Core, snapshotId: string): Promise<{ snapshot: Snapshot; vm: Vm; target: BoundTarget }> {
  const snapshot = await core.store.snapshots.get(snapshotId);
  if (!snapshot) throw notFound('snapshot', snapshotId);
  if (snapshot.state === 'gone') {
    throw new SnapvisorError('not_found', 'SNAPVISOR_ERR_SNAPSHOT_GONE', `snapshot '${snapshotId}' is gone (since ${snapshot.deletedAt ?? 'unknown'})`);
  }
  const { vm, target } = await liveVm(core, snapshot.vmId);
  return { snapshot, vm, target };
}
