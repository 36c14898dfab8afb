/**
 * Policies in the engine: their CRUD (validated here, so POST and PATCH give the same answers),
 * the dry-run plan, and runs. A run is a persisted record first, then jobs submitted through the
 * engine's own submit (each with an Idempotency-Key derived from the run, so a run resumed after a
 * crash never doubles a job). Retention is planned per VM again, on the store's real state, once
 * that VM's create job has ended: never on the assumption that a create succeeded.
 */
import { Counter } from 'prom-client';
import { SnapvisorError, notFound } from '../domain/errors.ts';
import type { Policy, PolicyRun, PolicyRunKind, PlannedSnapshot } from '../domain/policy.ts';
import { planPolicyRun, type PlanVm, type PolicyPlan } from '../domain/policy-plan.ts';
import { planRetention, retentionProblem } from '../domain/retention-plan.ts';
import { cronProblem, isTimeZone } from '../domain/schedule.ts';
import { isEmptySelector, namePatternProblem, selectorMatcher, type SelectableVm } from '../domain/selector.ts';
import { isFinal, type Job, type Snapshot } from '../domain/types.ts';
import { InvalidCursorError } from '../store/index.ts';
import { SNAPSHOT_MODES } from '../../providers/contract.ts';
import { mapLimit } from '../../providers/shared/map-limit.ts';
import { tellEach } from '../../providers/shared/tell-each.ts';
import type { JobRequest, Page, PolicyInput, PolicyPatch, SubmitMeta, SubmitResult } from './api.ts';
import type { Core } from './core.ts';
import type { PolicyRunPort } from './policy-port.ts';
import { errSummary } from './sync.ts';

export interface Policies extends PolicyRunPort {
  create(input: PolicyInput): Promise<Policy>;
  list(): Promise<Policy[]>;
  get(id: string): Promise<Policy>;
  update(id: string, patch: PolicyPatch): Promise<Policy>;
  delete(id: string): Promise<void>;
  plan(id: string, kind: PolicyRunKind): Promise<PolicyPlan>;
  listRuns(policyId: string, query: { limit: number; cursor?: string }): Promise<Page<PolicyRun>>;
  getRun(policyId: string, runId: string): Promise<PolicyRun>;
  /** At engine start (and when a replica comes to lead): (re)loads what schedulable() answers from, from the store. */
  load(): Promise<void>;
  /**
   * Runs a stopped or crashed daemon (or replica) left `running` go on (their jobs' idempotency
   * keys make that safe, even for a run another live replica still carries); a run already going
   * in this process is not started twice.
   */
  resumeRuns(): Promise<void>;
  /** Another replica created, changed or deleted the policy: read it again from the store. */
  reload(policyId: string): Promise<void>;
  /**
   * Called after every create, change or delete of a policy (the scheduler's refresh()); origin
   * 'remote' when reload() heard of it from another replica.
   */
  onChange(listener: (change: { policyId: string; origin: 'local' | 'remote' }) => void): void;
  /** The engine is stopping: no new run starts, and runs stop waiting (they stay `running`, resumed at the next start). */
  stop(): void;
  /**
   * The strictest maxChainDepth of the enabled policies selecting the VM, null when none limits it:
   * a chain deeper than that is drift (GET /v1/drift), as a consolidate run would see it.
   */
  maxChainDepthFor(vm: SelectableVm): number | null;
}

const invalid = (field: string, message: string) =>
  new SnapvisorError('invalid', 'SNAPVISOR_ERR_POLICY_INVALID', `${field}: ${message}`, { extra: { field } });

