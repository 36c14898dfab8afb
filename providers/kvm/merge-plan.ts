/**
 * Planner for deleting snapshots that libvirt 9.0 refuses to delete itself (pure, no I/O).
 *
 * Two steps, because a shut-off domain's XML lacks the backing chain:
 * - classifyDelete (snapshot tree only): libvirt can do it (native), it is unsafe (refuse, with the
 *   reason), or it needs a manual merge of the deleted snapshots' overlays;
 * - planMerge (tree + the disks' chains as dumpxml shows them, of a running/paused domain): one
 *   blockcommit per contiguous run of overlays created by deleted snapshots, into the image right
 *   below the run (`--active --pivot` when the run includes the active image).
 *
 * Why it is safe: a snapshot that created overlay O recorded the state held in the images below O.
 * Committing a run into the image below it keeps every image above the run reading the same data, so
 * the surviving snapshots above keep their point in time, and those below are never written to.
 * Internal snapshots live inside the image that was active when they were taken: their nearest
 * external ancestor's overlay on that disk (or the image below all overlays). Writing a qcow2's
 * active state leaves its internal snapshots alone, but a merged-away file takes them with it — so a
 * surviving internal snapshot stored in a merged file is a refusal, and a deleted one stored in a
 * file that stays is too (it would have to be deleted inside a backing file, which is read-only).
 */
import { chainOf, deepestFirst, type ChainDisk, type DiskCommit } from './consolidation.ts';
import type { ParsedDomainDisk, ParsedSnapshotXml } from './parse.ts';

export type MergeSnapshot = Pick<ParsedSnapshotXml, 'name' | 'parent' | 'disks' | 'memory' | 'memoryFile'>;
export type MergeDisk = ChainDisk & Pick<ParsedDomainDisk, 'type'>;

export type DeleteDecision =
  | { kind: 'native'; children: boolean }
  | { kind: 'refuse'; reason: string }
  /** `deleted`: every snapshot that goes, deepest in the tree first. */
  | { kind: 'merge'; deleted: string[] };

export type MergePlan =
  | { kind: 'refuse'; reason: string }
  | {
      kind: 'merge';
      /** In execution order; `before`/`after` of consecutive commits on one disk follow each other. */
      commits: DiskCommit[];
      /** External memory files of the deleted snapshots: nothing uses them afterwards. */
      memoryFiles: string[];
    };

/** Any part of it (memory or a disk) lives outside the image it was taken in. */
export function isExternal(s: Pick<ParsedSnapshotXml, 'memory' | 'disks'>): boolean {
  return s.memory === 'external' || s.disks.some((d) => d.snapshot === 'external');
}

function overlayOn(s: MergeSnapshot, disk: string): string | null {
  return s.disks.find((d) => d.name === disk && d.snapshot === 'external')?.source ?? null;
}

/** Disks whose state the snapshot keeps inside an image (internal disk snapshots). */
function internalDisks(s: MergeSnapshot): string[] {
  return s.disks.filter((d) => d.snapshot === 'internal').map((d) => d.name);
}

function treeOf(snapshots: readonly MergeSnapshot[]) {
  const byName = new Map(snapshots.map((s) => [s.name, s]));
  const childrenOf = (name: string) => snapshots.filter((s) => s.parent === name);
  const ancestors = (s: MergeSnapshot): MergeSnapshot[] => {
    const out: MergeSnapshot[] = [];
    const seen = new Set<string>([s.name]);
    for (let p = s.parent; p !== null && !seen.has(p); ) {
      seen.add(p);
      const a = byName.get(p);
      if (!a) break;
      out.push(a);
      p = a.parent;
    }
    return out;
  };
  const descendants = (name: string): MergeSnapshot[] => {
    const out: MergeSnapshot[] = [];
    const seen = new Set<string>([name]);
    const walk = (n: string) => {
      for (const c of childrenOf(n)) {
        if (seen.has(c.name)) continue;
        seen.add(c.name);
        out.push(c);
        walk(c.name);
      }
    };
    walk(name);
    return out;
  };
  /** The snapshot whose overlay on `disk` was the active image when `s` was taken; null = the image below all overlays. */
  const storedBy = (s: MergeSnapshot, disk: string): MergeSnapshot | null => ancestors(s).find((a) => overlayOn(a, disk) !== null) ?? null;
  return { byName, childrenOf, ancestors, descendants, storedBy };
}

/**
 * What deleting `name` (with its descendants when `children`) takes, from the tree alone.
 * `nativeExternalDelete`: libvirt deletes an external snapshot in a linear external chain (>= 9.0).
 */
