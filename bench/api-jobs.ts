/**
 * What the benchmarks that drive the real daemon share: the job body `?wait=` answers, the tree
 * view's nodes, the small helpers to check and time them, and the daemon itself.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, type Daemon } from '../test/e2e/daemon.ts';

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
