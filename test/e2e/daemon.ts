/**
 * Starts the real daemon as a child process, exactly the way `npm start` does, and waits for
 * it to listen. Used by the e2e tests that kill it, restart it, and read its logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
// Exactly what `npm start` runs: the bundled daemon, no TypeScript loader.
const START = fileURLToPath(new URL('../../scripts/start.mjs', import.meta.url));

export interface Daemon {
  url: string;
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Parsed pino lines from stdout. */
  logs(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /**
   * 'closed': the reader of the daemon's stdout goes away at once (`npm start | head -c1`); the
   * daemon is then found listening by polling /healthz on `port` instead of reading its log.
   */
  stdout?: 'pipe' | 'closed';
  /** A fixed port (see freePort); required with stdout 'closed' or with non-JSON logs. */
  port?: number;
  /**
   * The script node runs. By default the first start of a test process goes through
   * scripts/start.mjs exactly as `npm start` does, and later ones run the build it made
   * (`builtDaemon()`): esbuild at every start cost about a second each on a loaded machine.
   */
  script?: string;
  /** Every start through scripts/start.mjs, for a test of `npm start` itself. */
  npmStart?: boolean;
}

/**
 * The entry file of the build the latest `npm start` made (.build/latest names it). Builds are
 * content-addressed folders that are never rewritten, so it stays valid for the whole run.
 */
export function builtDaemon(): string {
  return readFileSync(path.join(REPO, '.build', 'latest'), 'utf8').trim();
}

let built: string | undefined;

/** What node runs for this start (see StartOptions.script). */
function entryFor(options: StartOptions): string {
  if (options.script !== undefined) return options.script;
  return options.npmStart === true ? START : (built ?? START);
}

/** After a start through scripts/start.mjs: later starts of this process run its build. */
function noteBuilt(entry: string): void {
  if (entry !== START || built !== undefined) return;
  try {
    built = builtDaemon();
  } catch {
    // No build was made (esbuild failed): later starts go through start.mjs and show why.
  }
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function daemonEnv(options: StartOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // The daemon must not inherit a config or token from the developer's shell, nor tap's Node
    // options (its --import of a process tracker costs every daemon start and every simulator call
    // the daemon makes about 0.1 s, seconds on a loaded machine; coverage is off).
    if (v !== undefined && !k.startsWith('SNAPVISOR_') && !k.startsWith('TAP') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return Object.assign(env, { SNAPVISOR_PORT: String(options.port ?? 0), SNAPVISOR_HOST: '127.0.0.1' }, options.env ?? {});
}

/** Starts the daemon as startDaemon does, for a start that is expected to fail: its exit code and output. */
export async function runDaemonToExit(options: StartOptions): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const entry = entryFor(options);
  const proc = spawn(process.execPath, ['--enable-source-maps', entry], { cwd: options.cwd, env: daemonEnv(options), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('close', (c, s) => resolve({ code: c, signal: s })));
  clearTimeout(timer);
  noteBuilt(entry);
  return { code, signal, stdout, stderr };
}

export async function startDaemon(options: StartOptions): Promise<Daemon> {
  const env = daemonEnv(options);
  const entry = entryFor(options);
  const proc = spawn(process.execPath, ['--enable-source-maps', entry], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  if (options.stdout === 'closed') proc.stdout!.destroy();
  else proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let url: string | undefined;
  while (url === undefined) {
    const line = options.port === undefined ? logs().find((l) => l.msg === 'listening') : await healthy(`http://127.0.0.1:${options.port}`);
    if (line) url = String(line.address);
    else if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`daemon exited early (${proc.exitCode ?? proc.signalCode}):\n${err}\n${out}`);
    else if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`daemon did not listen in time:\n${err}\n${out}`);
    } else await new Promise((r) => setTimeout(r, 50));
  }
  noteBuilt(entry);
  return {
    url,
    proc,
    stdout: () => out,
    stderr: () => err,
    logs,
    exited,
    kill(signal) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

async function healthy(url: string): Promise<{ address: string } | undefined> {
  try {
    return (await fetch(`${url}/healthz`)).ok ? { address: url } : undefined;
  } catch {
    return undefined;
  }
}

export async function api<T = unknown>(
  daemon: { url: string },
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${daemon.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T, headers: res.headers };
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Log lines that end a job (the worker's, and recovery's when the hypervisor shows the outcome). */
export const FINAL_LINES = new Set([
  'job succeeded',
  'job failed',
  'job cancelled while running',
  'job cancelled: its target was removed',
  'recovery: job had completed on the hypervisor; marked succeeded',
  'recovery: job was being cancelled and had not completed; marked cancelled',
]);
