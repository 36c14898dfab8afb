/**
 * A real daemon on a config file with one VirtualBox target served by the bundled simulator
 * (test/labs/vboxmanage-sim), for the e2e tests that stop, kill and restart it. Not a test file.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { createVboxLab, type LabVmSpec, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, until } from './daemon.ts';

export const TOKEN = 'e2e-token-4f1c9a-5e8d0b6a9f3c';
/** A second token with the read scope only. */
export const READ_TOKEN = 'e2e-read-token-77b2e0-5e8d0b6a9f3c';

export interface JobBody { id: string; state: string; attempts: number; result: { snapshotId?: string } | null; error: { kind: string; code?: string } | null }

export interface VboxDaemonSetup {
  dir: string;
  lab: VboxLab;
  env: Record<string, string>;
  database: string;
}

/**
 * `database`: where the daemon's database goes (default: snapvisor.db in the test's folder).
 * `vms`: the lab's VMs (default: app-1, running — what firstVm and markedSnapshots look for).
 */
export function vboxDaemonSetup(
  t: Test,
  options: { stepMs: number; shutdownGraceSec?: number; database?: string; commandTimeoutSec?: number; vms?: LabVmSpec[] },
): VboxDaemonSetup {
  const dir = t.testdir({});
  const vms = options.vms ?? [{ name: 'app-1', state: 'running' }];
  const lab = createVboxLab({ dir: path.join(dir, 'lab'), vms, stepMs: options.stepMs });
  const config = path.join(dir, 'snapvisor.yaml');
  const database = options.database ?? path.join(dir, 'snapvisor.db');
  writeFileSync(
    config,
    [
      'tokens:',
      '  - { name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }',
      '  - { name: e2e-reader, value: env:E2E_READ_TOKEN, scopes: [read] }',
      `database: ${JSON.stringify(database)}`,
      `engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: ${options.shutdownGraceSec ?? 10} }`,
      'targets:',
      `  - { name: lab, kind: virtualbox, vboxmanage: ${JSON.stringify(lab.vboxmanage)}, commandTimeoutSec: ${options.commandTimeoutSec ?? 60} }`,
      '',
    ].join('\n'),
  );
  const env = { SNAPVISOR_CONFIG: config, E2E_TOKEN: TOKEN, E2E_READ_TOKEN: READ_TOKEN };
  // A simulator left hanging by a fault outlives the daemon that started it (its own process
  // group): end those of this lab, by pid (their command line names the lab's own folder).
  t.teardown(() => {
    const found = spawnSync('pgrep', ['-f', lab.dir], { encoding: 'utf8' }).stdout;
    for (const pid of found.split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  return { dir, lab, env, database };
}

/** The daemon serves before its first inventory sync is done: wait for the VM to appear. */
export async function firstVm(d: { url: string }): Promise<string> {
  return until('VM synced', async () => {
    const vms = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms?target=lab');
    return vms.body.items.find((v) => v.name === 'app-1')?.id;
  });
}

export function markedSnapshots(lab: VboxLab, jobId: string) {
  const vm = lab.readState().vms.find((v) => v.name === 'app-1')!;
  return Object.values(vm.snapshots).filter((s) => s.description.includes(`snapvisor:${jobId}`));
}

export async function finalJob(d: { url: string }, jobId: string, timeoutMs = 30_000): Promise<JobBody> {
  return until('job final', async () => {
    const j = await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${jobId}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.body.state) ? j.body : undefined;
  }, timeoutMs);
}
