#!/usr/bin/env node
// @ts-check
/**
 * VBoxManage simulator (VirtualBox 7.0.x on Linux) for Snapvisor's tests and demo mode.
 *
 *   node vboxmanage.mjs --sim-state <state.json> <VBoxManage args…>
 *
 * Formats, exit codes and error texts follow /work/shared/reference/virtualbox.md (§ numbers in the
 * comments). Plain ESM JavaScript so each call starts fast (no TypeScript loader).
 *
 * Concurrency: every call takes an exclusive lock file (../file-lock.mjs: O_EXCL, a stale lock
 * recovered when its pid is dead, without ever letting two callers in), reads the JSON state,
 * writes it back atomically (rename) and releases the lock. A long operation sets the VM's
 * transient state, releases the lock, prints its progress while sleeping, then commits under the
 * lock again — so concurrent calls see `onlinesnapshotting`, `restoringsnapshot`…
 * If the process dies mid-operation, the next call completes the pending operation (VBoxSVC, not
 * VBoxManage, does the work in the real product).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { lockOwner, processAlive, tryLock, unlock } from '../file-lock.mjs';

const PROG = 'VBoxManage';
const DEFAULT_VERSION = '7.0.20r163906';
const DEFAULT_STEP_MS = 20;

// ---------------------------------------------------------------------------------------------
// output

/** Exit status of a process killed by SIGPIPE, as a shell reports it. */
const SIGPIPE_EXIT = 141;

/**
 * Writes to stdout (1) or stderr (2). When the reader is gone (its caller was killed), real
 * VBoxManage dies of SIGPIPE at its next write; the operation it started goes on in VBoxSVC (here
 * the next call completes it). The call log still gets this call's line, ended now, so a test
 * reading the log sees every call that ran, including those whose caller died under them.
 * @param {1 | 2} fd @param {string} s
 */
function write(fd, s) {
  try {
    fs.writeSync(fd, s);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'EPIPE') throw e;
    logCall(process.argv.slice(4), SIGPIPE_EXIT);
    process.exit(SIGPIPE_EXIT);
  }
}
/** @param {string} s */
const out = (s) => write(1, s);
/** @param {string} s */
const err = (s) => write(2, s);

