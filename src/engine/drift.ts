/**
 * Drift per target (domain/drift.ts) from the store, after each inventory pass: the gauge
 * snapvisor_drift_items{target,kind}, the provider's orphan listing (only where it declares
 * capabilities.orphans), and a `drift` event when the target's drift changed since the last pass —
 * compared with a fingerprint kept in the store, so a restart alone is no change. Reads only.
 */
import { Gauge } from 'prom-client';
import type { OrphanArtefact } from '../../providers/contract.ts';
import { computeDrift, DRIFT_KINDS, driftFingerprint, driftSummary, type TargetDrift } from '../domain/drift.ts';
import type { DriftReport } from './api.ts';
import { refreshRow, type BoundTarget, type Core } from './core.ts';
import { errSummary } from './sync.ts';
import type { SelectableVm } from '../domain/selector.ts';

const DAY_MS = 86_400_000;
export const ORPHANS_UNSUPPORTED = 'not supported by this provider';

export interface DriftMonitor {
  /** The target's drift now, from the store (orphans as the latest pass listed them). */
  report(t: BoundTarget): Promise<DriftReport>;
  /** After an inventory pass that read the target: orphans, gauge, and the event when it changed. */
  afterPass(t: BoundTarget): Promise<void>;
}

export interface DriftOptions {
  /** The strictest maxChainDepth of the enabled policies selecting the VM (null: none limits it); policies answer it. */
  maxChainDepthFor?: (vm: SelectableVm) => number | null;
}

interface OrphanListing {
  at: string;
  items: OrphanArtefact[] | null;
  error: string | null;
}

export function createDriftMonitor(core: Core, options: DriftOptions = {}): DriftMonitor {
  const orphanListings = new Map<string, OrphanListing>();
  const gauge = new Gauge({
    name: 'snapvisor_drift_items',
    help: 'Drift per target after its latest inventory pass: snapshots created or deleted outside Snapvisor, VMs gone, chains needing consolidation, orphaned artefacts (only where the provider can list them)',
    labelNames: ['target', 'kind'] as const,
    registers: [core.metrics.registry],
  });

  const driftOf = async (t: BoundTarget): Promise<TargetDrift> => {
    // Gone snapshots only as far back as finished jobs are kept: an older delete's job is pruned and could not explain it.
    const goneSince = new Date(core.now().getTime() - core.settings.retention.jobsDays * DAY_MS).toISOString();
    const [vms, snapshots, jobs] = await Promise.all([
      core.store.vms.listByTarget(t.row.id),
      core.store.drift.snapshotsOfTarget(t.row.id, goneSince),
      core.store.drift.deletingJobs(t.row.id),
    ]);
    const limitOf = options.maxChainDepthFor;
    const byId = new Map(vms.map((vm) => [vm.id, vm]));
    const maxChainDepthFor = (vmId: string) => {
      const vm = byId.get(vmId);
      return vm && limitOf ? limitOf({ id: vm.id, name: vm.name, targetName: t.spec.name }) : null;
    };
    return computeDrift({ vms, snapshots, jobs, maxChainDepthFor });
  };

  const orphansOf = (t: BoundTarget): DriftReport['orphans'] => {
    if (t.provider.capabilities().orphans !== true) return { supported: false, message: ORPHANS_UNSUPPORTED, checkedAt: null, items: null };
    const listing = orphanListings.get(t.spec.name);
    if (!listing) return { supported: true, message: 'not listed yet', checkedAt: null, items: null };
    return { supported: true, message: listing.error, checkedAt: listing.at, items: listing.items };
  };

  const monitor: DriftMonitor = {
    async report(t) {
      const drift = await driftOf(t);
      const orphans = orphansOf(t);
      const { row } = await refreshRow(core, t);
      return { target: t.spec.name, checkedAt: row.checkedAt, ...drift, orphans, summary: driftSummary(drift, orphans.items?.length ?? null) };
    },

    async afterPass(t) {
      const name = t.spec.name;
      if (t.provider.capabilities().orphans === true && t.provider.listOrphans) {
        const log = core.log.child({ target: name });
        try {
          const items = await core.call(t.provider, 'listOrphans', () => t.provider.listOrphans!(core.backgroundContext(log)));
          orphanListings.set(name, { at: core.iso(), items, error: null });
        } catch (err) {
          log.warn({ err: errSummary(err) }, 'listing orphaned artefacts failed');
          orphanListings.set(name, { at: core.iso(), items: null, error: `listing failed: ${err instanceof Error ? err.message : 'error'}` });
        }
      }
      const drift = await driftOf(t);
      const orphans = orphansOf(t);
      const summary = driftSummary(drift, orphans.items?.length ?? null);
      for (const kind of DRIFT_KINDS) {
        const n = summary[kind];
        if (n === null) gauge.remove({ target: name, kind });
        else gauge.set({ target: name, kind }, n);
      }
      const fingerprint = driftFingerprint(drift, orphans.items?.map((o) => o.ref) ?? null);
      const last = await core.store.drift.lastState(name);
      if (last?.fingerprint === fingerprint) return;
      await core.store.drift.saveState(name, { fingerprint, summary, checkedAt: core.iso() });
      // A first look at a target with nothing drifted is no change worth telling anyone about.
      if (last === null && DRIFT_KINDS.every((k) => !summary[k])) return;
      core.log.info({ target: name, summary }, 'drift changed');
      core.events.emit({ type: 'drift', target: name, summary });
    },
  };
  return monitor;
}
