/**
 * The Hyper-V lab: a real OpenSSH sshd on 127.0.0.1 whose login user runs real PowerShell 7.6
 * (`/opt/snapvisor/pwsh/pwsh`, installed by test/labs/provision.sh) with a simulated `Hyper-V` module
 * (./module/Hyper-V, behaviour per /work/shared/reference/hyperv.md; see ./README.md for what is
 * faithful and what is invented). The adapter's commands arrive exactly as on Windows OpenSSH:
 * `powershell -NoProfile -NonInteractive -EncodedCommand <b64>` through the account's shell
 * (bash standing in for cmd.exe, or pwsh itself for `shell: 'powershell'`).
 *
 * How the environment reaches a session: sshd_config `SetEnv` (startSshd's `setEnv`) puts the lab's
 * bin/ first on PATH and sets HYPERV_SIM_STATE/PSModulePath; bin/powershell (and bin/pwsh) is a shim
 * that sets the same variables again and execs pwsh with its arguments unchanged, so it works from
 * any shell. Needs root (sshd, the lab users); never skips: a missing piece throws with the fix.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeScript } from '../../../providers/shared/command-encoding.ts';
import { withLabLockSync } from '../lab-lock.ts';
import { ensureUser, generateKeyPair, startSshd, type SshdLab } from '../sshd/lab.ts';

export const PWSH = '/opt/snapvisor/pwsh/pwsh';
/**
 * The adapter tests run with persistent PowerShell hosts (the adapter's default) unless
 * SNAPVISOR_TEST_HYPERV_SESSIONS=off, which runs them with one PowerShell per call:
 * `SNAPVISOR_TEST_HYPERV_SESSIONS=off npm run test:conformance -- hyperv`.
 */
export const LAB_SESSIONS = process.env['SNAPVISOR_TEST_HYPERV_SESSIONS'] !== 'off';
export const PWSH_VERSION = '7.6.10';
/** Login user when the account shell is a POSIX shell (stands in for cmd.exe). */
export const HYPERV_LAB_USER = 'hvlab';
/** Login user whose shell is pwsh itself (Windows OpenSSH with DefaultShell = powershell). */
export const HYPERV_LAB_PS_USER = 'hvlabps';

const MODULE_SRC = fileURLToPath(new URL('./module/Hyper-V/', import.meta.url));
const DOTNET_ROOT = '/usr/share/dotnet';

export type HyperVVmState = 'Running' | 'Off' | 'Saved' | 'Paused';
export type HyperVCheckpointType = 'Disabled' | 'Production' | 'ProductionOnly' | 'Standard';

export interface HyperVLabVm {
  /** Also the folder name under vms/: no `/`, not empty, not `.`/`..`. */
  name: string;
  /** Default 'Running'. */
  state?: HyperVVmState;
  /** Default 'Production' (the Windows default, reference §2.7). */
  checkpointType?: HyperVCheckpointType;
  /** Can the guest take a production (VSS/fsfreeze) checkpoint while running? Default true. */
  productionSupported?: boolean;
  /** Does the guest honour a graceful Stop-VM? Default true. */
  guestShutdown?: boolean;
  /** Default ''. */
  notes?: string;
  /** Base disk file names in `<vm>/Virtual Hard Disks/`, one SCSI drive each. Default [`<name>.vhdx`]. */
  disks?: string[];
}

export interface HyperVLabOptions {
  /** Lab directory (created). Under the temp dir for sshd's sake; no whitespace, quotes, `%` or `\`. */
  dir: string;
  vms: HyperVLabVm[];
  /** How long each checkpoint removal's disk merge runs. Default 1000 ms. */
  mergeMs?: number;
  /** Wait inside Checkpoint-VM before the checkpoint is committed. Default 0. */
  checkpointDelayMs?: number;
  /** How long a graceful Stop-VM waits for a guest that ignores it before failing. Default 1000 ms. */
  shutdownWaitMs?: number;
  /** The account's shell: 'cmd' = a POSIX shell runs the command (like cmd.exe); 'powershell' = pwsh -c. Default 'cmd'. */
  shell?: 'cmd' | 'powershell';
}

