/**
 * KVM adapter: this file is the provider object; virsh I/O is virsh.ts, the create path create.ts,
 * the blockcommit merge merge.ts (planners: merge-plan.ts, consolidation.ts).
 *
 * It drives `virsh -c <uri>` through a CommandRunner (SSH in production, argv arrays
 * only — the transport quotes each argument; never a shell string).
 *
 * Identity: a VM is its libvirt domain UUID; a snapshot is its libvirt name (libvirt's only id), so
 * providerRef = name. Every virsh call names its arguments (`--domain`, `--snapshotname`) so a
 * name can never be read as an option.
 *
 * State is read from XML: `dumpxml`, `snapshot-list --name` + `snapshot-dumpxml` per snapshot
 * (parent, description, state, internal/external), `snapshot-current --name`, `domstate`.
 *
 * Marker: `spec.marker` is the last line of the snapshot `<description>` (like VirtualBox).
 * createSnapshot looks its name up first and returns the snapshot when it carries the marker (a
 * retry of the same job). Each virsh run is a remote process start (~60–200 ms), so independent
 * reads go out side by side and nothing is read twice: a new snapshot is current by libvirt's rule.
 *
 * Modes (create.ts): memory (internal, or external with `snapshotStyle: external`; running/paused
 * only), crash (`--disk-only --atomic` overlays), quiesced (plus `--quiesce`; needs qemu-guest-agent),
 * offline (shared/offline.ts around an internal snapshot of the shut-off domain).
 *
 * Revert: natively. Refused (`unsupported`, with the reason): external snapshots on libvirt < 9.9
 * (it would need new overlays on the snapshot's backing images, created as root: the SSH user cannot),
 * an internal snapshot with external descendants (libvirt would silently invalidate the overlays,
 * danger 2), purely numeric names (QEMU would load the snapshot with that id, danger 1).
 *
 * Delete (planner: merge-plan.ts): libvirt's own delete where it can — internal (`--children` for an
 * internal subtree), and on >= 9.0 an external snapshot in a linear external chain (commit + pivot).
 * Where libvirt 9.0 refuses but it is safe, a manual merge: every overlay a deleted snapshot created
 * is committed into the image right below it, one blockcommit per contiguous run (`--active --pivot`
 * when the run includes the active image), then `snapshot-delete --metadata`, deepest first. Cases:
 * `children` on a subtree with external snapshots; an external snapshot with an internal parent (its
 * overlay goes into the image holding the internal snapshot — writing a qcow2's active state leaves
 * its internal snapshots alone). Refused (`unsupported`, reason in the message): a surviving snapshot
 * stored in a file the merge removes, a deleted internal snapshot stored in an image that stays
 * (internal with external children: it sits in a read-only backing file), an external snapshot with
 * more than one child, non-file disks, overlays not in the chain. Already gone = success.
 *
 * Merging (merge.ts; consolidate and manual deletes share mergeCommits): each commit checked against
 * the chain before and after, stale snapshot metadata removed also after a failure part-way, files
 * left behind named; a shut-off domain is started paused for it (offlineMerge) and destroyed again.
 *
 * Consolidate (planner: consolidation.ts): per disk, chains of snapshot-made overlays deeper than
 * consolidate.maxChainDepth keep their newest overlays and merge the older ones into the image the
 * oldest overlay sits on (never into a template below it); `--active --pivot` when maxChainDepth is 0.
 * A shut-off domain is started paused only when its recorded overlays say it may be too deep.
 *
 * listVms `consolidationNeeded`: the snapshots are read only when the dumpxml read anyway shows a
 * chain deeper than maxChainDepth (shut off: when it has more external snapshots than that, one
 * `snapshot-list --external`); then the planner decides (shut off: from the recorded overlays).
 */
import { ProviderError, type Capabilities, type ConsolidationReport, type DeleteOptions, type Logger, type ProviderWith, type VmInfo } from '../contract.ts';
import type { CommandRunner } from '../shared/command-runner.ts';
import { createGuards } from '../shared/guards.ts';
import { checkHealth } from '../shared/health.ts';
import { mapLimit } from '../shared/map-limit.ts';
import type { Clock } from '../shared/offline.ts';
import { EVERY_MODE, LOCAL_TREE, providerIdentity } from '../shared/provider-base.ts';
import { createTargetTransport, withSessions, type TargetTransport } from '../shared/ssh-target.ts';
import { createSnapshotPath } from './create.ts';
import { NO_SNAPSHOT } from './errors.ts';
import { createMerger } from './merge.ts';
import { classifyDelete, isExternal } from './merge-plan.ts';
import { KVM_LIMITS, isNumericName } from './naming.ts';
import { PROVIDER, parseOptions, type KvmOptions } from './options.ts';
import { versionAtLeast, type VirshVersion } from './parse.ts';
import { snapshotIn } from '../shared/snapshot-lookup.ts';
import { createVirshHost, descendants, READ_PARALLELISM, toProviderSnapshot } from './virsh.ts';
import { virshSessionProtocol } from './virsh-session.ts';

