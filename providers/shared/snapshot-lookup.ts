/**
 * getSnapshot for hypervisors whose cheapest way to read one snapshot is the VM's list (VBoxManage
 * and vSphere return the whole tree in one call; libvirt's name lookup costs the same runs).
 */
import type { ProviderError, ProviderSnapshot } from '../contract.ts';

/** The snapshot with `providerRef` in `list`, or the adapter's not_found error. */
export function snapshotIn(list: readonly ProviderSnapshot[], providerRef: string, notFound: () => ProviderError): ProviderSnapshot {
  const hit = list.find((s) => s.providerRef === providerRef);
  if (!hit) throw notFound();
  return hit;
}
