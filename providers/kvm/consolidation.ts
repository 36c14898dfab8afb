/**
 * Consolidation planner for KVM external chains (pure, no I/O).
 *
 * A disk's chain is `[active, ...backingChain]`. Only overlays that this domain's external
 * snapshots created count (the files named in their `<disks>`), from the top down: the image the
 * oldest of them sits on is "the base", and anything below it (e.g. a template image shared by other
 * VMs) is never written to. The depth is the number of snapshot overlays above that base. A chain
 * deeper than `maxChainDepth` keeps its newest `maxChainDepth` overlays and merges the older ones
 * into the base:
 * - maxChainDepth 0: everything into the base, `blockcommit --active --pivot` (the base becomes the
 *   active image);
 * - otherwise: `blockcommit --top <oldest kept overlay's backing file> --base <base>` (inactive layers
 *   only; the guest keeps writing to the same active image).
 *
 * Why this keeps the newest snapshots valid: the snapshot that created overlay L(i) recorded the
 * state held in L(i+1)..base. After merging L(max)..L(k-1) into the base, the base holds exactly the
 * state the oldest kept snapshot recorded, and newer ones are untouched. The snapshots whose
 * overlays were merged away lost their point in time (the base was written to): their libvirt
 * metadata is stale and is removed with `snapshot-delete --metadata`, deepest in the tree first.
 */
import type { ParsedDomainDisk, ParsedSnapshotXml } from './parse.ts';

export type ChainDisk = Pick<ParsedDomainDisk, 'target' | 'device' | 'source' | 'backingChain'>;
export type PlannedSnapshot = Pick<ParsedSnapshotXml, 'name' | 'parent' | 'disks' | 'memoryFile'>;

export interface DiskCommit {
  /** `<target dev>`, the `--path` for blockcommit. */
  disk: string;
  /** The chain as planned from: active first, base last. Must still be exactly this before committing. */
  before: string[];
  /** The chain expected once the commit is done. */
  after: string[];
  /** Active commit (the active layer is merged too) → `--active --pivot`; else `--top`. */
  active: boolean;
  top: string;
  base: string;
  /** Images merged into the base, newest first: unused once the commit is done. */
  merged: string[];
}

export interface ConsolidationPlan {
  commits: DiskCommit[];
  /** Snapshot names whose overlays are merged away, deepest in the tree first. */
  staleSnapshots: string[];
  /** External memory files of the stale snapshots: nothing uses them after the merge. */
  staleMemoryFiles: string[];
}

/** Chain of a disk, active first; null for disks that have nothing to merge (cdrom, empty). */
export function chainOf(disk: ChainDisk): string[] | null {
  if (disk.device !== 'disk' || disk.source === null) return null;
  return [disk.source, ...disk.backingChain];
}

export function planConsolidation(disks: readonly ChainDisk[], snapshots: readonly PlannedSnapshot[], maxChainDepth: number): ConsolidationPlan {
  if (!Number.isInteger(maxChainDepth) || maxChainDepth < 0) throw new Error(`maxChainDepth must be a non-negative integer, got ${maxChainDepth}`);
  const commits: DiskCommit[] = [];
  for (const d of disks) {
    const chain = chainOf(d);
    if (chain === null) continue;
    const ours = overlaysOf(snapshots, d.target);
    let depth = 0;
    while (depth < chain.length - 1 && ours.has(chain[depth] as string)) depth++;
    if (depth <= maxChainDepth) continue;
    const base = chain[depth] as string;
    const below = chain.slice(depth + 1);
    const top = chain[maxChainDepth] as string;
    commits.push({
      disk: d.target,
      before: chain,
      after: [...chain.slice(0, maxChainDepth), base, ...below],
      active: maxChainDepth === 0,
      top,
      base,
      merged: chain.slice(maxChainDepth, depth),
    });
  }
  return { commits, ...staleAfter(snapshots, commits.flatMap((c) => c.merged)) };
}

/** Overlay files the domain's external snapshots created on disk `target`. */
export function overlaysOf(snapshots: readonly PlannedSnapshot[], target: string): Set<string> {
  const out = new Set<string>();
  for (const s of snapshots) for (const d of s.disks) if (d.name === target && d.snapshot === 'external' && d.source !== null) out.add(d.source);
  return out;
}

