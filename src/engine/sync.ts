/**
 * The reconciler: makes the store match the hypervisors. Per target: health check, VM inventory,
 * then each VM's snapshot list (one transaction per VM). Calls for one VM are serialised so a
 * slow periodic listing can never overwrite a newer one written after a job.
 */
import { jobIdFromMarker, type ProviderSnapshot, type RevertOutcome, type VmInfo } from '../../providers/contract.ts';
import { reconcileVms } from '../domain/inventory.ts';
import { listingAfter, type SucceededChange } from '../domain/listing-after.ts';
import { reconcileSnapshots, type SnapshotPlan } from '../domain/reconcile.ts';
import type { Snapshot, Vm } from '../domain/types.ts';
import type { BoundTarget, Core } from './core.ts';

export interface Sync {
  /**
   * Health, inventory and every VM's snapshots of one target. Never throws for a sick target: the
   * outcome says whether its inventory was read (ok; a VM whose snapshot list failed does not
   * change that) or why not.
   */
  syncTarget(t: BoundTarget, options?: { skipVm?: (vmId: string) => boolean }): Promise<SyncOutcome>;
  /** listVms of the target → VM rows; returns what the provider answered. */
  syncInventory(t: BoundTarget): Promise<VmInfo[]>;
  /** listSnapshots of one VM → snapshot rows. Throws the provider's error. */
  syncVm(t: BoundTarget, vm: Vm): Promise<SnapshotPlan>;
  /**
   * A job's change, as the provider answered it → snapshot rows, without asking the provider again
   * (domain/listing-after.ts). Serialised with syncVm, so neither overwrites a newer state.
   */
  record(vm: Vm, change: SucceededChange): Promise<SnapshotPlan>;
  /** The power state a job left one VM in (a revert), as the provider answered it: that VM's row only. */
  recordPower(t: BoundTarget, vm: Vm, outcome: RevertOutcome): Promise<void>;
}

export type SyncOutcome = { ok: true } | { ok: false; reason: string };

/** How often a VM's listing is read and planned again when another replica keeps changing its rows. */
const STALE_RETRIES = 5;

