/**
 * Drift of one target: how the hypervisor differs from what Snapvisor did, from the store's view
 * (the reconciler has already marked external and vanished snapshots and gone VMs). Pure: no I/O;
 * nothing here changes anything — fixes are explicit jobs.
 *
 * - createdOutside: present snapshots owned `external` (found on the hypervisor, not made by a job).
 * - deletedOutside: gone snapshots no Snapvisor job can explain: not deleted by a delete job (of it,
 *   or of an ancestor with children), and not gone after a delete-all or a consolidate of its VM
 *   (a KVM merge drops snapshot metadata) that started before it was seen gone. Snapshots of a gone
 *   VM are counted under vmsGone, not here.
 * - vmsGone: VMs the inventory no longer finds.
 * - consolidationNeeded: the hypervisor says so (vm.consolidationNeeded: vSphere's flag, KVM's
 *   overlay chains, Hyper-V pending merges), or the chain to the current snapshot is deeper than
 *   the policies selecting the VM allow (`maxChainDepthFor`).
 */
import { createHash } from 'node:crypto';
import { buildForest } from './tree.ts';
import type { Iso, JobKind, JobState, Snapshot, Vm } from './types.ts';

/** A job that may have removed snapshots (store: jobs of kind delete, delete-all, consolidate that started). */
export interface DeletingJob {
  id: string;
  kind: JobKind;
  state: JobState;
  vmId: string;
  snapshotId: string | null;
  /** snapshot.delete with its subtree. */
  children: boolean;
  /** vm.consolidate dry run: changed nothing. */
  dryRun: boolean;
  startedAt: Iso;
}

export interface DriftSnapshotItem {
  snapshotId: string;
  name: string;
  vmId: string;
  vmName: string;
  /** createdOutside: the hypervisor's creation time; deletedOutside: when Snapvisor saw it gone. */
  at: Iso | null;
}

export interface DriftVmItem {
  vmId: string;
  name: string;
  goneAt: Iso;
}

export interface DriftConsolidationItem {
  vmId: string;
  name: string;
  /** hypervisor: the hypervisor reports it; chain-depth: deeper than the selecting policies allow. */
  reason: 'hypervisor' | 'chain-depth';
  chainDepth: number;
  /** The deepest maxChainDepth of the enabled policies selecting the VM (null: none limits it). */
  maxChainDepth: number | null;
}

/** The fields of a snapshot row drift reads (the store reads only these: a target may have 100,000s). */
export type DriftSnapshot = Pick<Snapshot, 'id' | 'vmId' | 'parentId' | 'name' | 'owner' | 'state' | 'current' | 'createdAt' | 'deletedAt'>;

export interface DriftInput {
  vms: readonly Vm[];
  /** Present snapshots of the target, and the gone ones still of interest. */
  snapshots: readonly DriftSnapshot[];
  jobs: readonly DeletingJob[];
  /** The deepest maxChainDepth of enabled policies selecting the VM; null when none does (or no policies). */
  maxChainDepthFor?: (vmId: string) => number | null;
}

export interface TargetDrift {
  createdOutside: DriftSnapshotItem[];
  deletedOutside: DriftSnapshotItem[];
  vmsGone: DriftVmItem[];
  consolidationNeeded: DriftConsolidationItem[];
}

export type DriftKind = keyof TargetDrift | 'orphans';
export const DRIFT_KINDS: readonly DriftKind[] = ['createdOutside', 'deletedOutside', 'vmsGone', 'consolidationNeeded', 'orphans'];

