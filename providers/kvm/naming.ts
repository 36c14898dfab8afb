/**
 * Snapshot-name rules and overlay file names for libvirt (pure). Each rule comes from a danger
 * reproduced on libvirt 9.0 (reference/kvm.md "Dangers").
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { snapshotTextProblems, type Capabilities } from '../contract.ts';

/** Longer names made libvirt fail to save metadata and leave orphan internal snapshots (danger 3). */
export const MAX_NAME_BYTES = 200;

/** The name rules, as data: the API refuses a name breaking one before any job exists. */
export const KVM_LIMITS: Capabilities['limits'] = {
  maxNameBytes: MAX_NAME_BYTES,
  nameRules: [
    { pattern: '/', effect: 'forbid', reason: "a snapshot name cannot contain '/' (libvirt refuses it)" },
    { pattern: '^[0-9]+$', effect: 'forbid', reason: 'a snapshot name must not be purely numeric (a revert would pick the QEMU snapshot with that id instead)' },
    { pattern: '^-', effect: 'forbid', reason: "a snapshot name must not start with '-' (virsh would read it as an option)" },
    { pattern: '\\u0000', effect: 'forbid', reason: 'a snapshot name cannot contain NUL' },
  ],
};

/** Problems with a name for a new snapshot; empty when it is fine. */
export function nameProblems(name: string): string[] {
  return snapshotTextProblems(KVM_LIMITS, { name, description: '' });
}

/** Numeric names made outside Snapvisor can still exist; reverting them is what is dangerous. */
export function isNumericName(name: string): boolean {
  return /^[0-9]+$/.test(name);
}

function slug(s: string, max: number): string {
  const cleaned = s.normalize('NFKD').replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[._-]+/, '').slice(0, max);
  return cleaned === '' ? 'x' : cleaned;
}

/**
 * File names for an external snapshot: next to the disk's current leaf, derived from the domain,
 * the disk and the snapshot, plus a hash of the job's marker so two jobs never pick the same file.
 * `attempt` > 1 adds a counter, used when a candidate already exists (never overwrite, danger 4).
 */
export function overlayPath(leaf: string, domainName: string, diskTarget: string, snapshotName: string, marker: string, attempt = 1): string {
  const hash = createHash('sha256').update(marker).digest('hex').slice(0, 10);
  const extra = attempt > 1 ? `-${attempt}` : '';
  return posix.join(posix.dirname(leaf), `${slug(domainName, 40)}.${slug(diskTarget, 16)}.${slug(snapshotName, 40)}-${hash}${extra}.qcow2`);
}

export function memoryPath(leaf: string, domainName: string, snapshotName: string, marker: string, attempt = 1): string {
  return overlayPath(leaf, domainName, 'mem', snapshotName, marker, attempt).replace(/\.qcow2$/, '.mem');
}

/** virsh --diskspec/--memspec are comma-separated; a literal comma is written twice. */
export function specValue(s: string): string {
  return s.replace(/,/g, ',,');
}
