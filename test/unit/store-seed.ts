/** Targets and VMs for the job, group and budget store tests on both dialects, through the store's repositories. */
import type { Vm } from '../../src/domain/types.ts';
import type { Store } from '../../src/store/index.ts';

export const SEED_AT = '2025-01-01T00:00:00.000Z';

export interface SeedVm {
  id: string;
  /** The target's name. */
  target: string;
  name?: string;
}

/** Creates the targets (virtualbox) and VMs; returns each target's id by name. */
export async function seedTargetsAndVms(store: Store, _url: string | null, targets: readonly string[], vms: readonly SeedVm[]): Promise<Record<string, string>> {
  const vm = (v: SeedVm, targetId: string): Vm => ({
    id: v.id, targetId, providerVmId: `p-${v.id}`, name: v.name ?? v.id, powerState: 'running', rawPowerState: 'running',
    consolidationNeeded: false, disks: null, firstSeenAt: SEED_AT, lastSeenAt: SEED_AT, goneAt: null,
  });
  const ids: Record<string, string> = {};
  for (const name of targets) ids[name] = (await store.targets.ensure({ name, kind: 'virtualbox', demo: false })).id;
  await store.vms.apply({ inserts: vms.map((v) => vm(v, ids[v.target]!)), updates: [], gone: [] });
  return ids;
}
