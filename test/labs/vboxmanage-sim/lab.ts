/**
 * Provisions a VBoxManage simulator lab in a directory: a JSON state file with seeded VMs and an
 * executable `VBoxManage` wrapper script that runs the simulator against it.
 *
 * Used by tests and by the daemon's demo mode, so it must not import tap.
 * The state file is shared with running simulator processes: every change made here takes the same
 * lock the simulator takes (../file-lock.mjs).
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageFile } from '../../../providers/shared/package-file.ts';
import { lockOwner, tryLock, unlock } from '../file-lock.mjs';

/**
 * The simulator program. Found from the package root rather than beside this module, because the
 * daemon runs this module bundled into .build/ (demo mode), away from its source folder.
 */
export const SIMULATOR_PATH = packageFile('test', 'labs', 'vboxmanage-sim', 'vboxmanage.mjs');

export type SimVmState = 'running' | 'poweroff' | 'saved' | 'paused' | 'aborted' | (string & {});

export interface SimGuest {
  /** Whether the guest OS shuts down on an ACPI power-button press. */
  acpi: 'honours' | 'ignores';
  /** How long the guest takes to shut down after the button press. */
  shutdownMs: number;
}

export interface SimSnapshot {
  uuid: string;
  name: string;
  description: string;
  parent: string | null;
  children: string[];
  timeStamp: number;
  online: boolean;
}

export interface SimVm {
  uuid: string;
  name: string;
  state: SimVmState;
  stateChangeTime: number;
  ostype: string;
  memory: number;
  cfgFile: string;
  snapFldr: string;
  logFldr: string;
  hardwareUuid: string;
  baseDisk: { path: string; uuid: string };
  disk: { path: string; uuid: string };
  guest: SimGuest;
  stopAt?: number;
  snapshots: Record<string, SimSnapshot>;
  root: string | null;
  current: string | null;
  pending?: { kind: string; pid: number; prevState: string; data: Record<string, unknown> };
}

/** Operations a fault can be attached to: snapshot subcommands, and the other commands by name. */
export type SimOp = 'take' | 'restore' | 'restorecurrent' | 'delete' | 'list' | 'edit' | 'showvminfo' | 'startvm' | 'controlvm' | 'version';

export type SimFault = (
  /** Stops before the command does anything, until killed. */
  | { type: 'hang' }
  /** A long operation starts (transient state, `pending` recorded) and stops at 50 % until killed; the next call completes it. Elsewhere: as hang. */
  | { type: 'stall' }
  /** The command does its work and prints its output, then never exits until killed. */
  | { type: 'hang-after' }
  | { type: 'fail'; message?: string; code?: string; exitCode?: number; stderr?: string; stdout?: string }
  | { type: 'error-exit-0'; message?: string }
  | { type: 'locked' }
) & {
  /** Fire this many times, then disappear; forever when absent. */
  times?: number;
  /** Let this many matching calls through first (counted before `times`). */
  skip?: number;
};

/** A simulator process stopped by a hang, stall or hang-after fault, recorded when it stopped there. */
export interface SimHung {
  op: SimOp;
  /** The VM's name, or '*' for `list vms` and `--version`. */
  vm: string;
  pid: number;
  type: 'hang' | 'stall' | 'hang-after';
}

export interface SimState {
  version?: string;
  /** Duration of each 10 % progress step of a long operation. */
  stepMs?: number;
  vms: SimVm[];
  /** vm name (or '*' for any VM and for `list`/`--version`) → op → fault. */
  faults?: Record<string, Partial<Record<SimOp, SimFault>>>;
  /** Every process a fault stopped, in order (see SimHung). */
  hung?: SimHung[];
  /** Where each call appends its SimCall line (absent: no log). */
  callLog?: string;
  /** The read cache's folder (VboxLabOptions.readCache). */
  readCache?: string;
}

/**
 * One line of the call log (VboxLabOptions.callLog): a call that ran to its exit, or died of
 * SIGPIPE (exit 141) when its caller was killed under it, as real VBoxManage does.
 */
export interface SimCall {
  pid: number;
  /** `take`, `delete`, `restore`, `list` (a snapshot list), `showvminfo`, `startvm`, `controlvm poweroff`, `list vms`… */
  op: string;
  /** The VM's name (null for `list vms` and `--version`). */
  vm: string | null;
  /** `snapvisor:<jobId>` when the arguments carry one (a take's description). */
  marker: string | null;
  /** The process's start and exit, epoch ms. */
  start: number;
  end: number;
  exit: number;
}

/** Operations that change a VM's snapshots or power: two of them on one VM must never overlap. */
export const MUTATING_OPS: ReadonlySet<string> = new Set(['take', 'delete', 'restore', 'restorecurrent', 'edit', 'startvm', 'controlvm poweroff', 'controlvm savestate', 'controlvm acpipowerbutton']);

