// The daemon killed with SIGKILL while a create job runs comes back and ends that job correctly
// with exactly one snapshot on the hypervisor — whether the hypervisor finished the command after
// the daemon died, or the command died with it.
import t from 'tap';
import { api, startDaemon, until } from './daemon.ts';
import { finalJob, firstVm, markedSnapshots, TOKEN, vboxDaemonSetup, type JobBody, type VboxDaemonSetup } from './vbox-daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
const setup = (t: TapTest, stepMs: number) => vboxDaemonSetup(t, { stepMs });

async function startCreateAndKill(t: TapTest, ctx: VboxDaemonSetup) {
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
  const final = await finalJob(d2, jobId);
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
  const final = await finalJob(d2, jobId, 60_000);
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
  const final = await finalJob(d2, created.body.id, 60_000);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, created.body.id).length, 1, 'taken exactly once after recovery');
});
