/**
 * KVM consolidate against the real lab through SSH: a 3-deep external chain on a running domain is
 * merged down to maxChainDepth (inactive commit), then to 0 (active commit + pivot); the chain is
 * read back from dumpxml as root, the stale snapshots are gone, the survivors still work with
 * libvirt, merged files are deleted, the domain keeps running, progress is reported. A second run
 * and an internal-only VM are no-ops; a shut-off domain with a deep chain is merged started paused
 * and ends shut off. listVms' consolidationNeeded is true before and false after.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createKvmProvider, type KvmProvider } from '../../providers/kvm/index.ts';
import { parseDomainXml, parseSnapshotXml } from '../../providers/kvm/parse.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { markerForJob } from '../../providers/contract.ts';
import { createKvmLab, type KvmLab } from '../labs/kvm/lab.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const ctx = () => testContext();
const marker = () => markerForJob(`cons-${randomUUID()}`);

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-cons-'));
chmodSync(dir, 0o755);
let lab: KvmLab;
const providers: KvmProvider[] = [];
function provider(maxChainDepth?: number): KvmProvider {
  const p = createKvmProvider(
    'lab',
    { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, ...(maxChainDepth === undefined ? {} : { consolidate: { maxChainDepth } }) },
    { log },
  );
  providers.push(p);
  return p;
}

/** The vda chain as libvirt has it (read as root, independent of the adapter), active first. */
async function chain(name: string, inactive = false): Promise<string[]> {
  const r = await lab.virsh('dumpxml', ...(inactive ? ['--inactive'] : []), lab.domainName(name));
  if (r.code !== 0) throw new Error(r.stderr);
  const vda = parseDomainXml(r.stdout).disks.find((d) => d.target === 'vda');
  if (!vda?.source) throw new Error('no vda');
  return [vda.source, ...vda.backingChain];
}