/** Pairs of calls on the same VM whose [start, end] intervals intersect, among the calls `which` selects. */
export function overlappingCalls(calls: readonly SimCall[], which: (c: SimCall) => boolean = (c) => MUTATING_OPS.has(c.op)): Array<[SimCall, SimCall]> {
  const byVm = new Map<string, SimCall[]>();
  for (const c of calls) {
    if (c.vm === null || !which(c)) continue;
    byVm.set(c.vm, [...(byVm.get(c.vm) ?? []), c]);
  }
  const found: Array<[SimCall, SimCall]> = [];
  for (const list of byVm.values()) {
    list.sort((a, b) => a.start - b.start);
    // Sorted by start: a call overlaps an earlier one exactly when it starts before the latest end so far.
    let latest: SimCall | undefined;
    for (const c of list) {
      if (latest && c.start < latest.end) found.push([latest, c]);
      if (!latest || c.end > latest.end) latest = c;
    }
  }
  return found;
}

export interface LabVmSpec {
  name: string;
  state: 'running' | 'poweroff' | 'saved' | 'paused';
  guest?: Partial<SimGuest>;
}

export interface VboxLabOptions {
  dir: string;
  vms: LabVmSpec[];
  /** Milliseconds per 10 % progress step (default 20). */
  stepMs?: number;
  /** What `VBoxManage --version` prints (default 7.0.20r163906). */
  version?: string;
  /** Every call appends a SimCall line to `vbox-calls.jsonl` in the lab (read with `calls()`). */
  callLog?: boolean;
  /**
   * The wrapper answers `snapshot <uuid> list --machinereadable` and `showvminfo <uuid>
   * --machinereadable` with `cat` of files the simulator renders after each change, instead of
   * starting Node (a call's main cost): for tests that make thousands of calls. The answers are the
   * simulator's own (same functions, same bytes); a VM in a transient state, with an operation
   * pending or a fault armed for those reads is not cached. Reads answered from it are not in the call log.
   */
  readCache?: boolean;
}

export interface VboxLab {
  /** Path of the executable `VBoxManage` wrapper script. */
  vboxmanage: string;
  statePath: string;
  dir: string;
  setFault(op: SimOp, vmName: string, fault: SimFault | null): void;
  /** Removes every fault still armed. */
  clearFaults(): void;
  readState(): SimState;
  /** The call log's lines so far (empty without VboxLabOptions.callLog). */
  calls(): SimCall[];
  setVmState(vmName: string, state: SimVmState): void;
  setGuest(vmName: string, guest: Partial<SimGuest>): void;
  /** A snapshot made outside Snapvisor, as a child of the VM's current snapshot; it becomes current. Returns its UUID. */
  addExternalSnapshot(vmName: string, snapshot: { name: string; description?: string; online?: boolean }): string;
  cleanup(): void;
}

/**
 * The wrapper's fast path (VboxLabOptions.readCache): only a lower-case UUID names a cache file, and
 * a file that vanishes between the test and the read (re-rendered) sends the call to the simulator.
 */
const READ_CACHE_SH = [
  'c="$here/read-cache"',
  'if [ "$#" -eq 4 ] && [ "$1" = snapshot ] && [ "$3" = list ] && [ "$4" = --machinereadable ]; then',
  '  case "$2" in ""|*[!0-9a-f-]*) ;; *)',
  '    if cat "$c/$2.list" 2>/dev/null; then exit 0; fi',
  '    if [ -f "$c/$2.nolist" ]; then echo "This machine does not have any snapshots"; exit 1; fi ;;',
  '  esac',
  'fi',
  'if [ "$#" -eq 3 ] && [ "$1" = showvminfo ] && [ "$3" = --machinereadable ]; then',
  '  case "$2" in ""|*[!0-9a-f-]*) ;; *) if cat "$c/$2.info" 2>/dev/null; then exit 0; fi ;; esac',
  'fi',
  '',
].join('\n');

/** A fixed time for seeded VMs, so two labs seeded alike print the same showvminfo (UUIDs aside). */
const SEED_TIME = Date.UTC(2024, 0, 1, 0, 0, 0, 0);

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * (Re)writes the lab's `VBoxManage` wrapper: this Node and this install's simulator, run against the
 * state file beside the wrapper, found from the wrapper's own path rather than written in, so a
 * copied lab directory drives its own state. Node and the simulator are paths of the install that
 * wrote the script: the demo rewrites it at each start, so a copied tree never runs another's.
 */
export function writeVboxWrapper(dir: string, options: { readCache?: boolean } = {}): string {
  const vboxmanage = join(resolve(dir), 'VBoxManage');
  // A fixed script: only the two install paths are interpolated, shell-quoted.
  writeFileSync(
    vboxmanage,
    // The wrapper's directory from $0 without forking dirname (run thousands of times by the tests).
    // NODE_OPTIONS unset: the simulator needs none of its caller's Node options, and a test runner's
    // (tap's --import of its process tracker) cost about 0.1 s at each of thousands of calls.
    `#!/bin/sh\ncase "$0" in */*) here="\${0%/*}" ;; *) here=. ;; esac\n${options.readCache ? READ_CACHE_SH : ''}unset NODE_OPTIONS\n` +
      `exec ${shellQuote(process.execPath)} ${shellQuote(SIMULATOR_PATH)} --sim-state "$here/vbox-state.json" "$@"\n`,
  );
  chmodSync(vboxmanage, 0o755);
  return vboxmanage;
}

