/**
 * VirtualBox adapter: drives VBoxManage through a CommandRunner (argv arrays only): local processes,
 * or the target's pooled SSH connection when it has an `ssh:` block (each argument quoted for the
 * remote shell by the transport).
 *
 * Identity: a VM is its UUID, a snapshot is its UUID. Every command addresses both by UUID — never by
 * name, because VirtualBox allows duplicate snapshot names and resolves a name to the first match.
 *
 * Marker: `spec.marker` (`snapvisor:<jobId>`) is the last line of the snapshot description
 * (`<user description>\n\n<marker>`, or just the marker). createSnapshot looks for it first, so a
 * retried or recovered job returns the snapshot it already made.
 *
 * Modes:
 * - memory: `snapshot take` on a running or paused VM (the saved state is included). A VM that is
 *   not running is a `conflict` — never a silent disk-only snapshot.
 * - offline: a running VM gets the ACPI power button and is polled until it is off (up to
 *   offline.shutdownTimeoutSec, honouring the signal); if it is still on, it is powered off when
 *   offline.forcePowerOff is set, else `conflict`. Then take, then `startvm --type headless` if it was
 *   running — also when the take failed (best effort, logged). The sequence is shared/offline.ts; this
 *   adapter gives it the VBoxManage steps. A saved or paused VM is a `conflict`: powering it off
 *   would throw away its saved/running state.
 * - crash, quiesced: not offered by VirtualBox → `unsupported`.
 *
 * Revert: VirtualBox refuses to restore while the VM runs, and a revert discards the current state
 * by definition, so a running/paused VM is powered off first. After the restore, a VM whose snapshot
 * was taken online ends `saved`; it is started headless so its power state matches the snapshot's
 * (running). A snapshot taken offline leaves the VM powered off.
 *
 * Delete: already gone is success. `children: true` deletes the subtree deepest-first, then the node.
 * Without it, VirtualBox's refusal (more than one child; current snapshot with a child) is `conflict`.
 */
import {
  ProviderError,
  type CallContext,
  type Capabilities,
  type CreateSpec,
  type DeleteOptions,
  type Logger,
  type ProviderSnapshot,
  type ProviderWith,
  snapshotTextProblems,
  type VmInfo,
} from '../contract.ts';
import { descriptionWithMarker, splitMarker } from '../shared/description-marker.ts';
import type { CommandRunner, RunResult } from '../shared/command-runner.ts';
import { checkId, createGuards, UUID_RE, uuidIds } from '../shared/guards.ts';
import { checkHealth } from '../shared/health.ts';
import { offlineSnapshot, resumeOffline, type OfflineSteps } from '../shared/offline.ts';
import { LOCAL_TREE, providerIdentity } from '../shared/provider-base.ts';
import { snapshotIn } from '../shared/snapshot-lookup.ts';
import { createTargetTransport, type TargetTransport } from '../shared/ssh-target.ts';
import { fromRunError, fromVboxFailure, type CallInfo } from './errors.ts';
import { PROVIDER, parseOptions, type VirtualBoxOptions } from './options.ts';
import {
  hasErrorLine,
  lastProgressPercent,
  parseListVms,
  parseSnapshotList,
  parseTakenUuid,
  parseVmInfo,
  powerStateOf,
  type ParsedSnapshot,
  type ParsedVmInfo,
} from './parse.ts';

export interface VirtualBoxDeps {
  log: Logger;
  /** The transport; built from options.ssh (or local processes without it) when absent. */
  runner?: CommandRunner;
  /** How often to look at the VM while waiting for a guest shutdown (default 500 ms). */
  pollIntervalMs?: number;
}

const VM_IDS = uuidIds('VirtualBox VM');
const NO_SNAPSHOTS = 'This machine does not have any snapshots';
const MAX_NAME_BYTES = 1024;
/** A line VBoxManage would print unescaped that a machine-readable parser would take for a key (§4.1). */
const KEY_LIKE_LINE = '(?:^|\\n)(?:Snapshot(?:Name|UUID|Description)(?:-\\d+)*|CurrentSnapshot(?:Name|UUID|Node))=';
const KEY_LIKE_REASON = "has a line that VBoxManage's machine-readable output would mistake for a key (SnapshotName…=, CurrentSnapshot…=)";

