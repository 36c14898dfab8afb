/**
 * Azure adapter: managed-disk snapshots of the VMs in the configured resource groups, through the
 * real @azure/arm-compute client (arm.ts: credential, client, the one call wrapper).
 *
 * Identity: a VM is its ARM resource id (compared case-insensitively, as ARM does). A Snapvisor
 * snapshot is a SET of disk snapshots, one per disk of the VM, all PUT together; sets, tags, names,
 * the tree and `current` are in sets.ts (pure). providerRef: `set:<setid>` for a set, the ARM id for
 * a disk snapshot made outside Snapvisor.
 *
 * Create is idempotent by marker: the set id and the member names come from the marker, the set is
 * looked up by tag, and only missing (or failed) members are PUT. One member failing leaves the
 * others made and tagged (owned, listed as a partial set, `ready: false`, `details.partial`); the
 * failure is thrown and a retry completes the set. A disk that already has Azure's 500 incremental
 * snapshots is refused (`quota`) before anything is made. Azure's 7-per-5-minutes-per-disk budget is
 * declared as `limits.createRate`: the engine keeps to it; if Azure still refuses (429, or a 409 about
 * the snapshot rate) the error is `throttled` with Retry-After, and the SDK never sleeps by itself.
 *
 * Modes: crash (disk snapshots of the running VM, crash-consistent per disk — Azure does not
 * coordinate disks); offline (the kit's offline sequence: deallocate or powerOff per `offline.stop`,
 * snapshot, start). Quiesced needs VM restore points (not implemented); memory is never in a disk
 * snapshot.
 *
 * Revert: a new managed disk from each member (same SKU, zone, OS type as the disk it replaces),
 * the VM deallocated (the OS-disk swap needs it), its storage profile updated (OS disk, data disks
 * by lun), started again if it was running. The old disks are kept, tagged `snapvisor-replaced-by`
 * — never deleted. Delete: every member, already gone is success; without `children` the children's
 * parent tags move to the deleted set's parent first. Consolidate: Azure has no chains to merge; it
 * reports owned snapshots whose source disk is gone (orphans), never deletes them.
 */
import type { ComputeManagementClient, DataDisk, Disk, Snapshot, VirtualMachine } from '@azure/arm-compute';
import {
  snapshotTextProblems,
  type CallContext,
  type Capabilities,
  type ConsolidationReport,
  type CreateSpec,
  type Logger,
  type OrphanArtefact,
  type PowerState,
  type ProviderSnapshot,
  type ProviderWith,
  type SnapshotProviderV1,
  type VmInfo,
} from '../contract.ts';
import { createGuards } from '../shared/guards.ts';
import { checkHealth } from '../shared/health.ts';
import { offlineSnapshot, resumeOffline, type OfflineSteps, type PowerReading } from '../shared/offline.ts';
import { providerIdentity } from '../shared/provider-base.ts';
import { createListingCache } from './listing-cache.ts';
import { COMPUTE_API_VERSIONS, createArmSession, type ArmSession, type CredentialFactory } from './arm.ts';
import type { AzureCallInfo } from './errors.ts';
import { PROVIDER, parseOptions, type AzureOptions } from './options.ts';
import {
  OWNER,
  TAG,
  TAG_VALUE_MAX,
  diskLineage,
  disksAtIncrementalLimit,
  findSnapshot,
  memberName,
  memberTags,
  revertDiskName,
  setIdOf,
  setIdOfRef,
  setRef,
  setsOf,
  slotOfLun,
  lunOfSlot,
  snapshotsOfVm,
  subtree,
  type DiskRec,
  type SnapRec,
  type VmDisk,
} from './sets.ts';

export interface AzureDeps {
  log: Logger;
  /** Makes the credential (tests; default: from the options). Called again after an expired token. */
  credential?: CredentialFactory;
}

export type AzureProvider = ProviderWith<'revertSnapshot' | 'consolidate'> & Required<Pick<SnapshotProviderV1, 'listOrphans'>> & {
  /** The ARM session (tests read how many credentials were made). */
  readonly session: ArmSession;
};

