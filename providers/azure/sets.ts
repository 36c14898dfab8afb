/**
 * Snapshot sets (pure): how Azure disk snapshots become Snapvisor snapshots.
 *
 * A Snapvisor snapshot of an Azure VM is a SET: one managed-disk snapshot per disk of the VM (OS and
 * each data disk), taken together. Azure keeps no grouping of its own, so each member carries tags:
 * `snapvisor-owner`, `-job` (the marker), `-set` (the set id), `-vm`, `-disk` (os | lunN), `-disks`
 * (how many members the set has) and `-luns` (which data disks), `-name`, `-description`, `-mode`,
 * and `-parent` (the set the VM's disks descended from when it was taken). The set id is derived
 * from the marker and the member names from the set id and the disk, so a retried create addresses
 * the same Azure resources (a re-PUT of a snapshot is an update on Azure, never a second copy).
 *
 * Tree and `current`. Azure snapshots are flat, but the VM's disks do descend from a set once it is
 * reverted to (the new disks are copies of its snapshots), so Snapvisor keeps the same tree as on
 * the hypervisors: a set's parent is the set that was current when it was taken (tag
 * `snapvisor-parent`; a parent deleted outside Snapvisor reads as a root). The CURRENT set is, in
 * order: the newest snapshot taken of the disks the VM has now; else the set (or outside snapshot)
 * those disks were made from by a revert (tag `snapvisor-from-set` / `snapvisor-from-snapshot` on the
 * disks); else the newest set; else the newest snapshot. So there is exactly
 * one current whenever there is a snapshot, and it is the one the VM's state descends from.
 *
 * A disk snapshot made outside Snapvisor (no `snapvisor-owner` tag) whose source is one of the VM's
 * disks — the disks it has now, or those a revert replaced (tag `snapvisor-replaced-by`) — is a
 * snapshot of its own: providerRef its ARM id, marker and mode null, a root.
 */
import { createHash } from 'node:crypto';
import { SNAPSHOT_MODES, type ProviderSnapshot, type SnapshotMode } from '../contract.ts';

export const TAG = {
  owner: 'snapvisor-owner',
  job: 'snapvisor-job',
  set: 'snapvisor-set',
  vm: 'snapvisor-vm',
  disk: 'snapvisor-disk',
  disks: 'snapvisor-disks',
  luns: 'snapvisor-luns',
  name: 'snapvisor-name',
  description: 'snapvisor-description',
  mode: 'snapvisor-mode',
  parent: 'snapvisor-parent',
  fromSet: 'snapvisor-from-set',
  /** On a disk a revert made from a snapshot taken outside Snapvisor: that snapshot's ARM id. */
  fromSnapshot: 'snapvisor-from-snapshot',
  replacedBy: 'snapvisor-replaced-by',
} as const;

export const OWNER = 'snapvisor';
export const SET_REF_PREFIX = 'set:';
/** Azure's documented maximum of incremental snapshots per disk. */
export const MAX_INCREMENTAL_PER_DISK = 500;
/** Azure tag values are at most 256 characters. */
export const TAG_VALUE_MAX = 256;
/** Azure resource names (disks, snapshots) are at most 80 characters. */
export const RESOURCE_NAME_MAX = 80;

/** One disk snapshot as the adapter reads it from Azure. */
export interface SnapRec {
  id: string;
  name: string;
  resourceGroup: string;
  tags: Record<string, string>;
  sourceId: string | null;
  sourceUniqueId: string | null;
  incremental: boolean;
  familyId: string | null;
  provisioningState: string | null;
  completionPercent?: number;
  /** ISO 8601. */
  createdAt: string | null;
}

/** One managed disk as the adapter reads it. */
export interface DiskRec {
  id: string;
  name: string;
  tags: Record<string, string>;
}

/** The VM's disks now: `os` and `lun<N>`. */
export interface VmDisk {
  slot: string;
  id: string;
  name: string;
}

