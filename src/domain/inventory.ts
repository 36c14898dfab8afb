/**
 * VM inventory reconcile: what the store must change so a target's VM rows match `listVms`.
 * Pure. A VM that vanished gets `goneAt` (its row and snapshots stay for history); one that comes
 * back has `goneAt` cleared.
 */
import type { VmInfo } from '../../providers/contract.ts';
import type { Iso, Vm } from './types.ts';

export type VmFields = Pick<Vm, 'name' | 'powerState' | 'rawPowerState' | 'consolidationNeeded' | 'lastSeenAt' | 'goneAt'>;

export interface VmChange {
  before: Vm;
  after: Vm;
  set: Partial<VmFields>;
  /** False when only lastSeenAt moved (nothing worth an event). */
  meaningful: boolean;
}

export interface VmPlan {
  inserts: Vm[];
  updates: VmChange[];
  gone: VmChange[];
}

export function reconcileVms(input: {
  targetId: string;
  stored: readonly Vm[];
  observed: readonly VmInfo[];
  now: Iso;
  newId: () => string;
}): VmPlan {
  const { targetId, stored, now, newId } = input;
  const byProviderId = new Map(stored.map((v) => [v.providerVmId, v]));
  const plan: VmPlan = { inserts: [], updates: [], gone: [] };
  const seen = new Set<string>();
  for (const o of input.observed) {
    if (seen.has(o.providerVmId)) continue;
    seen.add(o.providerVmId);
    const existing = byProviderId.get(o.providerVmId);
    const consolidationNeeded = o.consolidationNeeded ?? false;
    if (!existing) {
      plan.inserts.push({
        id: newId(),
        targetId,
        providerVmId: o.providerVmId,
        name: o.name,
        powerState: o.powerState,
        rawPowerState: o.rawPowerState,
        consolidationNeeded,
        firstSeenAt: now,
        lastSeenAt: now,
        goneAt: null,
      });
      continue;
    }
    const want: VmFields = {
      name: o.name,
      powerState: o.powerState,
      rawPowerState: o.rawPowerState,
      consolidationNeeded,
      lastSeenAt: now,
      goneAt: null,
    };
    const change = diff(existing, want);
    if (change) plan.updates.push(change);
  }
  for (const v of stored) {
    if (v.goneAt !== null || seen.has(v.providerVmId)) continue;
    plan.gone.push(diff(v, { goneAt: now })!);
  }
  return plan;
}

function diff(before: Vm, want: Partial<VmFields>): VmChange | null {
  const set: Partial<VmFields> = {};
  let meaningful = false;
  let changed = false;
  for (const key of Object.keys(want) as Array<keyof VmFields>) {
    if (before[key] === want[key]) continue;
    (set as Record<string, unknown>)[key] = want[key];
    changed = true;
    if (key !== 'lastSeenAt') meaningful = true;
  }
  return changed ? { before, after: { ...before, ...set }, set, meaningful } : null;
}
