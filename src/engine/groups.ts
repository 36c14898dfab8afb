/**
 * Snapshot groups: one request, a create job per VM across targets and providers. Each member is
 * validated exactly as a single create is (submit.ts `validate`) before anything is stored; the
 * group and its jobs are then written in one transaction and run through the ordinary queue (the
 * claim's per-target limits and fair order apply). The group's state is derived from its members'
 * jobs, so recovery needs nothing of its own: a group is as done as its jobs are.
 */
import { Counter, Histogram } from 'prom-client';
import { SnapvisorError, notFound } from '../domain/errors.ts';
import { retryable } from '../domain/group-state.ts';
import { GROUP_RESULTS, type GroupResult, type SnapshotGroup } from '../domain/group.ts';
import type { Selector } from '../domain/policy.ts';
import { isEmptySelector, namePatternProblem, selectorMatcher } from '../domain/selector.ts';
import type { Job, Vm } from '../domain/types.ts';
import { InvalidCursorError, type NewGroupMember, type NewJob } from '../store/index.ts';
import type { EngineApi, GroupActionResult, GroupRequest, JobRequest, Page } from './api.ts';
import type { Core } from './core.ts';
import { QUEUE_FULL_RETRY_AFTER_MS, validate } from './submit.ts';

/** Most VMs one group may hold (a longer list or a wider selector is refused, not cut). */
export const MAX_GROUP_MEMBERS = 1000;

type GroupMethods = Pick<
  EngineApi,
  'createSnapshotGroup' | 'listSnapshotGroups' | 'getSnapshotGroup' | 'retrySnapshotGroup' | 'revertSnapshotGroup' | 'deleteSnapshotGroup'
>;

export interface Groups extends GroupMethods {
  /** Brings the stored copies of groups left running up to date (their jobs may have ended while the daemon was down). */
  refreshRunning(): Promise<void>;
}

const invalid = (code: string, message: string, extra?: Record<string, unknown>) =>
  new SnapvisorError('invalid', code, message, extra ? { extra } : {});

const conflict = (code: string, message: string, extra?: Record<string, unknown>) =>
  new SnapvisorError('conflict', code, message, extra ? { extra } : {});

/** Refusals of single members, as one error naming every VM refused (the first refusal's kind and code). */
function membersRefused(refusals: Array<{ vm: Vm; target: string; error: SnapvisorError }>): SnapvisorError {
  const first = refusals[0]!;
  const shown = refusals.slice(0, 10).map((r) => `VM '${r.vm.name}' (${r.vm.id}) on target '${r.target}': ${r.error.message}`);
  const more = refusals.length > shown.length ? ` (and ${refusals.length - shown.length} more)` : '';
  return new SnapvisorError(first.error.kind, first.error.code, `the group cannot be taken: ${shown.join('; ')}${more}`, {
    extra: {
      ...first.error.extra,
      members: refusals.map((r) => ({ vmId: r.vm.id, vmName: r.vm.name, target: r.target, code: r.error.code, message: r.error.message })),
    },
  });
}

