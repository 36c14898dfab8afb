/**
 * Hyper-V adapter: the Hyper-V PowerShell module on a Windows host, reached with Windows OpenSSH
 * (node-ssh, the pooled transport) or run locally. Every call is one fixed script from
 * providers/hyperv/scripts (scripts.ts), its parameters (user data, as JSON) on stdin: by default
 * to one of a few long-lived PowerShell hosts on the Windows host (shared/powershell-host.ts), or
 * — `sessions: false`, or when no host is free — as its own PowerShell process (a small
 * `-EncodedCommand` bootstrap, the PowerShell command encoding). One call per operation where
 * possible: a PowerShell start costs far more than the cmdlets.
 *
 * Identity: a VM is its Id (GUID), a checkpoint is its Id; names are never used to find anything
 * (Hyper-V matches names as case-insensitive wildcards and allows duplicates, reference §2.2).
 *
 * Marker and description: a checkpoint copies the VM's Notes, so for the call the VM's Notes are
 * `<description>\n\n<marker>`, and are put back afterwards (with the checkpoint type). The create
 * script looks for the marker first, so a retried or recovered job returns what it already made.
 *
 * Modes (reference §2.1, §2.7):
 * - memory: a Standard checkpoint (the VM's checkpoint type set for the call) of a running or
 *   paused VM, saved memory included. A VM that is not running is a `conflict`.
 * - quiesced: a ProductionOnly checkpoint (VSS / fsfreeze in the guest, no memory). If the guest
 *   cannot make one it is a `conflict` — never the standard checkpoint Hyper-V's `Production`
 *   type would silently fall back to.
 * - offline: Stop-VM (guest shutdown) → checkpoint → Start-VM, the kit's offline sequence.
 * - crash: `unsupported` (Hyper-V has no disk-only checkpoint of a running VM).
 *
 * Revert: Restore-VMSnapshot -Confirm:$false, whose rules are Hyper-V's (§2.3): a running VM
 * reverted to a checkpoint with memory ends running; to one without memory (quiesced, offline) it
 * ends off. Delete: by Id (Remove-VMSnapshot of an unknown name succeeds silently, §2.4), with
 * -IncludeAllChildSnapshots for a subtree; children of a removed checkpoint move to its parent.
 * Each removal starts a disk merge on the host: the next checkpoint, revert or removal waits for it
 * (mergeWaitSec), and consolidate() waits for it with progress and reports orphaned .avhdx files
 * (on disk beside the VM's disks, in no chain) — it never deletes them.
 */
import {
  snapshotTextProblems,
  type CallContext,
  type Capabilities,
  type ConsolidationReport,
  type CreateSpec,
  type Logger,
  type ProviderSnapshot,
  type ProviderWith,
  type VmInfo,
} from '../contract.ts';
import type { PowerShellRunner, PowerShellValue } from '../shared/command-encoding.ts';
import type { RunResult } from '../shared/command-runner.ts';
import { descriptionWithMarker, splitMarker } from '../shared/description-marker.ts';
import { checkId, createGuards, UUID_RE, uuidIds } from '../shared/guards.ts';
import { checkHealth } from '../shared/health.ts';
import { offlineSnapshot, resumeOffline, type OfflineSteps } from '../shared/offline.ts';
import { LOCAL_TREE, providerIdentity } from '../shared/provider-base.ts';
import { snapshotIn } from '../shared/snapshot-lookup.ts';
import { sleep } from '../shared/sleep.ts';
import { createPowerShellTransport, type PowerShellTransport } from '../shared/ssh-target.ts';
import { fromRunError, fromScriptOutcome, type CallInfo } from './errors.ts';
import { PROVIDER, parseOptions, type HyperVOptions } from './options.ts';
import { HyperVParseError, toCheckpoint, toDrive, toVm, type HvCheckpoint, type HvVm } from './parse.ts';
import { readScriptOutput } from './script-output.ts';
import { scriptRequest, type ScriptName } from './scripts.ts';

export interface HyperVDeps {
  log: Logger;
  /** The transport; built from options.ssh (or a local PowerShell without it) when absent. */
  runner?: PowerShellRunner;
  /** How often to look at the VM while waiting for a guest shutdown or a disk merge (default 1000 ms). */
  pollIntervalMs?: number;
}

const VM_IDS = uuidIds('Hyper-V VM');
/**
 * "Names are limited to 100 characters" (reference §2.1). A UTF-8 byte count is never below the
 * UTF-16 length Hyper-V counts, so 100 bytes can never be too long for Hyper-V.
 */
const MAX_NAME_BYTES = 100;