class Exit extends Error {
  /** @param {number} code */
  constructor(code) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/** HRESULT names → values (§1.3, §3). */
const HRESULTS = {
  VBOX_E_OBJECT_NOT_FOUND: '0x80bb0001',
  VBOX_E_INVALID_VM_STATE: '0x80bb0002',
  VBOX_E_INVALID_OBJECT_STATE: '0x80bb0007',
  E_INVALIDARG: '0x80070057',
  E_FAIL: '0x80004005',
  NS_ERROR_FAILURE: '0x80004005',
};

/**
 * The 3-line CHECK_ERROR block (§1.3).
 * @param {{ message: string, code: keyof typeof HRESULTS | string, component: string, iface: string, context: string, line: number, file: string }} e
 */
function errorBlock(e) {
  const hex = /** @type {Record<string,string>} */ (HRESULTS)[e.code] ?? '0x80004005';
  return (
    `${PROG}: error: ${e.message}\n` +
    `${PROG}: error: Details: code ${e.code} (${hex}), component ${e.component}, interface ${e.iface}, callee nsISupports\n` +
    `${PROG}: error: Context: "${e.context}" at line ${e.line} of file ${e.file}\n`
  );
}

/** @param {Parameters<typeof errorBlock>[0]} e @returns {never} */
function fail(e) {
  err(errorBlock(e));
  throw new Exit(1);
}

/** errorSyntax (§1.5): logo, error line, blank, brief usage. @param {string} msg @param {string} usage @param {number} code @returns {never} */
function syntaxError(msg, usage, code) {
  const ver = currentVersion.split('r')[0];
  err(`Oracle VM VirtualBox Command Line Management Interface Version ${ver}\nCopyright (C) 2005-2024 Oracle and/or its affiliates\n\n`);
  err(`${PROG}: error: ${msg}\n\nUsage:\n\n${usage}\n`);
  throw new Exit(code);
}

const SNAPSHOT_USAGE = [
  'VBoxManage snapshot <uuid|vmname> take <snapshot-name> [--description=description] [--live] [--uniquename Number,Timestamp,Space,Force]',
  'VBoxManage snapshot <uuid|vmname> delete <snapshot-name>',
  'VBoxManage snapshot <uuid|vmname> restore <snapshot-name>',
  'VBoxManage snapshot <uuid|vmname> restorecurrent',
  'VBoxManage snapshot <uuid|vmname> edit <snapshot-name | --current> [--description=description] [--name=new-name]',
  'VBoxManage snapshot <uuid|vmname> list [[--details] | [--machinereadable]]',
  'VBoxManage snapshot <uuid|vmname> showvminfo <snapshot-name>',
].join('\n');

let currentVersion = DEFAULT_VERSION;

// ---------------------------------------------------------------------------------------------
// state file

/**
 * @typedef {{ uuid: string, name: string, description: string, parent: string | null, children: string[], timeStamp: number, online: boolean }} Snap
 * @typedef {{ kind: string, pid: number, prevState: string, data: Record<string, unknown> }} Pending
 * @typedef {{ uuid: string, name: string, state: string, stateChangeTime: number, ostype: string, memory: number,
 *   cfgFile: string, snapFldr: string, logFldr: string, hardwareUuid: string,
 *   baseDisk: { path: string, uuid: string }, disk: { path: string, uuid: string },
 *   guest: { acpi: 'honours' | 'ignores', shutdownMs: number }, stopAt?: number,
 *   snapshots: Record<string, Snap>, root: string | null, current: string | null, pending?: Pending }} Vm
 * @typedef {{ type: 'hang' } | { type: 'stall' } | { type: 'hang-after' }
 *   | { type: 'fail', message?: string, code?: string, exitCode?: number, stderr?: string, stdout?: string }
 *   | { type: 'error-exit-0', message?: string } | { type: 'locked' }} FaultKind
 * @typedef {FaultKind & { times?: number, skip?: number }} Fault
 * @typedef {{ op: string, vm: string, pid: number, type: 'hang' | 'stall' | 'hang-after' }} Hung
 * @typedef {{ version?: string, stepMs?: number, vms: Vm[], faults?: Record<string, Record<string, Fault>>, calls?: number, hung?: Hung[], callLog?: string, readCache?: string }} State
 */

/** @type {string} */
let statePath = '';

/**
 * The call log (state.callLog, opt-in): one JSON line per call that ran to its exit (or died of
 * SIGPIPE, exit 141: see write), appended at the exit with the process's start and end times, so a
 * test can check from the simulator's own record that calls on one VM never overlapped. Known once
 * the state was read; a call that never read it (a usage error) is not logged.
 */
let callLog = '';
/** The VM the call resolved to (its name), for the log. */
let callVm = '';

function lockPath() {
  return `${statePath}.lock`;
}

const waitCell = new Int32Array(new SharedArrayBuffer(4));
/** @param {number} ms */
const sleepSync = (ms) => void Atomics.wait(waitCell, 0, 0, ms);

function acquireLock() {
  const deadline = Date.now() + 30_000;
  while (!tryLock(lockPath())) {
    if (Date.now() > deadline) {
      err(`${PROG}: error: simulator: state lock ${lockPath()} held too long by pid ${lockOwner(lockPath()) ?? '(none written)'}\n`);
      throw new Exit(1);
    }
    sleepSync(3);
  }
}

function releaseLock() {
  unlock(lockPath());
}

/** @param {State} state */
function writeState(state) {
  const tmp = `${statePath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, statePath);
}

/**
 * Run fn on the state under the lock; the state is written back afterwards (even when fn throws an
 * Exit after changing it, e.g. consuming a one-shot fault).
 * @template T @param {(s: State) => T} fn @returns {T}
 */
function withState(fn) {
  acquireLock();
  try {
    const before = fs.readFileSync(statePath, 'utf8');
    /** @type {State} */
    const state = JSON.parse(before);
    currentVersion = state.version ?? DEFAULT_VERSION;
    callLog = state.callLog ?? '';
    const seen = state.readCache ? cacheFingerprints(state) : null;
    settle(state, Date.now());
    try {
      return fn(state);
    } finally {
      if (JSON.stringify(state, null, 2) !== before) writeState(state);
      // Under the lock, like the state: no reader sees the cache older than the state it read.
      if (seen) renderReadCache(state, seen);
    }
  } finally {
    releaseLock();
  }
}

// ---------------------------------------------------------------------------------------------
// read cache (state.readCache, opt-in): the wrapper answers the two reads the adapter makes most,
// `snapshot <uuid> list --machinereadable` and `showvminfo <uuid> --machinereadable`, with `cat` of
// a file rendered here by the same functions, instead of starting Node (most of a call's cost).
// A VM's files exist only while its answer cannot depend on anything but the state: a stable
// power state, no pending operation, no timed transition, no fault armed for those reads.

/** @param {State} state */
function cacheFingerprints(state) {
  return { faults: JSON.stringify(state.faults ?? {}), vms: new Map(state.vms.map((v) => [v.uuid, JSON.stringify(v)])) };
}

/** @param {Vm} vm @param {State} state */
function cacheable(vm, state) {
  if (vm.pending || vm.stopAt !== undefined || isTransient(vm.state)) return false;
  const faults = state.faults ?? {};
  return ![vm.name, '*'].some((k) => faults[k]?.list || faults[k]?.showvminfo);
}

/** @param {string} file @param {string} text */
function writeAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** @param {string} file */
function removeFile(file) {
  try {
    fs.unlinkSync(file);
  } catch {
    // not there
  }
}

/**
 * (Re)renders the files of every VM that changed, or lost its files (lab.ts removes them all when
 * it changes the state), and removes those of VMs that are not cacheable now.
 * @param {State} state @param {ReturnType<typeof cacheFingerprints>} seen
 */
function renderReadCache(state, seen) {
  const dir = /** @type {string} */ (state.readCache);
  fs.mkdirSync(dir, { recursive: true });
  const faultsChanged = JSON.stringify(state.faults ?? {}) !== seen.faults;
  for (const vm of state.vms) {
    const base = path.join(dir, vm.uuid);
    const changed = faultsChanged || seen.vms.get(vm.uuid) !== JSON.stringify(vm);
    if (!changed && (fs.existsSync(`${base}.info`) || !cacheable(vm, state))) continue;
    // Stale answers go first: a reader finding no file starts the simulator, which waits for the lock.
    removeFile(`${base}.info`);
    removeFile(`${base}.list`);
    removeFile(`${base}.nolist`);
    if (!cacheable(vm, state)) continue;
    if (vm.root) writeAtomic(`${base}.list`, machineReadableSnapshots(vm));
    else writeAtomic(`${base}.nolist`, '');
    writeAtomic(`${base}.info`, machineReadableVmInfo(vm));
  }
}

// ---------------------------------------------------------------------------------------------
// machine model

const STABLE_OFFLINE = ['poweroff', 'saved', 'teleported', 'aborted', 'aborted-saved'];
const STABLE_ONLINE = ['running', 'paused', 'gurumeditation'];
const isTransient = (/** @type {string} */ s) => !STABLE_OFFLINE.includes(s) && !STABLE_ONLINE.includes(s);

/** `Global::stringifyMachineState` (§3.3). */
const CAMEL = {
  poweroff: 'PoweredOff', saved: 'Saved', teleported: 'Teleported', aborted: 'Aborted', 'aborted-saved': 'AbortedSaved',
  running: 'Running', paused: 'Paused', gurumeditation: 'GuruMeditation', teleporting: 'Teleporting',
  livesnapshotting: 'LiveSnapshotting', starting: 'Starting', stopping: 'Stopping', saving: 'Saving', restoring: 'Restoring',
  teleportingpausedvm: 'TeleportingPausedVM', teleportingin: 'TeleportingIn', deletingsnapshotlive: 'DeletingSnapshotOnline',
  deletingsnapshotlivepaused: 'DeletingSnapshotPaused', onlinesnapshotting: 'OnlineSnapshotting',
  restoringsnapshot: 'RestoringSnapshot', deletingsnapshot: 'DeletingSnapshot', settingup: 'SettingUp', snapshotting: 'Snapshotting',
};
const camel = (/** @type {string} */ s) => /** @type {Record<string,string>} */ (CAMEL)[s] ?? s;

const UUID_RE = /^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$/;

/**
 * Lazy time-based transitions and recovery of operations whose VBoxManage process died.
 * @param {State} state @param {number} now
 */
function settle(state, now) {
  for (const vm of state.vms) {
    if (vm.state === 'stopping' && vm.stopAt !== undefined && now >= vm.stopAt) {
      vm.state = 'poweroff';
      vm.stateChangeTime = vm.stopAt;
      delete vm.stopAt;
    }
    if (vm.pending && vm.pending.pid !== process.pid && !processAlive(vm.pending.pid)) commit(vm, vm.pending, now);
  }
}

/** @param {Vm} vm @param {string} state @param {number} now */
function setState(vm, state, now) {
  vm.state = state;
  vm.stateChangeTime = now;
}

/** @param {Vm} vm */
function newDiffImage(vm) {
  const uuid = crypto.randomUUID();
  vm.disk = { path: path.join(vm.snapFldr, `{${uuid}}.vdi`), uuid };
}

/**
 * Apply a pending operation's effect and leave the transient state.
 * @param {Vm} vm @param {Pending} p @param {number} now
 */
function commit(vm, p, now) {
  delete vm.pending;
  switch (p.kind) {
    case 'take': {
      const d = /** @type {{ uuid: string, name: string, description: string, online: boolean }} */ (p.data);
      /** @type {Snap} */
      const snap = { uuid: d.uuid, name: d.name, description: d.description, parent: vm.current, children: [], timeStamp: now, online: d.online };
      vm.snapshots[snap.uuid] = snap;
      if (vm.current) vm.snapshots[vm.current]?.children.push(snap.uuid);
      else vm.root = snap.uuid;
      vm.current = snap.uuid;
      newDiffImage(vm);
      setState(vm, p.prevState, now);
      return;
    }
    case 'restore': {
      const snap = vm.snapshots[/** @type {string} */ (p.data.uuid)];
      if (!snap) return setState(vm, p.prevState, now);
      vm.current = snap.uuid;
      newDiffImage(vm);
      // §2.2: saved when the snapshot has a state file, else poweroff; LastStateChange = snapshot time.
      setState(vm, snap.online ? 'saved' : 'poweroff', snap.timeStamp);
      return;
    }
    case 'delete': {
      const snap = vm.snapshots[/** @type {string} */ (p.data.uuid)];
      if (snap) removeSnapshot(vm, snap);
      setState(vm, p.prevState, now);
      return;
    }
    case 'poweroff':
      setState(vm, 'poweroff', now);
      return;
    case 'savestate':
      setState(vm, 'saved', now);
      return;
    case 'start':
      setState(vm, 'running', now);
      return;
    default:
      setState(vm, p.prevState, now);
  }
}

/** Children take the deleted node's place in its parent; the parent becomes current (§2.3). @param {Vm} vm @param {Snap} snap */
function removeSnapshot(vm, snap) {
  const parent = snap.parent ? vm.snapshots[snap.parent] : undefined;
  for (const c of snap.children) {
    const child = vm.snapshots[c];
    if (child) child.parent = snap.parent;
  }
  if (parent) {
    const i = parent.children.indexOf(snap.uuid);
    parent.children.splice(i, 1, ...snap.children);
  } else {
    vm.root = snap.children[0] ?? null;
  }
  if (vm.current === snap.uuid) vm.current = snap.parent;
  delete vm.snapshots[snap.uuid];
  if (!vm.root) vm.disk = { ...vm.baseDisk };
}

/** Pre-order walk from the root (§2.7, §4.1). @param {Vm} vm @returns {Array<{ snap: Snap, prefix: string }>} */
function preorder(vm) {
  /** @type {Array<{ snap: Snap, prefix: string }>} */
  const acc = [];
  /** @param {string} id @param {string} prefix */
  const walk = (id, prefix) => {
    const snap = vm.snapshots[id];
    if (!snap) return;
    acc.push({ snap, prefix });
    snap.children.forEach((c, i) => walk(c, `${prefix}-${i + 1}`));
  };
  if (vm.root) walk(vm.root, '');
  return acc;
}

/**
 * IMachine::FindSnapshot: a UUID when the argument parses as one, else the first name match in
 * pre-order (§2.7). Returns undefined when not found.
 * @param {Vm} vm @param {string} arg
 */
function findSnapshot(vm, arg) {
  const m = UUID_RE.exec(arg);
  if (m && m[1]) return vm.snapshots[m[1].toLowerCase()];
  return preorder(vm).find((n) => n.snap.name === arg)?.snap;
}

/** @param {Vm} vm @param {string} arg @param {number} line @returns {never} */
function snapshotNotFound(vm, arg, line) {
  const m = UUID_RE.exec(arg);
  fail({
    // §3.2: by-UUID wording is UNKNOWN in the reference; this text is the simulator's choice.
    message: m && m[1] ? `Could not find a snapshot with UUID {${m[1].toLowerCase()}}` : `Could not find a snapshot named '${arg}'`,
    code: 'VBOX_E_OBJECT_NOT_FOUND', component: 'SessionMachine', iface: 'IMachine',
    context: 'FindSnapshot(Bstr(a->argv[2]).raw(), pSnapshot.asOutParam())', line, file: 'VBoxManageSnapshot.cpp',
  });
}

/**
 * IVirtualBox::FindMachine by name or UUID (§3.1).
 * @param {State} state @param {string} arg @param {{ context: string, line: number, file: string }} where
 * @returns {Vm}
 */
function findVm(state, arg, where) {
  const m = UUID_RE.exec(arg);
  const vm = m && m[1] ? state.vms.find((v) => v.uuid === m[1]?.toLowerCase()) : state.vms.find((v) => v.name === arg);
  if (vm) {
    callVm = vm.name;
    return vm;
  }
  return fail({
    message: m && m[1] ? `Could not find a registered machine with UUID {${m[1].toLowerCase()}}` : `Could not find a registered machine named '${arg}'`,
    code: 'VBOX_E_OBJECT_NOT_FOUND', component: 'VirtualBoxWrap', iface: 'IVirtualBox', ...where,
  });
}

/** @param {Vm} vm @param {string} file @param {string} context @param {number} line @returns {never} */
function lockedError(vm, file, context, line) {
  return fail({
    message: `The machine '${vm.name}' is already locked by a session (or being locked or unlocked)`,
    code: 'VBOX_E_INVALID_OBJECT_STATE', component: 'MachineWrap', iface: 'IMachine', context, line, file,
  });
}

// ---------------------------------------------------------------------------------------------
// faults (test hooks, set through lab.ts)

/**
 * Looks up and consumes a fault for (op, vm); '*' matches any VM. A fault with `skip` lets that
 * many matching calls through first. A `hang` is recorded in `state.hung` as it is taken (same
 * write), so a test can wait for the exact moment a process stopped.
 * @param {State} state @param {string} op @param {string} vmName @returns {Fault | undefined}
 */
function takeFault(state, op, vmName) {
  const faults = state.faults ?? {};
  for (const key of [vmName, '*']) {
    const f = faults[key]?.[op];
    if (!f) continue;
    if (f.skip !== undefined && f.skip > 0) {
      f.skip -= 1;
      return undefined;
    }
    if (f.times !== undefined) {
      f.times -= 1;
      if (f.times <= 0) delete faults[key]?.[op];
    }
    if (f.type === 'hang') noteHung(state, op, vmName, 'hang');
    return f;
  }
  return undefined;
}

/** @param {State} state @param {string} op @param {string} vmName @param {Hung['type']} type */
function noteHung(state, op, vmName, type) {
  (state.hung ??= []).push({ op, vm: vmName, pid: process.pid, type });
}

/**
 * Stops this process for good after recording where (`stall`: mid-operation, `hang-after`: the
 * operation done, its output printed, the exit never comes). The test kills it.
 * @param {string} op @param {string} vmName @param {'stall' | 'hang-after'} type
 */
async function stopHere(op, vmName, type) {
  withState((state) => noteHung(state, op, vmName, type));
  await hangForever();
}

/**
 * Applies a fault that ends the command now; the ones that stop it (hang, stall, hang-after) are
 * returned for the async caller to act on at their point.
 * @param {Fault | undefined} f @param {string} vmName @param {string} file
 * @returns {'hang' | 'stall' | 'hang-after' | undefined}
 */
function applyFault(f, vmName, file) {
  if (!f) return undefined;
  switch (f.type) {
    case 'hang':
    case 'stall':
    case 'hang-after':
      return f.type;
    case 'locked':
      return lockedError(/** @type {Vm} */ ({ name: vmName }), file, 'LockMachine(a->session, LockType_Shared)', 225);
    case 'error-exit-0':
      // §1.2: VBoxManage sometimes reports an error and still exits 0.
      err(errorBlock({
        message: f.message ?? 'The object is not ready', code: 'E_FAIL', component: 'SessionMachine', iface: 'IMachine',
        context: 'LockMachine(a->session, LockType_Shared)', line: 225, file,
      }));
      throw new Exit(0);
    case 'fail':
      if (f.stdout) out(f.stdout);
      if (f.stderr !== undefined) err(f.stderr);
      else err(errorBlock({
        message: f.message ?? 'Simulated failure', code: f.code ?? 'E_FAIL', component: 'SessionMachine', iface: 'IMachine',
        context: 'simulated', line: 1, file,
      }));
      throw new Exit(f.exitCode ?? 1);
  }
  return undefined;
}

async function hangForever() {
  for (;;) await sleep(60_000);
}

// ---------------------------------------------------------------------------------------------
// progress

/**
 * Sets the transient state, releases the lock, prints 0%…90% while sleeping, then commits and prints
 * 100% (§1.4: each chunk flushed separately, on stderr). A `stall` stops for good at 50 %, the
 * operation pending; once the process is killed the next call completes it (as VBoxSVC would).
 * @param {string} vmUuid @param {number} stepMs @param {{ op: string, vm: string }} [stall]
 */
async function runProgress(vmUuid, stepMs, stall) {
  for (let pct = 0; pct < 100; pct += 10) {
    err(`${pct}%...`);
    if (stall && pct === 50) await stopHere(stall.op, stall.vm, 'stall');
    await sleep(stepMs);
  }
  withState((state) => {
    const vm = state.vms.find((v) => v.uuid === vmUuid);
    if (vm?.pending && vm.pending.pid === process.pid) commit(vm, vm.pending, Date.now());
  });
  err('100%\n');
}

/** @param {Vm} vm @param {string} kind @param {string} transient @param {Record<string, unknown>} data @param {number} now */
function begin(vm, kind, transient, data, now) {
  vm.pending = { kind, pid: process.pid, prevState: vm.state, data };
  setState(vm, transient, now);
}

// ---------------------------------------------------------------------------------------------
// option parsing (RTGetOpt-like: `--opt value`, `--opt=value`)

/**
 * @param {string[]} argv @param {Record<string, { id: string, value: boolean }>} defs
 * @returns {{ opts: Array<{ id: string, value?: string }>, rest: string[], error?: string }}
 */
function getopt(argv, defs) {
  /** @type {Array<{ id: string, value?: string }>} */
  const opts = [];
  /** @type {string[]} */
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = /** @type {string} */ (argv[i]);
    if (!a.startsWith('-') || a === '-') {
      rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const def = defs[key];
    if (!def) return { opts, rest, error: `Unknown option: ${a}` };
    if (!def.value) {
      if (eq > 0) return { opts, rest, error: `Invalid argument format: ${a}` };
      opts.push({ id: def.id });
    } else if (eq > 0) {
      opts.push({ id: def.id, value: a.slice(eq + 1) });
    } else {
      const v = argv[i + 1];
      if (v === undefined) return { opts, rest, error: `${key}: The option requires a value` };
      opts.push({ id: def.id, value: v });
      i++;
    }
  }
  return { opts, rest };
}

// ---------------------------------------------------------------------------------------------
// output formats

/** §5.1 outputMachineReadableString: escapes `\` and `"`. @param {string} s */
const esc = (s) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/** §4.1: raw values, current lines right after the current node. @param {Vm} vm */
function machineReadableSnapshots(vm) {
  let text = '';
  for (const { snap, prefix } of preorder(vm)) {
    text += `SnapshotName${prefix}="${snap.name}"\nSnapshotUUID${prefix}="${snap.uuid}"\n`;
    if (snap.description !== '') text += `SnapshotDescription${prefix}="${snap.description}"\n`;
    if (vm.current === snap.uuid) {
      text += `CurrentSnapshotName="${snap.name}"\nCurrentSnapshotUUID="${snap.uuid}"\nCurrentSnapshotNode="SnapshotName${prefix}"\n`;
    }
  }
  return text;
}

/** §4.2 human format (7.x). @param {Vm} vm */
function humanSnapshots(vm) {
  let text = '';
  for (const { snap, prefix } of preorder(vm)) {
    const indent = '   '.repeat(prefix.split('-').length);
    text += `${indent}Name: ${snap.name} (UUID: ${snap.uuid})${vm.current === snap.uuid ? ' *' : ''}\n`;
    if (snap.description !== '') {
      text += snap.description.includes('\n') ? `${indent}Description:\n${snap.description}\n` : `${indent}Description: ${snap.description}\n`;
    }
  }
  return text;
}

/** §5.4: nanosecond field, no trailing Z. @param {number} ms */
const vboxTime = (ms) => new Date(ms).toISOString().replace('Z', '000000');

/** §5.2, 7.0.x flavour (raw `Encryption:` line, ` rec_screen0`). @param {Vm} vm */
function machineReadableVmInfo(vm) {
  const online = STABLE_ONLINE.includes(vm.state) || ['stopping', 'onlinesnapshotting', 'livesnapshotting', 'deletingsnapshotlive', 'deletingsnapshotlivepaused'].includes(vm.state);
  const lines = [
    `name="${esc(vm.name)}"`,
    'Encryption:     disabled',
    'groups="/"',
    `ostype="${esc(vm.ostype)}"`,
    `UUID="${vm.uuid}"`,
    `CfgFile="${esc(vm.cfgFile)}"`,
    `SnapFldr="${esc(vm.snapFldr)}"`,
    `LogFldr="${esc(vm.logFldr)}"`,
    `hardwareuuid="${vm.hardwareUuid}"`,
    `memory=${vm.memory}`,
    'pagefusion="off"',
    'vram=16',
    'cpuexecutioncap=100',
    'hpet="off"',
    'cpus=1',
    'firmware="BIOS"',
    `VMState="${vm.state}"`,
    `VMStateChangeTime="${vboxTime(vm.stateChangeTime)}"`,
  ];
  if (vm.state === 'saved') lines.push(`VMStateFile="${vm.snapFldr}/${new Date(vm.stateChangeTime).toISOString().slice(0, 10)}.sav"`);
  lines.push(
    'monitorcount=1',
    'storagecontrollername0="IDE"',
    'storagecontrollertype0="PIIX4"',
    'storagecontrollerinstance0="0"',
    'storagecontrollermaxportcount0="2"',
    'storagecontrollerportcount0="2"',
    'storagecontrollerbootable0="on"',
    'storagecontrollername1="SATA"',
    'storagecontrollertype1="IntelAhci"',
    'storagecontrollerinstance1="0"',
    'storagecontrollermaxportcount1="30"',
    'storagecontrollerportcount1="1"',
    'storagecontrollerbootable1="on"',
    '"IDE-0-0"="none"',
    '"IDE-0-1"="none"',
    '"IDE-1-0"="emptydrive"',
    '"IDE-tempeject-1-0"="off"',
    '"IDE-IsEjected-1-0"="off"',
    '"IDE-1-1"="none"',
    `"SATA-0-0"="${esc(vm.disk.path)}"`,
    `"SATA-ImageUUID-0-0"="${vm.disk.uuid}"`,
    '"SATA-hot-pluggable-0-0"="off"',
    '"SATA-nonrotational-0-0"="off"',
    '"SATA-discard-0-0"="off"',
    'natnet1="nat"',
    'nic1="nat"',
    'recording_enabled="off"',
    'recording_screens=1',
    ' rec_screen0',
    'rec_screen_enabled="on"',
  );
  let text = `${lines.join('\n')}\n${machineReadableSnapshots(vm)}GuestMemoryBalloon=0\n`;
  if (online) text += 'GuestAdditionsRunLevel=0\n';
  return text;
}

/** Short human showvminfo (simplified: the keys a human looks for). @param {Vm} vm */
function humanVmInfo(vm) {
  const stateWords = vm.state === 'poweroff' ? 'powered off' : vm.state;
  return [
    `Name:                        ${vm.name}`,
    'Encryption:                  disabled',
    'Groups:                      /',
    `Guest OS:                    ${vm.ostype}`,
    `UUID:                        ${vm.uuid}`,
    `Config file:                 ${vm.cfgFile}`,
    `Snapshot folder:             ${vm.snapFldr}`,
    `Memory size:                 ${vm.memory}MB`,
    `State:                       ${stateWords} (since ${vboxTime(vm.stateChangeTime)})`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// commands

/** @param {State} state */
function stepMsOf(state) {
  return state.stepMs ?? DEFAULT_STEP_MS;
}

/** @param {string[]} args */
async function cmdSnapshot(args) {
  if (args.length < 2) syntaxError('Not enough parameters', SNAPSHOT_USAGE, 2);
  const [vmArg, sub, ...rest] = /** @type {[string, string, ...string[]]} */ (args);
  const FILE = 'VBoxManageSnapshot.cpp';
  const where = { context: 'FindMachine(bstrMachine.raw(), pMachine.asOutParam())', line: 322, file: FILE };

  /** @type {ReturnType<typeof applyFault>} */
  let fault;
  let vmName = '';
  /** @type {{ kind: 'progress', vmUuid: string, stepMs: number, after?: string } | { kind: 'hang' } | { kind: 'done' }} */
  const next = withState((state) => {
    const vm = findVm(state, vmArg, where);
    const op = sub;
    vmName = vm.name;
    fault = applyFault(takeFault(state, op, vm.name), vm.name, FILE);
    // A stall of a command without progress stops before it, as a hang does.
    if (fault === 'hang' || (fault === 'stall' && !['take', 'restore', 'restorecurrent', 'delete'].includes(sub))) {
      if (fault === 'stall') noteHung(state, op, vm.name, 'stall');
      return { kind: 'hang' };
    }
    const now = Date.now();
    switch (sub) {
      case 'take': {
        // argv[2] is the name, read positionally; options start after it (7.x source, §2.1).
        if (rest.length < 1) syntaxError('Missing snapshot name', SNAPSHOT_USAGE, 1);
        const [name, ...optArgv] = /** @type {[string, ...string[]]} */ (rest);
        const parsed = getopt(optArgv, {
          '--description': { id: 'd', value: true }, '-description': { id: 'd', value: true }, '-desc': { id: 'd', value: true },
          '--pause': { id: 'p', value: false }, '--live': { id: 'l', value: false }, '--uniquename': { id: 'u', value: true },
        });
        if (parsed.error) syntaxError(parsed.error, SNAPSHOT_USAGE, 1);
        if (parsed.rest.length > 0) syntaxError(`Invalid parameter '${parsed.rest[0]}'`, SNAPSHOT_USAGE, 1);
        let description = '';
        let live = false;
        let unique = 0;
        for (const o of parsed.opts) {
          if (o.id === 'd') description = o.value ?? '';
          else if (o.id === 'l') live = true;
          else if (o.id === 'p') live = false;
          else if (o.id === 'u') {
            const flags = parseUnique(o.value ?? '');
            if (flags === null) {
              err(`${PROG}: error: Invalid unique name description '${o.value}'\n`);
              throw new Exit(2);
            }
            unique = flags;
          }
        }
        let finalName = name;
        if (unique & (UNIQUE.number | UNIQUE.timestamp)) finalName = uniqueName(vm, name, unique);
        const ctx = { component: 'SessionMachine', iface: 'IMachine', context: 'TakeSnapshot(name.raw(), desc.raw(), fPause, snapId.asOutParam(), progress.asOutParam())', line: 429, file: FILE };
        if (isTransient(vm.state)) {
          fail({ message: `Cannot take a snapshot of the virtual machine while it is changing state (machine state: ${camel(vm.state)})`, code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
        }
        if (live && vm.state !== 'running') {
          fail({ message: 'Cannot take a live snapshot of a virtual machine unless it is running.', code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
        }
        if (vm.state === 'gurumeditation') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
        const uuid = crypto.randomUUID();
        const running = vm.state === 'running' || vm.state === 'paused';
        const transient = running ? (live ? 'livesnapshotting' : 'onlinesnapshotting') : 'snapshotting';
        begin(vm, 'take', transient, { uuid, name: finalName, description, online: running || vm.state === 'saved' }, now);
        return { kind: 'progress', vmUuid: vm.uuid, stepMs: stepMsOf(state), after: `Snapshot taken. UUID: ${uuid}\n` };
      }
      case 'restore':
      case 'delete':
      case 'restorecurrent': {
        if (sub === 'restorecurrent') {
          if (rest.length > 0) syntaxError('Too many arguments', SNAPSHOT_USAGE, 1);
        } else if (rest.length !== 1) {
          syntaxError('Expecting snapshot name only', SNAPSHOT_USAGE, 1);
        }
        /** @type {Snap | undefined} */
        let snap;
        if (sub === 'restorecurrent') {
          snap = vm.current ? vm.snapshots[vm.current] : undefined;
          if (!snap) {
            out('This machine does not have any snapshots\n');
            throw new Exit(1);
          }
        } else {
          snap = findSnapshot(vm, /** @type {string} */ (rest[0]));
          if (!snap) snapshotNotFound(vm, /** @type {string} */ (rest[0]), 447);
        }
        // Printed before the API call, so it also appears when the call is refused (§2.2).
        out(`${sub === 'delete' ? 'Deleting' : 'Restoring'} snapshot '${snap.name}' (${snap.uuid})\n`);
        if (sub === 'delete') {
          const ctx = { component: 'SessionMachine', iface: 'IMachine', context: 'DeleteSnapshot(bstrSnapGuid.raw(), pProgress.asOutParam())', line: 459, file: FILE };
          if (isTransient(vm.state)) {
            fail({ message: `Cannot delete a snapshot of the machine while it is changing the state (machine state: ${camel(vm.state)})`, code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
          }
          if (vm.state === 'gurumeditation') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
          if (snap.children.length > 1) {
            fail({ message: `Snapshot '${snap.name}' of the machine '${vm.name}' cannot be deleted, because it has ${snap.children.length} child snapshots, which is more than the one snapshot allowed for deletion`, code: 'VBOX_E_INVALID_OBJECT_STATE', ...ctx });
          }
          if (vm.current === snap.uuid && snap.children.length === 1) {
            fail({ message: `Snapshot '${snap.name}' of the machine '${vm.name}' cannot be deleted, because it is the current snapshot and has one child snapshot`, code: 'VBOX_E_INVALID_OBJECT_STATE', ...ctx });
          }
          const transient = vm.state === 'running' ? 'deletingsnapshotlive' : vm.state === 'paused' ? 'deletingsnapshotlivepaused' : 'deletingsnapshot';
          begin(vm, 'delete', transient, { uuid: snap.uuid }, now);
        } else {
          const ctx = { component: 'SessionMachine', iface: 'IMachine', context: 'RestoreSnapshot(pSnapshot, pProgress.asOutParam())', line: 466, file: FILE };
          if (!STABLE_OFFLINE.includes(vm.state)) {
            fail({ message: `Cannot delete the current state of the running machine (machine state: ${camel(vm.state)})`, code: 'VBOX_E_INVALID_VM_STATE', ...ctx });
          }
          begin(vm, 'restore', 'restoringsnapshot', { uuid: snap.uuid }, now);
        }
        return { kind: 'progress', vmUuid: vm.uuid, stepMs: stepMsOf(state) };
      }
      case 'list': {
        const flags = new Set(rest);
        for (const f of flags) {
          if (f !== '--machinereadable' && f !== '--details' && f !== '-machinereadable' && f !== '-details') {
            syntaxError(f.startsWith('-') ? `Unknown option: ${f}` : `Invalid parameter '${f}'`, SNAPSHOT_USAGE, 1);
          }
        }
        if (!vm.root) {
          out('This machine does not have any snapshots\n');
          throw new Exit(1);
        }
        out(flags.has('--machinereadable') || flags.has('-machinereadable') ? machineReadableSnapshots(vm) : humanSnapshots(vm));
        return { kind: 'done' };
      }
      case 'edit': {
        if (rest.length < 1) syntaxError('Missing snapshot name', SNAPSHOT_USAGE, 1);
        /** @type {Snap | undefined} */
        let snap;
        const parsed = getoptOrdered(rest);
        for (const o of parsed) {
          if (o.error) syntaxError(o.error, SNAPSHOT_USAGE, 1);
          if (o.id === 'c') {
            snap = vm.current ? vm.snapshots[vm.current] : undefined;
            if (!snap) {
              out('This machine does not have any snapshots\n');
              throw new Exit(1);
            }
          } else if (o.id === 'arg') {
            snap = findSnapshot(vm, o.value ?? '');
            if (!snap) snapshotNotFound(vm, o.value ?? '', 520);
          } else if (snap && o.id === 'n') {
            snap.name = o.value ?? '';
          } else if (snap && o.id === 'd') {
            snap.description = o.value ?? '';
          }
        }
        return { kind: 'done' };
      }
      case 'showvminfo': {
        if (rest.length !== 1) syntaxError('Expecting snapshot name only', SNAPSHOT_USAGE, 1);
        const snap = findSnapshot(vm, /** @type {string} */ (rest[0]));
        if (!snap) snapshotNotFound(vm, /** @type {string} */ (rest[0]), 547);
        out(humanVmInfo(vm));
        return { kind: 'done' };
      }
      default:
        return syntaxError(`Invalid parameter '${sub}'`, SNAPSHOT_USAGE, 1);
    }
  });

  if (next.kind === 'hang') await hangForever();
  if (next.kind === 'progress') {
    await runProgress(next.vmUuid, next.stepMs, fault === 'stall' ? { op: sub, vm: vmName } : undefined);
    if (next.after) out(next.after);
  }
  if (fault === 'hang-after') await stopHere(sub, vmName, 'hang-after');
}

/** edit's left-to-right options (§2.4). @param {string[]} argv */
function getoptOrdered(argv) {
  /** @type {Array<{ id: string, value?: string, error?: string }>} */
  const acc = [];
  /** @type {Record<string, string>} */
  const defs = { '--current': 'c', '-current': 'c', '--name': 'n', '-name': 'n', '-newname': 'n', '--description': 'd', '-description': 'd', '-desc': 'd' };
  for (let i = 0; i < argv.length; i++) {
    const a = /** @type {string} */ (argv[i]);
    if (!a.startsWith('-')) {
      acc.push({ id: 'arg', value: a });
      continue;
    }
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const id = defs[key];
    if (!id) return [...acc, { id: 'err', error: `Unknown option: ${a}` }];
    if (id === 'c') acc.push({ id });
    else if (eq > 0) acc.push({ id, value: a.slice(eq + 1) });
    else {
      const v = argv[++i];
      if (v === undefined) return [...acc, { id: 'err', error: `${key}: The option requires a value` }];
      acc.push({ id, value: v });
    }
  }
  return acc;
}

const UNIQUE = { number: 2, timestamp: 4, space: 1 << 16, force: 1 << 30 };

/** parseSnapshotUniqueFlags (§2.1): comma list, case-insensitive prefixes. @param {string} s @returns {number | null} */
function parseUnique(s) {
  let flags = 0;
  for (const word of s.split(',')) {
    if (word === '') continue;
    const w = word.toLowerCase();
    const hit = /** @type {Array<keyof typeof UNIQUE>} */ (['number', 'timestamp', 'space', 'force']).find((k) => k.startsWith(w));
    if (!hit) return null;
    flags |= UNIQUE[hit];
  }
  return flags;
}

/** @param {Vm} vm @param {string} name @param {number} flags */
function uniqueName(vm, name, flags) {
  if (!findSnapshot(vm, name) && !(flags & UNIQUE.force)) return name;
  const sep = flags & UNIQUE.space ? ' ' : '';
  const now = Date.now();
  for (let count = flags & UNIQUE.number ? (flags & UNIQUE.force ? 1 : 2) : 0; count < 500; count++) {
    const suffix = flags & UNIQUE.number ? String(count) : new Date(now + count * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const tryName = `${name}${sep}${suffix}`;
    if (!findSnapshot(vm, tryName)) return tryName;
  }
  err(`${PROG}: error: Failed to generate a unique snapshot name\n`);
  throw new Exit(1);
}

/** @param {string[]} args */
async function cmdShowVmInfo(args) {
  const FILE = 'VBoxManageInfo.cpp';
  const parsed = getopt(args, {
    '--machinereadable': { id: 'm', value: false }, '-machinereadable': { id: 'm', value: false },
    '--details': { id: 'x', value: false }, '-details': { id: 'x', value: false }, '--log': { id: 'l', value: true },
  });
  const usage = 'VBoxManage showvminfo <uuid|vmname> [--details] [--machinereadable] [--password-id] [--password]';
  if (parsed.error) syntaxError(parsed.error, usage, 2);
  if (parsed.rest.length !== 1) syntaxError(parsed.rest.length === 0 ? 'VM name or UUID required' : `Invalid parameter '${parsed.rest[1]}'`, usage, 2);
  const vmArg = /** @type {string} */ (parsed.rest[0]);
  const stop = withState((state) => {
    const vm = findVm(state, vmArg, { context: 'FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())', line: 2719, file: FILE });
    const fault = applyFault(takeFault(state, 'showvminfo', vm.name), vm.name, FILE);
    if (fault === 'hang' || fault === 'stall') {
      if (fault === 'stall') noteHung(state, 'showvminfo', vm.name, 'stall');
      return { fault, vm: vm.name };
    }
    out(parsed.opts.some((o) => o.id === 'm') ? machineReadableVmInfo(vm) : humanVmInfo(vm));
    return { fault, vm: vm.name };
  });
  if (stop.fault === 'hang' || stop.fault === 'stall') await hangForever();
  if (stop.fault === 'hang-after') await stopHere('showvminfo', stop.vm, 'hang-after');
}

/** @param {string[]} args */
async function cmdList(args) {
  const what = args[0];
  const usage = 'VBoxManage list [--long] [--sorted] vms | runningvms | ostypes | hdds | …';
  if (what !== 'vms' && what !== 'runningvms') syntaxError(what === undefined ? 'Missing subcommand for "list" command.' : `Unknown subcommand "${what}".`, usage, 2);
  const fault = withState((state) => {
    const f = applyFault(takeFault(state, 'list', '*'), '*', 'VBoxManageList.cpp');
    if (f === 'stall') noteHung(state, 'list', '*', 'stall');
    if (f === 'hang' || f === 'stall') return f;
    // §6: runningvms includes paused (Running, Teleporting, LiveSnapshotting, Paused, TeleportingPausedVM).
    const RUNNING = ['running', 'teleporting', 'livesnapshotting', 'paused', 'teleportingpausedvm'];
    for (const vm of state.vms) {
      if (what === 'runningvms' && !RUNNING.includes(vm.state)) continue;
      out(`"${vm.name}" {${vm.uuid}}\n`);
    }
    return f;
  });
  if (fault === 'hang' || fault === 'stall') await hangForever();
  if (fault === 'hang-after') await stopHere('list', '*', 'hang-after');
}

/** @param {string[]} args */
async function cmdStartVm(args) {
  const FILE = 'VBoxManageMisc.cpp';
  const parsed = getopt(args, { '--type': { id: 't', value: true }, '-type': { id: 't', value: true }, '--putenv': { id: 'e', value: true }, '-E': { id: 'e', value: true } });
  const usage = 'VBoxManage startvm <uuid|vmname>... [--putenv=name[=value]] [--type= [ gui | headless | sdl | separate ]]';
  if (parsed.error) syntaxError(parsed.error, usage, 2);
  const vmArg = parsed.rest[0];
  if (vmArg === undefined) syntaxError('at least one VM name or uuid required', usage, 2);
  const type = parsed.opts.find((o) => o.id === 't')?.value ?? 'gui';
  if (!['gui', 'headless', 'sdl', 'separate'].includes(type)) syntaxError(`Invalid session type '${type}'`, usage, 2);
  const next = withState((state) => {
    const vm = findVm(state, vmArg, { context: 'FindMachine(Bstr(VMName).raw(), machine.asOutParam())', line: 847, file: FILE });
    const fault = applyFault(takeFault(state, 'startvm', vm.name), vm.name, FILE);
    if (fault === 'hang') return { hang: true, fault, name: vm.name, uuid: vm.uuid, stepMs: 0 };
    out(`Waiting for VM "${vm.name}" to power on...\n`);
    // UNVERIFIED (§12): a session already holds a running VM's lock, so LaunchVMProcess fails this way.
    if (!STABLE_OFFLINE.includes(vm.state)) lockedError(vm, FILE, 'LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())', 881);
    begin(vm, 'start', 'starting', {}, Date.now());
    return { hang: false, fault, name: vm.name, uuid: vm.uuid, stepMs: stepMsOf(state) };
  });
  if (next.hang) return hangForever();
  if (next.fault === 'stall') await stopHere('startvm', next.name, 'stall');
  await sleep(next.stepMs * 2);
  withState((state) => {
    const vm = state.vms.find((v) => v.uuid === next.uuid);
    if (vm?.pending && vm.pending.pid === process.pid) commit(vm, vm.pending, Date.now());
  });
  out(`VM "${next.name}" has been successfully started.\n`);
  if (next.fault === 'hang-after') await stopHere('startvm', next.name, 'hang-after');
}

/** @param {string[]} args */
async function cmdControlVm(args) {
  const FILE = 'VBoxManageControlVM.cpp';
  const usage = 'VBoxManage controlvm <uuid|vmname> pause | resume | reset | poweroff | savestate | acpipowerbutton | …';
  if (args.length < 2) syntaxError('Not enough parameters', usage, 2);
  const [vmArg, action] = /** @type {[string, string]} */ (args);
  if (!['pause', 'resume', 'poweroff', 'savestate', 'acpipowerbutton'].includes(action)) syntaxError(`Invalid parameter '${action}'`, usage, 1);
  /** @type {ReturnType<typeof applyFault>} */
  let fault;
  let vmName = '';
  const next = withState((state) => {
    const vm = findVm(state, vmArg, { context: 'FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())', line: 372, file: FILE });
    fault = applyFault(takeFault(state, 'controlvm', vm.name), vm.name, FILE);
    vmName = vm.name;
    if (fault === 'hang') return { kind: 'hang', uuid: vm.uuid, stepMs: 0 };
    // §3.3/§7: without a console the command stops with one line, argv[0] as typed.
    const hasConsole = !STABLE_OFFLINE.includes(vm.state);
    if (!hasConsole) {
      err(`${PROG}: error: Machine '${vmArg}' is not currently running.\n`);
      throw new Exit(1);
    }
    const now = Date.now();
    const ctx = { component: 'ConsoleWrap', iface: 'IConsole', line: 450, file: FILE };
    switch (action) {
      case 'pause':
        if (vm.state !== 'running') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', context: 'console->Pause()', ...ctx });
        setState(vm, 'paused', now);
        return { kind: 'done', uuid: vm.uuid, stepMs: 0 };
      case 'resume':
        if (vm.state !== 'paused') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', context: 'console->Resume()', ...ctx });
        setState(vm, 'running', now);
        return { kind: 'done', uuid: vm.uuid, stepMs: 0 };
      case 'acpipowerbutton':
        if (vm.state !== 'running') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', context: 'console->PowerButton()', ...ctx });
        if (vm.guest?.acpi === 'honours') {
          setState(vm, 'stopping', now);
          vm.stopAt = now + (vm.guest.shutdownMs ?? 0);
        }
        return { kind: 'done', uuid: vm.uuid, stepMs: 0 };
      case 'savestate':
        if (isTransient(vm.state)) fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', context: 'sessionMachine->SaveState(progress.asOutParam())', ...ctx });
        begin(vm, 'savestate', 'saving', {}, now);
        return { kind: 'progress', uuid: vm.uuid, stepMs: stepMsOf(state) };
      default: // poweroff: allowed from running, paused, stuck and while the guest is stopping
        if (isTransient(vm.state) && vm.state !== 'stopping') fail({ message: `Invalid machine state: ${camel(vm.state)}`, code: 'VBOX_E_INVALID_VM_STATE', context: 'console->PowerDown(progress.asOutParam())', ...ctx });
        delete vm.stopAt;
        begin(vm, 'poweroff', 'stopping', {}, now);
        return { kind: 'progress', uuid: vm.uuid, stepMs: stepMsOf(state) };
    }
  });
  if (next.kind === 'hang') return hangForever();
  // A stall of an action without progress (pause, resume, the power button) stops after it.
  if (next.kind === 'progress') await runProgress(next.uuid, next.stepMs, fault === 'stall' ? { op: 'controlvm', vm: vmName } : undefined);
  if (fault === 'hang-after' || (fault === 'stall' && next.kind !== 'progress')) await stopHere('controlvm', vmName, fault);
}

async function cmdVersion() {
  const fault = withState((state) => {
    const f = applyFault(takeFault(state, 'version', '*'), '*', 'VBoxManage.cpp');
    if (f === 'stall') noteHung(state, 'version', '*', 'stall');
    if (f !== 'hang' && f !== 'stall') out(`${state.version ?? DEFAULT_VERSION}\n`);
    return f;
  });
  if (fault === 'hang' || fault === 'stall') await hangForever();
  if (fault === 'hang-after') await stopHere('version', '*', 'hang-after');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const argv = process.argv.slice(2);
  if (argv[0] !== '--sim-state' || argv[1] === undefined) {
    err('vboxmanage-sim: usage: vboxmanage.mjs --sim-state <state.json> <VBoxManage args…>\n');
    return 2;
  }
  statePath = path.resolve(argv[1]);
  const [cmd, ...rest] = argv.slice(2);
  try {
    switch (cmd) {
      case '--version':
      case '-v':
      case '-version':
      case '-V':
        await cmdVersion();
        break;
      case 'snapshot':
        await cmdSnapshot(rest);
        break;
      case 'showvminfo':
        await cmdShowVmInfo(rest);
        break;
      case 'list':
        await cmdList(rest);
        break;
      case 'startvm':
        await cmdStartVm(rest);
        break;
      case 'controlvm':
        await cmdControlVm(rest);
        break;
      default:
        syntaxError(cmd === undefined ? 'No command given' : `Invalid command '${cmd}'`, 'VBoxManage [<general option>] <command>', 2);
    }
    return 0;
  } catch (e) {
    if (e instanceof Exit) return e.code;
    err(`${PROG}: error: simulator crashed: ${e instanceof Error ? e.stack : String(e)}\n`);
    return 1;
  }
}

/**
 * Appends this call's line to the call log. One write with O_APPEND: lines from concurrent
 * processes never interleave (each is far below PIPE_BUF and the file is local).
 * @param {string[]} argv @param {number} code
 */
function logCall(argv, code) {
  if (!callLog) return;
  const [cmd, vmOrSub, sub] = argv;
  const op = cmd === 'snapshot' ? sub ?? '' : cmd === 'controlvm' ? `controlvm ${sub ?? ''}` : cmd === 'list' ? `list ${vmOrSub ?? ''}` : cmd ?? '';
  // The job marker a take writes into the description (snapvisor:<jobId>), to tie a call to its job.
  const marker = /snapvisor:[^\s"]+/.exec(argv.join(' '))?.[0] ?? null;
  const line = { pid: process.pid, op, vm: callVm || null, marker, start: performance.timeOrigin, end: Date.now(), exit: code };
  try {
    fs.appendFileSync(callLog, `${JSON.stringify(line)}\n`);
  } catch {
    // The log is a test aid: a full disk must not change what the command answered.
  }
}

const exitCode = await main();
logCall(process.argv.slice(4), exitCode);
process.exitCode = exitCode;
