// The offline mode's promise survives the daemon being killed (SIGKILL) between the shutdown request
// and the restart: the restarted daemon finishes the job with exactly one snapshot and the VM running
// again, as it was before the job. A VM that was off before its offline job stays off.
import t from 'tap';
import { api, startDaemon, until } from './daemon.ts';
import { finalJob, firstVm, markedSnapshots, TOKEN, vboxDaemonSetup, type JobBody, type VboxDaemonSetup } from './vbox-daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const vmState = (ctx: VboxDaemonSetup) => ctx.lab.readState().vms.find((v) => v.name === 'app-1')!;

async function submitOffline(t: TapTest, ctx: VboxDaemonSetup) {
  const d1 = await startDaemon({ cwd: ctx.dir, env: ctx.env, timeoutMs: 90_000 });
  t.teardown(() => d1.kill('SIGKILL'));
  const vmId = await firstVm(d1);
  const created = await api<JobBody>(d1, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name: 'cold', mode: 'offline' });
  t.equal(created.status, 202);
  return { d1, vmId, jobId: created.body.id };
}

async function restartAndFinish(t: TapTest, ctx: VboxDaemonSetup, jobId: string) {
  const d2 = await startDaemon({ cwd: ctx.dir, env: ctx.env, timeoutMs: 90_000 });
  t.teardown(() => d2.kill('SIGKILL'));
  const final = await finalJob(d2, jobId, 60_000);
  return { d2, final };
}

t.test('SIGKILL while the guest shuts down: after the restart, one snapshot and the VM running again', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 50 });
  // Long enough that the kill lands while the guest is still going down.
  ctx.lab.setGuest('app-1', { shutdownMs: 4_000 });
  const { d1, jobId } = await submitOffline(t, ctx);
  await until('guest shutting down', async () => vmState(ctx).state === 'stopping');
  t.equal((await d1.kill('SIGKILL')).signal, 'SIGKILL');
  t.equal(markedSnapshots(ctx.lab, jobId).length, 0, 'no snapshot before the kill');

  const { final } = await restartAndFinish(t, ctx, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.ok(final.result?.snapshotId, 'the result names the snapshot');
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'exactly one snapshot carries the job marker');
  t.equal(vmState(ctx).state, 'running', 'the VM runs again, as before the job');
  t.notOk(vmState(ctx).pending, 'no operation left under way');
});

t.test('SIGKILL after the snapshot was taken, before the VM was started: recovery starts it', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 50 });
  // The restart after the snapshot hangs once: the daemon is killed while it waits on it.
  ctx.lab.setFault('startvm', 'app-1', { type: 'hang', times: 1 });
  const { d1, jobId } = await submitOffline(t, ctx);
  await until('snapshot taken, start requested', async () => markedSnapshots(ctx.lab, jobId).length === 1 && ctx.lab.readState().faults?.['app-1']?.startvm === undefined);
  t.equal(vmState(ctx).state, 'poweroff', 'the VM is off when the daemon dies');
  await d1.kill('SIGKILL');

  const { final } = await restartAndFinish(t, ctx, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1, 'still exactly one snapshot: none taken again');
  t.equal(vmState(ctx).state, 'running', 'the VM runs again');
});

t.test('the start after the snapshot fails once: the retry starts the VM, the job succeeds with one snapshot', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 20 });
  ctx.lab.setFault('startvm', 'app-1', { type: 'fail', message: 'The VM session was closed before any attempt to power it on', times: 1 });
  const { d1, jobId } = await submitOffline(t, ctx);
  const final = await finalJob(d1, jobId, 60_000);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.ok(final.attempts >= 2, 'the failed start was retried');
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1);
  t.equal(vmState(ctx).state, 'running', 'the VM runs again');
});

t.test('a VM that was off before its offline job is not started by recovery', async (t) => {
  const ctx = vboxDaemonSetup(t, { stepMs: 250 });
  ctx.lab.setVmState('app-1', 'poweroff');
  const { d1, jobId } = await submitOffline(t, ctx);
  await until('take under way', async () => vmState(ctx).pending?.kind === 'take');
  await d1.kill('SIGKILL');

  const { final } = await restartAndFinish(t, ctx, jobId);
  t.equal(final.state, 'succeeded', JSON.stringify(final.error));
  t.equal(markedSnapshots(ctx.lab, jobId).length, 1);
  t.equal(vmState(ctx).state, 'poweroff', 'still off, as before the job');
});