export interface KvmDeps {
  log: Logger;
  /** The transport; built from options.ssh (or local processes without it) when absent. */
  runner?: CommandRunner;
  /** How often to look at the domain while waiting for a guest shutdown (default 500 ms). */
  pollIntervalMs?: number;
  /** The offline sequence's clock (tests). */
  clock?: Clock;
}

const CAPABILITIES: Capabilities = {
  // All four; a quiesced job still needs qemu-guest-agent in the guest (conflict without it).
  modes: EVERY_MODE,
  ...LOCAL_TREE,
  consolidate: true,
  duplicateNames: false,
  limits: KVM_LIMITS,
};

/**
 * crash and quiesced snapshots are external overlays, which libvirt reverts only from 9.9 on. Until
 * check() (or any call) has read the daemon's version the declaration stays on the safe side.
 */
export function kvmCapabilities(version: VirshVersion | undefined): Capabilities {
  const v = version?.daemon ?? version?.library ?? null;
  if (v !== null && versionAtLeast(v, 9, 9)) return structuredClone(CAPABILITIES);
  const refused = `external (disk-only) snapshots can be reverted only on libvirt 9.9 or later (this host: ${v ?? 'version not read yet'})`;
  return { ...structuredClone(CAPABILITIES), modes: { ...EVERY_MODE, crash: { supported: true, revertRefused: refused }, quiesced: { supported: true, revertRefused: refused } } };
}

export type KvmProvider = ProviderWith<'revertSnapshot' | 'consolidate'>;

