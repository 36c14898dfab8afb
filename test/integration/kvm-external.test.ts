/**
 * KVM external snapshots and the refusals around them, against the real lab through SSH: external
 * memory style, crash chains, never overwriting a file (danger 4), what libvirt 9.0 cannot do
 * (revert external, delete with children, mixed trees → unsupported with the reason), and the
 * mode conflicts (memory of a shut-off domain; quiesce without a guest agent).
 */
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import { overlayPath } from '../../providers/kvm/naming.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { markerForJob, type SnapshotProvider } from '../../providers/contract.ts';
import { createKvmLab, type KvmLab } from '../labs/kvm/lab.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const ctx = () => testContext();
const marker = () => markerForJob(`ext-${randomUUID()}`);

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-ext-'));
chmodSync(dir, 0o755);
let lab: KvmLab;
const providers: SnapshotProvider[] = [];
function provider(extra: Record<string, unknown> = {}): SnapshotProvider {
  const p = createKvmProvider('lab', { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, ...extra }, { log });
  providers.push(p);
  return p;
}

t.before(async () => {
  lab = await createKvmLab({
    dir,
    domains: [
      { name: 'ext', running: true },
      { name: 'mixed', running: true },
      { name: 'off', running: false },
      { name: 'agent', running: true, agentChannel: true },
    ],
  });
});
t.teardown(async () => {
  await Promise.allSettled(providers.map((p) => p.close()));
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

t.test('external chain: memory (external style) + crash; overlays never overwrite; refusals; native leaf delete', async (tt) => {
  const p = provider({ snapshotStyle: 'external' });
  const id = lab.domainUuid('ext');
  const m1 = marker();
  // A 0-byte file where the first overlay would go: libvirt would silently reuse it (danger 4).
  const squatted = overlayPath(lab.diskPath('ext'), lab.domainName('ext'), 'vda', 'mem1', m1);
  tt.equal(dirname(squatted), dirname(lab.diskPath('ext')), 'overlay next to the disk');
  writeFileSync(squatted, '');
  const a = await p.createSnapshot(id, { name: 'mem1', description: 'with RAM', mode: 'memory', marker: m1 }, ctx());
  tt.equal(a.mode, 'memory', 'recorded as a memory snapshot');
  const vm = (await p.listVms(ctx())).find((v) => v.providerVmId === id);
  tt.equal(vm?.disks?.[0]?.path, squatted.replace(/\.qcow2$/, '-2.qcow2'), 'the squatted file was skipped, not overwritten');
  tt.equal(vm?.disks?.[0]?.chainDepth, 1, 'one overlay above the base');
  const b = await p.createSnapshot(id, { name: 'crash1', description: '', mode: 'crash', marker: marker() }, ctx());
  const c = await p.createSnapshot(id, { name: 'crash2', description: '', mode: 'crash', marker: marker() }, ctx());
  tt.equal(c.parentRef, b.providerRef);
  tt.equal((await p.listVms(ctx())).find((v) => v.providerVmId === id)?.disks?.[0]?.chainDepth, 3, 'three overlays');

  const revert = await rejection(p.revertSnapshot(id, a.providerRef, ctx()));
  tt.equal(revert.kind, 'unsupported', `revert external: ${revert.message}`);
  tt.match(revert.message, /9\.9/, 'says which libvirt can');
  const subtree = await rejection(p.deleteSnapshot(id, a.providerRef, { children: true }, ctx()));
  tt.equal(subtree.kind, 'unsupported', `delete external with children: ${subtree.message}`);

  await p.deleteSnapshot(id, c.providerRef, { children: false }, ctx());
  await p.deleteSnapshot(id, b.providerRef, { children: false }, ctx());
  const left = await p.listSnapshots(id, ctx());
  tt.same(left.map((s) => s.name), ['mem1'], 'linear external deletes done natively');
  tt.equal((await p.listVms(ctx())).find((v) => v.providerVmId === id)?.powerState, 'running', 'still running');
});

t.test('mixed tree: internal with external descendants is not reverted; mixed deletes refused', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('mixed');
  const base = await p.createSnapshot(id, { name: 'internal-base', description: '', mode: 'memory', marker: marker() }, ctx());
  const ext = await p.createSnapshot(id, { name: 'external-child', description: '', mode: 'crash', marker: marker() }, ctx());
  tt.equal(ext.parentRef, base.providerRef);
  const r = await rejection(p.revertSnapshot(id, base.providerRef, ctx()));
  tt.equal(r.kind, 'unsupported', `revert: ${r.message}`);
  tt.match(r.message, /external descendants/);
  tt.equal((await rejection(p.deleteSnapshot(id, ext.providerRef, { children: false }, ctx()))).kind, 'unsupported', 'external with internal parent');
  tt.equal((await rejection(p.deleteSnapshot(id, base.providerRef, { children: false }, ctx()))).kind, 'unsupported', 'internal with external child');
  tt.equal((await p.listSnapshots(id, ctx())).length, 2, 'nothing was deleted');
});

t.test('mode conflicts', async (tt) => {
  const p = provider();
  const mem = await rejection(p.createSnapshot(lab.domainUuid('off'), { name: 'm', description: '', mode: 'memory', marker: marker() }, ctx()));
  tt.equal(mem.kind, 'conflict', `memory of a shut-off domain: ${mem.message}`);
  const noChannel = await rejection(p.createSnapshot(lab.domainUuid('ext'), { name: 'q', description: '', mode: 'quiesced', marker: marker() }, ctx()));
  tt.equal(noChannel.kind, 'conflict', 'quiesce without an agent channel');
  tt.match(noChannel.message, /qemu-guest-agent/);
  const noAgent = await rejection(p.createSnapshot(lab.domainUuid('agent'), { name: 'q', description: '', mode: 'quiesced', marker: marker() }, ctx()));
  tt.equal(noAgent.kind, 'conflict', 'quiesce with a channel but no agent in the guest');
  tt.match(noAgent.message, /qemu-guest-agent/);
  tt.same(await p.listSnapshots(lab.domainUuid('agent'), ctx()), [], 'nothing was created');
  const off = await p.createSnapshot(lab.domainUuid('off'), { name: 'cold', description: '', mode: 'offline', marker: marker() }, ctx());
  tt.equal(off.mode, 'offline');
  tt.equal((await p.listVms(ctx())).find((v) => v.providerVmId === lab.domainUuid('off'))?.powerState, 'off', 'stays off');
});