/**
 * A shut-off domain's XML can lack the backing chain (libvirt probes it at start; measured after
 * offline external snapshots), so the chain cannot be checked: true when some disk has more
 * snapshot overlays recorded than maxChainDepth, i.e. the chain may be too deep.
 */
export function mayNeedConsolidation(disks: readonly ChainDisk[], snapshots: readonly PlannedSnapshot[], maxChainDepth: number): boolean {
  return disks.some((d) => chainOf(d) !== null && overlaysOf(snapshots, d.target).size > maxChainDepth);
}

/**
 * listVms' cheap first look, from the dumpxml it reads anyway: only a running/paused domain with a
 * chain deeper than maxChainDepth can need consolidation (a shut-off domain's XML shows no chain:
 * `externalSnapshots`, the count of its external snapshots, stands in for it).
 */
export function worthReadingSnapshots(disks: readonly ChainDisk[], online: boolean, maxChainDepth: number, externalSnapshots = 0): boolean {
  if (!online) return externalSnapshots > maxChainDepth;
  return disks.some((d) => {
    const chain = chainOf(d);
    return chain !== null && chain.length - 1 > maxChainDepth;
  });
}

/** `consolidationNeeded` of a VM: exact when online (the plan has commits); from the recorded overlays when shut off. */
export function consolidationNeeded(disks: readonly ChainDisk[], snapshots: readonly PlannedSnapshot[], online: boolean, maxChainDepth: number): boolean {
  return online ? planConsolidation(disks, snapshots, maxChainDepth).commits.length > 0 : mayNeedConsolidation(disks, snapshots, maxChainDepth);
}

/** Which snapshots lose their point in time once `mergedFiles` are merged away, deepest first. */
export function staleAfter(snapshots: readonly PlannedSnapshot[], mergedFiles: readonly string[]): { staleSnapshots: string[]; staleMemoryFiles: string[] } {
  const merged = new Set(mergedFiles);
  const stale = snapshots.filter((s) => s.disks.some((d) => d.snapshot === 'external' && d.source !== null && merged.has(d.source)));
  const byName = new Map(stale.map((s) => [s.name, s]));
  const ordered = deepestFirst(snapshots, stale.map((s) => s.name)).map((n) => byName.get(n) as PlannedSnapshot);
  return {
    staleSnapshots: ordered.map((s) => s.name),
    staleMemoryFiles: ordered.flatMap((s) => (s.memoryFile === null ? [] : [s.memoryFile])),
  };
}

/** `names` ordered deepest in the tree first (children before their parents); a parent loop does not hang. */
export function deepestFirst(snapshots: readonly Pick<PlannedSnapshot, 'name' | 'parent'>[], names: readonly string[]): string[] {
  const byName = new Map(snapshots.map((s) => [s.name, s]));
  const depthOf = (name: string): number => {
    let n = 0;
    const seen = new Set<string>([name]);
    for (let p = byName.get(name)?.parent ?? null; p !== null && !seen.has(p); p = byName.get(p)?.parent ?? null) {
      seen.add(p);
      n++;
    }
    return n;
  };
  return names
    .map((name) => ({ name, depth: depthOf(name) }))
    .sort((a, b) => b.depth - a.depth)
    .map((x) => x.name);
}

/**
 * virsh arguments for one commit. `--delete` makes libvirtd (root) remove the merged images once the
 * job succeeded: a non-root SSH user cannot delete the libvirt-qemu-owned 0600 overlays itself.
 */
export function commitArgs(dom: string, c: DiskCommit): string[] {
  const where = c.active ? ['--active', '--pivot'] : ['--top', c.top];
  return ['blockcommit', '--domain', dom, '--path', c.disk, ...where, '--base', c.base, '--wait', '--verbose', '--delete'];
}

/** The last percentage in virsh's `--verbose` output (`\rBlock commit: [ 42 %]`), or null. */
export function parseCommitProgress(text: string): number | null {
  let last: number | null = null;
  for (const m of text.matchAll(/\[\s*(\d{1,3})\s*%\]/g)) last = Math.min(100, Number(m[1]));
  return last;
}

/** `blockjob --info` output: true when a job runs on the disk ("No current block job for vda" otherwise). */
export function blockJobActive(infoStdout: string): boolean {
  return infoStdout.trim() !== '' && !/No current block job/i.test(infoStdout);
}

export function sameChain(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
