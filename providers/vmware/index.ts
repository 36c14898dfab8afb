/**
 * VMware vSphere adapter over vim25 SOAP (client.ts), tested against vcsim.
 *
 * Identity: a VM is its ManagedObjectReference value (`vm-57`), a snapshot its MoRef value
 * (`snapshot-71`). Every vim25 call addresses objects by MoRef, so the id needs no lookup (an
 * instanceUuid would cost a SearchIndex call per operation); a MoRef is stable for as long as the VM
 * stays registered in this vCenter (unregister/re-register gives a new one — the reconciler then
 * sees a new VM). Snapshot names are never used to address anything: vSphere allows duplicates.
 *
 * Marker: `spec.marker` is the last line of the snapshot description (shared/description-marker);
 * createSnapshot looks through the VM's tree for it first, so a retried job returns what it made —
 * except on a job's first attempt (ctx.firstAttempt), which cannot have made one.
 *
 * Round trips (vcsim answers each in ~0.5 ms; node-soap adds about twice that): a first-attempt crash
 * or quiesced create is CreateSnapshot_Task + one poll that reads the task's info and the VM's tree
 * together; delete is RemoveSnapshot_Task + one poll, with no existence read first.
 *
 * Modes: memory (memory=true; refused with `conflict` on a VM that is not powered on — vcsim would
 * accept it), crash (memory=false, quiesce=false), quiesced (quiesce=true; a VMware Tools fault is a
 * `conflict` saying Tools are needed), offline (ShutdownGuest, wait for poweredOff up to
 * offline.shutdownTimeoutSec, PowerOffVM_Task only with offline.forcePowerOff, else `conflict`;
 * snapshot; PowerOnVM_Task if it was on — also after a failed snapshot, best effort: shared/offline.ts).
 *
 * Revert leaves the VM as vSphere does: running after a memory snapshot, powered off after a
 * disk-only one. Delete: RemoveSnapshot_Task (removeChildren per option, consolidate=true); a
 * snapshot already gone is success; without children vSphere re-parents them. Consolidate runs
 * ConsolidateVMDisks_Task only when runtime.consolidationNeeded is set.
 */
import { ProviderError, type CallContext, type Capabilities, type ConsolidationReport, type CreateSpec, type DeleteOptions, type Logger, type ProviderSnapshot, type ProviderWith, type VmInfo, snapshotTextProblems } from '../contract.ts';
import { descriptionWithMarker } from '../shared/description-marker.ts';
import { checkId, createGuards, MOREF_VALUE_RE, morefIds } from '../shared/guards.ts';
import { checkHealth } from '../shared/health.ts';
import { offlineSnapshot, resumeOffline, type OfflineSteps } from '../shared/offline.ts';
import { EVERY_MODE, LOCAL_TREE, providerIdentity } from '../shared/provider-base.ts';
import { snapshotIn } from '../shared/snapshot-lookup.ts';
import { createVimClient, type VimClient } from './client.ts';
import { VimFault, needsTools, toProviderError, type CallInfo } from './faults.ts';
import { PROVIDER, parseOptions, type VmwareOptions } from './options.ts';
import { flattenSnapshots, objectProps, parseVm, powerStateOf, type MoRef } from './parse.ts';
import { createdRefOf, createdSnapshotIn } from './created-snapshot.ts';
import { waitForTask, waitForTaskOutcome, type TaskOutcome } from './tasks.ts';

/**
 * vSphere's snapshot name limit is 80 characters (the vSphere Client enforces it; the API
 * documentation does not state it — unverified against a real vCenter). 80 bytes is the
 * conservative reading in the contract's unit.
 */
const MAX_NAME_BYTES = 80;
/** XML 1.0 cannot carry these control characters, not even escaped. */
const XML_FORBIDDEN = '[\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF]';
const VM_PATHS = ['name', 'config.instanceUuid', 'runtime.powerState', 'runtime.consolidationNeeded', 'snapshot'];
const VM_IDS = morefIds('VMware VM', 'vm-42');

