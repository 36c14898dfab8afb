/**
 * Drift and the consolidate dry run on KVM, against the real lab (libvirt + qemu over SSH): three
 * crash (external) snapshots made by jobs leave an overlay chain deeper than the target's
 * consolidate.maxChainDepth (1); after the inventory pass the dry run plans a consolidation and
 * GET-drift lists the VM under consolidationNeeded (the same flag, read from the chain the inventory
 * already reads). The consolidate job merges it; the snapshots whose overlays it merged lose their
 * libvirt metadata, and that is explained by the job — not reported as deleted outside.
 */
import t from 'tap';
import { kvmEngine } from './kvm-engine.ts';

const { engine, vm, meta, final } = await kvmEngine(t, 'drift', { consolidate: { maxChainDepth: 1 }, jobWaitMs: 120_000 });
const dryRun = async () => (await engine.submit({ kind: 'vm.consolidate', vmId: vm, dryRun: true }, meta())).job.result?.message ?? '';
const drift = async () => (await engine.drift({ target: 'lab' }))[0]!;

t.test('an overlay chain deeper than maxChainDepth: planned by the dry run, reported as drift, merged by the job', async (t) => {
  t.match(await dryRun(), /nothing to do/, 'no chain yet');
  for (const name of ['c1', 'c2', 'c3']) {
    const done = await final((await engine.submit({ kind: 'snapshot.create', vmId: vm, name, description: '', mode: 'crash' }, meta())).job);
    t.equal(done.state, 'succeeded', `${name}: ${JSON.stringify(done.error)}`);
  }
  await engine.syncTarget('lab');
  t.match(await dryRun(), /would consolidate/, 'the dry run plans a consolidation for KVM');
  const before = await drift();
  t.same(before.consolidationNeeded.map((c) => ({ vmId: c.vmId, reason: c.reason, chainDepth: c.chainDepth })), [{ vmId: vm, reason: 'hypervisor', chainDepth: 3 }]);
  t.same(before.createdOutside, [], 'the jobs made them');
  t.same(before.orphans.supported, false);

  const merged = await final((await engine.submit({ kind: 'vm.consolidate', vmId: vm, dryRun: false }, meta())).job);
  t.equal(merged.state, 'succeeded', JSON.stringify(merged.error));
  await engine.syncTarget('lab');
  const after = await drift();
  t.same(after.consolidationNeeded, [], 'nothing to consolidate any more');
  t.match(await dryRun(), /nothing to do/);
  const gone = (await engine.listSnapshots(vm, { includeGone: true })).filter((s) => s.state === 'gone').map((s) => s.name).sort();
  t.same(gone, ['c1', 'c2'], 'the merge dropped the older snapshots');
  t.same(after.deletedOutside, [], 'snapshots dropped by a consolidate job are not deleted outside');
});