// ---------------------------------------------------------------------------------------------
// State file schema (HYPERV_SIM_STATE). Times are ISO-8601 UTC strings ("o" format, 7 digits).

export interface HyperVSimDisk {
  controllerType: 'IDE' | 'SCSI' | 'PMEM';
  controllerNumber: number;
  controllerLocation: number;
  /** For a VM: the active (newest) disk file; for a checkpoint: the disk frozen at that checkpoint. */
  path: string;
}

export interface HyperVSimVm {
  name: string;
  /** Lower-case GUID. */
  id: string;
  state: HyperVVmState;
  checkpointType: HyperVCheckpointType;
  productionSupported: boolean;
  guestShutdown: boolean;
  notes: string;
  generation: number;
  parentSnapshotId: string | null;
  path: string;
  created: string;
  /** When it last started (Uptime); null when never. */
  started: string | null;
  automaticCheckpointsEnabled: boolean;
  disks: HyperVSimDisk[];
}

export interface HyperVSimSnapshot {
  id: string;
  vmId: string;
  name: string;
  parentId: string | null;
  created: string;
  /** Holds a saved (memory) state ⇒ State Saved (6), else Off (3) (reference §2.2). */
  hasMemory: boolean;
  /** SnapshotType enum name; the simulator makes 'Standard' only. */
  snapshotType: string;
  isAutomatic: boolean;
  /** The VM's configuration copied at checkpoint time; Restore-VMSnapshot puts it back. */
  notes: string;
  checkpointType: HyperVCheckpointType;
  vmState: HyperVVmState;
  disks: HyperVSimDisk[];
  /** Fault: removing this checkpoint fails with the PS-AutoLab text (reference §2.4). */
  failRemove: boolean;
}

export interface HyperVSimMerge {
  vmId: string;
  /** The merge runs until then: Get-VM shows 'Merging disks' (reference §2.5). */
  until: string;
  /** The merged .avhdx, deleted when the merge completes (null: nothing to merge). */
  deletePath: string | null;
}

export interface HyperVSimVhd {
  parentPath: string | null;
  size: number;
  diskIdentifier: string;
}

export interface HyperVSimState {
  version: 1;
  knobs: { mergeMs: number; checkpointDelayMs: number; shutdownWaitMs: number };
  vms: HyperVSimVm[];
  snapshots: HyperVSimSnapshot[];
  merges: HyperVSimMerge[];
  /** Known virtual disks by absolute path (Get-VHD's ParentPath). A file not listed is an orphan. */
  vhds: Record<string, HyperVSimVhd>;
}