/** Why a policy cannot be stored, naming the field (the API answers 400 with it). */
export function policyProblem(p: Policy): SnapvisorError | null {
  if (p.name.trim() === '') return invalid('name', 'must not be empty');
  if (isEmptySelector(p.selector)) return invalid('selector', 'must name at least one of vms, targets, namePattern (an empty selector would match nothing)');
  if (p.selector.namePattern !== undefined) {
    const problem = namePatternProblem(p.selector.namePattern);
    if (problem) return invalid('selector.namePattern', problem);
  }
  const cron = cronProblem(p.schedule);
  if (cron) return invalid('schedule', cron);
  if (p.consolidationSchedule !== null) {
    const problem = cronProblem(p.consolidationSchedule);
    if (problem) return invalid('consolidationSchedule', problem);
  }
  if (!isTimeZone(p.timezone)) return invalid('timezone', `unknown time zone '${p.timezone}' (an IANA name such as Europe/Berlin)`);
  if (!(SNAPSHOT_MODES as readonly string[]).includes(p.mode)) return invalid('mode', `unknown snapshot mode '${String(p.mode)}'`);
  const retention = retentionProblem(p.retention);
  if (retention) {
    // retentionProblem says "keepLast: …": the field inside retention it is about.
    const inner = /^([A-Za-z]+):/.exec(retention)?.[1];
    return invalid(inner ? `retention.${inner}` : 'retention', retention.replace(/^[A-Za-z]+:\s*/, ''));
  }
  if (p.maxChainDepth !== null && (!Number.isInteger(p.maxChainDepth) || p.maxChainDepth < 1)) return invalid('maxChainDepth', 'must be a whole number ≥ 1, or null');
  return null;
}

/** A snapshot as the planners see it. A snapshot Snapvisor made with no hypervisor time is dated when Snapvisor first saw it (just after its create). */
export function plannedSnapshot(s: Snapshot): PlannedSnapshot {
  return {
    id: s.id,
    vmId: s.vmId,
    parentId: s.parentId,
    name: s.name,
    owner: s.owner,
    policyId: s.policyId,
    current: s.current,
    createdAt: s.createdAt ?? (s.owner === 'snapvisor' ? s.firstSeenAt : null),
  };
}

type Submit = (request: JobRequest, meta: SubmitMeta) => Promise<SubmitResult>;

/** What one VM's part of a run came to. */
interface VmOutcome {
  /** Jobs submitted. */
  jobs: number;
  /** Submissions the engine refused (no job). */
  refused: number;
  /** Submitted jobs that did not succeed. */
  failed: number;
  problems: string[];
}

/** succeeded: nothing went wrong; failed: nothing went right; partial: in between. */
export function runResult(outcomes: readonly Pick<VmOutcome, 'jobs' | 'refused' | 'failed'>[]): 'succeeded' | 'partial' | 'failed' {
  const attempted = outcomes.reduce((n, o) => n + o.jobs + o.refused, 0);
  const bad = outcomes.reduce((n, o) => n + o.refused + o.failed, 0);
  if (bad === 0) return 'succeeded';
  return bad >= attempted ? 'failed' : 'partial';
}

