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

export function providerIdentity<K extends ProviderKind>(kind: K, target: string, capabilities: Capabilities): { kind: K; target: string; capabilities(): Capabilities } {
  return { kind, target, capabilities: () => structuredClone(capabilities) };
}