export type Slot = string;
export const slotOfLun = (lun: number): Slot => `lun${lun}`;
export const lunOfSlot = (slot: Slot): number | null => (/^lun(\d+)$/.test(slot) ? Number(slot.slice(3)) : null);

const lower = (s: string) => s.toLowerCase();

/** The set id of a marker: the first 16 hex digits of its SHA-256. */
export function setIdOf(marker: string): string {
  return createHash('sha256').update(marker, 'utf8').digest('hex').slice(0, 16);
}

export const setRef = (setId: string): string => `${SET_REF_PREFIX}${setId}`;
export const setIdOfRef = (ref: string): string | null => (/^set:[0-9a-f]{16}$/.test(ref) ? ref.slice(SET_REF_PREFIX.length) : null);

/** The Azure name of a set's member for one disk: `sv-<setid>-os`, `sv-<setid>-lun3`. */
export function memberName(setId: string, slot: Slot): string {
  return `sv-${setId}-${slot}`;
}

/**
 * The name of the disk a revert makes from a member, replacing `oldDisk`: the old name (without an
 * earlier revert's suffix) + `-sv` + 8 hex of (set, old disk), at most 80 characters. Deterministic,
 * so a retried revert reuses the disk it made; different for every (set, disk) pair.
 */
export function revertDiskName(oldDiskName: string, oldDiskId: string, setId: string): string {
  const suffix = `-sv${createHash('sha256').update(`${setId}\n${lower(oldDiskId)}`).digest('hex').slice(0, 8)}`;
  const base = oldDiskName.replace(/(-sv[0-9a-f]{8})+$/, '').slice(0, RESOURCE_NAME_MAX - suffix.length);
  return `${base}${suffix}`;
}

export interface SetSpec {
  marker: string;
  setId: string;
  vmId: string;
  name: string;
  description: string;
  mode: SnapshotMode;
  /** Every slot of the set (os first). */
  slots: Slot[];
  parentSetId: string | null;
}

/** The tags of the member for `slot`. */
export function memberTags(spec: SetSpec, slot: Slot): Record<string, string> {
  const luns = spec.slots.map(lunOfSlot).filter((l): l is number => l !== null);
  return {
    [TAG.owner]: OWNER,
    [TAG.job]: spec.marker,
    [TAG.set]: spec.setId,
    [TAG.vm]: spec.vmId,
    [TAG.disk]: slot,
    [TAG.disks]: String(spec.slots.length),
    [TAG.luns]: luns.join(','),
    [TAG.name]: spec.name,
    [TAG.description]: spec.description,
    [TAG.mode]: spec.mode,
    ...(spec.parentSetId ? { [TAG.parent]: spec.parentSetId } : {}),
  };
}

/** The slots a set's tags say it has; null when the tags do not tell. */
export function expectedSlots(tags: Record<string, string>): Slot[] | null {
  const luns = tags[TAG.luns];
  if (luns === undefined) return null;
  const list = luns === '' ? [] : luns.split(',').map(Number);
  if (list.some((n) => !Number.isInteger(n) || n < 0)) return null;
  return ['os', ...list.map(slotOfLun)];
}

const isOwned = (s: SnapRec) => s.tags[TAG.owner] === OWNER && typeof s.tags[TAG.set] === 'string' && /^[0-9a-f]{16}$/.test(s.tags[TAG.set] ?? '');

/** Disk ids (lower case) whose snapshots belong to the VM: its disks now and those revert replaced. */
export function diskLineage(current: readonly VmDisk[], disks: readonly DiskRec[]): Set<string> {
  const ids = new Set(current.map((d) => lower(d.id)));
  for (let grew = true; grew; ) {
    grew = false;
    for (const d of disks) {
      const by = d.tags[TAG.replacedBy];
      if (by !== undefined && ids.has(lower(by)) && !ids.has(lower(d.id))) {
        ids.add(lower(d.id));
        grew = true;
      }
    }
  }
  return ids;
}

const slotOrder = (slot: Slot) => (slot === 'os' ? -1 : (lunOfSlot(slot) ?? 1e6));

