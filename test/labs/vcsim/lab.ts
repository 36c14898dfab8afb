/**
 * The VMware lab: govmomi's vCenter simulator (vcsim 0.24, built from Debian's library by
 * build.sh) on a free loopback port with a fixed login, TLS with a per-lab self-signed certificate.
 * Facts about vcsim and its limits: /work/shared/reference/vmware.md and ./README.md.
 *
 * Used by tests and by hand (`npm run lab -- vcsim up`), so it must not import tap.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'build.sh');
const BUILD_TIMEOUT_MS = 15 * 60_000; // a cold apt install + Go build on a busy 2-core machine
const READY_TIMEOUT_MS = 60_000; // a 1,000-VM inventory is created before the server listens (~2 s)
const STOP_GRACE_MS = 10_000;
const READY_PREFIX = 'VCSIM_READY ';
const STDERR_KEEP = 8 * 1024;
const FIX = 'run `sudo bash test/labs/vcsim/build.sh` (installs golang-go and golang-github-vmware-govmomi-dev, builds into .build/go/)';

export const VCSIM_DEFAULT_USERNAME = 'snapvisor';
export const VCSIM_DEFAULT_PASSWORD = 'snapvisor-lab-pw';

export interface VcsimBinaries {
  vcsim: string;
  govmomiBench: string;
}

export interface StartVcsimOptions {
  /** Holds the certificate, key, the served-certificate PEM and vcsim's datastore temp files. */
  dir: string;
  username?: string;
  password?: string;
  /**
   * VMs per resource pool (vcsim's -vm). The default inventory has two pools — cluster DC0_C0 and
   * standalone host DC0_H0 — so it holds 2 × vms VMs (default 2 → 4, e.g. DC0_H0_VM0).
   */
  vms?: number;
  /** Hosts in cluster DC0_C0 (vcsim's -host; default 3). */
  hosts?: number;
  /** Default true. False serves plain HTTP (caPem and thumbprint are then empty). */
  tls?: boolean;
}

export interface VcsimLab {
  /** `https://127.0.0.1:<port>` (or http://), no path. */
  url: string;
  /** `<url>/sdk`: the vim25 SOAP endpoint. */
  sdkUrl: string;
  port: number;
  username: string;
  password: string;
  /** The served certificate (self-signed, SAN 127.0.0.1, ::1, localhost): pin it as the CA. */
  caPem: string;
  /** SHA-1 of the certificate, colon-separated upper-case hex, as vSphere shows it. */
  thumbprint: string;
  /** VirtualMachine objects in the inventory, as vcsim counted them. */
  vmCount: number;
  /** The current vcsim process (changes on restart). */
  readonly pid: number;
  /** Stop vcsim (SIGTERM, SIGKILL after 10 s). Idempotent. */
  stop(): Promise<void>;
  /** Same port, same certificate, fresh process and inventory: every session is lost. */
  restart(): Promise<void>;
}

let built: Promise<VcsimBinaries> | undefined;

/** Builds (or finds cached) vcsim and the govmomi benchmark peer; throws with the fix when it cannot. */
export function ensureVcsimBuilt(): Promise<VcsimBinaries> {
  built ??= runBuild().catch((e: unknown) => {
    built = undefined;
    throw e;
  });
  return built;
}

function runBuild(): Promise<VcsimBinaries> {
  return new Promise((resolvePromise, reject) => {
    execFile('bash', [BUILD_SCRIPT], { timeout: BUILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      const paths = new Map(stdout.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
      const vcsim = paths.get('vcsim');
      const govmomiBench = paths.get('govmomi-bench');
      if (error || !vcsim || !govmomiBench) {
        const why = error ? error.message.split('\n')[0] : 'no binary paths printed';
        reject(new Error(`vcsim lab: build failed (${why}):\n${tail(stderr, 4000)}\nFix: ${FIX}`));
        return;
      }
      resolvePromise({ vcsim, govmomiBench });
    });
  });
}

interface ReadyLine {
  url: string;
  pid: number;
  vms: number;
  certFile?: string;
}

function parseReadyLine(text: string): ReadyLine {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null) throw new Error(`vcsim lab: bad ready line: ${text}`);
  const { url, pid, vms, certFile } = value as Record<string, unknown>;
  if (typeof url !== 'string' || typeof pid !== 'number' || typeof vms !== 'number' || (certFile !== undefined && typeof certFile !== 'string')) {
    throw new Error(`vcsim lab: bad ready line: ${text}`);
  }
  return certFile === undefined ? { url, pid, vms } : { url, pid, vms, certFile };
}

