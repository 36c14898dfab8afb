/**
 * Which snapshot a CreateSnapshot_Task made, from what the task poll read alongside it (the VM's
 * `snapshot` property). Pure: createSnapshot accepts the answer only when the tree already holds the
 * task's result — vCenter may publish the task's success before the VM's tree, so "not there" means
 * "read the tree again", never "it was not made".
 */
import type { ProviderSnapshot } from '../contract.ts';
import { flattenSnapshots, moRefOf, type MoRef } from './parse.ts';

/** The snapshot MoRef value in a CreateSnapshot_Task's (normalised) `info.result`; null when there is none. */
export function createdRefOf(taskResult: unknown): string | null {
  const ref = taskResult as Partial<MoRef> | null | undefined;
  if (typeof ref === 'object' && ref !== null && typeof ref.value === 'string' && ref.value !== '') return ref.value;
  // A result left as node-soap's raw MoRef shape (not normalised by the caller).
  return moRefOf(taskResult)?.value ?? null;
}

/**
 * The snapshot `ref` in the VM's tree as read alongside the task (`vmProps`: that object's
 * properties, null when the poll did not return it); null when it is not (yet) there.
 */
export function createdSnapshotIn(ref: string, vmProps: Map<string, unknown> | null): ProviderSnapshot | null {
  if (!vmProps) return null;
  return flattenSnapshots(vmProps.get('snapshot')).find((s) => s.providerRef === ref) ?? null;
}
