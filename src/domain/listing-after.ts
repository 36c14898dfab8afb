/**
 * What a VM's snapshot listing is once a job has succeeded, derived from the stored rows and what the
 * provider answered — so the store is updated after a job without listing every snapshot again
 * (on KVM that re-read was most of a job's time: one remote virsh run per snapshot). The periodic
 * sync still reads the truth and corrects anything this could not know (snapshots made by others
 * meanwhile). Pure: the result goes through reconcileSnapshots like a real listing.
 *
 * The rules are the ones every supported hypervisor shares (libvirt, VirtualBox, vSphere, Hyper-V):
 * a new snapshot becomes current when the provider says so; deleting a snapshot gives its children
 * to its parent (or deletes them too, with `children`); deleting the current snapshot makes its
 * parent current; reverting makes the target current.
 */
import { markerForJob, type ProviderSnapshot } from '../../providers/contract.ts';
import { descendantIds } from './tree.ts';
import type { Snapshot } from './types.ts';

export type SucceededChange =
  | { kind: 'created'; snapshot: ProviderSnapshot }
  | { kind: 'deleted'; providerRef: string; children: boolean }
  | { kind: 'reverted'; providerRef: string };

export function listingAfter(stored: readonly Snapshot[], change: SucceededChange): ProviderSnapshot[] {
  const present = stored.filter((s) => s.state === 'present');
  const refById = new Map(present.map((s) => [s.id, s.providerRef]));
  let listing: ProviderSnapshot[] = present.map((s) => ({
    providerRef: s.providerRef,
    name: s.name,
    description: s.description,
    parentRef: s.parentId === null ? null : (refById.get(s.parentId) ?? null),
    current: s.current,
    createdAt: s.createdAt,
    mode: s.mode,
    marker: s.jobId === null ? null : markerForJob(s.jobId),
    ready: s.ready,
    ...(s.progress === null ? {} : { progress: s.progress }),
    ...(s.details === null ? {} : { details: s.details }),
  }));

  switch (change.kind) {
    case 'created': {
      const made = change.snapshot;
      listing = listing.filter((s) => s.providerRef !== made.providerRef);
      if (made.current) listing = listing.map((s) => (s.current ? { ...s, current: false } : s));
      listing.push(made);
      return listing;
    }
    case 'reverted': {
      if (!listing.some((s) => s.providerRef === change.providerRef)) return listing;
      return listing.map((s) => ({ ...s, current: s.providerRef === change.providerRef }));
    }
    case 'deleted': {
      const target = present.find((s) => s.providerRef === change.providerRef);
      if (!target) return listing;
      const removedIds = new Set([target.id, ...(change.children ? descendantIds(present, target.id) : [])]);
      const removed = new Set(present.filter((s) => removedIds.has(s.id)).map((s) => s.providerRef));
      const parentRef = target.parentId === null ? null : (refById.get(target.parentId) ?? null);
      const currentRemoved = listing.some((s) => s.current && removed.has(s.providerRef));
      return listing
        .filter((s) => !removed.has(s.providerRef))
        .map((s) => ({
          ...s,
          parentRef: s.parentRef === change.providerRef ? parentRef : s.parentRef,
          current: currentRemoved ? s.providerRef === parentRef : s.current,
        }));
    }
  }
}