export function azureCapabilities(options: Pick<AzureOptions, 'snapshotRate'>): Capabilities {
  return {
    modes: {
      crash: { supported: true },
      offline: { supported: true },
      quiesced: {
        supported: false,
        reason: 'application-consistent points on Azure need VM restore points, which this adapter does not implement yet',
      },
      memory: { supported: false, reason: 'Azure disk snapshots never include the VM memory' },
    },
    revert: true,
    deleteChildren: true,
    deleteAll: true,
    consolidate: true,
    orphans: true,
    duplicateNames: true,
    descriptions: true,
    readiness: true,
    createOptions: {
      incremental: {
        type: 'boolean',
        description: "incremental disk snapshots (true: only the changes since the disk's previous snapshot) or full copies (false); absent: the target's `incremental` option",
      },
    },
    limits: {
      // Name and description are kept in tags, whose values are at most 256 characters; a UTF-8 byte
      // count is never below the UTF-16 length Azure counts.
      maxNameBytes: TAG_VALUE_MAX,
      nameRules: [
        { pattern: `^[\\s\\S]{${TAG_VALUE_MAX + 1},}$`, effect: 'forbid', field: 'description', reason: `a description is kept in an Azure tag, whose value is at most ${TAG_VALUE_MAX} characters` },
      ],
      createRate: [
        {
          per: 'disk',
          max: options.snapshotRate.max,
          windowMs: options.snapshotRate.windowMs,
          reason: `Azure allows ${options.snapshotRate.max} incremental snapshots per disk every ${Math.round(options.snapshotRate.windowMs / 1000)} s`,
        },
      ],
    },
  };
}

const ID_RE = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/(virtualMachines|disks|snapshots)\/([^/]+)$/i;

interface ArmId {
  rg: string;
  type: string;
  name: string;
}

function parseArmId(id: string): ArmId | null {
  const m = ID_RE.exec(id);
  return m ? { rg: m[2]!, type: m[3]!.toLowerCase(), name: m[4]! } : null;
}

const lower = (s: string) => s.toLowerCase();