export interface MemberDetail {
  disk: Slot;
  sourceDiskId: string | null;
  snapshotId: string;
  incremental: boolean;
  incrementalSnapshotFamilyId: string | null;
  provisioningState: string | null;
  completionPercent?: number;
}

const memberReady = (m: SnapRec) => m.provisioningState === 'Succeeded' && (m.completionPercent === undefined || m.completionPercent >= 100);

function detailOf(m: SnapRec, slot: Slot): MemberDetail {
  return {
    disk: slot,
    sourceDiskId: m.sourceId,
    snapshotId: m.id,
    incremental: m.incremental,
    incrementalSnapshotFamilyId: m.familyId,
    provisioningState: m.provisioningState,
    ...(m.completionPercent === undefined ? {} : { completionPercent: m.completionPercent }),
  };
}

/** A set as read: its members by slot and what its tags say it should have. */
export interface SetView {
  setId: string;
  members: SnapRec[];
  tags: Record<string, string>;
  missing: Slot[];
  createdAt: string | null;
}

/** Readiness of members + the slots no member stands for. */
export function readiness(members: readonly SnapRec[], missing: readonly Slot[]): { ready: boolean; progress?: number } {
  const ready = missing.length === 0 && members.length > 0 && members.every(memberReady);
  if (ready || missing.length > 0) return { ready };
  const pcts = members.map((m) => m.completionPercent ?? (m.provisioningState === 'Succeeded' ? 100 : 0));
  return { ready, progress: Math.max(0, Math.min(100, Math.min(...pcts))) };
}

const minTime = (times: Array<string | null>): string | null => {
  const known = times.filter((t): t is string => t !== null).sort();
  return known[0] ?? null;
};

/** The owned sets of `vmId` among `snaps`, by set id. */
export function setsOf(vmId: string, snaps: readonly SnapRec[]): Map<string, SetView> {
  const bySet = new Map<string, SnapRec[]>();
  for (const s of snaps) {
    if (!isOwned(s) || lower(s.tags[TAG.vm] ?? '') !== lower(vmId)) continue;
    const id = s.tags[TAG.set]!;
    bySet.set(id, [...(bySet.get(id) ?? []), s]);
  }
  const out = new Map<string, SetView>();
  for (const [setId, list] of bySet) {
    const members = [...list].sort((a, b) => slotOrder(a.tags[TAG.disk] ?? '') - slotOrder(b.tags[TAG.disk] ?? '') || a.name.localeCompare(b.name));
    const tags = members[0]!.tags;
    const have = new Set(members.map((m) => m.tags[TAG.disk] ?? ''));
    const expected = expectedSlots(tags);
    const missing = expected ? expected.filter((slot) => !have.has(slot)) : [];
    out.set(setId, { setId, members, tags, missing, createdAt: minTime(members.map((m) => m.createdAt)) });
  }
  return out;
}

export interface VmView {
  id: string;
  disks: VmDisk[];
}

/**
 * The VM's snapshots: its sets and the outside snapshots of its disks, oldest first, with parents
 * and exactly one current (see the module comment).
 */