t.before(async () => {
  lab = await createKvmLab({
    dir,
    domains: [
      { name: 'deep', running: true },
      { name: 'internal', running: true },
      { name: 'off', running: false },
    ],
  });
});
t.teardown(async () => {
  await Promise.allSettled(providers.map((p) => p.close()));
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

t.test('3-deep crash chain on a running domain: merged to depth 1, then 0', async (tt) => {
  const p = provider(); // default maxChainDepth 1
  const id = lab.domainUuid('deep');
  for (const name of ['c1', 'c2', 'c3']) await p.createSnapshot(id, { name, description: '', mode: 'crash', marker: marker() }, ctx());
  const before = await chain('deep');
  tt.equal(before.length - 1, 3, 'three overlays above the base');
  tt.equal(before[3], lab.diskPath('deep'));
  const needed = async (q: KvmProvider) => (await q.listVms(ctx())).find((v) => v.providerVmId === id)?.consolidationNeeded;
  tt.equal(await needed(p), true, 'listVms: consolidation needed (3 overlays > 1)');

  const progress: number[] = [];
  const started = Date.now();
  const report = await p.consolidate(id, testContext(undefined, (pct) => progress.push(pct)));
  tt.comment(`consolidate 3 -> 1 took ${Date.now() - started} ms: ${report.message}`);
  tt.equal(report.merged, 2, 'two overlays merged');
  const after = await chain('deep');
  tt.same(after, [before[0], before[3]], 'the newest overlay stays, directly on the base');
  tt.same((await p.listSnapshots(id, ctx())).map((s) => [s.name, s.parentRef]), [['c3', null]], 'c1, c2 dropped; c3 now a root');
  tt.equal((await p.listVms(ctx())).find((v) => v.providerVmId === id)?.powerState, 'running', 'still running');
  tt.ok(progress.length >= 3 && progress.at(-1) === 100, `progress reported: ${progress.join(',')}`);
  tt.ok(progress.every((x, i) => i === 0 || x >= (progress[i - 1] ?? 0)), 'progress never goes back');
  for (const f of [before[1], before[2]]) tt.notOk(existsSync(f ?? ''), `merged overlay deleted by libvirt: ${f}`);
  tt.match(report.message, /no unused files left/);
  tt.equal(await needed(p), false, 'listVms: not needed after consolidate');

  const again = await p.consolidate(id, ctx());
  tt.same(again, { merged: 0, message: again.message }, 'second run: nothing to do');
  tt.match(again.message, /nothing to do/);
  tt.same(await chain('deep'), after, 'chain untouched');

  // maxChainDepth 0: active commit + pivot of the last overlay into the base.
  const report0 = await provider(0).consolidate(id, ctx());
  tt.equal(report0.merged, 1);
  tt.same(await chain('deep'), [lab.diskPath('deep')], 'the base is the active image again');
  tt.same(await p.listSnapshots(id, ctx()), [], 'c3 dropped too');
  tt.notOk(existsSync(after[0] ?? ''), 'pivoted-away overlay deleted');
  tt.equal((await p.listVms(ctx())).find((v) => v.providerVmId === id)?.powerState, 'running', 'still running after the pivot');

  // libvirt is consistent afterwards: a new external chain can be made and deleted natively.
  const n = await p.createSnapshot(id, { name: 'fresh', description: '', mode: 'crash', marker: marker() }, ctx());
  await p.deleteSnapshot(id, n.providerRef, { children: false }, ctx());
  tt.same(await chain('deep'), [lab.diskPath('deep')], 'native delete after consolidation works');
});

t.test('internal-only VM: nothing to do, not an error', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('internal');
  await p.createSnapshot(id, { name: 'i1', description: '', mode: 'memory', marker: marker() }, ctx());
  await p.createSnapshot(id, { name: 'i2', description: '', mode: 'memory', marker: marker() }, ctx());
  const r = await p.consolidate(id, ctx());
  tt.equal(r.merged, 0);
  tt.match(r.message, /nothing to do/);
  tt.equal((await p.listSnapshots(id, ctx())).length, 2, 'snapshots untouched');
});

t.test('shut-off domain with a deep chain: merged started paused, ends shut off', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('off');
  await p.createSnapshot(id, { name: 'o1', description: '', mode: 'crash', marker: marker() }, ctx());
  const o2 = await p.createSnapshot(id, { name: 'o2', description: '', mode: 'crash', marker: marker() }, ctx());
  const vm = async () => (await p.listVms(ctx())).find((v) => v.providerVmId === id);
  const o2Xml = await lab.virsh('snapshot-dumpxml', lab.domainName('off'), o2.name);
  const o2Overlay = parseSnapshotXml(o2Xml.stdout).disks.find((d) => d.name === 'vda')?.source;
  tt.ok(o2Overlay, 'o2 made an overlay');
  tt.equal((await vm())?.consolidationNeeded, true, 'listVms: two overlays recorded > 1');
  const r = await p.consolidate(id, ctx());
  tt.comment(r.message);
  tt.equal(r.merged, 1, 'the older overlay merged into the base');
  tt.same((await p.listSnapshots(id, ctx())).map((s) => [s.name, s.parentRef]), [[o2.name, null]], 'o1 dropped; o2 now a root');
  const after = await vm();
  tt.equal(after?.powerState, 'off', 'ends shut off, as it was');
  tt.equal(after?.consolidationNeeded, false, 'listVms: not needed any more');
  tt.same((await chain('off', true))[0], o2Overlay, "the persistent definition still uses o2's overlay");
  tt.match(r.message, /no unused files left/);
  const e = await rejection(createKvmProvider('lab', { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, offlineMerge: 'refuse', consolidate: { maxChainDepth: 0 } }, { log }).consolidate(id, ctx()));
  tt.equal(e.kind, 'conflict', e.message);
  tt.match(e.message, /offlineMerge.*start the VM first/);
});