/** PowerState/<word> → normalised. */
export function powerOf(code: string | undefined): PowerState {
  switch (code?.replace(/^PowerState\//i, '').toLowerCase()) {
    case 'running':
      return 'running';
    case 'stopped':
    case 'deallocated':
      return 'off';
    case 'starting':
    case 'stopping':
    case 'deallocating':
      return 'transitioning';
    default:
      return 'unknown';
  }
}

function powerCode(statuses: Array<{ code?: string }> | undefined): string {
  return statuses?.find((s) => s.code?.startsWith('PowerState/'))?.code ?? 'PowerState/unknown';
}

function vmDisks(vm: VirtualMachine): VmDisk[] {
  const os = vm.storageProfile?.osDisk?.managedDisk?.id;
  const out: VmDisk[] = [];
  if (os) out.push({ slot: 'os', id: os, name: vm.storageProfile?.osDisk?.name ?? os.split('/').pop() ?? os });
  for (const d of vm.storageProfile?.dataDisks ?? []) {
    const id = d.managedDisk?.id;
    if (id && d.toBeDetached !== true) out.push({ slot: slotOfLun(d.lun), id, name: d.name ?? id.split('/').pop() ?? id });
  }
  return out;
}

function toSnapRec(s: Snapshot): SnapRec {
  const id = s.id ?? '';
  return {
    id,
    name: s.name ?? id.split('/').pop() ?? '',
    resourceGroup: parseArmId(id)?.rg ?? '',
    tags: { ...(s.tags ?? {}) },
    sourceId: s.creationData?.sourceResourceId ?? null,
    sourceUniqueId: s.creationData?.sourceUniqueId ?? null,
    incremental: s.incremental === true,
    familyId: s.incrementalSnapshotFamilyId ?? null,
    provisioningState: s.provisioningState ?? null,
    ...(typeof s.completionPercent === 'number' ? { completionPercent: s.completionPercent } : {}),
    createdAt: s.timeCreated instanceof Date ? s.timeCreated.toISOString() : typeof s.timeCreated === 'string' ? new Date(s.timeCreated).toISOString() : null,
  };
}

const toDiskRec = (d: Disk): DiskRec => ({ id: d.id ?? '', name: d.name ?? '', tags: { ...(d.tags ?? {}) } });

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Everything a snapshot call needs about one VM, read in one pass. */
interface VmState {
  rg: string;
  name: string;
  vm: VirtualMachine;
  disks: VmDisk[];
  snaps: SnapRec[];
  diskModels: Disk[];
  list: ProviderSnapshot[];
}

export function createAzureProvider(target: string, rawOptions: Record<string, unknown>, deps: AzureDeps): AzureProvider {
  const options = parseOptions(target, rawOptions);
  const capabilities = azureCapabilities(options);
  const guards = createGuards(PROVIDER, target);
  const { err, assertNotAborted, withTarget } = guards;
  const session = createArmSession(options, deps.log, deps.credential);
  const configuredRgs = new Set(options.resourceGroups.map(lower));
  const listings = createListingCache(options.listCacheMs);
  /**
   * VM reads, reused as long as the listings: a snapshot call reads the VM for its disks (its storage
   * profile), which only a disk swap changes — this adapter's revert, which forgets the VM, or someone
   * else, seen after at most listCacheSec. Power changes do not matter here (power is read fresh).
   */
  const vmReads = new Map<string, { at: number; vm: Promise<VirtualMachine> }>();

  const info = (what: string, mutating: boolean, snapshotCreate = false): AzureCallInfo => ({ ...withTarget({ what, mutating }), ...(snapshotCreate ? { snapshotCreate } : {}) });
  const call = async <T>(what: string, mutating: boolean, ctx: CallContext, fn: (c: ComputeManagementClient) => PromiseLike<T>, snapshotCreate = false): Promise<T> => {
    try {
      return await session.call(info(what, mutating, snapshotCreate), ctx, async (c) => await fn(c));
    } catch (e) {
      // A write that failed may still have happened (a dropped answer): read again next time.
      if (mutating) {
        listings.invalidate();
        vmReads.clear();
      }
      throw e;
    }
  };
  const opts = (ctx: CallContext) => session.opts(ctx);

  /** The VM's resource group and name; `not_found` for an id that cannot name a VM of this target. */
  function vmArg(providerVmId: string): { rg: string; name: string } {
    const id = parseArmId(providerVmId);
    const m = ID_RE.exec(providerVmId);
    if (!id || !m || id.type !== 'virtualmachines') throw err('not_found', `no VM with id '${providerVmId.slice(0, 200)}' (Azure VM ids are ARM resource ids: /subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/…)`);
    if (lower(m[1]!) !== lower(options.subscriptionId) || !configuredRgs.has(lower(id.rg))) {
      throw err('not_found', `no VM with id '${providerVmId.slice(0, 200)}' in this target's subscription and resource groups`);
    }
    return { rg: id.rg, name: id.name };
  }

  async function readVm(rg: string, name: string, ctx: CallContext): Promise<VirtualMachine> {
    const key = lower(`${rg}/${name}`);
    const kept = vmReads.get(key);
    if (kept && Date.now() - kept.at < options.listCacheMs) return kept.vm;
    const vm = call(`read VM ${rg}/${name}`, false, ctx, (c) => c.virtualMachines.get(rg, name, opts(ctx)));
    vmReads.set(key, { at: Date.now(), vm });
    vm.catch(() => vmReads.delete(key));
    return vm;
  }

  async function readPowerCode(rg: string, name: string, ctx: CallContext): Promise<string> {
    const view = await call(`read the power state of VM ${rg}/${name}`, false, ctx, (c) => c.virtualMachines.instanceView(rg, name, opts(ctx)));
    return powerCode(view.statuses);
  }

  async function readState(providerVmId: string, ctx: CallContext): Promise<VmState> {
    const { rg, name } = vmArg(providerVmId);
    const vm = await readVm(rg, name, ctx);
    const groups = await Promise.all(
      options.resourceGroups.map((g) =>
        listings.get(g, async () => {
          const [snapshots, disks] = await Promise.all([
            call(`list snapshots in resource group ${g}`, false, ctx, (c) => collect(c.snapshots.listByResourceGroup(g, opts(ctx)))),
            call(`list disks in resource group ${g}`, false, ctx, (c) => collect(c.disks.listByResourceGroup(g, opts(ctx)))),
          ]);
          return { snapshots, disks };
        }),
      ),
    );
    const disks = vmDisks(vm);
    const models = groups.flatMap((g) => g.disks);
    const diskRecs = models.map(toDiskRec);
    const vmId = vm.id ?? providerVmId;
    // Only this VM's: its sets (by tag) and snapshots of its disks, now or before a revert. A group
    // holds every VM's; the rest would be parsed and grouped for nothing, on every call.
    const vmKey = lower(vmId);
    const lineage = diskLineage(disks, diskRecs);
    const source = (s: Snapshot) => s.creationData?.sourceResourceId;
    const snaps = groups
      .flatMap((g) => g.snapshots)
      .filter((s) => lower(s.tags?.[TAG.vm] ?? '') === vmKey || (source(s) !== undefined && lineage.has(lower(source(s)!))))
      .map(toSnapRec);
    return { rg, name, vm, disks, snaps, diskModels: models, list: snapshotsOfVm({ id: vmId, disks }, snaps, diskRecs) };
  }

  const relist = (s: VmState): ProviderSnapshot[] => snapshotsOfVm({ id: s.vm.id ?? '', disks: s.disks }, s.snaps, s.diskModels.map(toDiskRec));

  function diskModel(s: VmState, id: string): Disk | undefined {
    return s.diskModels.find((d) => lower(d.id ?? '') === lower(id));
  }

  async function readDisk(s: VmState, id: string, ctx: CallContext): Promise<Disk> {
    const known = diskModel(s, id);
    if (known) return known;
    const p = parseArmId(id);
    if (!p || p.type !== 'disks') throw err('internal', `disk id '${id}' is not a managed disk id`);
    return call(`read disk ${p.rg}/${p.name}`, false, ctx, (c) => c.disks.get(p.rg, p.name, opts(ctx)));
  }

  function validateSpec(spec: CreateSpec): void {
    const problems = snapshotTextProblems(capabilities.limits, spec);
    // Azure counts UTF-16 code units; the declared rule counts code points.
    if (spec.description.length > TAG_VALUE_MAX && !problems.some((p) => p.includes('description'))) problems.push(`the description is ${spec.description.length} UTF-16 units; an Azure tag value holds ${TAG_VALUE_MAX}`);
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  /** Creates (or completes) the set of `spec.marker`; answers it as listed. */
  async function takeSet(providerVmId: string, spec: CreateSpec, ctx: CallContext): Promise<ProviderSnapshot> {
    const state = await readState(providerVmId, ctx);
    const vmId = state.vm.id ?? providerVmId;
    const setId = setIdOf(spec.marker);
    const existing = setsOf(vmId, state.snaps).get(setId);
    const current = state.list.find((s) => s.current);
    const parentSetId = existing ? (existing.tags[TAG.parent] ?? null) : current ? setIdOfRef(current.providerRef) : null;
    const slots = existing ? ['os', ...(existing.tags[TAG.luns] ?? '').split(',').filter((x) => x !== '').map((l) => slotOfLun(Number(l)))] : state.disks.map((d) => d.slot);
    const setSpec = { marker: spec.marker, setId, vmId, name: existing?.tags[TAG.name] ?? spec.name, description: existing?.tags[TAG.description] ?? spec.description, mode: spec.mode, slots, parentSetId };
    const have = new Map((existing?.members ?? []).map((m) => [m.tags[TAG.disk] ?? '', m]));
    const todo = slots.filter((slot) => {
      const m = have.get(slot);
      return !m || m.provisioningState === 'Failed';
    });
    const plan = todo.map((slot) => {
      const disk = state.disks.find((d) => d.slot === slot);
      if (!disk) throw err('conflict', `complete snapshot set ${setId} of VM ${vmId}: the VM has no disk ${slot} any more`);
      return { slot, disk };
    });
    const full = disksAtIncrementalLimit(
      plan.map((p) => ({ ...p.disk, uniqueId: diskModel(state, p.disk.id)?.uniqueId ?? null })),
      state.snaps,
    );
    const incremental = typeof spec.options?.incremental === 'boolean' ? spec.options.incremental : options.incremental;
    if (incremental && full.length > 0) {
      throw err('quota', `VM ${vmId}: disk(s) ${full.map((d) => d.name).join(', ')} already have Azure's 500 incremental snapshots; delete old snapshots to make room`);
    }
    const location = state.vm.location;
    let done = 0;
    const results = await Promise.allSettled(
      plan.map(async ({ slot, disk }) => {
        const name = memberName(setId, slot);
        const body: Snapshot = {
          location: diskModel(state, disk.id)?.location ?? location,
          tags: memberTags(setSpec, slot),
          creationData: { createOption: 'Copy', sourceResourceId: disk.id },
          incremental,
        };
        const made = await call(`create snapshot ${name} of disk ${disk.name} (${slot})`, true, ctx, (c) => c.snapshots.createOrUpdate(state.rg, name, body, opts(ctx)), true);
        if (made.id) listings.snapshot(made.id, made);
        ctx.progress(Math.round((++done / Math.max(1, plan.length)) * 90), `snapshot of ${slot} made`);
        return made;
      }),
    );
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [{ slot: plan[i]!.slot, reason: r.reason as unknown }] : []));
    if (failures.length > 0) {
      const made = plan.length - failures.length;
      deps.log.warn({ target, vm: vmId, set: setId, failed: failures.map((f) => f.slot), made }, 'snapshot set incomplete: a retry with the same marker completes it');
      throw failures[0]!.reason;
    }
    const after = await readState(providerVmId, ctx);
    const set = after.list.find((s) => s.providerRef === setRef(setId));
    if (!set) throw err('internal', `create snapshot set ${setId} of VM ${vmId}: the set is not listed after it was made`, { retry: 'uncertain' });
    ctx.progress(100);
    return set;
  }

  const offlineSequence = (providerVmId: string) => ({ offline: options.offline, err, what: `offline snapshot of VM ${providerVmId}`, pollMs: options.pollIntervalMs });

  function offlineSteps(rg: string, name: string): OfflineSteps {
    const reading = (code: string): PowerReading => ({ off: powerOf(code) === 'off' && !/deallocating|stopping/i.test(code), raw: code, transitioning: /deallocating|stopping|starting/i.test(code) });
    return {
      shutdown: async (ctx) => {
        if (options.offline.stop === 'deallocate') {
          await call(`deallocate VM ${rg}/${name}`, true, ctx, (c) => c.virtualMachines.deallocate(rg, name, opts(ctx)));
        } else {
          await call(`power off VM ${rg}/${name}`, true, ctx, (c) => c.virtualMachines.powerOff(rg, name, { ...opts(ctx), skipShutdown: false }));
        }
      },
      readPower: async (ctx) => reading(await readPowerCode(rg, name, ctx)),
      powerOff: async (ctx) => {
        await call(`power off VM ${rg}/${name}`, true, ctx, (c) => c.virtualMachines.powerOff(rg, name, { ...opts(ctx), skipShutdown: true }));
      },
      start: async (ctx) => {
        await call(`start VM ${rg}/${name}`, true, ctx, (c) => c.virtualMachines.start(rg, name, opts(ctx)));
      },
    };
  }

  /** Sets the tags of one member (or outside snapshot) — how a parent moves. */
  async function retag(snap: SnapRec, tags: Record<string, string>, ctx: CallContext): Promise<void> {
    const updated = await call(`update the tags of snapshot ${snap.name}`, true, ctx, (c) => c.snapshots.update(snap.resourceGroup, snap.name, { tags }, opts(ctx)));
    listings.snapshot(updated.id ?? snap.id, updated);
  }

  async function deleteMember(snap: { id: string }, ctx: CallContext): Promise<void> {
    const p = parseArmId(snap.id);
    if (!p) return;
    try {
      await call(`delete snapshot ${p.name}`, true, ctx, (c) => c.snapshots.delete(p.rg, p.name, opts(ctx)));
    } catch (e) {
      if (!(e instanceof Error && 'kind' in e && e.kind === 'not_found')) throw e;
    }
    listings.snapshot(snap.id, null);
  }

  /** The disk snapshots a listed snapshot stands for. */
  function membersOf(state: VmState, ref: string): SnapRec[] {
    const setId = setIdOfRef(ref);
    if (setId) return state.snaps.filter((s) => s.tags[TAG.owner] === OWNER && s.tags[TAG.set] === setId && lower(s.tags[TAG.vm] ?? '') === lower(state.vm.id ?? ''));
    return state.snaps.filter((s) => lower(s.id) === lower(ref));
  }

  /** The slot of the VM (now) that a snapshot of `diskId` restores: following `replaced-by` from old disks. */
  function slotNow(state: VmState, diskId: string): string | null {
    let id = lower(diskId);
    for (let i = 0; i < 100; i++) {
      const d = state.disks.find((x) => lower(x.id) === id);
      if (d) return d.slot;
      const next = state.diskModels.find((x) => lower(x.id ?? '') === id)?.tags?.[TAG.replacedBy];
      if (!next) return null;
      id = lower(next);
    }
    return null;
  }

  const provider: AzureProvider = {
    ...providerIdentity('azure', target, capabilities),
    session,

    check: (ctx) =>
      checkHealth(ctx, guards, async (c) => {
        for (const rg of options.resourceGroups) {
          await call(`list VMs in resource group ${rg}`, false, c, async (client) => {
            for await (const vm of client.virtualMachines.list(rg, opts(c))) {
              void vm;
              break;
            }
          });
        }
        return `Microsoft.Compute api-version ${COMPUTE_API_VERSIONS.virtualMachines} (virtual machines), ${COMPUTE_API_VERSIONS.snapshots} (disks, snapshots)`;
      }),

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const lists = await Promise.all(
        options.resourceGroups.map((rg) => call(`list VMs in resource group ${rg}`, false, ctx, (c) => collect(c.virtualMachines.list(rg, { ...opts(ctx), expand: 'instanceView' })))),
      );
      return lists.flat().map((vm): VmInfo => {
        const code = powerCode(vm.instanceView?.statuses);
        return {
          providerVmId: vm.id ?? '',
          name: vm.name ?? '',
          powerState: powerOf(code),
          rawPowerState: code,
          disks: vmDisks(vm).map((d) => ({ slot: d.slot, path: d.id })),
          consolidationNeeded: false,
        };
      });
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      return (await readState(providerVmId, ctx)).list;
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'get snapshot');
      const state = await readState(providerVmId, ctx);
      const found = findSnapshot(state.list, providerRef);
      if (!found) throw err('not_found', `VM ${providerVmId} has no snapshot '${providerRef.slice(0, 200)}'`);
      if (found.ready) return found;
      // Still copying: read each unfinished member itself (completionPercent moves on Azure's side).
      const members = membersOf(state, found.providerRef).filter((m) => m.provisioningState !== 'Succeeded' || (m.completionPercent ?? 100) < 100);
      const fresh = await Promise.all(members.map((m) => call(`read snapshot ${m.name}`, false, ctx, (c) => c.snapshots.get(m.resourceGroup, m.name, opts(ctx)))));
      for (const f of fresh) if (f.id) listings.snapshot(f.id, f);
      for (const f of fresh.map(toSnapRec)) {
        const i = state.snaps.findIndex((s) => lower(s.id) === lower(f.id));
        if (i >= 0) state.snaps[i] = f;
      }
      return findSnapshot(relist(state), found.providerRef) ?? found;
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      const support = capabilities.modes[spec.mode];
      if (!support.supported) throw err('unsupported', `mode '${spec.mode}' is not supported: ${support.reason}`);
      validateSpec(spec);
      const { rg, name } = vmArg(providerVmId);
      if (spec.mode !== 'offline') return takeSet(providerVmId, spec, ctx);
      if (ctx.resume) return resumeOffline(offlineSteps(rg, name), offlineSequence(providerVmId), ctx, (c) => provider.createSnapshot(providerVmId, spec, c));
      const code = await readPowerCode(rg, name, ctx);
      const power = powerOf(code);
      if (power === 'off') return takeSet(providerVmId, spec, ctx);
      if (power !== 'running') throw err('conflict', `offline snapshot of VM ${providerVmId}: the VM is ${code}; wait until it is running or off`);
      // A retry after the set was made while the VM was off must not stop the VM again.
      const existing = setsOf(providerVmId, (await readState(providerVmId, ctx)).snaps).get(setIdOf(spec.marker));
      if (existing && existing.missing.length === 0 && existing.members.every((m) => m.provisioningState === 'Succeeded')) return takeSet(providerVmId, spec, ctx);
      return offlineSnapshot(offlineSteps(rg, name), offlineSequence(providerVmId), ctx, (c) => takeSet(providerVmId, spec, c));
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const state = await readState(providerVmId, ctx);
      const vmId = state.vm.id ?? providerVmId;
      const snap = findSnapshot(state.list, providerRef);
      if (!snap) throw err('not_found', `VM ${vmId} has no snapshot '${providerRef.slice(0, 200)}'`);
      const setId = setIdOfRef(snap.providerRef);
      if (setId && (snap.details as { partial?: boolean } | undefined)?.partial) {
        throw err('conflict', `revert VM ${vmId} to ${snap.providerRef}: the set is partial (a disk snapshot is missing); retry its create job to complete it`);
      }
      if (!snap.ready) throw err('conflict', `revert VM ${vmId} to ${snap.providerRef}: the snapshot is not ready yet (Azure is still copying it)`);
      const members = membersOf(state, snap.providerRef);
      const fromKey = setId ?? setIdOf(lower(snap.providerRef));
      // Which disk of the VM each member replaces.
      const plan = await Promise.all(
        members.map(async (m) => {
          const slot = setId ? (m.tags[TAG.disk] ?? '') : m.sourceId ? slotNow(state, m.sourceId) : null;
          if (!slot) throw err('conflict', `revert VM ${vmId}: snapshot ${m.name} is of a disk the VM no longer has`);
          const old = state.disks.find((d) => d.slot === slot);
          if (!old && slot === 'os') throw err('internal', `revert VM ${vmId}: the VM has no OS disk`);
          const model = old ? await readDisk(state, old.id, ctx) : undefined;
          const baseName = old?.name ?? `${state.name}_${slot}`;
          const diskName = revertDiskName(baseName, old?.id ?? `${vmId}/${slot}`, fromKey);
          return { member: m, slot, old, model, diskName };
        }),
      );
      // 1. The new disks, from the snapshots (a retry finds them by name: a re-PUT is an update).
      let step = 0;
      const steps = plan.length + 3;
      const progress = (msg: string) => ctx.progress(Math.min(99, Math.round((++step / steps) * 100)), msg);
      const made = await Promise.all(
        plan.map(async (p) => {
          const body: Disk = {
            location: p.model?.location ?? state.vm.location,
            ...(p.model?.sku ? { sku: p.model.sku } : {}),
            ...(p.model?.zones ? { zones: p.model.zones } : {}),
            ...(p.model?.osType ? { osType: p.model.osType } : {}),
            ...(p.model?.hyperVGeneration ? { hyperVGeneration: p.model.hyperVGeneration } : {}),
            creationData: { createOption: 'Copy', sourceResourceId: p.member.id },
            tags: { [TAG.owner]: OWNER, [TAG.vm]: vmId, ...(setId ? { [TAG.fromSet]: setId } : { [TAG.fromSnapshot]: p.member.id }) },
          };
          const disk = await call(`create disk ${p.diskName} from snapshot ${p.member.name}`, true, ctx, (c) => c.disks.createOrUpdate(state.rg, p.diskName, body, opts(ctx)));
          if (disk.id) listings.disk(disk.id, disk);
          progress(`disk ${p.diskName} made`);
          return { ...p, newId: disk.id ?? '' };
        }),
      );
      // 2. Stop (deallocate): the OS-disk swap needs it.
      const before = await readPowerCode(state.rg, state.name, ctx);
      const wasRunning = /PowerState\/(running|starting)/i.test(before);
      if (!/PowerState\/(deallocated|stopped)/i.test(before)) {
        await call(`deallocate VM ${state.rg}/${state.name}`, true, ctx, (c) => c.virtualMachines.deallocate(state.rg, state.name, opts(ctx)));
      }
      progress('VM deallocated');
      // 3. Swap: the OS disk, and the data disks by lun (a full list).
      const osSwap = made.find((m) => m.slot === 'os');
      const dataNow = state.vm.storageProfile?.dataDisks ?? [];
      const byLun = new Map(made.flatMap((m) => (lunOfSlot(m.slot) === null ? [] : [[lunOfSlot(m.slot)!, m] as const])));
      const dataDisks: DataDisk[] = dataNow.map((d) => {
        const r = byLun.get(d.lun);
        return r ? { lun: d.lun, createOption: 'Attach', name: r.diskName, managedDisk: { id: r.newId }, ...(d.caching ? { caching: d.caching } : {}) } : d;
      });
      for (const [lun, r] of byLun) if (!dataNow.some((d) => d.lun === lun)) dataDisks.push({ lun, createOption: 'Attach', name: r.diskName, managedDisk: { id: r.newId } });
      await call(`swap the disks of VM ${state.rg}/${state.name}`, true, ctx, (c) =>
        c.virtualMachines.update(
          state.rg,
          state.name,
          { storageProfile: { ...(osSwap ? { osDisk: { name: osSwap.diskName, createOption: 'Attach', managedDisk: { id: osSwap.newId } } } : {}), dataDisks } },
          opts(ctx),
        ),
      );
      vmReads.delete(lower(`${state.rg}/${state.name}`));
      progress('disks swapped');
      // 4. The old disks are kept, marked with what replaced them.
      await Promise.all(
        made.flatMap((m) => {
          const old = m.model;
          const id = old?.id;
          if (!old || !id) return [];
          const p = parseArmId(id);
          if (!p) return [];
          return [
            call(`tag disk ${p.name} as replaced`, true, ctx, (c) => c.disks.update(p.rg, p.name, { tags: { ...(old.tags ?? {}), [TAG.replacedBy]: m.newId } }, opts(ctx))).then((d) => listings.disk(d.id ?? id, d)),
          ];
        }),
      );
      // 5. Started again if it was running.
      if (wasRunning) await call(`start VM ${state.rg}/${state.name}`, true, ctx, (c) => c.virtualMachines.start(state.rg, state.name, opts(ctx)));
      const after = await readPowerCode(state.rg, state.name, ctx);
      ctx.progress(100);
      return { powerState: powerOf(after), rawPowerState: after };
    },

    async deleteSnapshot(providerVmId, providerRef, opt, ctx) {
      assertNotAborted(ctx, 'delete');
      const state = await readState(providerVmId, ctx);
      const snap = findSnapshot(state.list, providerRef);
      if (!snap) return; // already gone
      const refs = opt.children ? subtree(state.list, snap.providerRef) : [snap.providerRef];
      if (!opt.children) {
        // The children move up to the deleted set's parent, before it goes.
        const parentId = snap.parentRef ? setIdOfRef(snap.parentRef) : null;
        const children = state.list.filter((s) => s.parentRef === snap.providerRef);
        await Promise.all(
          children.flatMap((child) =>
            membersOf(state, child.providerRef).map((m) => {
              const { [TAG.parent]: _old, ...rest } = m.tags;
              void _old;
              return retag(m, parentId ? { ...rest, [TAG.parent]: parentId } : rest, ctx);
            }),
          ),
        );
      }
      let done = 0;
      for (const ref of refs) {
        const results = await Promise.allSettled(membersOf(state, ref).map((m) => deleteMember(m, ctx)));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
        ctx.progress(Math.round((++done / refs.length) * 100));
      }
    },

    async consolidate(providerVmId, ctx): Promise<ConsolidationReport> {
      assertNotAborted(ctx, 'consolidate');
      const state = await readState(providerVmId, ctx);
      const vmId = lower(state.vm.id ?? providerVmId);
      const known = new Set(state.diskModels.map((d) => lower(d.id ?? '')));
      const owned = state.snaps.filter((s) => s.tags[TAG.owner] === OWNER && lower(s.tags[TAG.vm] ?? '') === vmId && s.sourceId !== null);
      const unknownSources = [...new Set(owned.map((s) => lower(s.sourceId!)).filter((id) => !known.has(id)))];
      const gone = new Set<string>();
      for (const id of unknownSources) {
        const p = parseArmId(id);
        if (!p) continue;
        try {
          await call(`read disk ${p.name}`, false, ctx, (c) => c.disks.get(p.rg, p.name, opts(ctx)));
        } catch (e) {
          if (e instanceof Error && 'kind' in e && e.kind === 'not_found') gone.add(id);
          else throw e;
        }
      }
      const orphans = owned.filter((s) => gone.has(lower(s.sourceId!))).map((s) => s.id);
      ctx.progress(100);
      const text = orphans.length === 0 ? 'no orphaned snapshots' : `${orphans.length} snapshot(s) of disks that no longer exist, not deleted: ${orphans.join(', ')}`;
      return { merged: 0, message: `Azure snapshots have no chains to merge; ${text}`, ...(orphans.length > 0 ? { orphans } : {}) };
    },

    /**
     * Disk snapshots Snapvisor made (tag snapvisor-owner) whose source disk no longer exists, in the
     * configured resource groups: left behind when a VM and its disks were deleted. Each unknown
     * source is read once, so a disk in another group is not mistaken for gone. Read-only.
     */
    async listOrphans(ctx): Promise<OrphanArtefact[]> {
      assertNotAborted(ctx, 'list orphaned snapshots');
      const exists = new Map<string, Promise<boolean>>();
      const diskExists = (id: string): Promise<boolean> => {
        const p = parseArmId(id);
        if (!p || p.type !== 'disks') return Promise.resolve(true); // not a managed disk: not ours to judge
        const known = exists.get(id) ?? call(`read disk ${p.name}`, false, ctx, (c) => c.disks.get(p.rg, p.name, opts(ctx))).then(
          () => true,
          (e: unknown) => {
            if (e instanceof Error && 'kind' in e && e.kind === 'not_found') return false;
            throw e;
          },
        );
        exists.set(id, known);
        return known;
      };
      const out: OrphanArtefact[] = [];
      for (const g of options.resourceGroups) {
        const [snapshots, disks] = await Promise.all([
          call(`list snapshots in resource group ${g}`, false, ctx, (c) => collect(c.snapshots.listByResourceGroup(g, opts(ctx)))),
          call(`list disks in resource group ${g}`, false, ctx, (c) => collect(c.disks.listByResourceGroup(g, opts(ctx)))),
        ]);
        for (const d of disks) if (d.id) exists.set(lower(d.id), Promise.resolve(true));
        for (const snap of snapshots) {
          const source = snap.creationData?.sourceResourceId;
          if (snap.tags?.[TAG.owner] !== OWNER || !snap.id || !source) continue;
          if (await diskExists(lower(source))) continue;
          out.push({
            ref: snap.id,
            kind: 'disk-snapshot',
            reason: `snapshot made by Snapvisor of disk ${parseArmId(source)?.name ?? source}, which no longer exists`,
            ...(snap.diskSizeGB === undefined ? {} : { sizeBytes: snap.diskSizeGB * 1024 ** 3 }),
          });
        }
      }
      return out;
    },

    async close() {},
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function azureFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): AzureProvider {
  return createAzureProvider(target, options, deps);
}