export function classifyDelete(snapshots: readonly MergeSnapshot[], name: string, children: boolean, nativeExternalDelete: boolean): DeleteDecision {
  const tree = treeOf(snapshots);
  const snap = tree.byName.get(name);
  if (!snap) throw new Error(`classifyDelete: no snapshot '${name}'`);
  const below = tree.descendants(name);
  const deleted = children ? [snap, ...below] : [snap];
  const gone = new Set(deleted.map((s) => s.name));
  const kids = tree.childrenOf(name);
  const refuse = (reason: string): DeleteDecision => ({ kind: 'refuse', reason });

  if (!deleted.some(isExternal)) {
    if (!children && kids.some(isExternal)) {
      return refuse(`snapshot '${name}' is internal with external children: it is stored in an image that is now a read-only backing file of their overlays`);
    }
    return { kind: 'native', children: children && below.length > 0 };
  }

  const parent = snap.parent === null ? null : (tree.byName.get(snap.parent) ?? null);
  const linear = (!children || below.length === 0) && kids.length <= 1 && kids.every(isExternal) && (parent === null || isExternal(parent));
  if (linear && nativeExternalDelete) return { kind: 'native', children: false };

  for (const e of deleted.filter(isExternal)) {
    const n = tree.childrenOf(e.name).length;
    if (n > 1) return refuse(`external snapshot '${e.name}' has ${n} children: its overlay is the backing file of more than one branch`);
  }
  for (const s of snapshots) {
    for (const disk of internalDisks(s)) {
      const holder = tree.storedBy(s, disk);
      const merged = holder !== null && gone.has(holder.name);
      if (!gone.has(s.name) && merged) {
        return refuse(`snapshot '${s.name}' is not deleted but is stored in the overlay of '${holder.name}' on disk ${disk}, which the merge would remove`);
      }
      if (gone.has(s.name) && !merged) {
        const where = holder === null ? 'the base image' : `the overlay of '${holder.name}'`;
        return refuse(`internal snapshot '${s.name}' would have to be deleted inside ${where} on disk ${disk}, which stays as a read-only backing file; delete it on its own first`);
      }
    }
  }
  return { kind: 'merge', deleted: deepestFirst(snapshots, [...gone]) };
}

/**
 * The commits that merge every overlay the `deleted` snapshots created into the image below it,
 * from the chains of a running/paused domain (active image first).
 */
export function planMerge(disks: readonly MergeDisk[], snapshots: readonly MergeSnapshot[], deleted: readonly string[]): MergePlan {
  const tree = treeOf(snapshots);
  const gone = new Set(deleted);
  const commits: DiskCommit[] = [];
  const refuse = (reason: string): MergePlan => ({ kind: 'refuse', reason });
  const diskNames = new Set(snapshots.filter((s) => gone.has(s.name)).flatMap((s) => s.disks.filter((d) => d.snapshot === 'external').map((d) => d.name)));

  for (const name of diskNames) {
    const d = disks.find((x) => x.target === name);
    if (!d) return refuse(`disk ${name} of the deleted snapshots is no longer attached to the domain`);
    const chain = chainOf(d);
    if (d.type !== 'file' || chain === null) return refuse(`disk ${name} is a '${d.type}' ${d.device}: only file disks are merged`);
    const show = chain.join(' <- ');
    const merged = new Set<string>();
    for (const s of snapshots) {
      const f = overlayOn(s, name);
      if (f === null) continue;
      if (gone.has(s.name)) {
        if (!chain.includes(f)) return refuse(`overlay ${f} of snapshot '${s.name}' is not in the chain of disk ${name} (${show})`);
        merged.add(f);
        continue;
      }
      // A surviving overlay built on a merged one must be in the chain, so the commit rebases it.
      const holder = tree.storedBy(s, name);
      if (holder !== null && gone.has(holder.name) && !chain.includes(f)) {
        return refuse(`overlay ${f} of snapshot '${s.name}' sits on a merged image but is not in the chain of disk ${name} (${show})`);
      }
    }
    // Contiguous runs of merged images, deepest first: each goes into the image right below it.
    const runs: { top: string; base: string }[] = [];
    for (let i = 0; i < chain.length; i++) {
      if (!merged.has(chain[i] as string)) continue;
      let j = i;
      while (j + 1 < chain.length && merged.has(chain[j + 1] as string)) j++;
      const base = chain[j + 1];
      if (base === undefined) return refuse(`overlay ${chain[j]} is the bottom of the chain of disk ${name} (${show}): nothing to merge it into`);
      runs.push({ top: chain[i] as string, base });
      i = j;
    }
    let cur = chain;
    for (const r of runs.reverse()) {
      const t = cur.indexOf(r.top);
      const b = cur.indexOf(r.base);
      const after = [...cur.slice(0, t), ...cur.slice(b)];
      commits.push({ disk: name, before: cur, after, active: t === 0, top: r.top, base: r.base, merged: cur.slice(t, b) });
      cur = after;
    }
  }
  const memoryFiles = deleted.flatMap((n) => {
    const f = tree.byName.get(n)?.memoryFile ?? null;
    return f === null ? [] : [f];
  });
  return { kind: 'merge', commits, memoryFiles };
}

/**
 * Snapshots to drop (metadata only) after a merge: all deleted ones once every commit is done;
 * after a partial merge only those whose data is gone — externals whose overlay was merged, and
 * deleted internals stored in a merged overlay. Deepest first.
 */
export function droppedAfterMerge(snapshots: readonly MergeSnapshot[], deleted: readonly string[], mergedFiles: readonly string[], allDone: boolean): string[] {
  if (allDone) return deepestFirst(snapshots, deleted.filter((n) => snapshots.some((s) => s.name === n)));
  const tree = treeOf(snapshots);
  const merged = new Set(mergedFiles);
  const gone = new Set(deleted);
  const lost = snapshots.filter(
    (s) =>
      s.disks.some((d) => d.snapshot === 'external' && d.source !== null && merged.has(d.source)) ||
      (gone.has(s.name) &&
        internalDisks(s).some((disk) => {
          const f = tree.storedBy(s, disk);
          const file = f === null ? null : overlayOn(f, disk);
          return file !== null && merged.has(file);
        })),
  );
  return deepestFirst(snapshots, lost.map((s) => s.name));
}
