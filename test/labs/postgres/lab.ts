/**
 * The PostgreSQL lab: real PostgreSQL from Debian's packages (test/labs/provision.sh installs
 * `postgresql`), run on loopback by the tests themselves — no system service, no systemd.
 *
 * - `sharedPostgres()`: one cluster for the whole test run, started by the first file that asks
 *   and left running (like the KVM lab's libvirtd); every test gets its own database from
 *   `freshDatabase()`, so files never see each other's rows.
 * - `startPostgresCluster()`: a private cluster a test may stop, kill and restart (the outage tests).
 *
 * PostgreSQL refuses to run as root: as root the lab runs it as the `postgres` user the package
 * creates. A missing installation is an error with the fix, never a skip.
 *
 * Used by tests, benches and by hand, so it must not import tap.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { withLabLockSync } from '../lab-lock.ts';

const SHARED_DIR = join(tmpdir(), 'snapvisor-lab-pg');
const SHARED_PORT = Number(process.env['SNAPVISOR_TEST_PG_PORT'] ?? 55432);
/** The superuser initdb makes (trust auth on loopback only). */
export const PG_USER = 'snapvisor';

/** The newest PostgreSQL server installed under /usr/lib/postgresql. */
export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL lab: no server under /usr/lib/postgresql; run `bash test/labs/provision.sh` as root (installs Debian\'s postgresql)');
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return join(root, versions[0]!, 'bin');
}

const asRoot = (): boolean => process.getuid?.() === 0;

/** argv run as the cluster's owner: `postgres` when we are root. */
function asOwner(argv: readonly string[]): string[] {
  return asRoot() ? ['runuser', '-u', 'postgres', '--', ...argv] : [...argv];
}

function ownDir(dir: string): void {
  if (!asRoot()) return;
  const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (id.status !== 0) throw new Error('PostgreSQL lab: no `postgres` user (the postgresql package creates it); run test/labs/provision.sh');
  chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
}

function runOrThrow(argv: readonly string[], what: string): void {
  const [cmd, ...args] = asOwner(argv);
  const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`PostgreSQL lab: ${what} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

/** initdb into `dir` (made and owned by the server's user): trust auth, loopback only. */
function initCluster(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  ownDir(dir);
  runOrThrow([join(postgresBinDir(), 'initdb'), '-D', dir, '-U', PG_USER, '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], 'initdb');
}

/** Settings for a throwaway test cluster: durability off (tests, not data), enough connections for three replicas. */
const SERVER_ARGS = (dir: string, port: number) => [
  '-D', dir, '-k', dir, '-h', '127.0.0.1', '-p', String(port),
  '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
  '-c', 'max_connections=300', '-c', 'shared_buffers=64MB',
];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once the server answers a query (or throws after `timeoutMs`). */
export async function waitReady(port: number, timeoutMs = 60_000, child?: ChildProcess, log?: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: PG_USER, database: 'postgres', connectionTimeoutMillis: 2000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch (err) {
      await c.end().catch(() => {});
      if (child && child.exitCode !== null) throw new Error(`PostgreSQL lab: server exited (${child.exitCode}): ${log?.() ?? ''}`);
      if (Date.now() > until) throw new Error(`PostgreSQL lab: no answer on port ${port} after ${timeoutMs} ms: ${(err as Error).message} ${log?.() ?? ''}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export const urlFor = (port: number, database: string): string => `postgres://${PG_USER}@127.0.0.1:${port}/${database}`;

/** A new, empty database on the cluster at `port`; `drop()` removes it (closing whoever is still connected). */
export async function createDatabase(port: number, prefix = 't'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ host: '127.0.0.1', port, user: PG_USER, database: 'postgres' });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: urlFor(port, name),
    name,
    async drop() {
      const c = new pg.Client({ host: '127.0.0.1', port, user: PG_USER, database: 'postgres' });
      try {
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } catch {
        // The cluster is gone (a private one stopped first): nothing to drop.
      } finally {
        await c.end().catch(() => {});
      }
    },
  };
}

