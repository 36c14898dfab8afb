/**
 * What the benchmarks that drive the real daemon share: the job body `?wait=` answers, the tree
 * view's nodes, the small helpers to check and time them, and the daemon itself.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { api, startDaemon, type Daemon } from '../test/e2e/daemon.ts';

export interface JobBody {
  id: string;
  state: string;
  result: { snapshotId?: string } | null;
  error: unknown;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface TreeNode {
  name: string;
  children: TreeNode[];
}

export const ms = (since: number): number => performance.now() - since;
export const countNodes = (nodes: readonly TreeNode[]): number => nodes.reduce((n, c) => n + 1 + countNodes(c.children), 0);
export const verdict = (ok: boolean): string => (ok ? 'met' : '**NOT met**');

/** A job answered with ?wait=: must be final and succeeded; returns the job. */
export function finished(what: string, res: { status: number; body: JobBody }): JobBody {
  if (res.status !== 200 || res.body.state !== 'succeeded') throw new Error(`${what}: HTTP ${res.status}, job ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Milliseconds between two of a job's timestamps (NaN when one is missing). */
export const span = (from: string | null, to: string | null): number => (from && to ? Date.parse(to) - Date.parse(from) : NaN);

/**
 * The real daemon (`npm start`'s entry) with one target reached over SSH, as a bench drives it:
 * the lab's key in a file (a `file:` secret reference), periodic sync off, a fast worker poll.
 * `target` is the target's YAML keys after `name` (kind and its own options).
 */
export async function startSshTargetDaemon(
  dir: string,
  ssh: { host: string; port: number; username: string; privateKey: string; hostKey: string },
  target: { name: string; options: string },
  token: string,
): Promise<Daemon> {
  const keyFile = path.join(dir, 'daemon-key');
  writeFileSync(keyFile, ssh.privateKey, { mode: 0o600 });
  const config = path.join(dir, 'snapvisor.yaml');
  const sshRef = { host: ssh.host, port: ssh.port, username: ssh.username, privateKey: `file:${keyFile}`, hostKey: ssh.hostKey };
  writeFileSync(
    config,
    [
      'tokens:',
      '  - { name: bench, value: env:BENCH_TOKEN, scopes: [read, write, admin] }',
      `database: ${JSON.stringify(path.join(dir, 'snapvisor.db'))}`,
      // info: startDaemon waits for the 'listening' line.
      'logLevel: info',
      'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 10 }',
      'targets:',
      `  - { name: ${target.name}, ${target.options}, ssh: ${JSON.stringify(sshRef)} }`,
      '',
    ].join('\n'),
  );
  return startDaemon({ cwd: dir, env: { SNAPVISOR_CONFIG: config, BENCH_TOKEN: token }, timeoutMs: 120_000 });
}

/**
 * One create + delete of a memory snapshot through the REST API, each answered with `?wait=60`:
 * the wall-clock time of each request, and how long the two jobs spent in a worker and queued.
 */
export async function apiCreateDeleteCycle(daemon: Daemon, token: string, vmId: string, name: string) {
  const t0 = performance.now();
  const created = finished('create', await api<JobBody>(daemon, token, 'POST', `/v1/vms/${vmId}/snapshots?wait=60`, { name, mode: 'memory' }));
  const createMs = ms(t0);
  const snapshotId = created.result?.snapshotId;
  if (!snapshotId) throw new Error(`create job has no snapshotId: ${JSON.stringify(created)}`);
  const t1 = performance.now();
  const deleted = finished('delete', await api<JobBody>(daemon, token, 'DELETE', `/v1/snapshots/${snapshotId}?wait=60`));
  const deleteMs = ms(t1);
  const inWorker = span(created.startedAt, created.finishedAt) + span(deleted.startedAt, deleted.finishedAt);
  const queued = span(created.createdAt, created.startedAt) + span(deleted.createdAt, deleted.startedAt);
  return { createMs, deleteMs, total: createMs + deleteMs, inWorker, queued };
}

/** A fresh sync of the target, then the VM's tree over HTTP, checked to hold `expected` snapshots. */
export async function apiSyncAndTree(daemon: Daemon, token: string, target: string, vmId: string, expected: number) {
  const t0 = performance.now();
  const sync = await api<unknown>(daemon, token, 'POST', `/v1/targets/${target}/sync`);
  if (sync.status !== 200) throw new Error(`sync: HTTP ${sync.status} ${JSON.stringify(sync.body)}`);
  const syncMs = ms(t0);
  const t1 = performance.now();
  const res = await api<{ roots: TreeNode[] }>(daemon, token, 'GET', `/v1/vms/${vmId}/snapshots?view=tree`);
  const n = countNodes(res.body.roots);
  if (res.status !== 200 || n !== expected) throw new Error(`tree: HTTP ${res.status}, ${n} snapshots`);
  return { total: ms(t0), syncMs, getMs: ms(t1) };
}
