/**
 * What a vim responder simulates: the VMs it starts with and the knobs for the behaviours vcsim
 * 0.24 cannot show. Plain data, so a test can build its own or take a preset from `scenarios`.
 */
import type { VimFault } from './soap-xml.ts';

export type PowerState = 'poweredOn' | 'poweredOff' | 'suspended';

export interface ScenarioSnapshot {
  name: string;
  description?: string;
  /** Taken with memory: the snapshot's state is poweredOn and a revert powers the VM on. */
  memory?: boolean;
  quiesced?: boolean;
  children?: ScenarioSnapshot[];
}

export interface ScenarioVm {
  name: string;
  /** Default `vm-<n>`. */
  moId?: string;
  /** Default a UUID derived from the name. */
  instanceUuid?: string;
  /** Default poweredOn (vcsim's default inventory is all on). */
  powerState?: PowerState;
  /**
   * runtime.consolidationNeeded. Undefined leaves the property unset, so it is omitted from
   * propSet as vcsim does; a boolean is reported (vCenter reports false explicitly — not verified).
   */
  consolidationNeeded?: boolean;
  /** A snapshot removal leaves runtime.consolidationNeeded = true (a consolidation that failed). */
  consolidationNeededAfterRemove?: boolean;
  /** Default true. False: ShutdownGuest faults ToolsUnavailable. */
  toolsRunning?: boolean;
  /** Root snapshots with their children. */
  snapshots?: ScenarioSnapshot[];
  /** Name of the current snapshot; default the last one created (depth first, last child). */
  currentSnapshot?: string;
}

export type TaskMethod =
  | 'CreateSnapshot_Task'
  | 'RevertToSnapshot_Task'
  | 'RemoveSnapshot_Task'
  | 'RemoveAllSnapshots_Task'
  | 'ConsolidateVMDisks_Task'
  | 'PowerOnVM_Task'
  | 'PowerOffVM_Task';

export interface TaskTiming {
  /** Steps spent `queued` before running (default 0). */
  queuedSteps?: number;
  /**
   * `info.progress` for each running step, e.g. [0, 30, 60, 100]; the step after the last one
   * completes the task. Empty with no queued steps: the task completes inside the call, as in vcsim.
   */
  progress: number[];
  /** Milliseconds per step, or 'manual': steps happen only when the test calls `stepTasks()`. */
  stepMs: number | 'manual';
  /** info.cancelable while queued/running (default true). CancelTask on a non-cancelable task faults NotSupported. */
  cancelable?: boolean;
}

/** The next `times` (default 1) calls of `method` fault with `fault`, or their connection is dropped without an answer. */
export type FaultOnDemand = { method: string; times?: number } & ({ fault: VimFault } | { drop: true });

export interface Scenario {
  name: string;
  description: string;
  vms: ScenarioVm[];
  /** How tasks run; `byMethod` overrides `default`. Default: complete inside the call. */
  tasks?: { default?: TaskTiming; byMethod?: Partial<Record<TaskMethod, TaskTiming>> };
  /**
   * A second task on a VM that has one queued or running: 'task-error' (default) returns a Task
   * that ends in error TaskInProgress; 'soap-fault' faults the call itself. Which one real vCenter
   * uses is not verified, so the adapter must handle both.
   */
  conflict?: 'task-error' | 'soap-fault';
  /** Tasks of `method` end in error with `fault` instead of doing their work (e.g. FileLocked on RemoveSnapshot_Task). */
  taskFailures?: Partial<Record<TaskMethod, VimFault>>;
  /** Faults and dropped connections armed at start (more with `failNext`). */
  faults?: FaultOnDemand[];
  /** Page size when the request gives no (or a larger) options.maxObjects; default unlimited. */
  maxObjectsCap?: number;
  /**
   * RetrievePropertiesEx without a valid session: 'missing-set' (vcsim 0.24, recorded: 200 with a
   * NotAuthenticated MissingProperty per path) or 'fault' (a NotAuthenticated SOAP fault).
   */
  unauthenticatedRetrieve?: 'missing-set' | 'fault';
  /** When ShutdownGuest powers the VM off: at once (default), after `afterMs`, or never (to test a shutdown timeout). */
  guestShutdown?: 'immediate' | 'never' | { afterMs: number };
}