/**
 * The run-wide cluster, started once (under a lab lock, so files starting together make one) and
 * left running for the files after it; its port is fixed (SNAPVISOR_TEST_PG_PORT, default 55432).
 */
export async function sharedPostgres(): Promise<{ port: number }> {
  const port = SHARED_PORT;
  try {
    await waitReady(port, 300);
    return { port };
  } catch {
    // Not running yet: start it below.
  }
  withLabLockSync('postgres', () => {
    const probe = spawnSync(join(postgresBinDir(), 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-t', '1']);
    if (probe.status === 0) return;
    if (!existsSync(join(SHARED_DIR, 'PG_VERSION'))) {
      rmSync(SHARED_DIR, { recursive: true, force: true });
      initCluster(SHARED_DIR);
    }
    // A cluster killed with the machine's last run leaves its pid file: pg_ctl start copes with a stale one.
    runOrThrow([join(postgresBinDir(), 'pg_ctl'), '-D', SHARED_DIR, '-l', join(SHARED_DIR, 'server.log'), '-w', '-t', '60', '-o', SERVER_ARGS(SHARED_DIR, port).slice(2).map(quoteOpt).join(' '), 'start'], 'pg_ctl start (shared cluster)');
  }, 120_000);
  await waitReady(port, 60_000);
  return { port };
}

/** pg_ctl -o takes one string the server splits on spaces: our values have none. */
function quoteOpt(s: string): string {
  if (/\s/.test(s)) throw new Error(`PostgreSQL lab: option with a space: ${s}`);
  return s;
}

/** A database of its own on the shared cluster; `drop()` at the end. */
export async function freshDatabase(prefix = 't'): Promise<{ url: string; name: string; port: number; drop(): Promise<void> }> {
  const { port } = await sharedPostgres();
  return { ...(await createDatabase(port, prefix)), port };
}

export interface PrivateCluster {
  readonly port: number;
  readonly dir: string;
  /** The server process (null while stopped). */
  readonly pid: number | null;
  url(database?: string): string;
  /** Fast shutdown (clients are disconnected), waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL of the postmaster (its backends then exit on their own). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops and removes the data directory. */
  destroy(): Promise<void>;
  log(): string;
}

/** A cluster of the test's own, on a free port: stop/kill/start are the outage tests' tools. */
export async function startPostgresCluster(): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-pg-'));
  ownDir(dir);
  const data = join(dir, 'data');
  initCluster(data);
  const port = await freePort();
  const logFile = join(dir, 'server.log');
  writeFileSync(logFile, '');
  ownDir(logFile);
  let child: ChildProcess | null = null;
  let output = '';
  /** The postmaster (runuser's child when we are root), from its pid file. */
  const postmasterPid = (): number => {
    const pidFile = join(data, 'postmaster.pid');
    return existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').split('\n')[0]) : child!.pid!;
  };
  const exited = () => new Promise<void>((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const cluster: PrivateCluster = {
    port,
    dir: data,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid ?? null : null;
    },
    url: (database = 'postgres') => urlFor(port, database),
    async start() {
      const [cmd, ...args] = asOwner([join(postgresBinDir(), 'postgres'), ...SERVER_ARGS(data, port)]);
      output = '';
      const c = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-8000); });
      c.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-8000); });
      await waitReady(port, 60_000, c, () => output);
    },
    async stop() {
      if (!cluster.pid) return;
      // SIGINT is PostgreSQL's fast shutdown, sent to the postmaster itself: as root our child is
      // runuser, which does not pass signals on.
      process.kill(postmasterPid(), 'SIGINT');
      await exited();
    },
    async kill() {
      if (!cluster.pid) return;
      process.kill(postmasterPid(), 'SIGKILL');
      await exited();
      // Orphaned backends notice the postmaster is gone and exit; wait until the port is free.
      for (let i = 0; i < 100; i++) {
        const r = spawnSync(join(postgresBinDir(), 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-t', '1']);
        if (r.status === 2) break;
        await new Promise((r2) => setTimeout(r2, 100));
      }
    },
    async destroy() {
      await cluster.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => output,
  };
  await cluster.start();
  return cluster;
}
