/**
 * VM inventory reconcile: what the store must change so a target's VM rows match `listVms`.
 * Pure. A VM that vanished gets `goneAt` (its row and snapshots stay for history); one that comes
 * back has `goneAt` cleared.
 */
import type { DiskInfo, VmInfo } from '../../providers/contract.ts';
import { jsonEqual } from './json-equal.ts';
import type { Iso, Vm } from './types.ts';

export type VmFields = Pick<Vm, 'name' | 'powerState' | 'rawPowerState' | 'consolidationNeeded' | 'disks' | 'lastSeenAt' | 'goneAt'>;

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
        disks: o.disks === undefined ? null : normalDisks(o.disks),
        firstSeenAt: now,
        lastSeenAt: now,
        goneAt: null,
      });
      continue;
    }
    const want: Partial<VmFields> = {
      name: o.name,
      powerState: o.powerState,
      rawPowerState: o.rawPowerState,
      consolidationNeeded,
      lastSeenAt: now,
      goneAt: null,
    };
    // Only when reported: a provider (or a call) that does not read disks leaves the known ones alone.
    if (o.disks !== undefined) want.disks = normalDisks(o.disks);
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
    if (key === 'disks' ? jsonEqual(before.disks, want.disks) : before[key] === want[key]) continue;
    (set as Record<string, unknown>)[key] = want[key];
    changed = true;
    if (key !== 'lastSeenAt') meaningful = true;
  }
  return changed ? { before, after: { ...before, ...set }, set, meaningful } : null;
}

/** Just the contract's fields, in one key order (what is stored and compared). */
export function normalDisks(disks: readonly DiskInfo[]): DiskInfo[] {
  return disks.map((d) => ({
    slot: d.slot,
    ...(d.path === undefined ? {} : { path: d.path }),
    ...(d.chainDepth === undefined ? {} : { chainDepth: d.chainDepth }),
  }));
}
