/**
 * Targets and VMs for the job, group and budget store tests on both dialects. On SQLite they go
 * through the store's repositories; on PostgreSQL as plain rows (the PostgreSQL targets and vms
 * repositories are another branch's: once they are on main, this can use them on both).
 */
import type { Vm } from '../../src/domain/types.ts';
import type { Store } from '../../src/store/index.ts';
import { openPgDb } from '../../src/store/pg/db.ts';

export const SEED_AT = '2025-01-01T00:00:00.000Z';

export interface SeedVm {
  id: string;
  /** The target's name. */
  target: string;
  name?: string;
}

/** Creates the targets (virtualbox) and VMs; returns each target's id by name. */
export async function seedTargetsAndVms(store: Store, url: string | null, targets: readonly string[], vms: readonly SeedVm[]): Promise<Record<string, string>> {
  const vm = (v: SeedVm, targetId: string): Vm => ({
    id: v.id, targetId, providerVmId: `p-${v.id}`, name: v.name ?? v.id, powerState: 'running', rawPowerState: 'running',
    consolidationNeeded: false, disks: null, firstSeenAt: SEED_AT, lastSeenAt: SEED_AT, goneAt: null,
  });
  const ids: Record<string, string> = {};
  if (store.dialect === 'sqlite') {
    for (const name of targets) ids[name] = (await store.targets.ensure({ name, kind: 'virtualbox', demo: false })).id;
    await store.vms.apply({ inserts: vms.map((v) => vm(v, ids[v.target]!)), updates: [], gone: [] });
    return ids;
  }
  const db = await openPgDb(url!);
  try {
    for (const name of targets) {
      ids[name] = `t-${name}`;
      await db.run(`INSERT INTO targets (id, name, kind, demo) VALUES (?, ?, 'virtualbox', 0)`, [ids[name], name]);
    }
    for (const v of vms) {
      const r = vm(v, ids[v.target]!);
      await db.run(
        `INSERT INTO vms (id, target_id, provider_vm_id, name, power_state, raw_power_state, consolidation_needed, first_seen_at, last_seen_at)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
        [r.id, r.targetId, r.providerVmId, r.name, r.powerState, r.rawPowerState, r.firstSeenAt, r.lastSeenAt],
      );
    }
  } finally {
    await db.close();
  }
  return ids;
}