const CAPABILITIES: Capabilities = {
  modes: {
    memory: { supported: true },
    offline: { supported: true },
    crash: { supported: false, reason: 'VirtualBox cannot take a disk-only snapshot of a running VM: a snapshot of a running VM always includes its memory state' },
    quiesced: { supported: false, reason: 'VirtualBox has no guest-quiesced snapshots (no filesystem freeze or VSS integration)' },
  },
  ...LOCAL_TREE,
  consolidate: false,
  duplicateNames: true,
  limits: {
    maxNameBytes: MAX_NAME_BYTES,
    nameRules: [
      { pattern: '^-', effect: 'forbid', reason: "a snapshot name must not start with '-' (VBoxManage would read it as an option)" },
      { pattern: UUID_RE.source, effect: 'forbid', reason: 'a snapshot name must not be a UUID (VirtualBox would look it up as an id)' },
      { pattern: '\\u0000', effect: 'forbid', reason: 'NUL characters cannot be passed to VBoxManage' },
      { pattern: '\\u0000', effect: 'forbid', field: 'description', reason: 'NUL characters cannot be passed to VBoxManage' },
      { pattern: KEY_LIKE_LINE, effect: 'forbid', reason: `the name ${KEY_LIKE_REASON}` },
      { pattern: KEY_LIKE_LINE, effect: 'forbid', field: 'description', reason: `the description ${KEY_LIKE_REASON}` },
    ],
  },
};

const ONLINE_STATES = new Set(['running', 'paused']);
const OFF_STATES = new Set(['poweroff', 'aborted', 'teleported']);

export type VirtualBoxProvider = ProviderWith<'revertSnapshot'>;

