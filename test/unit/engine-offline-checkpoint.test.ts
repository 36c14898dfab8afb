/**
 * The engine's half of the offline mode's crash safety: the job's checkpoint (CallContext.checkpoint)
 * is written in its row only by the holder of the claim and merged by key; a later attempt gets it back
 * as ctx.resume; recovery does not settle a checkpointed offline create from its marker (only the
 * provider can start the VM again) nor as cancelled; a cancel of such a queued job leaves it to run.
 * The provider side (what resume does) is tested in shared-offline.test.ts and against the labs.
 */
import t from 'tap';
import { markerForJob, type JobCheckpoint } from '../../providers/contract.ts';
import { harness, type Harness } from './engine-harness.ts';

const RAN: JobCheckpoint = { offline: { powerBefore: 'running' } };
const JOB = '00000000-0000-4000-8000-0000000000aa';

/** A running offline create left by a dead process, as its row would be after the checkpoint. */
async function leftRunning(h: Harness, options: { checkpoint?: JobCheckpoint; snapshotMade?: boolean; cancelRequested?: boolean }) {
  await h.engine.syncTarget('lab');
  const vmId = await h.vmId('web01');
  const target = (await h.store.targets.get('lab'))!;
  await h.store.jobs.submit({
    id: JOB, kind: 'snapshot.create', targetId: target.id, vmId, snapshotId: null,
    params: { name: 'cold', description: '', mode: 'offline' }, maxAttempts: 5, requestedBy: 'ops', createdAt: h.clock.now().toISOString(),
  });
  t.ok(await h.store.jobs.tryClaim(JOB, 'dead-process-ticket', h.clock.now().toISOString(), 4));
  if (options.checkpoint) t.ok(await h.store.jobs.checkpoint(JOB, 'dead-process-ticket', options.checkpoint));
  if (options.cancelRequested) await h.store.jobs.requestCancel(JOB);
  const fakeVm = [...h.provider.vms.values()][0]!;
  if (options.snapshotMade) {
    fakeVm.snapshots.push({ ref: 'made-before-crash', name: 'cold', description: '', parentRef: fakeVm.currentRef, createdAt: h.clock.now().toISOString(), mode: 'offline', marker: markerForJob(JOB), pendingPolls: 0 });
    fakeVm.currentRef = 'made-before-crash';
  }
  return fakeVm;
}

t.test('store: only the claim holder writes the checkpoint; records merge by key and come back with the job', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }], start: false });
  await leftRunning(h, {});
  t.equal(await h.store.jobs.checkpoint(JOB, 'someone-else', RAN), null, 'another ticket cannot write it');
  t.equal((await h.store.jobs.get(JOB))?.checkpoint, null, 'nothing recorded yet');
  await h.store.jobs.checkpoint(JOB, 'dead-process-ticket', RAN);
  await h.store.jobs.checkpoint(JOB, 'dead-process-ticket', RAN);
  t.same((await h.store.jobs.get(JOB))?.checkpoint, RAN);
});

for (const row of [
  { name: 'marker found', snapshotMade: true, cancelRequested: false },
  { name: 'marker found, cancel requested', snapshotMade: true, cancelRequested: true },
  { name: 'no marker, cancel requested', snapshotMade: false, cancelRequested: true },
]) {
  t.test(`recovery of an offline create that shut its VM down (${row.name}): requeued, the retry resumes through the provider`, async (t) => {
    const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off' }] } }], start: false });
    const fakeVm = await leftRunning(h, { checkpoint: RAN, snapshotMade: row.snapshotMade, cancelRequested: row.cancelRequested });
    await h.engine.start();
    const done = await h.settle(JOB);
    t.equal(done.state, 'succeeded', 'not settled from the marker, nor as cancelled: the VM first');
    const calls = h.provider.callsOf('createSnapshot');
    t.equal(calls.length, 1, 'the provider was asked again (it starts the VM)');
    t.same(calls[0]?.resume, RAN, 'with the record handed back');
    t.equal(fakeVm.snapshots.filter((s) => s.marker === markerForJob(JOB)).length, 1, 'exactly one snapshot');
  });
}

t.test('recovery of an offline create without a checkpoint (the VM was off): settled from the marker as before', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off' }] } }], start: false });
  await leftRunning(h, { snapshotMade: true });
  await h.engine.start();
  t.equal((await h.settle(JOB)).state, 'succeeded');
  t.equal(h.provider.callsOf('createSnapshot').length, 0, 'nothing asked of the provider');
});

t.test('cancel of a queued offline create that shut its VM down: flagged, left queued to start the VM again', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', powerState: 'off' }] } }], start: false });
  await leftRunning(h, { checkpoint: RAN });
  await h.store.jobs.requeue(JOB, 'dead-process-ticket', { nextAttemptAt: h.clock.now().toISOString(), error: null });
  const after = await h.engine.cancelJob(JOB, 'ops');
  t.match(after, { state: 'queued', cancelRequested: true });
  await h.engine.start();
  t.equal((await h.settle(JOB)).state, 'succeeded', 'ran: a success stands, as for any late cancel');
  t.same(h.provider.callsOf('createSnapshot')[0]?.resume, RAN);
});