export function snapshotsOfVm(vm: VmView, snaps: readonly SnapRec[], disks: readonly DiskRec[]): ProviderSnapshot[] {
  const sets = setsOf(vm.id, snaps);
  const lineage = diskLineage(vm.disks, disks);
  const current = new Set(vm.disks.map((d) => lower(d.id)));
  const slotOfCurrent = new Map(vm.disks.map((d) => [lower(d.id), d.slot]));
  const external = snaps.filter((s) => s.tags[TAG.owner] === undefined && s.sourceId !== null && lineage.has(lower(s.sourceId)));

  interface Entry { snap: ProviderSnapshot; ofCurrentDisks: boolean }
  const entries: Entry[] = [];
  for (const set of sets.values()) {
    const t = set.tags;
    const parent = t[TAG.parent];
    const mode = (SNAPSHOT_MODES as readonly string[]).includes(t[TAG.mode] ?? '') ? (t[TAG.mode] as SnapshotMode) : null;
    const state = readiness(set.members, set.missing);
    entries.push({
      ofCurrentDisks: set.members.some((m) => m.sourceId !== null && current.has(lower(m.sourceId))),
      snap: {
        providerRef: setRef(set.setId),
        name: t[TAG.name] ?? set.members[0]!.name,
        description: t[TAG.description] ?? '',
        parentRef: parent !== undefined && sets.has(parent) ? setRef(parent) : null,
        current: false,
        createdAt: set.createdAt,
        mode,
        marker: t[TAG.job] ?? null,
        ...state,
        details: {
          disks: set.members.map((m) => detailOf(m, m.tags[TAG.disk] ?? '')),
          missing: set.missing,
          partial: set.missing.length > 0,
        },
      },
    });
  }
  for (const s of external) {
    const slot = slotOfCurrent.get(lower(s.sourceId!)) ?? null;
    entries.push({
      ofCurrentDisks: current.has(lower(s.sourceId!)),
      snap: {
        providerRef: s.id,
        name: s.name,
        description: '',
        parentRef: null,
        current: false,
        createdAt: s.createdAt,
        mode: null,
        marker: null,
        ...readiness([s], []),
        details: { disks: [detailOf(s, slot ?? 'detached')], missing: [], partial: false, external: true },
      },
    });
  }
  const byTime = (a: Entry, b: Entry) => (a.snap.createdAt ?? '').localeCompare(b.snap.createdAt ?? '') || a.snap.providerRef.localeCompare(b.snap.providerRef);
  entries.sort(byTime);
  const newest = (list: Entry[]) => list[list.length - 1];
  const tagsOfCurrent = vm.disks.map((d) => disks.find((x) => lower(x.id) === lower(d.id))?.tags ?? {});
  const fromSet = tagsOfCurrent.map((t) => t[TAG.fromSet]).find((v) => v !== undefined && sets.has(v));
  const fromSnapshot = tagsOfCurrent.map((t) => t[TAG.fromSnapshot]).find((v) => v !== undefined);
  const revertedTo =
    (fromSet ? entries.find((e) => e.snap.providerRef === setRef(fromSet)) : undefined) ??
    (fromSnapshot ? entries.find((e) => lower(e.snap.providerRef) === lower(fromSnapshot)) : undefined);
  const pick = newest(entries.filter((e) => e.ofCurrentDisks)) ?? revertedTo ?? newest(entries.filter((e) => e.snap.marker !== null)) ?? newest(entries);
  if (pick) pick.snap.current = true;
  return entries.map((e) => e.snap);
}

/** The snapshot with `ref` (a set ref, or an ARM id compared case-insensitively). */
export function findSnapshot(list: readonly ProviderSnapshot[], ref: string): ProviderSnapshot | undefined {
  return list.find((s) => s.providerRef === ref) ?? list.find((s) => lower(s.providerRef) === lower(ref));
}

/** `ref` and every snapshot below it, children before parents (the order to delete them in). */
export function subtree(list: readonly ProviderSnapshot[], ref: string): string[] {
  const out: string[] = [];
  const visit = (r: string) => {
    for (const c of list.filter((s) => s.parentRef === r)) visit(c.providerRef);
    out.push(r);
  };
  visit(ref);
  return out;
}

/** Incremental snapshots per source disk (id + unique id, as Azure counts a disk's 500). */
export function incrementalCounts(snaps: readonly SnapRec[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const s of snaps) {
    if (!s.incremental || s.sourceId === null) continue;
    const k = `${lower(s.sourceId)}#${s.sourceUniqueId ?? ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** The disks (by slot) that already have Azure's 500 incremental snapshots. */
export function disksAtIncrementalLimit(disks: ReadonlyArray<VmDisk & { uniqueId: string | null }>, snaps: readonly SnapRec[], max = MAX_INCREMENTAL_PER_DISK): VmDisk[] {
  const counts = incrementalCounts(snaps);
  return disks.filter((d) => (counts.get(`${lower(d.id)}#${d.uniqueId ?? ''}`) ?? 0) >= max);
}