const CAPABILITIES: Capabilities = {
  modes: {
    memory: { supported: true },
    quiesced: { supported: true },
    offline: { supported: true },
    crash: {
      supported: false,
      reason: "Hyper-V has no crash-consistent checkpoint of a running VM: a standard checkpoint saves its memory (mode 'memory') and a production checkpoint quiesces the guest (mode 'quiesced')",
    },
  },
  ...LOCAL_TREE,
  consolidate: true,
  duplicateNames: true,
  limits: {
    maxNameBytes: MAX_NAME_BYTES,
    nameRules: [
      { pattern: '\\u0000', effect: 'forbid', reason: 'NUL characters cannot be stored in a Hyper-V checkpoint name' },
      { pattern: '\\u0000', effect: 'forbid', field: 'description', reason: 'NUL characters cannot be stored in Hyper-V notes' },
    ],
  },
};

export type HyperVProvider = ProviderWith<'revertSnapshot' | 'consolidate' | 'deleteAllSnapshots'>;

interface VmAndCheckpoints {
  vm: HvVm;
  checkpoints: HvCheckpoint[];
}

function field(o: unknown, key: string): unknown {
  if (typeof o !== 'object' || o === null || !(key in o)) throw new HyperVParseError(`the script's result has no '${key}'`);
  return (o as Record<string, unknown>)[key];
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === null || v === undefined ? [] : [v]);

function toProviderSnapshot(c: HvCheckpoint, vm: HvVm): ProviderSnapshot {
  const { description, marker } = splitMarker(c.notes);
  return {
    providerRef: c.id,
    name: c.name,
    description,
    parentRef: c.parentId,
    current: vm.parentSnapshotId === c.id,
    createdAt: c.createdAt,
    // A checkpoint holding saved memory was a memory one; without, quiesced and offline look alike.
    mode: c.hasMemory ? 'memory' : null,
    marker,
    ready: true,
  };
}