export interface PwshResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface HyperVLab {
  ssh: { host: string; port: number; username: string; privateKey: string; hostKey: string };
  sshd: SshdLab;
  shell: 'cmd' | 'powershell';
  /** The state file (HYPERV_SIM_STATE). */
  statePath: string;
  /** The VM's Id: a lower-case GUID. Throws for an unknown name. */
  vmId(name: string): string;
  /** The state file as it is now (merges that ran out are completed lazily by the next cmdlet). */
  readState(): HyperVSimState;
  /** Read-modify-write the state under the simulator's own lock. */
  updateState(fn: (state: HyperVSimState) => void): Promise<void>;
  /**
   * Run `script` locally as the lab user, with the same environment and command shape as over SSH:
   * `powershell -NoProfile -NonInteractive -EncodedCommand <script>` (stdin closed, stderr CLIXML).
   */
  pwsh(script: string): Promise<PwshResult>;
  /** `<lab>/vms/<vm>/Virtual Hard Disks`. */
  vhdDir(vmName: string): string;
  /** Pids of the host-side processes running now (PowerShell started through the lab's shim). */
  hostProcesses(): number[];
  /** Stop sshd, kill the lab's leftover pwsh processes, remove the lab directory. Idempotent. */
  cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------

let pwshChecked = false;

/**
 * Throws, with the fix, unless PowerShell PWSH_VERSION is installed where the lab expects it.
 * Checked once per process: asking pwsh its version costs a PowerShell start (~0.8 s).
 */
export function ensurePwsh(): void {
  if (pwshChecked) return;
  const fix = 'run `bash test/labs/provision.sh` as root (installs PowerShell ' + PWSH_VERSION + ' as a .NET tool into /opt/snapvisor/pwsh)';
  if (!existsSync(PWSH)) throw new Error(`hyperv lab: ${PWSH} is missing; ${fix}`);
  let version = '';
  try {
    version = execFileSync(PWSH, ['-NoProfile', '-NonInteractive', '-Command', '$PSVersionTable.PSVersion.ToString()'], {
      encoding: 'utf8',
      env: { ...process.env, DOTNET_ROOT, POWERSHELL_TELEMETRY_OPTOUT: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (e) {
    throw new Error(`hyperv lab: ${PWSH} does not run (${String((e as { stderr?: string }).stderr ?? e).trim()}); ${fix}`);
  }
  if (version !== PWSH_VERSION) throw new Error(`hyperv lab: ${PWSH} is PowerShell ${version}, expected ${PWSH_VERSION}; ${fix}`);
  pwshChecked = true;
}

/**
 * The simulator's C# types compiled once (Add-Type -OutputAssembly) into a cache keyed by the
 * source's hash: compiling costs seconds, loading the DLL a millisecond.
 */
export function ensureTypesDll(): string {
  const source = readFileSync(join(MODULE_SRC, 'HyperVSim.cs'));
  const hash = createHash('sha256').update(source).update(PWSH_VERSION).digest('hex').slice(0, 16);
  const cacheDir = join(tmpdir(), 'snapvisor-hyperv-sim');
  mkdirSync(cacheDir, { recursive: true, mode: 0o755 });
  const dll = join(cacheDir, `HyperVSim-${hash}.dll`);
  if (existsSync(dll)) return dll;
  const tmp = join(cacheDir, `HyperVSim-${hash}.${process.pid}.${randomUUID()}.dll`);
  try {
    execFileSync(
      PWSH,
      ['-NoProfile', '-NonInteractive', '-Command', 'Add-Type -TypeDefinition ([System.IO.File]::ReadAllText($env:HVSIM_SRC)) -OutputAssembly $env:HVSIM_OUT -OutputType Library'],
      { env: { ...process.env, DOTNET_ROOT, POWERSHELL_TELEMETRY_OPTOUT: '1', HVSIM_SRC: join(MODULE_SRC, 'HyperVSim.cs'), HVSIM_OUT: tmp }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`hyperv lab: compiling HyperVSim.cs failed: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }
  renameSync(tmp, dll);
  return dll;
}

function userIds(user: string): { uid: number; gid: number; home: string } {
  const line = execFileSync('getent', ['passwd', user], { encoding: 'utf8' }).trim();
  const fields = line.split(':');
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  const home = fields[5] ?? '/';
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`hyperv lab: cannot read uid/gid of ${user}`);
  return { uid, gid, home };
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

function isoNow(): string {
  // .NET's "o" format for UTC: 7 fraction digits and Z, so the module's text sort holds.
  return new Date().toISOString().replace(/\.(\d{3})Z$/, (_m, ms: string) => `.${ms}0000Z`);
}

function validateVmName(name: string): void {
  if (name === '' || name === '.' || name === '..' || /[/\0]/.test(name)) throw new Error(`hyperv lab: invalid VM name ${JSON.stringify(name)}`);
}

export async function createHyperVLab(options: HyperVLabOptions): Promise<HyperVLab> {
  if (process.getuid?.() !== 0) throw new Error('hyperv lab: must run as root (sshd and the lab users); run the tests as root');
  ensurePwsh();
  const dir = resolve(options.dir);
  if (!/^[A-Za-z0-9._/+-]+$/.test(dir)) throw new Error(`hyperv lab: directory path must be plain ([A-Za-z0-9._/+-]): ${dir}`);
  const shell = options.shell ?? 'cmd';
  const user = shell === 'cmd' ? HYPERV_LAB_USER : HYPERV_LAB_PS_USER;
  const names = new Set<string>();
  for (const vm of options.vms) {
    validateVmName(vm.name);
    if (names.has(vm.name.toLowerCase())) throw new Error(`hyperv lab: duplicate VM name ${JSON.stringify(vm.name)}`);
    names.add(vm.name.toLowerCase());
    for (const disk of vm.disks ?? []) validateVmName(disk);
  }

  const dll = ensureTypesDll();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const binDir = join(dir, 'bin');
  const moduleRoot = join(dir, 'module');
  const moduleDir = join(moduleRoot, 'Hyper-V');
  const stateDir = join(dir, 'state');
  const vmsDir = join(dir, 'vms');
  const statePath = join(stateDir, 'state.json');
  const lockPath = `${statePath}.lock`;
  for (const d of [binDir, moduleDir, stateDir, vmsDir]) mkdirSync(d, { recursive: true, mode: 0o755 });
  for (const f of ['Hyper-V.psd1', 'Hyper-V.psm1', 'HyperVSim.cs']) copyFileSync(join(MODULE_SRC, f), join(moduleDir, f));
  copyFileSync(dll, join(moduleDir, 'HyperVSim.dll'));

  const env: Record<string, string> = {
    PATH: `${binDir}:/usr/local/bin:/usr/bin:/bin`,
    HYPERV_SIM_STATE: statePath,
    PSModulePath: moduleRoot,
    DOTNET_ROOT,
    POWERSHELL_TELEMETRY_OPTOUT: '1',
    POWERSHELL_UPDATECHECK: 'Off',
  };
  const shim = [
    '#!/bin/sh',
    '# Hyper-V lab: `powershell` is PowerShell ' + PWSH_VERSION + ' with the simulated Hyper-V module (test/labs/hyperv).',
    ...Object.entries(env)
      .filter(([k]) => k !== 'PATH')
      .map(([k, v]) => `${k}='${v}'; export ${k}`),
    `exec ${PWSH} "$@"`,
    '',
  ].join('\n');
  for (const name of ['powershell', 'pwsh']) {
    writeFileSync(join(binDir, name), shim, { mode: 0o755 });
    chmodSync(join(binDir, name), 0o755);
  }

  // Seed state and disks.
  const knobs = { mergeMs: options.mergeMs ?? 1000, checkpointDelayMs: options.checkpointDelayMs ?? 0, shutdownWaitMs: options.shutdownWaitMs ?? 1000 };
  const state: HyperVSimState = { version: 1, knobs, vms: [], snapshots: [], merges: [], vhds: {} };
  const now = isoNow();
  for (const vm of options.vms) {
    const vmPath = join(vmsDir, vm.name);
    const vhdDir = join(vmPath, 'Virtual Hard Disks');
    mkdirSync(vhdDir, { recursive: true, mode: 0o755 });
    const disks: HyperVSimDisk[] = (vm.disks ?? [`${vm.name}.vhdx`]).map((file, i) => {
      const path = join(vhdDir, file);
      writeFileSync(path, '');
      state.vhds[path] = { parentPath: null, size: 136_365_211_648, diskIdentifier: randomUUID().toUpperCase() };
      return { controllerType: 'SCSI', controllerNumber: 0, controllerLocation: i, path };
    });
    const vmState = vm.state ?? 'Running';
    state.vms.push({
      name: vm.name,
      id: randomUUID(),
      state: vmState,
      checkpointType: vm.checkpointType ?? 'Production',
      productionSupported: vm.productionSupported ?? true,
      guestShutdown: vm.guestShutdown ?? true,
      notes: vm.notes ?? '',
      generation: 2,
      parentSnapshotId: null,
      path: vmPath,
      created: now,
      started: vmState === 'Running' || vmState === 'Paused' ? now : null,
      automaticCheckpointsEnabled: false,
      disks,
    });
  }
  writeFileSync(statePath, JSON.stringify(state, null, 2) + '\n', { mode: 0o644 });
  writeFileSync(lockPath, '', { mode: 0o666 });
  chmodSync(lockPath, 0o666);

  // One `users` step with ensureUser: never a usermod on a user another lab is creating right now.
  withLabLockSync('users', () => {
    ensureUser(user);
    execFileSync('usermod', ['--shell', shell === 'powershell' ? PWSH : '/bin/bash', user], { stdio: 'ignore' });
  });
  const ids = userIds(user);
  chownTree(stateDir, ids.uid, ids.gid);
  chownTree(vmsDir, ids.uid, ids.gid);

  const key = generateKeyPair(dir, user);
  const sshd = await startSshd({ dir: join(dir, 'sshd'), user, authorizedKeys: [key.publicKey], setEnv: env });

  let cleaned = false;
  const readState = (): HyperVSimState => JSON.parse(readFileSync(statePath, 'utf8')) as HyperVSimState;

  return {
    ssh: { host: sshd.host, port: sshd.port, username: user, privateKey: key.privateKey, hostKey: sshd.hostKeyLine },
    sshd,
    shell,
    statePath,
    vmId(name) {
      const vm = readState().vms.find((v) => v.name === name);
      if (vm === undefined) throw new Error(`hyperv lab: no VM ${JSON.stringify(name)}`);
      return vm.id.toLowerCase();
    },
    readState,
    async updateState(fn) {
      const release = await lockFile(lockPath);
      try {
        const current = readState();
        fn(current);
        const tmp = `${statePath}.tmp${process.pid}`;
        writeFileSync(tmp, JSON.stringify(current, null, 2) + '\n', { mode: 0o644 });
        chownSync(tmp, ids.uid, ids.gid);
        renameSync(tmp, statePath);
      } finally {
        await release();
      }
    },
    pwsh(script) {
      return new Promise((resolvePromise, reject) => {
        const child = spawn(join(binDir, 'powershell'), ['-NoProfile', '-NonInteractive', '-EncodedCommand', encodeScript(script)], {
          uid: ids.uid,
          gid: ids.gid,
          cwd: ids.home,
          env: { ...env, HOME: ids.home, USER: user, LOGNAME: user, LANG: 'C.UTF-8' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.once('error', reject);
        child.once('close', (code, signal) =>
          resolvePromise({
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
            exitCode: code ?? (signal !== null ? 128 : 1),
          }),
        );
      });
    },
    hostProcesses: () => labProcesses(statePath),
    vhdDir: (vmName) => {
      validateVmName(vmName);
      return join(vmsDir, vmName, 'Virtual Hard Disks');
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await sshd.stop();
      killLabProcesses(statePath);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The simulator's lock from Node: util-linux `flock` takes the same flock(2) lock that .NET's
 * FileShare.None takes, and holds it until its stdin closes.
 */
function lockFile(path: string): Promise<() => Promise<void>> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('flock', ['--exclusive', '--timeout', '60', path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    let locked = false;
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    child.once('close', (code) => {
      if (!locked) reject(new Error(`hyperv lab: cannot lock ${path} (flock exit ${code}): ${stderr.trim()}`));
    });
    child.stdout.on('data', (b: Buffer) => {
      if (locked || !b.toString().includes('locked')) return;
      locked = true;
      resolvePromise(async () => {
        child.stdin.end();
        await exited;
      });
    });
  });
}

/** SIGKILL processes whose environment names this lab's state file (pwsh left running by a cut session). */
/** The processes running with this lab's environment (the shim's pwsh and what it started). */
function labProcesses(statePath: string): number[] {
  const marker = `HYPERV_SIM_STATE=${statePath}`;
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (environ.split('\0').includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

function killLabProcesses(statePath: string): void {
  for (const pid of labProcesses(statePath)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
