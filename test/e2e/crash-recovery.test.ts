// The daemon killed with SIGKILL while a create job runs comes back and ends that job correctly
// with exactly one snapshot on the hypervisor — whether the hypervisor finished the command after
// the daemon died, or the command died with it.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, startDaemon, until } from './daemon.ts';

const TOKEN = 'e2e-token-4f1c9a';
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

interface JobBody { id: string; state: string; result: { snapshotId?: string } | null; error: unknown }

function setup(t: TapTest, stepMs: number) {
  const dir = t.testdir({});
  const lab = createVboxLab({ dir: path.join(dir, 'lab'), vms: [{ name: 'app-1', state: 'running' }], stepMs });
  const config = path.join(dir, 'snapvisor.yaml');
  writeFileSync(
    config,
    [
      'tokens:',
      '  - { name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }',
      `database: ${JSON.stringify(path.join(dir, 'snapvisor.db'))}`,
      'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 10 }',
      'targets:',
      `  - { name: lab, kind: virtualbox, vboxmanage: ${JSON.stringify(lab.vboxmanage)}, commandTimeoutSec: 60 }`,
      '',
    ].join('\n'),
  );
  const env = { SNAPVISOR_CONFIG: config, E2E_TOKEN: TOKEN };
  // A simulator left hanging by a fault outlives the daemon that started it (its own process group).
  t.teardown(() => {
    spawnSync('pkill', ['-KILL', '-f', lab.dir]);
  });
  return { dir, lab, env };
}

/** The daemon serves before its first inventory sync is done: wait for the VM to appear. */
async function firstVm(d: { url: string }): Promise<string> {
  return until('VM synced', async () => {
    const vms = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms?target=lab');
    return vms.body.items.find((v) => v.name === 'app-1')?.id;
  });
}

function markedSnapshots(lab: VboxLab, jobId: string) {
  const vm = lab.readState().vms.find((v) => v.name === 'app-1')!;
  return Object.values(vm.snapshots).filter((s) => s.description.includes(`snapvisor:${jobId}`));
}

async function startCreateAndKill(t: TapTest, ctx: ReturnType<typeof setup>) {
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  const vmId = await firstVm(d1);
  const created = await api<JobBody>(d1, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'before "kill" ; $(reboot)', mode: 'memory' });
  t.equal(created.status, 202);
  const jobId = created.body.id;
  // Kill only once the hypervisor command is under way: the simulator records it as pending.
  await until('take under way', async () => {
    const vm = ctx.lab.readState().vms.find((v) => v.name === 'app-1')!;
    return vm.pending?.kind === 'take' ? vm.pending : undefined;
  });
  const job = await api<JobBody>(d1, TOKEN, 'GET', `/v1/jobs/${jobId}`);
  t.equal(job.body.state, 'running', 'job is running when the daemon dies');
  const exit = await d1.kill('SIGKILL');
  t.equal(exit.signal, 'SIGKILL');
  return { vmId, jobId };
}

t.test('SIGKILL mid-create, hypervisor finishes after the daemon died: job succeeds, one snapshot', async (t) => {
  const ctx = setup(t, 250);
  const { vmId, jobId } = await startCreateAndKill(t, ctx);
  // Restart while the orphaned VBoxManage may still be working: recovery then finds the VM
  // changing state, and must wait for it rather than take a second snapshot or give up.

  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await until('job final', async () => {
    const j = await api<JobBody>(d2, TOKEN, 'GET', `/v1/jobs/${jobId}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.body.state) ? j.body : undefined;
  });
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.ok(final.result?.snapshotId, 'result names the snapshot');
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'still exactly one snapshot: recovery did not take another');
  const list = await api<{ items: Array<{ id: string; name: string; state: string }> }>(d2, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots`);
  const mine = list.body.items.filter((s) => s.name === 'before "kill" ; $(reboot)' && s.state === 'present');
  t.equal(mine.length, 1);
  t.equal(mine[0]!.id, final.result!.snapshotId);
  const exit = await d2.kill('SIGTERM');
  t.equal(exit.code, 0, 'graceful exit on SIGTERM');
});

t.test('SIGKILL mid-create, VBoxManage client killed too (the operation completes server-side): one snapshot', async (t) => {
  const ctx = setup(t, 250);
  const { jobId } = await startCreateAndKill(t, ctx);
  const pending = ctx.lab.readState().vms[0]!.pending;
  if (pending) {
    try {
      process.kill(pending.pid, 'SIGKILL');
    } catch {
      // already finished
    }
  }
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await until('job final', async () => {
    const j = await api<JobBody>(d2, TOKEN, 'GET', `/v1/jobs/${jobId}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.body.state) ? j.body : undefined;
  }, 60_000);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'exactly one snapshot carries the job marker');
});

t.test('SIGTERM while a job runs: the job finishes before the daemon exits', async (t) => {
  const ctx = setup(t, 100);
  const d = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d.kill('SIGKILL'));
  const created = await api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${await firstVm(d)}/snapshots`, { name: 'graceful', mode: 'memory' });
  await until('take under way', async () => ctx.lab.readState().vms[0]!.pending?.kind === 'take');
  const exit = await d.kill('SIGTERM');
  t.equal(exit.code, 0);
  t.equal(markedSnapshots(ctx.lab, created.body.id).length, 1, 'the snapshot was made');
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const job = await api<JobBody>(d2, TOKEN, 'GET', `/v1/jobs/${created.body.id}`);
  t.equal(job.body.state, 'succeeded', 'recorded as finished, not left running');
});

t.test('SIGKILL before the snapshot command was sent: recovery finds nothing and takes it once', async (t) => {
  const ctx = setup(t, 50);
  // The adapter lists snapshots (looking for its marker) before it takes one; hang that call.
  ctx.lab.setFault('list', 'app-1', { type: 'hang' });
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d1.kill('SIGKILL'));
  ctx.lab.setFault('list', 'app-1', null);
  const vmId = await firstVm(d1);
  ctx.lab.setFault('list', 'app-1', { type: 'hang' });
  const created = await api<JobBody>(d1, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'never sent', mode: 'memory' });
  await until('job running', async () => (await api<JobBody>(d1, TOKEN, 'GET', `/v1/jobs/${created.body.id}`)).body.state === 'running');
  await d1.kill('SIGKILL');
  ctx.lab.setFault('list', 'app-1', null);
  t.equal(markedSnapshots(ctx.lab, created.body.id).length, 0, 'nothing reached the hypervisor');
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await until('job final', async () => {
    const j = await api<JobBody>(d2, TOKEN, 'GET', `/v1/jobs/${created.body.id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(j.body.state) ? j.body : undefined;
  }, 60_000);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, created.body.id).length, 1, 'taken exactly once after recovery');
});
