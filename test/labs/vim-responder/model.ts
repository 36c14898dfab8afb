/**
 * The responder's in-memory vSphere: VMs with snapshot trees, tasks that move queued → running →
 * success | error on a schedule, container views and paging tokens (sessions live in the server). No HTTP here; faults
 * are thrown as VimFaultError and become SOAP faults or task errors in the server.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { MoRef } from './requests.ts';
import type { PowerState, Scenario, ScenarioSnapshot, ScenarioVm, TaskMethod, TaskTiming } from './scenario.ts';
import { el, faults, moRef, VimFaultError, type VimFault } from './soap-xml.ts';

export interface SnapshotNode {
  ref: MoRef;
  id: number;
  name: string;
  description: string;
  createTime: string;
  state: PowerState;
  quiesced: boolean;
  children: SnapshotNode[];
  parent: SnapshotNode | undefined;
  vm: VmState;
}

export interface VmState {
  ref: MoRef;
  name: string;
  instanceUuid: string;
  powerState: PowerState;
  consolidationNeeded: boolean | undefined;
  consolidationNeededAfterRemove: boolean;
  toolsRunning: boolean;
  roots: SnapshotNode[];
  current: SnapshotNode | undefined;
  nextSnapshotId: number;
  /** The queued or running task that holds this VM. */
  busyWith: TaskState | undefined;
}

export type TaskRunState = 'queued' | 'running' | 'success' | 'error';

export interface TaskState {
  ref: MoRef;
  method: TaskMethod;
  name: string;
  descriptionId: string;
  entity: MoRef;
  vm: VmState | undefined;
  state: TaskRunState;
  cancelled: boolean;
  cancelable: boolean;
  progress: number | undefined;
  error: VimFault | undefined;
  result: MoRef | undefined;
  queueTime: string;
  startTime: string | undefined;
  completeTime: string | undefined;
  queuedLeft: number;
  steps: number[];
  stepIndex: number;
  timing: TaskTiming | undefined;
  /** The work, done when the task completes; returns info.result. */
  work: () => MoRef | undefined;
}

export interface Session {
  key: string;
  userName: string;
  loginTime: string;
  lastActiveTime: string;
  ipAddress: string;
  userAgent: string;
  callCount: number;
}

const TASK_NAMES: Record<TaskMethod, [name: string, descriptionId: string]> = {
  // Names and descriptionIds as vcsim 0.24 reports them (recorded), except ConsolidateVMDisks,
  // which vcsim lacks: name and id from the vSphere API reference (not verified against vCenter).
  CreateSnapshot_Task: ['CreateSnapshot', 'VirtualMachine.createSnapshot'],
  RevertToSnapshot_Task: ['RevertToSnapshot', 'VirtualMachineSnapshot.revertToSnapshot'],
  RemoveSnapshot_Task: ['RemoveSnapshot', 'VirtualMachineSnapshot.removeSnapshot'],
  RemoveAllSnapshots_Task: ['RemoveAllSnapshots', 'VirtualMachine.RemoveAllSnapshots'],
  ConsolidateVMDisks_Task: ['ConsolidateVMDisks', 'VirtualMachine.consolidateDisks'],
  PowerOnVM_Task: ['PowerOn', 'VirtualMachine.powerOn'],
  PowerOffVM_Task: ['PowerOff', 'VirtualMachine.powerOff'],
};

const now = (): string => new Date().toISOString();