interface Running {
  child: ChildProcess;
  ready: ReadyLine;
  exited: Promise<void>;
}

/** Starts vcsim and resolves once it serves. Stop it (`stop()`) when done; it also dies with this process. */
export async function startVcsim(options: StartVcsimOptions): Promise<VcsimLab> {
  const { vcsim } = await ensureVcsimBuilt();
  const dir = resolve(options.dir);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const username = options.username ?? VCSIM_DEFAULT_USERNAME;
  const password = options.password ?? VCSIM_DEFAULT_PASSWORD;
  const tls = options.tls ?? true;
  const certOut = join(dir, 'vcsim-served-cert.pem');
  const args = ['-username', username, '-stdin-watch'];
  if (options.vms !== undefined) args.push('-vm', String(checkCount('vms', options.vms)));
  if (options.hosts !== undefined) args.push('-host', String(checkCount('hosts', options.hosts)));
  if (tls) args.push('-tls-cert', join(dir, 'vcsim-cert.pem'), '-tls-key', join(dir, 'vcsim-key.pem'), '-cert-out', certOut);
  else args.push('-http');

  let current = await launch(vcsim, [...args, '-l', '127.0.0.1:0'], tmp, password);
  const sdk = new URL(current.ready.url);
  const port = Number(sdk.port);
  const caPem = tls ? readFileSync(certOut, 'utf8') : '';

  return {
    url: sdk.origin,
    sdkUrl: `${sdk.origin}/sdk`,
    port,
    username,
    password,
    caPem,
    thumbprint: caPem ? new X509Certificate(caPem).fingerprint : '',
    vmCount: current.ready.vms,
    get pid() {
      return current.ready.pid;
    },
    stop: () => terminate(current),
    async restart() {
      await terminate(current);
      current = await launch(vcsim, [...args, '-l', `127.0.0.1:${port}`], tmp, password);
    },
  };
}

function checkCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new Error(`vcsim lab: ${name} must be a non-negative integer, got ${value}`);
  return value;
}

function launch(binary: string, args: string[], tmp: string, password: string): Promise<Running> {
  // TMPDIR: vcsim puts its datastore directories there; keeping them in the lab dir means a
  // killed vcsim leaves nothing behind in /tmp. stdin stays open: vcsim exits when it closes.
  // The password goes by environment, not argv, so `ps` does not show it.
  const env = { ...process.env, TMPDIR: tmp, VCSIM_PASSWORD: password };
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = tail(stderr + chunk, STDERR_KEEP);
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const killOnExit = () => child.kill('SIGTERM');
  process.on('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));

  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`vcsim lab: ${why}\nvcsim stderr:\n${tail(stderr, 4000)}`));
    };
    const timer = setTimeout(() => fail(`no ready line within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    child.once('error', (e) => fail(`cannot start ${binary}: ${e.message}`));
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`vcsim exited during start-up (${signal ?? `exit ${code}`})`);
    child.once('exit', onExit);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      if (settled) return; // keep draining the pipe
      stdout += chunk;
      const end = stdout.indexOf('\n');
      if (end < 0) return;
      const line = stdout.slice(0, end);
      if (!line.startsWith(READY_PREFIX)) return fail(`unexpected first line: ${line}`);
      let ready: ReadyLine;
      try {
        ready = parseReadyLine(line.slice(READY_PREFIX.length));
      } catch (e) {
        return fail((e as Error).message);
      }
      settled = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      // Do not keep the event loop alive for vcsim: a test that forgets stop() still ends, and
      // the exit hook (or stdin EOF) takes vcsim down with it.
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
      resolvePromise({ child, ready, exited });
    });
  });
}

async function terminate(running: Running): Promise<void> {
  const { child, exited } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}