export function createVboxLab(options: VboxLabOptions): VboxLab {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true });
  const statePath = join(dir, 'vbox-state.json');
  const vboxmanage = join(dir, 'VBoxManage');

  const vms: SimVm[] = options.vms.map((spec) => {
    const home = join(dir, 'VirtualBox VMs', spec.name);
    const base = { path: join(home, `${spec.name}-disk001.vdi`), uuid: randomUUID() };
    return {
      uuid: randomUUID(),
      name: spec.name,
      state: spec.state,
      stateChangeTime: SEED_TIME,
      ostype: 'Ubuntu (64-bit)',
      memory: 1024,
      cfgFile: join(home, `${spec.name}.vbox`),
      snapFldr: join(home, 'Snapshots'),
      logFldr: join(home, 'Logs'),
      hardwareUuid: randomUUID(),
      baseDisk: base,
      disk: { ...base },
      guest: { acpi: spec.guest?.acpi ?? 'honours', shutdownMs: spec.guest?.shutdownMs ?? 100 },
      snapshots: {},
      root: null,
      current: null,
    };
  });
  const callLog = join(dir, 'vbox-calls.jsonl');
  const readCache = join(dir, 'read-cache');
  const state: SimState = {
    version: options.version ?? '7.0.20r163906',
    stepMs: options.stepMs ?? 20,
    vms,
    faults: {},
    ...(options.callLog ? { callLog } : {}),
    ...(options.readCache ? { readCache } : {}),
  };
  writeFileSync(statePath, JSON.stringify(state, null, 2));
  writeVboxWrapper(dir, { readCache: options.readCache === true });

  // A change made here drops the whole read cache (under the lock): the simulator's next call renders it again.
  const update = (fn: (s: SimState) => void) => withLockedState(statePath, fn, options.readCache ? () => rmSync(readCache, { recursive: true, force: true }) : undefined);
  const vmNamed = (s: SimState, name: string): SimVm => {
    const vm = s.vms.find((v) => v.name === name);
    if (!vm) throw new Error(`vbox lab: no VM named '${name}'`);
    return vm;
  };

  return {
    vboxmanage,
    statePath,
    dir,
    setFault(op, vmName, fault) {
      update((s) => {
        s.faults ??= {};
        const forVm = (s.faults[vmName] ??= {});
        if (fault === null) delete forVm[op];
        else forVm[op] = fault;
      });
    },
    clearFaults() {
      update((s) => {
        s.faults = {};
      });
    },
    readState: () => JSON.parse(readFileSync(statePath, 'utf8')) as SimState,
    calls() {
      if (!options.callLog || !existsSync(callLog)) return [];
      return readFileSync(callLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SimCall);
    },
    setVmState(vmName, vmState) {
      update((s) => {
        const vm = vmNamed(s, vmName);
        vm.state = vmState;
        vm.stateChangeTime = Date.now();
        delete vm.stopAt;
      });
    },
    setGuest(vmName, guest) {
      update((s) => {
        const vm = vmNamed(s, vmName);
        vm.guest = { ...vm.guest, ...guest };
      });
    },
    addExternalSnapshot(vmName, snap) {
      const uuid = randomUUID();
      update((s) => {
        const vm = vmNamed(s, vmName);
        vm.snapshots[uuid] = {
          uuid,
          name: snap.name,
          description: snap.description ?? '',
          parent: vm.current,
          children: [],
          timeStamp: Date.now(),
          online: snap.online ?? (vm.state === 'running' || vm.state === 'paused'),
        };
        if (vm.current) vm.snapshots[vm.current]?.children.push(uuid);
        else vm.root = uuid;
        vm.current = uuid;
      });
      return uuid;
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const waitCell = new Int32Array(new SharedArrayBuffer(4));

/** The simulator's own lock (file-lock.mjs) around a read, change and atomic write (rename) of the state. */
function withLockedState(statePath: string, fn: (s: SimState) => void, afterWrite?: () => void): void {
  const lock = `${statePath}.lock`;
  const deadline = Date.now() + 30_000;
  while (!tryLock(lock)) {
    if (Date.now() > deadline) throw new Error(`vbox lab: state lock held too long by pid ${lockOwner(lock) ?? '(none written)'}`);
    Atomics.wait(waitCell, 0, 0, 3);
  }
  try {
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as SimState;
    fn(state);
    const tmp = `${statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2));
    renameSync(tmp, statePath);
    afterWrite?.();
  } finally {
    unlock(lock);
  }
}
