/**
 * Drift and the consolidate dry run on KVM, against the real lab (libvirt + qemu over SSH): three
 * crash (external) snapshots made by jobs leave an overlay chain deeper than the target's
 * consolidate.maxChainDepth (1); after the inventory pass the dry run plans a consolidation and
 * GET-drift lists the VM under consolidationNeeded (the same flag, read from the chain the inventory
 * already reads). The consolidate job merges it; the snapshots whose overlays it merged lose their
 * libvirt metadata, and that is explained by the job — not reported as deleted outside.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import type { Job } from '../../src/domain/types.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createKvmLab, LAB_SESSIONS } from '../labs/kvm/lab.ts';

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-drift-'));
chmodSync(dir, 0o755);
const lab = await createKvmLab({ dir, domains: [{ name: 'drift', running: true }] });
const log = silentLogger();
const provider = createKvmProvider('lab', { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, sessions: LAB_SESSIONS, consolidate: { maxChainDepth: 1 } }, { log });
const store = openStore(':memory:');
const registry = registryOf([{ spec: { name: 'lab', kind: 'kvm', demo: false, concurrency: 2, options: {} }, provider }]);
const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 50, maxMs: 100 } } });
await engine.start();
t.teardown(async () => {
  await engine.stop({ graceMs: 100 });
  store.close();
  await provider.close();
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const vm = (await engine.listVms({ limit: 50, name: lab.domainName('drift') })).items[0]!.id;
let n = 0;
const meta = () => ({ principal: 'test', requestHash: `h${++n}` });
async function final(job: Job): Promise<Job> {
  for (;;) {
    const j = await engine.waitForJob(job.id, 120_000);
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) return j;
  }
}
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