export function createPolicies(core: Core, deps: { submit: Submit }): Policies {
  const { store, log: engineLog } = core;
  const log = engineLog.child({ component: 'policies' });
  const runsTotal = new Counter({
    name: 'snapvisor_policy_runs_total',
    help: 'Policy runs by kind, trigger and result (skipped: the previous run of the same policy and kind was still going; duplicate: a start of a slot that already had its run, not run again)',
    labelNames: ['kind', 'trigger', 'result'] as const,
    registers: [core.metrics.registry],
  });

  // One subscription for every run's waits (a run of 10,000 VMs waits on 10,000 jobs at once).
  const waiters = new Map<string, Array<(job: Job | null) => void>>();
  core.events.subscribe((e) => {
    if (e.type !== 'job' || !isFinal(e.job)) return;
    const list = waiters.get(e.job.id);
    if (!list) return;
    waiters.delete(e.job.id);
    for (const wake of list) wake(e.job);
  });
  // Final events of jobs another replica ran may be among those missed: read the waited jobs again.
  core.events.onMissed(() => {
    for (const jobId of [...waiters.keys()]) {
      store.jobs.get(jobId).then(
        (job) => {
          if (job === null || !isFinal(job)) return;
          const list = waiters.get(jobId);
          waiters.delete(jobId);
          for (const wake of list ?? []) wake(job);
        },
        (err: unknown) => log.warn({ jobId, err: errSummary(err) }, 'could not read a waited job again after missed events'),
      );
    }
  });
  const halt = new AbortController();
  core.lifecycle.signal.addEventListener('abort', () => halt.abort(), { once: true });
  halt.signal.addEventListener(
    'abort',
    () => {
      for (const list of waiters.values()) for (const wake of list) wake(null);
      waiters.clear();
    },
    { once: true },
  );
  /** The job once final; null when the engine stops first (the run then stays `running` for the next start). */
  const untilFinal = async (jobId: string): Promise<Job | null> => {
    if (halt.signal.aborted) return null;
    const woken = new Promise<Job | null>((resolve) => {
      const list = waiters.get(jobId) ?? [];
      list.push(resolve);
      waiters.set(jobId, list);
    });
    // Read after registering: a job that ended in between is final here, one that ends later wakes us.
    const now = await store.jobs.get(jobId);
    if (now === null || isFinal(now)) {
      waiters.delete(jobId);
      return now;
    }
    return woken;
  };

  /** What schedulable() answers from (the scheduler asks synchronously): every policy with its last slots, kept by every write here. */
  const schedule = new Map<string, { policy: Policy; lastScheduledFor: { snapshot: string | null; consolidate: string | null } }>();
  const changeListeners: Array<(change: { policyId: string; origin: 'local' | 'remote' }) => void> = [];
  const changed = (policyId: string, origin: 'local' | 'remote' = 'local') =>
    tellEach(changeListeners, [{ policyId, origin }], (err) => log.warn({ err: errSummary(err) }, 'policy change listener threw'));
  // Compiled selectors, per policy version (drift asks for every VM of a target after each pass).
  const matchers = new WeakMap<Policy, (vm: SelectableVm) => boolean>();
  const matcherOf = (policy: Policy) => {
    let m = matchers.get(policy);
    if (!m) matchers.set(policy, (m = selectorMatcher(policy.selector)));
    return m;
  };
  const cached = (policy: Policy) => {
    const entry = schedule.get(policy.id);
    schedule.set(policy.id, { policy, lastScheduledFor: entry?.lastScheduledFor ?? { snapshot: null, consolidate: null } });
  };

  const requirePolicy = async (id: string) => {
    const p = await store.policies.get(id);
    if (!p) throw notFound('policy', id);
    return p;
  };

  const save = async (p: Policy, op: 'insert' | 'update') => {
    const problem = policyProblem(p);
    if (problem) throw problem;
    const written = await store.policies[op](p);
    if (written.outcome === 'name-taken') {
      throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_POLICY_NAME_TAKEN', `a policy named '${p.name}' already exists`, { extra: { field: 'name' } });
    }
    if (written.outcome === 'not-found') throw notFound('policy', p.id);
    cached(written.policy);
    changed(written.policy.id);
    return written.policy;
  };

  /** The plan on the store's present state; `now` names the snapshots (a resumed run passes its start). */
  const planAt = async (policy: Policy, kind: PolicyRunKind, now: Date): Promise<PolicyPlan> => {
    const matches = selectorMatcher(policy.selector);
    await core.targets();
    const vms: PlanVm[] = [];
    const snapshots = new Map<string, readonly PlannedSnapshot[]>();
    for (let cursor: string | undefined; ; ) {
      const page = await store.vms.list({ includeGone: true, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      for (const vm of page.items) {
        if (!matches({ id: vm.id, name: vm.name, targetName: vm.targetName })) continue;
        const caps = core.boundById(vm.targetId)?.provider.capabilities();
        vms.push({
          id: vm.id,
          name: vm.name,
          targetName: vm.targetName,
          chainDepth: vm.chainDepth,
          consolidationNeeded: vm.consolidationNeeded,
          supportedModes: caps ? SNAPSHOT_MODES.filter((m) => caps.modes[m].supported) : [],
          canConsolidate: caps?.consolidate ?? false,
          // A VM of a target no longer configured cannot be worked on either.
          gone: vm.goneAt !== null || caps === undefined,
        });
        snapshots.set(vm.id, (await store.snapshots.listByVm(vm.id, { includeGone: false })).map(plannedSnapshot));
      }
      if (page.next === null) break;
      cursor = page.next;
    }
    return planPolicyRun({ policy, kind, vms, snapshots, now });
  };

  const metaFor = (policy: Policy, run: PolicyRun, key: string): SubmitMeta => ({
    // The id, not the name: idempotency keys are scoped by principal, and a policy renamed while a
    // run is resumed must still find that run's jobs.
    principal: `policy:${policy.id}`,
    idempotencyKey: key,
    // The key alone identifies the request: a resumed run asks again with the same key.
    requestHash: key,
    policy: { policyId: policy.id, runId: run.id },
  });

  /** Submits and records the job on the run; a refusal is the VM's problem, not the run's end. */
  const submitFor = async (policy: Policy, run: PolicyRun, request: JobRequest, key: string, out: VmOutcome): Promise<Job | null> => {
    try {
      const { job } = await deps.submit(request, metaFor(policy, run, key));
      await store.policies.addRunJob(run.id, job.id);
      out.jobs++;
      return job;
    } catch (err) {
      out.refused++;
      out.problems.push(err instanceof Error ? err.message : String(err));
      log.warn({ runId: run.id, request: request.kind, err: errSummary(err) }, 'policy run: a job was refused');
      return null;
    }
  };

  /** Waits for the job ('stopped' when the engine stopped first); counts a job that did not succeed. */
  const settle = async (job: Job, out: VmOutcome, what: string): Promise<Job | null | 'stopped'> => {
    const done = await untilFinal(job.id);
    if (halt.signal.aborted) return 'stopped';
    if (done === null || done.state !== 'succeeded') {
      out.failed++;
      out.problems.push(`${what}: ${done === null ? 'job no longer recorded' : `${done.state}${done.error ? ` (${done.error.message})` : ''}`}`);
    }
    return done;
  };

  /** One VM of a snapshot run: its create, then retention on what the store really holds. */
  const snapshotVm = async (policy: Policy, run: PolicyRun, vmId: string, create: { name: string } | null, out: VmOutcome): Promise<'stopped' | void> => {
    if (create) {
      const job = await submitFor(
        policy,
        run,
        // No description: some targets keep none (a non-empty one is refused there); the job names its run.
        { kind: 'snapshot.create', vmId, name: create.name, description: '', mode: policy.mode },
        `policy-run:${run.id}:${vmId}:create`,
        out,
      );
      if (job && (await settle(job, out, `create on VM ${vmId}`)) === 'stopped') return 'stopped';
    }
    const present = (await store.snapshots.listByVm(vmId, { includeGone: false })).map(plannedSnapshot);
    const retention = planRetention({ policy, snapshots: present, now: core.now() });
    const deletes: Job[] = [];
    for (const d of retention.delete) {
      const job = await submitFor(policy, run, { kind: 'snapshot.delete', snapshotId: d.id, children: false }, `policy-run:${run.id}:delete:${d.id}`, out);
      if (job) deletes.push(job);
    }
    for (const job of deletes) if ((await settle(job, out, `delete of snapshot ${job.snapshotId ?? ''}`)) === 'stopped') return 'stopped';
  };

  const consolidateVm = async (policy: Policy, run: PolicyRun, vmId: string, out: VmOutcome): Promise<'stopped' | void> => {
    const job = await submitFor(policy, run, { kind: 'vm.consolidate', vmId, dryRun: false }, `policy-run:${run.id}:${vmId}:consolidate`, out);
    if (job && (await settle(job, out, `consolidate of VM ${vmId}`)) === 'stopped') return 'stopped';
  };

  const finish = async (run: PolicyRun, state: 'succeeded' | 'partial' | 'failed', message: string | null) => {
    const ended = await store.policies.finishRun(run.id, state, message, core.iso());
    if (!ended) return;
    runsTotal.inc({ kind: ended.kind, trigger: ended.trigger, result: ended.state });
    log.info({ runId: ended.id, policyId: ended.policyId, kind: ended.kind, state: ended.state, jobs: ended.jobIds.length, message }, 'policy run ended');
    core.events.emit({ type: 'policy-run', run: ended });
  };

  const execute = async (run: PolicyRun, policy: Policy): Promise<void> => {
    // Names come from the run's start, so a resumed run asks for exactly the same creates.
    const plan = await planAt(policy, run.kind, new Date(run.startedAt));
    // The VMs the plan acts on; for a snapshot run, the create to ask for (retention is planned again after it).
    const byVm = new Map<string, { create: { name: string } | null }>();
    const skips: string[] = [];
    for (const step of plan.steps) {
      if (step.action === 'skip') {
        skips.push(`${step.vmName}: ${step.reason}`);
        continue;
      }
      const entry = byVm.get(step.vmId) ?? { create: null };
      if (step.action === 'create') entry.create = { name: step.snapshotName ?? policy.name };
      byVm.set(step.vmId, entry);
    }
    // A bounded number of VMs at a time: the run's jobs share one principal, whose queued jobs are
    // capped (limits.queuedPerToken), and a run of 10,000 VMs must not be refused for most of them.
    const vmsAtOnce = Math.max(1, Math.min(256, Math.floor(core.settings.maxQueuedPerPrincipal / 4)));
    const outcomes = await mapLimit([...byVm], vmsAtOnce, async ([vmId, what]) => {
      const out: VmOutcome = { jobs: 0, refused: 0, failed: 0, problems: [] };
      const ended = run.kind === 'snapshot' ? await snapshotVm(policy, run, vmId, what.create, out) : await consolidateVm(policy, run, vmId, out);
      return { out, stopped: ended === 'stopped' };
    });
    // The engine stopped: the run stays running and the next start resumes it.
    if (halt.signal.aborted || outcomes.some((o) => o.stopped)) return;
    const notes = [...outcomes.flatMap((o) => o.out.problems), ...skips.map((s) => `skipped ${s}`)];
    const message = notes.length ? notes.slice(0, 20).join('; ') + (notes.length > 20 ? `; and ${notes.length - 20} more` : '') : byVm.size === 0 ? 'nothing to do' : null;
    await finish(run, runResult(outcomes.map((o) => o.out)), message);
  };

  /** Runs going in this process (a replica that leads again must not resume its own runs twice). */
  const executing = new Set<string>();
  const launch = (run: PolicyRun, policy: Policy) => {
    executing.add(run.id);
    void execute(run, policy)
      .catch(async (err: unknown) => {
        if (halt.signal.aborted) return;
        log.error({ runId: run.id, err: errSummary(err) }, 'policy run failed');
        await finish(run, 'failed', 'the run could not be carried out (see the daemon log)').catch(() => undefined);
      })
      .finally(() => executing.delete(run.id));
  };

  const policies: Policies = {
    async create(input) {
      const at = core.iso();
      return save(
        {
          id: core.newId(),
          name: input.name,
          selector: input.selector,
          schedule: input.schedule,
          timezone: input.timezone ?? 'UTC',
          mode: input.mode,
          retention: input.retention,
          maxChainDepth: input.maxChainDepth ?? null,
          consolidationSchedule: input.consolidationSchedule ?? null,
          enabled: input.enabled ?? true,
          createdAt: at,
          updatedAt: at,
        },
        'insert',
      );
    },
    list: () => store.policies.list(),
    get: requirePolicy,
    async update(id, patch) {
      const before = await requirePolicy(id);
      const defined = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as PolicyPatch;
      return save({ ...before, ...defined, id, createdAt: before.createdAt, updatedAt: core.iso() }, 'update');
    },
    async delete(id) {
      if (!(await store.policies.delete(id))) throw notFound('policy', id);
      schedule.delete(id);
      changed(id);
    },
    async plan(id, kind) {
      return planAt(await requirePolicy(id), kind, core.now());
    },
    async getRun(policyId, runId) {
      const run = await store.policies.getRun(runId);
      if (!run || run.policyId !== policyId) throw notFound('policy run', runId);
      return run;
    },
    async listRuns(policyId, query) {
      try {
        const page = await store.policies.listRuns(policyId, query);
        // A deleted policy's runs stay readable (history); a policy that never was is not found.
        if (page.items.length === 0 && query.cursor === undefined) await requirePolicy(policyId);
        return page;
      } catch (err) {
        if (err instanceof InvalidCursorError) throw new SnapvisorError('invalid', 'SNAPVISOR_ERR_INVALID_CURSOR', 'the cursor is not valid');
        throw err;
      }
    },

    schedulable() {
      return [...schedule.values()].filter((e) => e.policy.enabled).map((e) => ({ policy: e.policy, lastScheduledFor: { ...e.lastScheduledFor } }));
    },
    async startRun(policyId, kind, trigger, scheduledFor) {
      if (halt.signal.aborted) throw new SnapvisorError('conflict', 'SNAPVISOR_ERR_STOPPING', 'the daemon is stopping');
      const policy = await requirePolicy(policyId);
      const { run, duplicate } = await store.policies.startRun({ id: core.newId(), policyId, kind, trigger, scheduledFor, startedAt: core.iso() });
      const entry = schedule.get(policyId);
      const last = entry?.lastScheduledFor[kind] ?? null;
      if (entry && scheduledFor !== null && (last === null || scheduledFor > last)) entry.lastScheduledFor[kind] = scheduledFor;
      if (duplicate) {
        // Another replica (a leader that has just lost the lock, or the new one) already ran this slot.
        runsTotal.inc({ kind, trigger, result: 'duplicate' });
        log.info({ runId: run.id, policyId, kind, trigger, scheduledFor }, 'policy run not started: this slot already has its run');
        return run;
      }
      core.events.emit({ type: 'policy-run', run });
      if (run.state === 'skipped') {
        runsTotal.inc({ kind, trigger, result: 'skipped' });
        log.warn({ runId: run.id, policyId, kind, trigger, scheduledFor, message: run.message }, 'policy run skipped: the previous one is still going');
        return run;
      }
      log.info({ runId: run.id, policyId, kind, trigger, scheduledFor }, 'policy run started');
      launch(run, policy);
      return run;
    },
    stop: () => halt.abort(),
    onChange: (listener) => void changeListeners.push(listener),
    maxChainDepthFor(vm) {
      let limit: number | null = null;
      for (const { policy } of schedule.values()) {
        if (!policy.enabled || policy.maxChainDepth === null) continue;
        if (limit !== null && policy.maxChainDepth >= limit) continue;
        if (matcherOf(policy)(vm)) limit = policy.maxChainDepth;
      }
      return limit;
    },
    async load() {
      const fresh = new Map<string, { policy: Policy; lastScheduledFor: { snapshot: string | null; consolidate: string | null } }>();
      for (const policy of await store.policies.list()) {
        fresh.set(policy.id, { policy, lastScheduledFor: await store.policies.lastScheduledFor(policy.id) });
      }
      schedule.clear();
      for (const [id, entry] of fresh) schedule.set(id, entry);
    },
    async reload(policyId) {
      const policy = await store.policies.get(policyId);
      if (policy) cached(policy);
      else schedule.delete(policyId);
      changed(policyId, 'remote');
    },
    async resumeRuns() {
      for (const run of await store.policies.runningRuns()) {
        if (executing.has(run.id)) continue;
        const policy = await store.policies.get(run.policyId);
        if (!policy) {
          await finish(run, 'failed', 'the policy was deleted while the run was going');
          continue;
        }
        log.info({ runId: run.id, policyId: run.policyId, kind: run.kind }, 'policy run resumed after a restart');
        launch(run, policy);
      }
    },
  };
  return policies;
}