const STEPS = [0, 30, 60, 100];

function numberedVms(count: number, prefix: string): ScenarioVm[] {
  return Array.from({ length: count }, (_, i) => ({ name: `${prefix}${String(i).padStart(2, '0')}` }));
}

/** Named presets, one per behaviour vcsim 0.24 cannot show. Knobs can be changed on a copy. */
export const scenarios = {
  /** Four powered-on VMs like vcsim's default inventory; tasks complete inside the call. */
  basic: (): Scenario => ({
    name: 'basic',
    description: 'four powered-on VMs without snapshots; tasks complete inside the call (like vcsim)',
    vms: [{ name: 'DC0_H0_VM0' }, { name: 'DC0_H0_VM1' }, { name: 'DC0_C0_RP0_VM0' }, { name: 'DC0_C0_RP0_VM1' }],
  }),

  /** 1. A VM needing consolidation; ConsolidateVMDisks_Task progresses 0→30→60→100, then consolidationNeeded = false. */
  consolidation: (stepMs: number | 'manual' = 'manual'): Scenario => ({
    name: 'consolidation',
    description: 'vm-needs-consolidation has runtime.consolidationNeeded = true; ConsolidateVMDisks_Task runs with progress and clears it',
    vms: [
      { name: 'vm-needs-consolidation', consolidationNeeded: true, snapshots: [{ name: 'base' }] },
      { name: 'vm-clean', consolidationNeeded: false },
    ],
    tasks: { byMethod: { ConsolidateVMDisks_Task: { progress: STEPS, stepMs } } },
  }),

  /** 2. `count` VMs (default 25): RetrievePropertiesEx with maxObjects returns a page and a token. */
  paging: (count = 25): Scenario => ({
    name: 'paging',
    description: `${count} VMs; RetrievePropertiesEx honours options.maxObjects and ContinueRetrievePropertiesEx returns the rest`,
    vms: numberedVms(count, 'page-vm-'),
  }),

  /** 3. CreateSnapshot_Task stays queued one step, then running through `progress`; CancelTask cancels it. */
  slowTasks: (stepMs: number | 'manual' = 'manual', progress: number[] = STEPS): Scenario => ({
    name: 'slow-tasks',
    description: 'CreateSnapshot_Task is queued for a step, then runs with progress; CancelTask moves it to error RequestCanceled',
    vms: [{ name: 'slow-vm' }],
    tasks: { byMethod: { CreateSnapshot_Task: { queuedSteps: 1, progress, stepMs, cancelable: true } } },
  }),

  /** 4. Snapshot tasks run until stepped, so a second one on the same VM conflicts (TaskInProgress). */
  conflict: (how: 'task-error' | 'soap-fault' = 'task-error'): Scenario => ({
    name: `conflict-${how}`,
    description: `a second task on a VM with one running fails with TaskInProgress as a ${how}`,
    vms: [{ name: 'busy-vm' }],
    tasks: { default: { progress: STEPS, stepMs: 'manual' } },
    conflict: how,
  }),

  /** 5. Snapshots with and without memory, for the power state a revert leaves (as vSphere documents it). */
  revertPower: (): Scenario => ({
    name: 'revert-power',
    description: 'revert to "no-memory" leaves the VM poweredOff, to "with-memory" poweredOn (vSphere behaviour; vcsim keeps the power state)',
    vms: [
      {
        name: 'revert-vm',
        powerState: 'poweredOn',
        snapshots: [{ name: 'no-memory', memory: false, children: [{ name: 'with-memory', memory: true }] }],
      },
    ],
  }),

  /** 6. Faults on demand: the basic inventory with `faults` armed (more with `failNext`). */
  faults: (armed: FaultOnDemand[]): Scenario => ({
    ...scenarios.basic(),
    name: 'faults',
    description: 'the basic inventory; the listed calls fault or drop the connection',
    faults: armed,
  }),
};