export function createSync(core: Core): Sync {
  const vmLocks = new Map<string, Promise<unknown>>();
  const serialised = <T>(vmId: string, fn: () => Promise<T>): Promise<T> => {
    const prev = vmLocks.get(vmId) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    vmLocks.set(vmId, tail);
    void tail.then(() => {
      if (vmLocks.get(vmId) === tail) vmLocks.delete(vmId);
    });
    return next;
  };

  const sync: Sync = {
    async syncTarget(t, options = {}) {
      const log = core.log.child({ target: t.spec.name });
      let revisionsBefore = new Map<string, number | null>();
      const carried = new Map<string, ProviderSnapshot[]>();
      try {
        const health = await core.call(t.provider, 'check', () => t.provider.check(core.backgroundContext(log)));
        await core.store.targets.setHealth(t.row.id, {
          healthy: health.reachable && health.authOk !== false,
          message: health.message ?? null,
          version: health.version ?? null,
          checkedAt: core.iso(),
        });
        if (!health.reachable || health.authOk === false) {
          const why = health.reachable ? 'the target refused the credentials' : 'the target is unreachable';
          return { ok: false, reason: health.message ? `${why}: ${health.message}` : why };
        }
        revisionsBefore = await snapshotRevisions(t);
        for (const v of await sync.syncInventory(t)) if (v.snapshots) carried.set(v.providerVmId, v.snapshots);
      } catch (err) {
        // An unreachable target is shown as unhealthy; it never takes the daemon down.
        log.warn({ err: errSummary(err) }, 'target sync failed');
        await core.store.targets.setHealth(t.row.id, {
          healthy: false,
          message: err instanceof Error ? err.message : 'sync failed',
          version: null,
          checkedAt: core.iso(),
        });
        return { ok: false, reason: `inventory failed: ${err instanceof Error ? err.message : 'sync failed'}` };
      }
      const vms = await core.store.vms.listByTarget(t.row.id);
      for (const vm of vms) {
        if (vm.goneAt !== null || options.skipVm?.(vm.id) || core.lifecycle.signal.aborted) continue;
        try {
          const listing = carried.get(vm.providerVmId);
          if (listing) await applyCarried(vm, listing, revisionsBefore.get(vm.id) ?? null);
          else await sync.syncVm(t, vm);
        } catch (err) {
          log.warn({ vmId: vm.id, err: errSummary(err) }, 'snapshot sync of a VM failed');
        }
      }
      return { ok: true };
    },

    async syncInventory(t) {
      const log = core.log.child({ target: t.spec.name });
      const observed = await core.call(t.provider, 'listVms', () => t.provider.listVms(core.backgroundContext(log)));
      const stored = await core.store.vms.listByTarget(t.row.id);
      const plan = await applyVms(t, stored, observed);
      if (plan.inserts.length || plan.gone.length) {
        log.info({ added: plan.inserts.length, gone: plan.gone.length }, 'VM inventory changed');
      }
      return observed;
    },

    async recordPower(t, vm, outcome) {
      const current = (await core.store.vms.get(vm.id)) ?? vm;
      const { providerVmId, name, consolidationNeeded } = current;
      // Reconciled against this VM alone: nothing else is marked gone.
      await applyVms(t, [current], [{ providerVmId, name, consolidationNeeded, ...outcome }]);
    },

    syncVm(t, vm) {
      return serialised(vm.id, () =>
        untilCurrent(vm, async (revision) => {
          const log = core.log.child({ target: t.spec.name, vmId: vm.id });
          const observed = await core.call(t.provider, 'listSnapshots', () =>
            t.provider.listSnapshots(vm.providerVmId, core.backgroundContext(log)),
          );
          const stored = await core.store.snapshots.listByVm(vm.id, { includeGone: true });
          return applyObserved(vm, stored, observed, revision);
        }),
      );
    },

    record(vm, change) {
      return serialised(vm.id, () =>
        untilCurrent(vm, async (revision) => {
          // Present rows only (a VM's history of gone rows grows without bound), plus the one gone row
          // a created snapshot may revive (same ref, e.g. a snapshot id the hypervisor reused).
          const stored = await core.store.snapshots.listByVm(vm.id, { includeGone: false });
          if (change.kind === 'created' && !stored.some((s) => s.providerRef === change.snapshot.providerRef)) {
            const earlier = await core.store.snapshots.getByRef(vm.id, change.snapshot.providerRef);
            if (earlier) stored.push(earlier);
          }
          return applyObserved(vm, stored, listingAfter(stored, change), revision);
        }),
      );
    },
  };

  async function applyVms(t: BoundTarget, stored: Vm[], observed: VmInfo[]) {
    const plan = reconcileVms({ targetId: t.row.id, stored, observed, now: core.iso(), newId: core.newId });
    await core.store.vms.apply(plan);
    for (const vm of plan.inserts) core.events.emit({ type: 'vm', action: 'created', vm });
    for (const c of plan.updates) if (c.meaningful) core.events.emit({ type: 'vm', action: 'updated', vm: c.after });
    for (const c of plan.gone) core.events.emit({ type: 'vm', action: 'gone', vm: c.after });
    return plan;
  }

  /** Each stored VM's snapshot revision, read before an inventory pass that carries snapshot lists. */
  async function snapshotRevisions(t: BoundTarget): Promise<Map<string, number | null>> {
    const out = new Map<string, number | null>();
    for (const vm of await core.store.vms.listByTarget(t.row.id)) out.set(vm.id, await core.store.snapshots.revision(vm.id));
    return out;
  }

  /**
   * A snapshot list read with the inventory, i.e. before this VM's lock was taken: a job that
   * recorded a change since then (the revision moved) knows better — leave the VM to the next pass.
   */
  function applyCarried(vm: Vm, listing: ProviderSnapshot[], revisionBefore: number | null): Promise<SnapshotPlan | null> {
    return serialised(vm.id, async () => {
      const now = await core.store.snapshots.revision(vm.id);
      if (revisionBefore !== null && now !== revisionBefore) return null;
      const stored = await core.store.snapshots.listByVm(vm.id, { includeGone: true });
      return applyObserved(vm, stored, listing, now);
    });
  }

  /**
   * Runs `attempt` with the VM's snapshot revision read first, again while its plan finds the
   * revision moved (null): the in-process lock above serialises this process's calls for one VM,
   * the revision check those of other replicas sharing the database (a job recorded on one while
   * the leader's periodic sync listed the VM on another).
   */
  async function untilCurrent(vm: Vm, attempt: (revision: number | null) => Promise<SnapshotPlan | null>): Promise<SnapshotPlan> {
    for (let i = 1; ; i++) {
      const plan = await attempt(await core.store.snapshots.revision(vm.id));
      if (plan !== null) return plan;
      if (i >= STALE_RETRIES) throw new Error(`the snapshot rows of VM ${vm.id} changed under each of ${STALE_RETRIES} attempts to record its listing`);
      core.log.debug({ vmId: vm.id, attempt: i }, 'snapshot rows changed by another replica meanwhile: read again');
    }
  }

  /** The plan applied, or null when the VM's revision is no longer `revision` (nothing written). */
  async function applyObserved(vm: Vm, stored: Snapshot[], observed: ProviderSnapshot[], revision: number | null): Promise<SnapshotPlan | null> {
    // Only markers whose job can change the plan: a snapshot not stored yet (owner, job, mode), or a
    // stored one still shown as external or without a mode. A row already recorded as Snapvisor's,
    // with its mode, needs no lookup — after a job that is every row but the new one.
    const storedByRef = new Map(stored.map((s) => [s.providerRef, s]));
    const markerJobs: string[] = [];
    for (const o of observed) {
      const id = jobIdFromMarker(o.marker);
      if (id === null) continue;
      const existing = storedByRef.get(o.providerRef);
      if (!existing || existing.owner === 'external' || existing.mode === null) markerJobs.push(id);
    }
    const knownJobs = await core.store.jobs.createModes(markerJobs);
    const plan = reconcileSnapshots({ vmId: vm.id, stored, observed, knownJobs, now: core.iso(), newId: core.newId });
    if ((plan.inserts.length || plan.updates.length || plan.gone.length) && !(await core.store.snapshots.apply(plan, { vmId: vm.id, expectedRevision: revision }))) return null;
    for (const snapshot of plan.inserts) core.events.emit({ type: 'snapshot', action: 'created', snapshot });
    for (const c of plan.updates) core.events.emit({ type: 'snapshot', action: 'updated', snapshot: c.after });
    for (const c of plan.gone) core.events.emit({ type: 'snapshot', action: 'gone', snapshot: c.after });
    return plan;
  }

  return sync;
}

/** Loggable summary of an error: kind and message, never a cause chain that may hold raw output. */
export function errSummary(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const e = err as Error & { kind?: unknown; code?: unknown };
    return { name: e.name, message: e.message, ...(e.kind ? { kind: e.kind } : {}), ...(e.code ? { code: e.code } : {}) };
  }
  return { message: String(err) };
}