export function createVirtualBoxProvider(target: string, rawOptions: Record<string, unknown>, deps: VirtualBoxDeps): VirtualBoxProvider {
  const options: VirtualBoxOptions = parseOptions(target, rawOptions);
  const transport: TargetTransport = deps.runner ? { runner: deps.runner, close: async () => {} } : createTargetTransport(options.ssh, deps.log);
  const runner = transport.runner;
  const pollMs = deps.pollIntervalMs ?? 500;
  const timeoutMs = options.commandTimeoutSec * 1000;

  const guards = createGuards(PROVIDER, target);
  const { err, assertNotAborted, withTarget } = guards;

  /** Runs VBoxManage; returns the result whatever its exit code (callers decide), or throws a mapped transport error. */
  async function exec(args: string[], ctx: CallContext, call: CallInfo, onPercent?: (pct: number) => void): Promise<RunResult> {
    try {
      return await runner.run([options.vboxmanage, ...args], {
        signal: ctx.signal,
        timeoutMs,
        ...(onPercent ? { onStderr: (chunk: string) => { const p = lastProgressPercent(chunk); if (p !== null) onPercent(p); } } : {}),
      });
    } catch (e) {
      throw fromRunError(e, withTarget(call), options.vboxmanage);
    }
  }

  /** Like exec, but any failure — including exit 0 with an `error:` line (§1.2) — throws. */
  async function run(args: string[], ctx: CallContext, call: CallInfo, onPercent?: (pct: number) => void): Promise<RunResult> {
    const result = await exec(args, ctx, call, onPercent);
    if (result.exitCode !== 0 || hasErrorLine(result.stderr)) throw fromVboxFailure(result, withTarget(call));
    return result;
  }

  // A VM is addressed by UUID only; anything else could be a name or, worse, an option.
  const vmArg = (providerVmId: string): string => checkId(err, VM_IDS, 'VM', providerVmId);

  async function readSnapshots(vm: string, ctx: CallContext): Promise<ParsedSnapshot[]> {
    const call = { what: `list snapshots of VM ${vm}`, mutating: false };
    const result = await exec(['snapshot', vm, 'list', '--machinereadable'], ctx, call);
    if (result.exitCode === 1 && result.stdout.trim() === NO_SNAPSHOTS && !hasErrorLine(result.stderr)) return [];
    if (result.exitCode !== 0 || hasErrorLine(result.stderr)) throw fromVboxFailure(result, withTarget(call));
    return parseSnapshotList(result.stdout);
  }

  async function readVm(vm: string, ctx: CallContext): Promise<ParsedVmInfo> {
    const result = await run(['showvminfo', vm, '--machinereadable'], ctx, { what: `read VM ${vm}`, mutating: false });
    return parseVmInfo(result.stdout);
  }

  function toProviderSnapshot(s: ParsedSnapshot): ProviderSnapshot {
    const { description, marker } = splitMarker(s.description);
    return { providerRef: s.uuid, name: s.name, description, parentRef: s.parentUuid, current: s.current, createdAt: null, mode: null, marker, ready: true };
  }

  function validateSpec(spec: CreateSpec): void {
    const problems = snapshotTextProblems(CAPABILITIES.limits, spec);
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  /** The offline sequence's VirtualBox steps (shared/offline.ts): the ACPI power button, showvminfo, poweroff, startvm headless. */
  const offlineSteps = (vm: string): OfflineSteps => ({
    shutdown: async (ctx) => {
      await run(['controlvm', vm, 'acpipowerbutton'], ctx, { what: `press the ACPI power button of VM ${vm}`, mutating: true });
    },
    readPower: async (ctx) => {
      const state = (await readVm(vm, ctx)).vmState;
      // Every between-state counts: a take left running by an attempt that died shows as 'snapshotting'.
      return { off: OFF_STATES.has(state), raw: state, transitioning: powerStateOf(state) === 'transitioning' };
    },
    powerOff: async (ctx) => {
      await run(['controlvm', vm, 'poweroff'], ctx, { what: `power off VM ${vm}`, mutating: true });
    },
    start: async (ctx) => {
      await run(['startvm', vm, '--type', 'headless'], ctx, { what: `restart VM ${vm} after the offline snapshot`, mutating: true });
    },
  });

  const offlineSequence = (vm: string) => ({ offline: options.offline, err, what: `offline snapshot of VM ${vm}`, pollMs });

  async function take(vm: string, spec: CreateSpec, ctx: CallContext): Promise<string> {
    const args = ['snapshot', vm, 'take', spec.name, `--description=${descriptionWithMarker(spec.description, spec.marker)}`];
    const result = await run(args, ctx, { what: `take snapshot of VM ${vm}`, mutating: true }, (p) => ctx.progress(p));
    const uuid = parseTakenUuid(result.stdout);
    if (!uuid) throw err('internal', `take snapshot of VM ${vm}: VBoxManage did not report the new snapshot's UUID`);
    return uuid;
  }

  async function findCreated(vm: string, uuid: string, ctx: CallContext): Promise<ProviderSnapshot> {
    const found = (await readSnapshots(vm, ctx)).find((s) => s.uuid === uuid);
    if (!found) throw err('internal', `take snapshot of VM ${vm}: snapshot ${uuid} was reported but is not listed`, { retry: 'uncertain' });
    return toProviderSnapshot(found);
  }

  const provider: VirtualBoxProvider = {
    ...providerIdentity('virtualbox', target, CAPABILITIES),

    check: (ctx) => checkHealth(ctx, guards, async () => (await run(['--version'], ctx, { what: 'check', mutating: false })).stdout.trim().split('\n')[0] ?? ''),

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const listed = parseListVms((await run(['list', 'vms'], ctx, { what: 'list VMs', mutating: false })).stdout);
      const vms: VmInfo[] = [];
      for (const ref of listed) {
        let info: ParsedVmInfo;
        try {
          info = await readVm(ref.uuid, ctx);
        } catch (e) {
          if (e instanceof ProviderError && e.kind === 'not_found') continue; // unregistered meanwhile
          throw e;
        }
        vms.push({
          providerVmId: ref.uuid,
          name: info.name || ref.name,
          powerState: powerStateOf(info.vmState),
          rawPowerState: info.vmState,
          disks: Object.entries(info.storage).map(([slot, path]) => ({ slot, path })),
        });
      }
      return vms;
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      return (await readSnapshots(vmArg(providerVmId), ctx)).map(toProviderSnapshot);
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      return snapshotIn(await provider.listSnapshots(providerVmId, ctx), providerRef, () => err('not_found', `VM ${providerVmId} has no snapshot '${providerRef}'`));
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      const vm = vmArg(providerVmId);
      const support = CAPABILITIES.modes[spec.mode];
      if (!support.supported) throw err('unsupported', `mode '${spec.mode}' is not supported: ${support.reason}`);
      validateSpec(spec);
      if (spec.mode === 'offline' && ctx.resume) {
        return resumeOffline(offlineSteps(vm), offlineSequence(vm), ctx, (c) => provider.createSnapshot(providerVmId, spec, c));
      }

      // The state first, then the snapshots: a take left running by an attempt that died (a daemon
      // killed mid-create) shows as a between-state until it ends, and it may end with this marker.
      // Read the other way round, it could end between the two reads and be taken twice.
      const state = (await readVm(vm, ctx)).vmState;
      if (powerStateOf(state) === 'transitioning') {
        throw err('transient', `VM ${vm} is ${state}; the snapshot is tried again once it has settled`);
      }
      const existing = (await readSnapshots(vm, ctx)).find((s) => splitMarker(s.description).marker === spec.marker);
      if (existing) return toProviderSnapshot(existing);

      if (spec.mode === 'memory') {
        if (!ONLINE_STATES.has(state)) {
          throw err('conflict', `memory snapshot of VM ${vm} needs a running VM (state: ${state}); use mode 'offline' for a VM that is not running`);
        }
        return findCreated(vm, await take(vm, spec, ctx), ctx);
      }

      // offline
      if (OFF_STATES.has(state)) return findCreated(vm, await take(vm, spec, ctx), ctx);
      if (state !== 'running') {
        const why = state === 'saved' || state === 'paused'
          ? `VM ${vm} is ${state}: powering it off would discard its ${state === 'saved' ? 'saved' : 'running'} state; resume it or use mode 'memory'`
          : `VM ${vm} is ${state}; wait until it is running or powered off`;
        throw err('conflict', `offline snapshot: ${why}`);
      }
      const uuid = await offlineSnapshot(offlineSteps(vm), offlineSequence(vm), ctx, (c) => take(vm, spec, c));
      return findCreated(vm, uuid, ctx);
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const vm = vmArg(providerVmId);
      if (!UUID_RE.test(providerRef)) throw err('not_found', `VM ${vm} has no snapshot '${providerRef}'`);
      const ref = providerRef.toLowerCase();
      const snapshots = await readSnapshots(vm, ctx);
      if (!snapshots.some((s) => s.uuid === ref)) throw err('not_found', `VM ${vm} has no snapshot ${ref}`);
      const state = (await readVm(vm, ctx)).vmState;
      if (ONLINE_STATES.has(state)) {
        await run(['controlvm', vm, 'poweroff'], ctx, { what: `power off VM ${vm} before revert`, mutating: true }, (p) => ctx.progress(p / 4));
      }
      await run(['snapshot', vm, 'restore', ref], ctx, { what: `revert VM ${vm} to snapshot ${ref}`, mutating: true }, (p) => ctx.progress(25 + (p * 3) / 4));
      let after = (await readVm(vm, ctx)).vmState;
      if (after === 'saved') {
        await run(['startvm', vm, '--type', 'headless'], ctx, { what: `start VM ${vm} after revert`, mutating: true });
        after = (await readVm(vm, ctx)).vmState;
      }
      ctx.progress(100);
      return { powerState: powerStateOf(after), rawPowerState: after };
    },

    async deleteSnapshot(providerVmId, providerRef, options: DeleteOptions, ctx) {
      assertNotAborted(ctx, 'delete');
      const vm = vmArg(providerVmId);
      if (!UUID_RE.test(providerRef)) throw err('not_found', `VM ${vm} has no snapshot '${providerRef}'`);
      const ref = providerRef.toLowerCase();
      const snapshots = await readSnapshots(vm, ctx);
      if (!snapshots.some((s) => s.uuid === ref)) return; // already gone

      const order: string[] = [];
      if (options.children) {
        const kids = new Map<string, string[]>();
        for (const s of snapshots) if (s.parentUuid) kids.set(s.parentUuid, [...(kids.get(s.parentUuid) ?? []), s.uuid]);
        const postOrder = (id: string) => {
          for (const c of kids.get(id) ?? []) postOrder(c);
          order.push(id);
        };
        postOrder(ref);
      } else {
        order.push(ref);
      }
      for (const [i, id] of order.entries()) {
        try {
          await run(['snapshot', vm, 'delete', id], ctx, { what: `delete snapshot ${id} of VM ${vm}`, mutating: true }, (p) =>
            ctx.progress(Math.round(((i + p / 100) / order.length) * 100)),
          );
        } catch (e) {
          if (e instanceof ProviderError && e.kind === 'not_found' && e.nativeCode === 'VBOX_E_OBJECT_NOT_FOUND' && /snapshot/i.test(e.message) && !/registered machine/.test(e.message)) continue;
          throw e;
        }
      }
    },

    async close() {
      await transport.close();
    },
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function virtualBoxFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): VirtualBoxProvider {
  return createVirtualBoxProvider(target, options, deps);
}