const CAPABILITIES: Capabilities = {
  modes: EVERY_MODE,
  ...LOCAL_TREE,
  consolidate: true,
  duplicateNames: true,
  limits: {
    maxNameBytes: MAX_NAME_BYTES,
    nameRules: [
      { pattern: XML_FORBIDDEN, effect: 'forbid', reason: 'the name has control characters XML cannot carry' },
      { pattern: XML_FORBIDDEN, effect: 'forbid', field: 'description', reason: 'the description has control characters XML cannot carry' },
    ],
  },
};

export interface VmwareDeps {
  log: Logger;
  /** How often to look at the VM while waiting for a guest shutdown (default 1 s). */
  pollIntervalMs?: number;
  /** A ready client (tests); built from the options when absent. */
  client?: VimClient;
}

interface VmState {
  rawPowerState: string;
  consolidationNeeded: boolean;
  snapshots: ProviderSnapshot[];
}

export type VmwareProvider = ProviderWith<'revertSnapshot' | 'consolidate' | 'deleteAllSnapshots'>;

export function createVmwareProvider(target: string, rawOptions: Record<string, unknown>, deps: VmwareDeps): VmwareProvider {
  const options: VmwareOptions = parseOptions(target, rawOptions);
  const log = deps.log;
  const pollMs = deps.pollIntervalMs ?? 1000;
  const taskTimeoutMs = options.taskTimeoutSec * 1000;
  let client: VimClient | undefined = deps.client;
  const vim = (): VimClient => {
    client ??= createVimClient({
      url: options.url,
      username: options.username,
      password: options.password,
      tls: options.tls,
      requestTimeoutMs: options.requestTimeoutSec * 1000,
      log,
    });
    return client;
  };

  const guards = createGuards(PROVIDER, target);
  const { err, assertNotAborted, withTarget } = guards;
  const info = (what: string, mutating: boolean): CallInfo => withTarget({ what, mutating });

  /** Runs one step; anything it throws leaves as a ProviderError. */
  async function step<T>(call: CallInfo, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw toProviderError(e, call);
    }
  }

  const vmRef = (providerVmId: string): MoRef => ({ type: 'VirtualMachine', value: checkId(err, VM_IDS, 'VM', providerVmId) });

  async function readVm(vm: MoRef, ctx: CallContext, paths = ['runtime.powerState', 'runtime.consolidationNeeded', 'snapshot']): Promise<VmState> {
    const contents = await step(info(`read VM ${vm.value}`, false), () =>
      vim().retrieve({ propSet: [{ type: 'VirtualMachine', pathSet: paths }], objectSet: [{ obj: vm }] }, { signal: ctx.signal }),
    );
    const content = contents.find((c) => objectProps(c).obj?.value === vm.value);
    if (!content) throw err('not_found', `VM ${vm.value} does not exist`);
    const { props, missing } = objectProps(content);
    const [unreadable] = missing;
    if (unreadable) throw toProviderError(new VimFault(unreadable.faultType, `cannot read ${unreadable.path} of VM ${vm.value}`), info(`read VM ${vm.value}`, false));
    const power = props.get('runtime.powerState');
    return {
      rawPowerState: typeof power === 'string' ? power : 'unknown',
      consolidationNeeded: props.get('runtime.consolidationNeeded') === true,
      snapshots: flattenSnapshots(props.get('snapshot')),
    };
  }

  async function runTask(call: CallInfo, start: () => Promise<MoRef>, ctx: CallContext, band?: [number, number]): Promise<unknown> {
    const task = await step(call, start);
    return waitForTask(vim(), task, ctx, { call, timeoutMs: taskTimeoutMs, ...(band ? { band } : {}) });
  }

  function validateSpec(spec: CreateSpec): void {
    const problems = snapshotTextProblems(CAPABILITIES.limits, spec);
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  /**
   * The offline sequence's vSphere steps (shared/offline.ts): ShutdownGuest (without VMware Tools only
   * a forced power-off can help), runtime.powerState, PowerOffVM_Task, PowerOnVM_Task.
   */
  const offlineSequence = (vm: MoRef) => ({ offline: options.offline, err, what: `offline snapshot of VM ${vm.value}`, pollMs });
  const offlineSteps = (vm: MoRef): OfflineSteps => ({
    shutdown: async (ctx) => {
      try {
        await step(info(`shut down the guest of VM ${vm.value}`, true), () => vim().shutdownGuest(vm, { signal: ctx.signal }));
      } catch (e) {
        if (e instanceof ProviderError && e.nativeCode !== undefined && needsTools(e.nativeCode)) {
          return { unable: 'the guest cannot be shut down without VMware Tools (the guest agent) running' };
        }
        throw e;
      }
    },
    readPower: async (ctx) => {
      const state = (await readVm(vm, ctx, ['runtime.powerState'])).rawPowerState;
      return { off: state === 'poweredOff', raw: state };
    },
    powerOff: async (ctx) => {
      await runTask(info(`power off VM ${vm.value}`, true), () => vim().powerOffTask(vm, { signal: ctx.signal }), ctx, [0, 20]);
    },
    start: async (ctx) => {
      await runTask(info(`power on VM ${vm.value} after the offline snapshot`, true), () => vim().powerOnTask(vm, { signal: ctx.signal }), ctx, [90, 100]);
    },
  });

  /**
   * CreateSnapshot_Task and its wait; each poll reads the VM's tree too, so the snapshot usually
   * comes back without another call (`made`; null when the tree did not show it yet).
   */
  async function take(vm: MoRef, spec: CreateSpec, memory: boolean, quiesce: boolean, ctx: CallContext, band: [number, number]): Promise<{ ref: string; made: ProviderSnapshot | null }> {
    const call = info(`create snapshot of VM ${vm.value}`, true);
    let outcome: TaskOutcome;
    try {
      const task = await step(call, () =>
        vim().createSnapshotTask(vm, { name: spec.name, description: descriptionWithMarker(spec.description, spec.marker), memory, quiesce }, { signal: ctx.signal }),
      );
      outcome = await waitForTaskOutcome(vim(), task, ctx, { call, timeoutMs: taskTimeoutMs, band, alongside: { obj: vm, paths: ['snapshot'] } });
    } catch (e) {
      if (quiesce && e instanceof ProviderError && e.nativeCode !== undefined && needsTools(e.nativeCode)) {
        throw err('conflict', `quiesced snapshot of VM ${vm.value}: VMware Tools (the guest agent) must be running in the guest to quiesce it (${e.nativeCode})`);
      }
      throw e;
    }
    const ref = createdRefOf(outcome.result);
    if (ref === null) throw err('internal', `create snapshot of VM ${vm.value}: the task returned no snapshot`, { retry: 'uncertain' });
    return { ref, made: createdSnapshotIn(ref, outcome.alongside) };
  }

  /** The snapshot `take` made: as its last poll saw it, else read again. */
  async function made(vm: MoRef, taken: { ref: string; made: ProviderSnapshot | null }, ctx: CallContext): Promise<ProviderSnapshot> {
    return taken.made ?? findCreated(vm, taken.ref, ctx);
  }

  async function findCreated(vm: MoRef, ref: string, ctx: CallContext): Promise<ProviderSnapshot> {
    const found = (await readVm(vm, ctx, ['snapshot'])).snapshots.find((s) => s.providerRef === ref);
    if (!found) throw err('internal', `create snapshot of VM ${vm.value}: snapshot ${ref} was made but is not in the VM's tree`, { retry: 'uncertain' });
    return found;
  }

  const provider: VmwareProvider = {
    ...providerIdentity('vmware', target, CAPABILITIES),

    check: (ctx) =>
      checkHealth(ctx, guards, async () => {
        const sc = await step(info('check', false), () => vim().serviceRefs({ signal: ctx.signal }));
        // A fresh round trip (serviceRefs is kept after login): proves the server answers now, and its Date header gives its clock.
        const time = await step(info('check', false), () => vim().serverTime({ signal: ctx.signal }));
        return { version: `${sc.about.fullName} (API ${sc.about.apiVersion})`, ...(time === undefined ? {} : { time }) };
      }),

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const call = info('list VMs', false);
      const sc = await step(call, () => vim().serviceRefs({ signal: ctx.signal }));
      const view = await step(call, () => vim().createContainerView(sc.rootFolder, ['VirtualMachine'], true, { signal: ctx.signal }));
      let contents: unknown[];
      try {
        contents = await step(call, () =>
          vim().retrieve(
            {
              propSet: [{ type: 'VirtualMachine', pathSet: VM_PATHS }],
              objectSet: [{ obj: view, skip: true, selectSet: [{ name: 'traverseView', type: 'ContainerView', path: 'view', skip: false }] }],
            },
            { signal: ctx.signal, maxObjects: options.pageSize },
          ),
        );
      } finally {
        // A view lives until its session ends: destroy it even when the read failed.
        await vim()
          .destroyView(view, { signal: AbortSignal.timeout(options.requestTimeoutSec * 1000) })
          .catch((e: unknown) => log.debug({ err: e instanceof Error ? e.message : String(e) }, 'DestroyView failed (ignored)'));
      }
      const vms: VmInfo[] = [];
      for (const content of contents) {
        const { obj, missing } = objectProps(content);
        // Deleted between the view and the read: not part of the inventory any more.
        if (missing.some((m) => m.faultType === 'ManagedObjectNotFound')) continue;
        const [unreadable] = missing;
        if (unreadable) throw toProviderError(new VimFault(unreadable.faultType, `cannot read ${unreadable.path} of VM ${obj?.value ?? '?'}`), call);
        const vm = parseVm(content);
        if (!vm) continue;
        vms.push({
          providerVmId: vm.ref.value,
          name: vm.name,
          powerState: powerStateOf(vm.rawPowerState),
          rawPowerState: vm.rawPowerState,
          consolidationNeeded: vm.consolidationNeeded,
          snapshots: vm.snapshots,
        });
      }
      return vms;
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      return (await readVm(vmRef(providerVmId), ctx, ['snapshot'])).snapshots;
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      return snapshotIn(await provider.listSnapshots(providerVmId, ctx), providerRef, () => err('not_found', `VM ${providerVmId} has no snapshot '${providerRef}'`));
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      const vm = vmRef(providerVmId);
      validateSpec(spec);
      if (spec.mode === 'offline' && ctx.resume) return resumeOffline(offlineSteps(vm), offlineSequence(vm), ctx, (c) => provider.createSnapshot(providerVmId, spec, c));
      // A first attempt cannot have left a snapshot with this marker: no need to look for one. Crash
      // and quiesced snapshots do not depend on the power state, so they then start without a read.
      const needsPower = spec.mode === 'memory' || spec.mode === 'offline';
      const skipMarker = ctx.firstAttempt === true;
      let power = 'unknown';
      if (!skipMarker || needsPower) {
        const state = await readVm(vm, ctx, skipMarker ? ['runtime.powerState'] : ['runtime.powerState', 'snapshot']);
        const existing = skipMarker ? undefined : state.snapshots.find((s) => s.marker === spec.marker);
        if (existing) return existing;
        power = state.rawPowerState;
      }

      switch (spec.mode) {
        case 'memory':
          if (power !== 'poweredOn') {
            throw err('conflict', `memory snapshot of VM ${vm.value} needs a powered-on VM (state: ${power}); use mode 'crash' or 'offline'`);
          }
          return made(vm, await take(vm, spec, true, false, ctx, [0, 100]), ctx);
        case 'crash':
          return made(vm, await take(vm, spec, false, false, ctx, [0, 100]), ctx);
        case 'quiesced':
          return made(vm, await take(vm, spec, false, true, ctx, [0, 100]), ctx);
        case 'offline':
          break;
      }

      if (power === 'poweredOff') return made(vm, await take(vm, spec, false, false, ctx, [0, 100]), ctx);
      if (power !== 'poweredOn') {
        throw err('conflict', `offline snapshot: VM ${vm.value} is ${power}; powering it off would discard its suspended state — resume it or use mode 'crash'`);
      }
      const { ref } = await offlineSnapshot(offlineSteps(vm), offlineSequence(vm), ctx, (c) => take(vm, spec, false, false, c, [20, 90]));
      // Read after the power-on: the tree's `current` and state are what the caller sees next.
      return findCreated(vm, ref, ctx);
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const vm = vmRef(providerVmId);
      const { snapshots } = await readVm(vm, ctx, ['snapshot']);
      if (!snapshots.some((s) => s.providerRef === providerRef)) throw err('not_found', `VM ${vm.value} has no snapshot '${providerRef.slice(0, 80)}'`);
      const snapshot: MoRef = { type: 'VirtualMachineSnapshot', value: providerRef };
      await runTask(info(`revert VM ${vm.value} to snapshot ${providerRef}`, true), () => vim().revertToSnapshotTask(snapshot, { signal: ctx.signal }), ctx);
      const { rawPowerState } = await readVm(vm, ctx, ['runtime.powerState']);
      return { powerState: powerStateOf(rawPowerState), rawPowerState };
    },

    async deleteSnapshot(providerVmId, providerRef, options: DeleteOptions, ctx) {
      assertNotAborted(ctx, 'delete');
      const vm = vmRef(providerVmId);
      if (!MOREF_VALUE_RE.test(providerRef)) {
        // Cannot name a snapshot of this vCenter, so it is not there — but an unknown VM is still not_found.
        await readVm(vm, ctx, ['runtime.powerState']);
        return;
      }
      const snapshot: MoRef = { type: 'VirtualMachineSnapshot', value: providerRef };
      // No existence read first: a snapshot MoRef addresses it on its own, and the server's
      // ManagedObjectNotFound (on the call or as the task's error) says it is gone.
      try {
        await runTask(
          info(`delete snapshot ${providerRef} of VM ${vm.value}`, true),
          () => vim().removeSnapshotTask(snapshot, options.children, true, { signal: ctx.signal }),
          ctx,
        );
      } catch (e) {
        if (!(e instanceof ProviderError)) throw e;
        // Only a failure pays for a read of the VM, and it explains it: a VM that is gone is the
        // caller's not_found (vcsim even resets the connection when asked to remove a snapshot of a
        // destroyed VM); a snapshot that is gone (another client, or our own earlier attempt) is
        // what was asked. A read that fails for its own reasons leaves the original error standing.
        let still: boolean;
        try {
          still = (await readVm(vm, ctx, ['snapshot'])).snapshots.some((s) => s.providerRef === providerRef);
        } catch (readErr) {
          if (readErr instanceof ProviderError && readErr.kind === 'not_found') throw readErr;
          throw e;
        }
        if (e.nativeCode === 'ManagedObjectNotFound' && !still) return;
        throw e;
      }
    },

    async deleteAllSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'delete all snapshots');
      const vm = vmRef(providerVmId);
      // RemoveAllSnapshots_Task on a VM without snapshots succeeds; consolidate=true merges the
      // deltas into the base disks as part of the task, as RemoveSnapshot_Task does here.
      await runTask(info(`remove all snapshots of VM ${vm.value}`, true), () => vim().removeAllSnapshotsTask(vm, { signal: ctx.signal }), ctx);
    },

    async consolidate(providerVmId, ctx): Promise<ConsolidationReport> {
      assertNotAborted(ctx, 'consolidate');
      const vm = vmRef(providerVmId);
      const { consolidationNeeded } = await readVm(vm, ctx, ['runtime.consolidationNeeded']);
      if (!consolidationNeeded) return { merged: 0, message: `VM ${vm.value}: vSphere reports no consolidation needed` };
      await runTask(info(`consolidate the disks of VM ${vm.value}`, true), () => vim().consolidateDisksTask(vm, { signal: ctx.signal }), ctx);
      const after = await readVm(vm, ctx, ['runtime.consolidationNeeded']);
      if (after.consolidationNeeded) throw err('conflict', `VM ${vm.value}: disks were consolidated but vSphere still reports consolidation needed`);
      return { merged: 1, message: `VM ${vm.value}: disks consolidated (ConsolidateVMDisks_Task)` };
    },

    async close() {
      await client?.close();
      client = undefined;
    },
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function vmwareFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): VmwareProvider {
  return createVmwareProvider(target, options, deps);
}