export function computeDrift(input: DriftInput): TargetDrift {
  const vmById = new Map(input.vms.map((v) => [v.id, v]));
  const byId = new Map(input.snapshots.map((s) => [s.id, s]));
  const deletedIds = new Set<string>();
  const subtreeRoots = new Set<string>();
  const vmWide = new Map<string, Iso[]>();
  for (const j of input.jobs) {
    if (j.kind === 'snapshot.delete' && j.snapshotId !== null) (j.children ? subtreeRoots : deletedIds).add(j.snapshotId);
    else if (j.kind === 'snapshot.delete-all' || (j.kind === 'vm.consolidate' && !j.dryRun)) {
      const list = vmWide.get(j.vmId);
      if (list) list.push(j.startedAt);
      else vmWide.set(j.vmId, [j.startedAt]);
    }
  }
  const underDeletedSubtree = (s: DriftSnapshot): boolean => {
    const seen = new Set<string>();
    for (let cur: DriftSnapshot | undefined = s; cur && !seen.has(cur.id); cur = cur.parentId === null ? undefined : byId.get(cur.parentId)) {
      if (subtreeRoots.has(cur.id)) return true;
      seen.add(cur.id);
    }
    return false;
  };
  const explained = (s: DriftSnapshot): boolean =>
    deletedIds.has(s.id) ||
    subtreeRoots.has(s.id) ||
    underDeletedSubtree(s) ||
    (vmWide.get(s.vmId) ?? []).some((startedAt) => s.deletedAt === null || startedAt <= s.deletedAt);

  const item = (s: DriftSnapshot, at: Iso | null): DriftSnapshotItem => ({ snapshotId: s.id, name: s.name, vmId: s.vmId, vmName: vmById.get(s.vmId)?.name ?? '', at });
  const createdOutside: DriftSnapshotItem[] = [];
  const deletedOutside: DriftSnapshotItem[] = [];
  const presentByVm = new Map<string, DriftSnapshot[]>();
  for (const s of input.snapshots) {
    const vm = vmById.get(s.vmId);
    if (!vm || vm.goneAt !== null) continue;
    if (s.state === 'present') {
      const list = presentByVm.get(s.vmId);
      if (list) list.push(s);
      else presentByVm.set(s.vmId, [s]);
      if (s.owner === 'external') createdOutside.push(item(s, s.createdAt));
    } else if (!explained(s)) {
      deletedOutside.push(item(s, s.deletedAt));
    }
  }

  const vmsGone: DriftVmItem[] = [];
  const consolidationNeeded: DriftConsolidationItem[] = [];
  for (const vm of input.vms) {
    if (vm.goneAt !== null) {
      vmsGone.push({ vmId: vm.id, name: vm.name, goneAt: vm.goneAt });
      continue;
    }
    const chainDepth = buildForest(presentByVm.get(vm.id) ?? []).currentDepth;
    const maxChainDepth = input.maxChainDepthFor?.(vm.id) ?? null;
    if (vm.consolidationNeeded) consolidationNeeded.push({ vmId: vm.id, name: vm.name, reason: 'hypervisor', chainDepth, maxChainDepth });
    else if (maxChainDepth !== null && chainDepth > maxChainDepth) consolidationNeeded.push({ vmId: vm.id, name: vm.name, reason: 'chain-depth', chainDepth, maxChainDepth });
  }
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  vmsGone.sort(byName);
  consolidationNeeded.sort(byName);
  // Stable output whatever order the store read them in: by VM, then snapshot name, then id.
  const byVmThenName = (a: DriftSnapshotItem, b: DriftSnapshotItem) =>
    a.vmName.localeCompare(b.vmName) || a.name.localeCompare(b.name) || (a.snapshotId < b.snapshotId ? -1 : a.snapshotId > b.snapshotId ? 1 : 0);
  createdOutside.sort(byVmThenName);
  deletedOutside.sort(byVmThenName);
  return { createdOutside, deletedOutside, vmsGone, consolidationNeeded };
}

/** Counts per kind (orphans: null when the provider cannot list them). */
export type DriftSummary = Record<keyof TargetDrift, number> & { orphans: number | null };

export function driftSummary(drift: TargetDrift, orphans: number | null): DriftSummary {
  return {
    createdOutside: drift.createdOutside.length,
    deletedOutside: drift.deletedOutside.length,
    vmsGone: drift.vmsGone.length,
    consolidationNeeded: drift.consolidationNeeded.length,
    orphans,
  };
}

/**
 * Identity of a drift state: changes when any item comes or goes (not only when a count does), and
 * not when only times or names move.
 */
export function driftFingerprint(drift: TargetDrift, orphanIds: readonly string[] | null): string {
  const ids = (xs: ReadonlyArray<{ snapshotId?: string; vmId: string }>) => xs.map((x) => x.snapshotId ?? x.vmId).sort();
  const parts = {
    c: ids(drift.createdOutside),
    d: ids(drift.deletedOutside),
    v: ids(drift.vmsGone),
    n: drift.consolidationNeeded.map((x) => `${x.vmId}:${x.reason}`).sort(),
    o: orphanIds === null ? null : [...orphanIds].sort(),
  };
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}