export function createHyperVProvider(target: string, rawOptions: Record<string, unknown>, deps: HyperVDeps): HyperVProvider {
  const options: HyperVOptions = parseOptions(target, rawOptions);
  const transport: PowerShellTransport = deps.runner
    ? { runner: deps.runner, close: async () => {} }
    : createPowerShellTransport(options.ssh, { provider: PROVIDER, log: deps.log, executable: options.powershell, scriptOn: 'stdin', sessions: options.sessions });
  const runner = transport.runner;
  const pollMs = deps.pollIntervalMs ?? 1000;
  const timeoutMs = options.commandTimeoutSec * 1000;
  const guards = createGuards(PROVIDER, target);
  const { err, assertNotAborted, withTarget } = guards;

  /** Runs one script; its result value, or the ProviderError its output stands for. */
  async function call(name: ScriptName, params: { [key: string]: PowerShellValue }, ctx: CallContext, info: CallInfo, callTimeoutMs = timeoutMs): Promise<unknown> {
    let result: RunResult;
    try {
      result = await runner.run(scriptRequest(name, { ...params, mergeWaitMs: options.mergeWaitSec * 1000 }), { signal: ctx.signal, timeoutMs: callTimeoutMs });
    } catch (e) {
      throw fromRunError(e, withTarget(info), options.powershell);
    }
    const outcome = readScriptOutput(result.stdout, result.exitCode);
    if (outcome.type === 'result') return outcome.value;
    throw fromScriptOutcome(outcome, result, withTarget(info));
  }

  /** Reads a script's result; output that does not have the expected shape is `internal`. */
  function parsed<T>(info: CallInfo, read: () => T): T {
    try {
      return read();
    } catch (e) {
      if (e instanceof HyperVParseError) throw err('internal', `${info.what}: unexpected output from PowerShell: ${e.message}`, { cause: e });
      throw e;
    }
  }

  const vmArg = (providerVmId: string): string => checkId(err, VM_IDS, 'VM', providerVmId);

  async function readCheckpoints(vmId: string, ctx: CallContext): Promise<VmAndCheckpoints> {
    const info = { what: `list checkpoints of VM ${vmId}`, mutating: false };
    const value = await call('checkpoints', { vmId }, ctx, info);
    return parsed(info, () => ({ vm: toVm(field(value, 'vm')), checkpoints: list(field(value, 'checkpoints')).map(toCheckpoint) }));
  }

  function validateSpec(spec: CreateSpec): void {
    const problems = snapshotTextProblems(CAPABILITIES.limits, spec);
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  /**
   * The create script: the checkpoint with the job's marker if there is one, else a new one — in mode
   * offline only when the VM is off: otherwise the answer is the VM alone (nothing made).
   */
  async function create(vmId: string, spec: CreateSpec, ctx: CallContext): Promise<{ checkpoint?: HvCheckpoint; vm: HvVm }> {
    const info = { what: `make a ${spec.mode} checkpoint of VM ${vmId}`, mutating: true };
    const value = await call('create', { vmId, name: spec.name, notes: descriptionWithMarker(spec.description, spec.marker), marker: spec.marker, mode: spec.mode }, ctx, info);
    return parsed(info, () => {
      const o = value as Record<string, unknown>;
      const vm = toVm(field(o, 'vm'));
      return 'checkpoint' in o ? { checkpoint: toCheckpoint(o.checkpoint), vm } : { vm };
    });
  }

  async function power(vmId: string, action: 'read' | 'shutdown' | 'turnoff' | 'start', ctx: CallContext, callTimeoutMs = timeoutMs): Promise<{ vm: HvVm; unable?: string }> {
    const what = { read: 'read the state of VM', shutdown: 'shut down VM', turnoff: 'turn off VM', start: 'start VM' }[action];
    const info = { what: `${what} ${vmId}`, mutating: action !== 'read' };
    const value = await call('power', { vmId, action }, ctx, info, callTimeoutMs);
    return parsed(info, () => {
      const unable = (value as Record<string, unknown>).unable;
      return { vm: toVm(field(value, 'vm')), ...(typeof unable === 'string' ? { unable } : {}) };
    });
  }

  /** The offline sequence's Hyper-V steps (shared/offline.ts). */
  const offlineSequence = (vmId: string) => ({ offline: options.offline, err, what: `offline snapshot of VM ${vmId}`, pollMs });
  const offlineSteps = (vmId: string): OfflineSteps => ({
    shutdown: async (ctx) => {
      // Stop-VM waits for the guest; the sequence's own deadline is the one that counts.
      const r = await power(vmId, 'shutdown', ctx, Math.min(timeoutMs, (options.offline.shutdownTimeoutSec + 30) * 1000));
      return r.unable === undefined ? { power: { off: r.vm.stateName === 'Off', raw: r.vm.stateName } } : { unable: `the guest did not shut down: ${r.unable}` };
    },
    readPower: async (ctx) => {
      const { vm } = await power(vmId, 'read', ctx);
      return { off: vm.stateName === 'Off', raw: vm.stateName, transitioning: vm.stateName === 'Stopping' || vm.stateName === 'Starting' };
    },
    powerOff: async (ctx) => {
      await power(vmId, 'turnoff', ctx);
    },
    start: async (ctx) => {
      await power(vmId, 'start', ctx);
    },
  });

  const provider: HyperVProvider = {
    ...providerIdentity('hyperv', target, CAPABILITIES),

    check: (ctx) =>
      checkHealth(ctx, guards, async (c) => {
        const info = { what: 'check', mutating: false };
        const value = await call('check', {}, c, info);
        return parsed(info, () => `Hyper-V module ${String(field(value, 'module'))}, PowerShell ${String(field(value, 'powershell'))}`);
      }),

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const info = { what: 'list VMs', mutating: false };
      const value = await call('inventory', {}, ctx, info);
      return parsed(info, () =>
        list(value).map((entry): VmInfo => {
          const vm = toVm(field(entry, 'vm'));
          const drives = list(field(entry, 'drives')).map(toDrive);
          return {
            providerVmId: vm.id,
            name: vm.name,
            powerState: vm.powerState,
            rawPowerState: vm.stateName,
            disks: drives.map((d) => ({ slot: `${d.controllerType === 0 ? 'IDE' : d.controllerType === 1 ? 'SCSI' : 'PMEM'} ${d.controllerNumber}:${d.controllerLocation}`, path: d.path })),
            consolidationNeeded: vm.merging,
            snapshots: list(field(entry, 'checkpoints')).map(toCheckpoint).map((c) => toProviderSnapshot(c, vm)),
          };
        }),
      );
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      const { vm, checkpoints } = await readCheckpoints(vmArg(providerVmId), ctx);
      return checkpoints.map((c) => toProviderSnapshot(c, vm));
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      return snapshotIn(await provider.listSnapshots(providerVmId, ctx), providerRef.toLowerCase(), () => err('not_found', `VM ${providerVmId} has no checkpoint '${providerRef}'`));
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      const vmId = vmArg(providerVmId);
      const support = CAPABILITIES.modes[spec.mode];
      if (!support.supported) throw err('unsupported', `mode '${spec.mode}' is not supported: ${support.reason}`);
      validateSpec(spec);
      if (spec.mode === 'offline' && ctx.resume) return resumeOffline(offlineSteps(vmId), offlineSequence(vmId), ctx, (c) => provider.createSnapshot(providerVmId, spec, c));
      // One PowerShell call: the script looks for the marker, checkpoints, and answers the
      // checkpoint with the VM (whose ParentSnapshotId says which checkpoint is current).
      const first = await create(vmId, spec, ctx);
      if (first.checkpoint) return toProviderSnapshot(first.checkpoint, first.vm);
      const state = first.vm.stateName;
      if (spec.mode !== 'offline') throw err('internal', `make a ${spec.mode} checkpoint of VM ${vmId}: the script reported no checkpoint`, { retry: 'uncertain' });
      // Offline, and the VM is not off (nothing was made).
      if (state !== 'Running') {
        const why = state === 'Saved' || state === 'Paused'
          ? `VM ${vmId} is ${state}: shutting it down would discard its ${state === 'Saved' ? 'saved' : 'running'} state; resume it or use mode 'memory'`
          : `VM ${vmId} is ${state}; wait until it is running or off`;
        throw err('conflict', `offline snapshot: ${why}`);
      }
      const take = async (c: CallContext): Promise<ProviderSnapshot> => {
        const made = await create(vmId, spec, c);
        if (!made.checkpoint) throw err('conflict', `offline snapshot of VM ${vmId}: the VM is ${made.vm.stateName}, not off, after the shutdown`);
        return toProviderSnapshot(made.checkpoint, made.vm);
      };
      return offlineSnapshot(offlineSteps(vmId), offlineSequence(vmId), ctx, take);
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const vmId = vmArg(providerVmId);
      if (!UUID_RE.test(providerRef)) throw err('not_found', `VM ${vmId} has no checkpoint '${providerRef}'`);
      const info = { what: `revert VM ${vmId} to checkpoint ${providerRef.toLowerCase()}`, mutating: true };
      const value = await call('revert', { vmId, checkpointId: providerRef.toLowerCase() }, ctx, info);
      const vm = parsed(info, () => toVm(field(value, 'vm')));
      ctx.progress(100);
      return { powerState: vm.powerState, rawPowerState: vm.stateName };
    },

    async deleteSnapshot(providerVmId, providerRef, opts, ctx) {
      assertNotAborted(ctx, 'delete');
      const vmId = vmArg(providerVmId);
      if (!UUID_RE.test(providerRef)) throw err('not_found', `VM ${vmId} has no checkpoint '${providerRef}'`);
      const ref = providerRef.toLowerCase();
      await call('delete', { vmId, checkpointId: ref, children: opts.children, all: false }, ctx, { what: `delete checkpoint ${ref} of VM ${vmId}`, mutating: true });
      ctx.progress(100);
    },

    async deleteAllSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'delete all');
      const vmId = vmArg(providerVmId);
      await call('delete', { vmId, checkpointId: '', children: true, all: true }, ctx, { what: `delete every checkpoint of VM ${vmId}`, mutating: true });
      ctx.progress(100);
    },

    async consolidate(providerVmId, ctx): Promise<ConsolidationReport> {
      assertNotAborted(ctx, 'consolidate');
      const vmId = vmArg(providerVmId);
      const info = { what: `read the disks of VM ${vmId}`, mutating: false };
      const read = async () => {
        const value = await call('disks', { vmId }, ctx, info);
        return parsed(info, () => ({ vm: toVm(field(value, 'vm')), orphans: list(field(value, 'orphans')).map(String) }));
      };
      let disks = await read();
      const merging = disks.vm.merging;
      if (merging) {
        // While it merges, only the VM's status is read (Get-VM); the chains are walked again after.
        const started = Date.now();
        const budgetMs = Math.max(options.mergeWaitSec * 1000, pollMs);
        for (let vm = disks.vm; vm.merging; vm = (await power(vmId, 'read', ctx)).vm) {
          if (Date.now() - started > budgetMs) throw err('transient', `consolidate VM ${vmId}: the disks are still merging after ${options.mergeWaitSec} s`, { retry: 'transient' });
          // Hyper-V shows no percentage for a merge (§2.5): the elapsed share of the wait, capped.
          ctx.progress(Math.min(90, Math.round(((Date.now() - started) / budgetMs) * 100)), 'waiting for the disk merge');
          await sleep(pollMs, ctx.signal, () => err('transient', `consolidate VM ${vmId}: cancelled while the disks were merging`, { retry: 'transient' }));
        }
        disks = await read();
      }
      ctx.progress(100);
      const orphanText = disks.orphans.length === 0 ? 'no orphaned .avhdx files' : `${disks.orphans.length} orphaned .avhdx file(s), not deleted: ${disks.orphans.join(', ')}`;
      return {
        merged: merging ? 1 : 0,
        message: `${merging ? 'waited for the disk merge to finish' : 'no disk merge was running'}; ${orphanText}`,
        ...(disks.orphans.length > 0 ? { orphans: disks.orphans } : {}),
      };
    },

    async close() {
      await transport.close();
    },
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function hyperVFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): HyperVProvider {
  return createHyperVProvider(target, options, deps);
}