export function createKvmProvider(target: string, rawOptions: Record<string, unknown>, deps: KvmDeps): KvmProvider {
  const options: KvmOptions = parseOptions(target, rawOptions);
  const base: TargetTransport = deps.runner ? { runner: deps.runner, close: async () => {} } : createTargetTransport(options.ssh, deps.log);
  // One virsh per session for the reads and the quick changes: the pool keeps as many as the
  // adapter reads in parallel.
  const transport = options.sessions ? withSessions(base, virshSessionProtocol(options.uri), { log: deps.log, size: READ_PARALLELISM }) : base;
  const guards = createGuards(PROVIDER, target);
  const { err, assertNotAborted } = guards;
  const host = createVirshHost(transport.runner, options, guards);
  const merger = createMerger(host, options, guards);
  const create = createSnapshotPath({ host, options, guards, pollMs: deps.pollIntervalMs ?? 500, ...(deps.clock ? { clock: deps.clock } : {}) });

  const provider: KvmProvider = {
    ...providerIdentity('kvm', target, CAPABILITIES),
    capabilities: () => kvmCapabilities(host.knownVersion()),

    check: (ctx) =>
      checkHealth(ctx, guards, async () => {
        const v = await host.libvirtVersion(ctx, true);
        return `libvirt ${v.daemon ?? v.library ?? '?'}${v.hypervisor ? `, ${v.hypervisor}` : ''}`;
      }),

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const uuids = await host.listDomainUuids(ctx);
      const vms = await mapLimit(uuids, READ_PARALLELISM, async (uuid): Promise<VmInfo | null> => {
        try {
          const [dom, { powerState, raw }] = await Promise.all([host.readDomain(uuid, ctx), host.readDomState(uuid, ctx)]);
          return {
            providerVmId: uuid.toLowerCase(),
            name: dom.name,
            powerState,
            rawPowerState: raw,
            consolidationNeeded: await merger.needsConsolidation(uuid, dom, raw === 'running' || raw === 'paused', ctx),
            disks: dom.disks
              .filter((d) => d.device === 'disk')
              .map((d) => ({ slot: d.target, ...(d.source === null ? {} : { path: d.source }), chainDepth: d.backingChain.length })),
          };
        } catch (e) {
          if (e instanceof ProviderError && e.kind === 'not_found') return null; // undefined meanwhile
          throw e;
        }
      });
      return vms.filter((v): v is VmInfo => v !== null);
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      return (await host.readSnapshots(host.domArg(providerVmId), ctx)).map(toProviderSnapshot);
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      return snapshotIn(await provider.listSnapshots(providerVmId, ctx), providerRef, () => err('not_found', `domain ${providerVmId} has no snapshot '${providerRef}'`));
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      return create(host.domArg(providerVmId), spec, ctx);
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const dom = host.domArg(providerVmId);
      const all = await host.readSnapshots(dom, ctx);
      const snap = all.find((s) => s.name === providerRef);
      if (!snap) throw err('not_found', `domain ${dom} has no snapshot '${providerRef}'`);
      if (isNumericName(snap.name)) {
        throw err('unsupported', `snapshot '${snap.name}' has a purely numeric name: libvirt would revert to the QEMU snapshot with that id instead; rename it first`);
      }
      if (isExternal(snap)) {
        const v = await host.libvirtVersion(ctx);
        if (!versionAtLeast(v.daemon ?? v.library, 9, 9)) {
          throw err('unsupported', `snapshot '${snap.name}' is external: libvirt ${v.daemon ?? v.library ?? '?'} cannot revert external snapshots (added in 9.9)`);
        }
      } else if (descendants(all, snap.name).some((d) => isExternal(d))) {
        throw err('unsupported', `snapshot '${snap.name}' is internal but has external descendants: reverting would silently invalidate their overlay files`);
      }
      ctx.progress(5);
      await host.virsh(['snapshot-revert', '--domain', dom, '--snapshotname', snap.name], ctx, { what: `revert domain ${dom} to snapshot '${snap.name}'`, mutating: true });
      const { powerState, raw } = await host.readDomState(dom, ctx);
      ctx.progress(100);
      return { powerState, rawPowerState: raw };
    },

    async deleteSnapshot(providerVmId, providerRef, options: DeleteOptions, ctx) {
      assertNotAborted(ctx, 'delete');
      const dom = host.domArg(providerVmId);
      const remove = async (args: string[]): Promise<void> => {
        ctx.progress(5);
        try {
          await host.virsh(args, ctx, { what: `delete snapshot '${providerRef}' of domain ${dom}`, mutating: true });
        } catch (e) {
          if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return; // deleted meanwhile
          throw e;
        }
        ctx.progress(100);
      };
      // An internal snapshot without children (the common case) needs no view of the rest of the
      // tree: two reads, side by side, instead of one virsh run per snapshot of the domain.
      const [one, childLines] = await Promise.all([host.readSnapshot(dom, providerRef, ctx), host.childNames(dom, providerRef, ctx)]);
      if (!one) return; // already gone
      if (!isExternal(one) && childLines !== null && childLines.length === 0) {
        return remove(['snapshot-delete', '--domain', dom, '--snapshotname', one.name]);
      }
      const all = await host.readSnapshots(dom, ctx);
      const snap = all.find((s) => s.name === providerRef);
      if (!snap) return; // already gone
      // Planner: merge-plan.ts. libvirt's own delete where it can (internal; >= 9.0: an external
      // snapshot in a linear external chain); a manual merge where it refuses but it is safe.
      const involvesExternal = isExternal(snap) || (options.children && descendants(all, snap.name).some((d) => isExternal(d)));
      const v = involvesExternal ? await host.libvirtVersion(ctx) : null;
      const decision = classifyDelete(all, snap.name, options.children, versionAtLeast(v?.daemon ?? v?.library ?? null, 9, 0));
      if (decision.kind === 'refuse') throw err('unsupported', `delete snapshot '${snap.name}' of domain ${dom}: ${decision.reason}`);
      if (decision.kind === 'merge') return merger.deleteByMerge(dom, snap.name, all, decision.deleted, ctx);
      const args = ['snapshot-delete', '--domain', dom, '--snapshotname', snap.name, ...(decision.children ? ['--children'] : [])];
      await remove(args);
    },

    async consolidate(providerVmId, ctx): Promise<ConsolidationReport> {
      assertNotAborted(ctx, 'consolidate');
      return merger.consolidateDomain(host.domArg(providerVmId), ctx);
    },

    async close() {
      await transport.close();
    },
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function kvmFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): KvmProvider {
  return createKvmProvider(target, options, deps);
}