function uuidFromName(name: string): string {
  const h = createHash('sha1').update(`snapvisor-vim-responder:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class VimModel {
  readonly vms: VmState[] = [];
  readonly tasks = new Map<string, TaskState>();
  readonly snapshots = new Map<string, SnapshotNode>();
  readonly views = new Map<string, { session: string; type: string }>();
  readonly pages = new Map<string, { objects: string[]; pageSize: number }>();
  private nextId = 1;
  private nextToken = 1;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(readonly scenario: Scenario) {
    // vcsim numbers every managed object from one counter; so do we (ids in the 1xx range to
    // make a mix-up with vcsim's vm-57 visible).
    this.nextId = 100;
    for (const vm of scenario.vms) this.vms.push(this.buildVm(vm));
  }

  private id(prefix: string): string {
    return `${prefix}-${this.nextId++}`;
  }

  private buildVm(spec: ScenarioVm): VmState {
    const vm: VmState = {
      ref: { type: 'VirtualMachine', value: spec.moId ?? this.id('vm') },
      name: spec.name,
      instanceUuid: spec.instanceUuid ?? uuidFromName(spec.name),
      powerState: spec.powerState ?? 'poweredOn',
      consolidationNeeded: spec.consolidationNeeded,
      consolidationNeededAfterRemove: spec.consolidationNeededAfterRemove ?? false,
      toolsRunning: spec.toolsRunning ?? true,
      roots: [],
      current: undefined,
      nextSnapshotId: 1,
      busyWith: undefined,
    };
    const add = (s: ScenarioSnapshot, parent: SnapshotNode | undefined): void => {
      const node = this.addSnapshot(vm, parent, s.name, s.description ?? '', s.memory ?? false, s.quiesced ?? false);
      for (const c of s.children ?? []) add(c, node);
    };
    for (const s of spec.snapshots ?? []) add(s, undefined);
    if (spec.currentSnapshot !== undefined) {
      vm.current = [...this.snapshots.values()].find((n) => n.vm === vm && n.name === spec.currentSnapshot);
      if (!vm.current) throw new Error(`vim responder: scenario VM ${spec.name} has no snapshot ${spec.currentSnapshot}`);
    }
    return vm;
  }

  private addSnapshot(vm: VmState, parent: SnapshotNode | undefined, name: string, description: string, memory: boolean, quiesced: boolean): SnapshotNode {
    const node: SnapshotNode = {
      ref: { type: 'VirtualMachineSnapshot', value: this.id('snapshot') },
      id: vm.nextSnapshotId++,
      name,
      description,
      createTime: now(),
      // vSphere records the power state the snapshot restores: only a memory snapshot of a
      // running VM restores a running VM (vcsim 0.24 records the current state instead).
      state: memory && vm.powerState === 'poweredOn' ? 'poweredOn' : 'poweredOff',
      quiesced,
      children: [],
      parent,
      vm,
    };
    (parent ? parent.children : vm.roots).push(node);
    vm.current = node;
    this.snapshots.set(node.ref.value, node);
    return node;
  }

  // ---- lookups -------------------------------------------------------------------------

  vm(ref: MoRef): VmState {
    const vm = ref.type === 'VirtualMachine' ? this.vms.find((v) => v.ref.value === ref.value) : undefined;
    if (!vm) throw new VimFaultError(faults.managedObjectNotFound(ref));
    return vm;
  }

  snapshot(ref: MoRef): SnapshotNode {
    const node = ref.type === 'VirtualMachineSnapshot' ? this.snapshots.get(ref.value) : undefined;
    if (!node) throw new VimFaultError(faults.managedObjectNotFound(ref));
    return node;
  }

  task(ref: MoRef): TaskState {
    const task = ref.type === 'Task' ? this.tasks.get(ref.value) : undefined;
    if (!task) throw new VimFaultError(faults.managedObjectNotFound(ref));
    return task;
  }

  /** Removes a VM behind the adapter's back (tests of "VM deleted meanwhile"). */
  removeVm(name: string): void {
    const i = this.vms.findIndex((v) => v.name === name);
    if (i < 0) throw new Error(`vim responder: no VM named ${name}`);
    const [vm] = this.vms.splice(i, 1);
    for (const [key, node] of this.snapshots) if (node.vm === vm) this.snapshots.delete(key);
  }

  // ---- sessions ------------------------------------------------------------------------

  login(userName: string, ipAddress: string, userAgent: string): Session {
    return { key: randomUUID(), userName, loginTime: now(), lastActiveTime: now(), ipAddress, userAgent, callCount: 0 };
  }

  // ---- tasks ---------------------------------------------------------------------------

  private timingFor(method: TaskMethod): TaskTiming | undefined {
    return this.scenario.tasks?.byMethod?.[method] ?? this.scenario.tasks?.default;
  }

  /**
   * Starts a task on `vm`: conflicts with a task already holding the VM (TaskInProgress, as a task
   * error or, per scenario, a SOAP fault), fails as the scenario says, or runs `work` when done.
   */
  startTask(method: TaskMethod, entity: MoRef, vm: VmState | undefined, work: () => MoRef | undefined): MoRef {
    const [name, descriptionId] = TASK_NAMES[method];
    const timing = this.timingFor(method);
    const busy = vm?.busyWith;
    if (busy && (this.scenario.conflict ?? 'task-error') === 'soap-fault') throw new VimFaultError(faults.taskInProgress(busy.ref));
    const task: TaskState = {
      ref: { type: 'Task', value: this.id('task') },
      method,
      name,
      descriptionId,
      entity,
      vm,
      state: 'queued',
      cancelled: false,
      cancelable: timing?.cancelable ?? true,
      progress: undefined,
      error: undefined,
      result: undefined,
      queueTime: now(),
      startTime: undefined,
      completeTime: undefined,
      queuedLeft: timing?.queuedSteps ?? 0,
      steps: timing?.progress ?? [],
      stepIndex: -1,
      timing,
      work,
    };
    this.tasks.set(task.ref.value, task);
    if (busy) {
      task.startTime = now();
      this.finish(task, faults.taskInProgress(busy.ref));
      return task.ref;
    }
    if (task.queuedLeft === 0 && task.steps.length === 0) {
      task.startTime = now();
      this.complete(task);
      return task.ref;
    }
    if (vm) vm.busyWith = task;
    if (task.queuedLeft === 0) this.step(task); // straight to running at progress[0]
    this.schedule(task);
    return task.ref;
  }

  private schedule(task: TaskState): void {
    const stepMs = task.timing?.stepMs;
    if (typeof stepMs !== 'number') return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (task.state !== 'queued' && task.state !== 'running') return;
      this.step(task);
      this.schedule(task);
    }, stepMs);
    this.timers.add(timer);
  }

  /** One step: queued (for queuedSteps steps) → running at progress[0] → progress[1] … → completed. */
  private step(task: TaskState): void {
    if (task.state === 'queued') {
      task.queuedLeft = Math.max(0, task.queuedLeft - 1);
      if (task.queuedLeft > 0) return;
      task.state = 'running';
      task.startTime = now();
    }
    task.stepIndex++;
    if (task.stepIndex < task.steps.length) {
      task.progress = task.steps[task.stepIndex];
      return;
    }
    this.complete(task);
  }

  /** Advances every queued or running task with 'manual' timing by one step. Returns how many moved. */
  stepTasks(): number {
    let moved = 0;
    for (const task of this.tasks.values()) {
      if ((task.state === 'queued' || task.state === 'running') && task.timing?.stepMs === 'manual') {
        this.step(task);
        moved++;
      }
    }
    return moved;
  }

  private complete(task: TaskState): void {
    const planned = this.scenario.taskFailures?.[task.method];
    if (planned) return this.finish(task, planned);
    try {
      task.result = task.work();
      this.finish(task, undefined);
    } catch (e) {
      if (e instanceof VimFaultError) return this.finish(task, e.fault);
      throw e;
    }
  }

  private finish(task: TaskState, error: VimFault | undefined): void {
    task.state = error ? 'error' : 'success';
    task.error = error;
    task.progress = undefined;
    task.cancelable = false;
    task.completeTime = now();
    if (task.vm?.busyWith === task) task.vm.busyWith = undefined;
  }

  /** CancelTask: vSphere API reference — InvalidState when finished, NotSupported when not cancelable. */
  cancelTask(ref: MoRef): void {
    const task = this.task(ref);
    if (task.state === 'success' || task.state === 'error') throw new VimFaultError(faults.invalidState('The task has already completed or been canceled.'));
    if (!task.cancelable) throw new VimFaultError(faults.notSupported('The task cannot be canceled.'));
    task.cancelled = true;
    this.finish(task, faults.requestCanceled());
  }

  // ---- VM operations (the work of each task) --------------------------------------------

  createSnapshot(vmRef: MoRef, name: string, description: string, memory: boolean, quiesce: boolean): MoRef {
    const vm = this.vm(vmRef);
    return this.startTask('CreateSnapshot_Task', vm.ref, vm, () => this.addSnapshot(vm, vm.current, name, description, memory, quiesce && vm.powerState === 'poweredOn').ref);
  }

  revertToSnapshot(snapRef: MoRef, suppressPowerOn: boolean): MoRef {
    const snap = this.snapshot(snapRef);
    const vm = snap.vm;
    return this.startTask('RevertToSnapshot_Task', snap.ref, vm, () => {
      vm.current = snap;
      // vSphere: a snapshot without memory reverts to poweredOff; with memory the VM runs again,
      // or stays suspended with suppressPowerOn (API reference; not verified against vCenter).
      vm.powerState = snap.state === 'poweredOn' ? (suppressPowerOn ? 'suspended' : 'poweredOn') : 'poweredOff';
      return undefined;
    });
  }

  removeSnapshot(snapRef: MoRef, removeChildren: boolean): MoRef {
    const snap = this.snapshot(snapRef);
    const vm = snap.vm;
    return this.startTask('RemoveSnapshot_Task', snap.ref, vm, () => {
      if (!this.snapshots.has(snap.ref.value)) throw new VimFaultError(faults.managedObjectNotFound(snap.ref));
      const siblings = snap.parent ? snap.parent.children : vm.roots;
      const removed = removeChildren ? collect(snap) : [snap];
      const orphans = removeChildren ? [] : snap.children;
      for (const o of orphans) o.parent = snap.parent;
      siblings.splice(siblings.indexOf(snap), 1, ...orphans);
      for (const n of removed) this.snapshots.delete(n.ref.value);
      // Deleting the current snapshot makes its parent current (vSphere snapshot manager).
      if (vm.current && removed.includes(vm.current)) vm.current = snap.parent;
      if (vm.consolidationNeededAfterRemove) vm.consolidationNeeded = true;
      return undefined;
    });
  }

  removeAllSnapshots(vmRef: MoRef): MoRef {
    const vm = this.vm(vmRef);
    return this.startTask('RemoveAllSnapshots_Task', vm.ref, vm, () => {
      for (const root of vm.roots) for (const n of collect(root)) this.snapshots.delete(n.ref.value);
      vm.roots = [];
      vm.current = undefined;
      if (vm.consolidationNeededAfterRemove) vm.consolidationNeeded = true;
      return undefined;
    });
  }

  consolidateVmDisks(vmRef: MoRef): MoRef {
    const vm = this.vm(vmRef);
    return this.startTask('ConsolidateVMDisks_Task', vm.ref, vm, () => {
      vm.consolidationNeeded = false;
      return undefined;
    });
  }

  powerOn(vmRef: MoRef): MoRef {
    const vm = this.vm(vmRef);
    return this.startTask('PowerOnVM_Task', vm.ref, vm, () => {
      if (vm.powerState === 'poweredOn') throw new VimFaultError(faults.invalidPowerState('poweredOn', vm.powerState));
      vm.powerState = 'poweredOn';
      return undefined;
    });
  }

  powerOff(vmRef: MoRef): MoRef {
    const vm = this.vm(vmRef);
    return this.startTask('PowerOffVM_Task', vm.ref, vm, () => {
      if (vm.powerState === 'poweredOff') throw new VimFaultError(faults.invalidPowerState('poweredOff', vm.powerState));
      vm.powerState = 'poweredOff';
      return undefined;
    });
  }

  /** ShutdownGuest returns at once; the guest powers off now, later or never (scenario.guestShutdown). */
  shutdownGuest(vmRef: MoRef): void {
    const vm = this.vm(vmRef);
    if (vm.powerState !== 'poweredOn') throw new VimFaultError(faults.invalidPowerState('poweredOn', vm.powerState));
    if (!vm.toolsRunning) throw new VimFaultError(faults.toolsUnavailable());
    const how = this.scenario.guestShutdown ?? 'immediate';
    if (how === 'immediate') vm.powerState = 'poweredOff';
    else if (how !== 'never') {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        vm.powerState = 'poweredOff';
      }, how.afterMs);
      this.timers.add(timer);
    }
  }

  // ---- paging --------------------------------------------------------------------------

  /** Splits rendered ObjectContents into a first page and, if more remain, a token for the rest. */
  page(objects: string[], maxObjects: number | undefined): { objects: string[]; token: string | undefined } {
    const cap = this.scenario.maxObjectsCap;
    const asked = maxObjects !== undefined && maxObjects > 0 ? maxObjects : undefined;
    const size = asked !== undefined && cap !== undefined ? Math.min(asked, cap) : (asked ?? cap);
    if (size === undefined || objects.length <= size) return { objects, token: undefined };
    const token = this.newToken();
    this.pages.set(token, { objects: objects.slice(size), pageSize: size });
    return { objects: objects.slice(0, size), token };
  }

  continuePage(token: string): { objects: string[]; token: string | undefined } {
    const rest = this.pages.get(token);
    // vSphere API reference: an unknown or finished token is an InvalidArgument (not verified).
    if (!rest) throw new VimFaultError(faults.invalidArgument('token'));
    this.pages.delete(token);
    if (rest.objects.length <= rest.pageSize) return { objects: rest.objects, token: undefined };
    const next = this.newToken();
    this.pages.set(next, { objects: rest.objects.slice(rest.pageSize), pageSize: rest.pageSize });
    return { objects: rest.objects.slice(0, rest.pageSize), token: next };
  }

  /** Opaque like vCenter's tokens, and unguessable so a stale or made-up token cannot hit a live page. */
  private newToken(): string {
    return `${this.nextToken++}-${randomUUID()}`;
  }

  cancelPage(token: string): void {
    this.pages.delete(token);
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

function collect(node: SnapshotNode): SnapshotNode[] {
  return [node, ...node.children.flatMap(collect)];
}

// ---- rendering of property values (vcsim's element order, recorded) ---------------------

export function snapshotInfoXml(vm: VmState): string {
  const tree = (n: SnapshotNode, tag: string): string =>
    `<${tag}>${moRef('snapshot', n.ref)}${moRef('vm', vm.ref)}${el('name', n.name)}${el('description', n.description)}${el('id', n.id)}` +
    `${el('createTime', n.createTime)}${el('state', n.state)}${el('quiesced', n.quiesced)}` +
    `${n.children.map((c) => tree(c, 'childSnapshotList')).join('')}${el('replaySupported', false)}</${tag}>`;
  return (vm.current ? moRef('currentSnapshot', vm.current.ref) : '') + vm.roots.map((r) => tree(r, 'rootSnapshotList')).join('');
}

export function taskInfoXml(task: TaskState, errorXml: (f: VimFault) => string): string {
  return (
    el('key', task.ref.value) +
    moRef('task', task.ref) +
    el('name', task.name) +
    el('descriptionId', task.descriptionId) +
    moRef('entity', task.entity) +
    // vcsim writes the MoRef value as entityName (recorded); vCenter writes the entity's name.
    el('entityName', task.entity.value) +
    el('state', task.state) +
    el('cancelled', task.cancelled) +
    el('cancelable', task.cancelable) +
    (task.error ? errorXml(task.error) : '') +
    (task.result ? moRef('result', task.result, ' XMLSchema-instance:type="ManagedObjectReference"') : '') +
    (task.progress !== undefined ? el('progress', task.progress) : '') +
    '<reason XMLSchema-instance:type="TaskReasonUser"><userName>vcsim</userName></reason>' +
    el('queueTime', task.queueTime) +
    (task.startTime ? el('startTime', task.startTime) : '') +
    (task.completeTime ? el('completeTime', task.completeTime) : '') +
    el('eventChainId', 0)
  );
}

export function userSessionXml(s: Session): string {
  return (
    el('key', s.key) +
    el('userName', s.userName) +
    el('fullName', s.userName) +
    el('loginTime', s.loginTime) +
    el('lastActiveTime', s.lastActiveTime) +
    el('locale', 'en_US') +
    el('messageLocale', 'en_US') +
    el('extensionSession', false) +
    el('ipAddress', s.ipAddress) +
    el('userAgent', s.userAgent) +
    el('callCount', s.callCount)
  );
}