export function createGroups(core: Core, kick: () => void): Groups {
  const { store } = core;
  const groupsTotal = new Counter({
    name: 'snapvisor_snapshot_groups_total',
    help: 'Snapshot groups that reached a final state, by result (a retried group counts again when it ends again)',
    labelNames: ['result'] as const,
    registers: [core.metrics.registry],
  });
  for (const result of GROUP_RESULTS) groupsTotal.inc({ result }, 0);
  const spread = new Histogram({
    name: 'snapvisor_snapshot_group_spread_seconds',
    help: "Time between the first and the last start of a snapshot group's create jobs, observed when the group first ends",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [core.metrics.registry],
  });

  /** Re-derives a group from its jobs and counts it when this made it end. */
  const refresh = async (groupId: string) => {
    const r = await store.groups.refresh(groupId);
    if (!r || r.before.state !== 'running' || r.group.state === 'running') return;
    if ((GROUP_RESULTS as readonly string[]).includes(r.group.state)) groupsTotal.inc({ result: r.group.state as GroupResult });
    if (r.before.finishedAt === null && r.group.spreadMs !== null) spread.observe(r.group.spreadMs / 1000);
    core.log.info({ groupId, state: r.group.state, spreadMs: r.group.spreadMs }, 'snapshot group ended');
  };
  // One refresh chain: job events arrive in bursts (a wave of jobs ending together). Local events
  // only: the replica where a member job changed refreshes the group (once, and counts its end once).
  let chain = Promise.resolve();
  core.events.subscribeLocal((event) => {
    if (event.type !== 'job' || event.job.groupId === null) return;
    const groupId = event.job.groupId;
    chain = chain.then(() => refresh(groupId)).catch((err: unknown) => core.log.warn({ groupId, err: (err as Error).message }, 'snapshot group refresh failed'));
  });

  const getGroup = async (groupId: string): Promise<SnapshotGroup> => {
    const group = await store.groups.get(groupId);
    if (!group) throw notFound('snapshot_group', groupId);
    return group;
  };

  /** The VMs a request names, every one present, or the refusal. */
  async function members(request: GroupRequest): Promise<Vm[]> {
    if ((request.vms === undefined) === (request.selector === undefined)) {
      throw invalid('SNAPVISOR_ERR_GROUP_MEMBERS', "give exactly one of 'vms' (a list of VM ids) and 'selector'");
    }
    if (request.vms !== undefined) return listed(request.vms);
    return selected(request.selector!);
  }

  async function listed(ids: readonly string[]): Promise<Vm[]> {
    if (ids.length === 0) throw invalid('SNAPVISOR_ERR_GROUP_EMPTY', "'vms' must name at least one VM");
    const seen = new Set<string>();
    const duplicates = new Set<string>();
    for (const id of ids) (seen.has(id) ? duplicates : seen).add(id);
    if (duplicates.size > 0) {
      throw invalid('SNAPVISOR_ERR_GROUP_DUPLICATE_VMS', `'vms' names these VMs more than once: ${[...duplicates].join(', ')}`, { vms: [...duplicates] });
    }
    if (ids.length > MAX_GROUP_MEMBERS) throw invalid('SNAPVISOR_ERR_GROUP_TOO_LARGE', `a group holds at most ${MAX_GROUP_MEMBERS} VMs; ${ids.length} were named`);
    const found: Vm[] = [];
    const unknown: string[] = [];
    for (const id of ids) {
      const vm = await store.vms.get(id);
      if (vm) found.push(vm);
      else unknown.push(id);
    }
    if (unknown.length > 0) {
      throw new SnapvisorError('not_found', 'SNAPVISOR_ERR_VM_NOT_FOUND', `${unknown.length === 1 ? 'VM' : 'VMs'} not found: ${unknown.slice(0, 20).join(', ')}${unknown.length > 20 ? ` (and ${unknown.length - 20} more)` : ''}`, {
        extra: { vms: unknown },
      });
    }
    return found;
  }

  async function selected(selector: Selector): Promise<Vm[]> {
    if (isEmptySelector(selector)) throw invalid('SNAPVISOR_ERR_SELECTOR_EMPTY', 'the selector names no field: it would match no VM');
    if (selector.namePattern !== undefined) {
      const problem = namePatternProblem(selector.namePattern);
      if (problem !== null) throw invalid('SNAPVISOR_ERR_SELECTOR_INVALID', `selector.namePattern: ${problem}`);
    }
    for (const name of selector.targets ?? []) await core.targetByName(name); // unknown target → not_found naming it
    if (selector.vms !== undefined) await listed(selector.vms);
    const matches = selectorMatcher(selector);
    const out: Vm[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.vms.list({ includeGone: false, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      for (const vm of page.items) if (matches(vm)) out.push(vm);
      cursor = page.next ?? undefined;
    } while (cursor !== undefined);
    if (out.length === 0) throw invalid('SNAPVISOR_ERR_GROUP_EMPTY', 'the selector matches no VM');
    if (out.length > MAX_GROUP_MEMBERS) throw invalid('SNAPVISOR_ERR_GROUP_TOO_LARGE', `a group holds at most ${MAX_GROUP_MEMBERS} VMs; the selector matches ${out.length}`);
    return out;
  }

  /**
   * Validates one job per VM as `submit` would; every refusal is collected and thrown together, so
   * nothing is stored unless every member can be done as asked (no silent downgrade of a mode).
   */
  async function drafts(vms: readonly Vm[], requestFor: (vm: Vm) => JobRequest, principal: string, createdAt: string): Promise<Array<{ vm: Vm; target: string; job: NewJob }>> {
    const out: Array<{ vm: Vm; target: string; job: NewJob }> = [];
    const refusals: Array<{ vm: Vm; target: string; error: SnapvisorError }> = [];
    for (const vm of vms) {
      const request = requestFor(vm);
      const target = (await core.targetById(vm.targetId)).spec.name;
      try {
        const draft = await validate(core, request);
        out.push({
          vm,
          target,
          job: {
            id: core.newId(),
            kind: request.kind,
            targetId: draft.target.row.id,
            vmId: vm.id,
            snapshotId: draft.snapshot?.id ?? null,
            params: draft.params,
            maxAttempts: core.settings.maxAttempts,
            requestedBy: principal,
            createdAt,
          },
        });
      } catch (err) {
        if (!(err instanceof SnapvisorError)) throw err;
        refusals.push({ vm, target, error: err });
      }
    }
    if (refusals.length > 0) throw membersRefused(refusals);
    return out;
  }

  const announce = async (jobIds: readonly string[]): Promise<Job[]> => {
    const jobs: Job[] = [];
    for (const id of jobIds) {
      const job = await store.jobs.get(id);
      if (!job) continue;
      jobs.push(job);
      core.events.emit({ type: 'job', job });
    }
    kick();
    return jobs;
  };

  const vmOf = async (vmId: string): Promise<Vm> => {
    const vm = await store.vms.get(vmId);
    if (!vm) throw notFound('vm', vmId);
    return vm;
  };

  return {
    async createSnapshotGroup(request, meta) {
      const principal = meta.principal;
      const key = meta.idempotencyKey;
      // A replay is answered before validation, as for single jobs (what validation sees may have changed).
      if (key !== undefined) {
        const prior = await store.idempotency.find(principal, key);
        if (prior) {
          const job = await store.jobs.get(prior.jobId);
          if (prior.requestHash !== meta.requestHash || !job || job.groupId === null) {
            throw invalid('SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used with a different request');
          }
          return { group: await getGroup(job.groupId), replayed: true };
        }
      }
      const vms = await members(request);
      const createdAt = core.iso();
      const planned = await drafts(
        vms,
        (vm) => ({ kind: 'snapshot.create', vmId: vm.id, name: request.name, description: request.description, mode: request.mode }),
        principal,
        createdAt,
      );
      const groupId = core.newId();
      const rows: NewGroupMember[] = planned.map((p) => ({ vmId: p.vm.id, target: p.target, job: p.job }));
      const outcome = await store.groups.create(
        { id: groupId, name: request.name, description: request.description, mode: request.mode, selector: request.selector ?? null, createdAt, requestedBy: principal },
        rows,
        key === undefined ? undefined : { principal, key, requestHash: meta.requestHash },
        { maxQueued: core.settings.maxQueuedPerPrincipal },
      );
      if (outcome.outcome === 'key-reused') throw invalid('SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used with a different request');
      if (outcome.outcome === 'queue-full') {
        core.metrics.queueFullRefusals.inc({ principal });
        const limit = core.settings.maxQueuedPerPrincipal;
        throw new SnapvisorError(
          'throttled',
          'SNAPVISOR_ERR_QUEUE_FULL',
          `this token has ${outcome.queued} queued jobs; a group of ${rows.length} would pass the most allowed (limits.queuedPerToken: ${limit}); retry once some have started`,
          { retryAfterMs: QUEUE_FULL_RETRY_AFTER_MS, extra: { queued: outcome.queued, limit } },
        );
      }
      if (outcome.outcome === 'replayed') return { group: await getGroup(outcome.groupId), replayed: true };
      core.log.info({ groupId, principal, members: rows.length, mode: request.mode }, 'snapshot group created');
      await announce(rows.map((r) => r.job.id));
      return { group: await getGroup(groupId), replayed: false };
    },

    async listSnapshotGroups(filter): Promise<Page<SnapshotGroup>> {
      try {
        return await store.groups.list({ limit: filter.limit, ...(filter.cursor === undefined ? {} : { cursor: filter.cursor }) });
      } catch (err) {
        if (err instanceof InvalidCursorError) throw invalid('SNAPVISOR_ERR_INVALID_CURSOR', 'the cursor is not valid');
        throw err;
      }
    },

    getSnapshotGroup: getGroup,

    async retrySnapshotGroup(groupId, principal): Promise<GroupActionResult> {
      const group = await getGroup(groupId);
      if (group.state === 'deleted') throw conflict('SNAPVISOR_ERR_GROUP_DELETED', `snapshot group '${groupId}' was deleted`);
      const again = retryable(group.members);
      if (again.length === 0) {
        throw conflict('SNAPVISOR_ERR_GROUP_NOTHING_TO_RETRY', `snapshot group '${groupId}' has no failed or cancelled member to retry (state ${group.state})`, { state: group.state });
      }
      const vms = await Promise.all(again.map((m) => vmOf(m.vmId)));
      const planned = await drafts(
        vms,
        (vm) => ({ kind: 'snapshot.create', vmId: vm.id, name: group.name, description: group.description, mode: group.mode }),
        principal,
        core.iso(),
      );
      await store.groups.retry(groupId, planned.map((p) => p.job));
      core.log.info({ groupId, principal, members: planned.length }, 'snapshot group retried');
      const jobs = await announce(planned.map((p) => p.job.id));
      return { group: await getGroup(groupId), jobs };
    },

    async revertSnapshotGroup(groupId, principal): Promise<GroupActionResult> {
      const group = await getGroup(groupId);
      if (group.state === 'deleted') throw conflict('SNAPVISOR_ERR_GROUP_DELETED', `snapshot group '${groupId}' was deleted`);
      const missing = group.members.filter((m) => m.state !== 'succeeded' || m.snapshotId === null);
      if (missing.length > 0) {
        throw conflict(
          'SNAPVISOR_ERR_GROUP_INCOMPLETE',
          `snapshot group '${groupId}' cannot be reverted as a whole: ${missing.length} of ${group.members.length} members have no snapshot (${missing.slice(0, 10).map((m) => `'${m.vmName}'`).join(', ')}); retry it first`,
          { state: group.state, vms: missing.map((m) => m.vmId) },
        );
      }
      const vms = await Promise.all(group.members.map((m) => vmOf(m.vmId)));
      const snapshotOf = new Map(group.members.map((m) => [m.vmId, m.snapshotId!]));
      const planned = await drafts(vms, (vm) => ({ kind: 'snapshot.revert', snapshotId: snapshotOf.get(vm.id)! }), principal, core.iso());
      await store.groups.addJobs(groupId, planned.map((p) => p.job));
      core.log.info({ groupId, principal, members: planned.length }, 'snapshot group revert submitted');
      const jobs = await announce(planned.map((p) => p.job.id));
      return { group: await getGroup(groupId), jobs };
    },

    async deleteSnapshotGroup(groupId, principal): Promise<GroupActionResult> {
      const group = await getGroup(groupId);
      if (group.state === 'deleted') throw conflict('SNAPVISOR_ERR_GROUP_DELETED', `snapshot group '${groupId}' was already deleted`);
      // Deleting while creates still run would leave what they make behind, unlisted.
      if (group.state === 'running') throw conflict('SNAPVISOR_ERR_GROUP_RUNNING', `snapshot group '${groupId}' is still running; cancel its jobs or wait for them`, { state: group.state });
      const made: Array<{ vmId: string; snapshotId: string }> = [];
      for (const m of group.members) {
        if (m.snapshotId === null) continue;
        const snapshot = await store.snapshots.get(m.snapshotId);
        if (snapshot && snapshot.state === 'present') made.push({ vmId: m.vmId, snapshotId: m.snapshotId });
      }
      const vms = await Promise.all(made.map((m) => vmOf(m.vmId)));
      const snapshotOf = new Map(made.map((m) => [m.vmId, m.snapshotId]));
      const planned = await drafts(vms, (vm) => ({ kind: 'snapshot.delete', snapshotId: snapshotOf.get(vm.id)!, children: false }), principal, core.iso());
      await store.groups.addJobs(groupId, planned.map((p) => p.job), { at: core.iso() });
      core.log.info({ groupId, principal, snapshots: planned.length }, 'snapshot group deleted');
      const jobs = await announce(planned.map((p) => p.job.id));
      return { group: await getGroup(groupId), jobs };
    },

    async refreshRunning() {
      for (const id of await store.groups.runningIds()) await refresh(id);
    },
  };
}
