/**
 * The fixed part of every provider object: which kind it is, which target it serves, and its
 * capabilities (a fresh copy per call: callers may not change the adapter's declaration).
 */
import type { Capabilities, ProviderKind } from '../contract.ts';

/** `modes` of a hypervisor that offers all four snapshot modes. */
export const EVERY_MODE: Capabilities['modes'] = {
  memory: { supported: true },
  crash: { supported: true },
  quiesced: { supported: true },
  offline: { supported: true },
};

/**
 * What every hypervisor that keeps a snapshot tree of its own (libvirt, vSphere, VirtualBox, Hyper-V)
 * offers alike: revert, subtree and remove-all deletes, descriptions, snapshots usable at once.
 * An adapter spreads it and declares what differs; a cloud (flat lists, copies) declares its own.
 */
export const LOCAL_TREE = { revert: true, deleteChildren: true, deleteAll: true, descriptions: true, readiness: false } as const satisfies Partial<Capabilities>;

export function providerIdentity<K extends ProviderKind>(kind: K, target: string, capabilities: Capabilities): { kind: K; target: string; capabilities(): Capabilities } {
  return { kind, target, capabilities: () => structuredClone(capabilities) };
}
