/**
 * KVM external snapshots against the real lab through SSH: external memory style, crash chains,
 * never overwriting a file (danger 4), what libvirt 9.0 cannot do and the adapter does by a manual
 * merge (delete with children, external with an internal parent, shut-off domains started paused),
 * what stays refused (revert external, internal with external children, offlineMerge 'refuse'),
 * and the mode conflicts (memory of a shut-off domain; quiesce without a guest agent). Results are
 * read back as root: chains from `virsh dumpxml`, files on disk.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createKvmProvider, type KvmProvider } from '../../providers/kvm/index.ts';
import { overlayPath } from '../../providers/kvm/naming.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { MERGE_MARKER, parseDomainXml, parseSnapshotXml } from '../../providers/kvm/parse.ts';
import { markerForJob, type CallContext } from '../../providers/contract.ts';
import { createKvmLab, type KvmLab } from '../labs/kvm/lab.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const ctx = () => testContext();
const marker = () => markerForJob(`ext-${randomUUID()}`);
/** A context that keeps the progress messages (the job's message: files left behind are named there). */
function ctxWithMessages(): CallContext & { messages: string[] } {
  const messages: string[] = [];
  return { signal: new AbortController().signal, log, messages, progress: (_pct, m) => void (m === undefined ? 0 : messages.push(m)) };
}

/** The vda chain as libvirt has it (root, independent of the adapter), active first; `inactive` for the persistent definition. */
async function chain(name: string, inactive = false): Promise<string[]> {
  const r = await lab.virsh('dumpxml', ...(inactive ? ['--inactive'] : []), lab.domainName(name));
  if (r.code !== 0) throw new Error(r.stderr);
  const vda = parseDomainXml(r.stdout).disks.find((d) => d.target === 'vda');
  if (!vda?.source) throw new Error('no vda');
  return [vda.source, ...vda.backingChain];
}

/** Overlay and memory files of a snapshot, read as root before it is deleted. */
async function filesOf(name: string, snapshot: string): Promise<string[]> {
  const r = await lab.virsh('snapshot-dumpxml', lab.domainName(name), snapshot);
  if (r.code !== 0) throw new Error(r.stderr);
  const s = parseSnapshotXml(r.stdout);
  return [...s.disks.flatMap((d) => (d.snapshot === 'external' && d.source ? [d.source] : [])), ...(s.memoryFile ? [s.memoryFile] : [])];
}

async function powerState(p: KvmProvider, id: string): Promise<string | undefined> {
  return (await p.listVms(ctx())).find((v) => v.providerVmId === id)?.powerState;
}

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-ext-'));
chmodSync(dir, 0o755);
let lab: KvmLab;
const providers: KvmProvider[] = [];
function provider(extra: Record<string, unknown> = {}): KvmProvider {
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
      { name: 'offmerge', running: false },
      { name: 'offrefuse', running: false },
      { name: 'offcrash', running: false },
      { name: 'userpaused', running: false },
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

  await p.deleteSnapshot(id, c.providerRef, { children: false }, ctx());
  await p.deleteSnapshot(id, b.providerRef, { children: false }, ctx());
  const left = await p.listSnapshots(id, ctx());
  tt.same(left.map((s) => s.name), ['mem1'], 'linear external deletes done natively');
  tt.equal(await powerState(p, id), 'running', 'still running');

  // Children delete of an external subtree (libvirt 9.0 refuses): one active commit into the base.
  await p.createSnapshot(id, { name: 'crash3', description: '', mode: 'crash', marker: marker() }, ctx());
  await p.createSnapshot(id, { name: 'crash4', description: '', mode: 'crash', marker: marker() }, ctx());
  const before = await chain('ext');
  tt.equal(before.length, 4, 'three overlays above the base');
  const files = [...(await filesOf('ext', 'mem1')), ...(await filesOf('ext', 'crash3')), ...(await filesOf('ext', 'crash4'))];
  const c1 = ctxWithMessages();
  await p.deleteSnapshot(id, a.providerRef, { children: true }, c1);
  tt.same(await p.listSnapshots(id, c1), [], 'the whole subtree is gone');
  tt.same(await chain('ext'), [lab.diskPath('ext')], 'merged into the base, which is the active image again');
  tt.equal(await powerState(p, id), 'running', 'the guest kept running');
  const message = c1.messages.at(-1) ?? '';
  tt.comment(message);
  for (const f of files) tt.ok(!existsSync(f) || message.includes(f), `${f} removed or named in the message`);
  tt.notOk(existsSync(before[0] ?? ''), 'the active overlay was removed by libvirt');
  // libvirt is consistent afterwards: a new snapshot is made and deleted natively.
  const n = await p.createSnapshot(id, { name: 'after', description: '', mode: 'crash', marker: marker() }, ctx());
  await p.deleteSnapshot(id, n.providerRef, { children: false }, ctx());
  tt.same(await chain('ext'), [lab.diskPath('ext')]);
});

t.test('mixed tree: internal with external children refused; external with internal parent merged into the internal one\'s image', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('mixed');
  const base = await p.createSnapshot(id, { name: 'internal-base', description: '', mode: 'memory', marker: marker() }, ctx());
  const ext = await p.createSnapshot(id, { name: 'external-child', description: '', mode: 'crash', marker: marker() }, ctx());
  tt.equal(ext.parentRef, base.providerRef);
  const r = await rejection(p.revertSnapshot(id, base.providerRef, ctx()));
  tt.equal(r.kind, 'unsupported', `revert: ${r.message}`);
  tt.match(r.message, /external descendants/);
  const stays = await rejection(p.deleteSnapshot(id, base.providerRef, { children: false }, ctx()));
  tt.equal(stays.kind, 'unsupported', `internal with external child: ${stays.message}`);
  tt.match(stays.message, /read-only backing file/);
  tt.equal((await p.listSnapshots(id, ctx())).length, 2, 'nothing was deleted');

  const [overlay] = await filesOf('mixed', ext.providerRef);
  tt.same(await chain('mixed'), [overlay, lab.diskPath('mixed')]);
  await p.deleteSnapshot(id, ext.providerRef, { children: false }, ctx());
  tt.same((await p.listSnapshots(id, ctx())).map((s) => s.name), ['internal-base'], 'external child deleted, internal parent kept');
  tt.same(await chain('mixed'), [lab.diskPath('mixed')], 'the overlay is merged into the image holding the internal snapshot');
  tt.notOk(existsSync(overlay ?? ''), 'overlay removed');
  tt.equal(await powerState(p, id), 'running', 'still running');
  // The internal snapshot survived the commit into its image: libvirt reverts to it.
  await p.revertSnapshot(id, base.providerRef, ctx());
  tt.equal(await powerState(p, id), 'running', 'reverted to the internal snapshot (taken running)');
});

t.test('shut-off domain: merged started paused, ends shut off; offlineMerge refuse is conflict', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('offmerge');
  const o1 = await p.createSnapshot(id, { name: 'o1', description: '', mode: 'crash', marker: marker() }, ctx());
  await p.createSnapshot(id, { name: 'o2', description: '', mode: 'crash', marker: marker() }, ctx());
  const files = [...(await filesOf('offmerge', 'o1')), ...(await filesOf('offmerge', 'o2'))];
  const c1 = ctxWithMessages();
  await p.deleteSnapshot(id, o1.providerRef, { children: true }, c1);
  tt.comment(c1.messages.at(-1) ?? '');
  tt.same(await p.listSnapshots(id, ctx()), [], 'subtree deleted');
  tt.equal(await powerState(p, id), 'off', 'ends shut off, as it was');
  tt.same(await chain('offmerge', true), [lab.diskPath('offmerge')], 'the persistent definition uses the base again');
  for (const f of files) tt.ok(!existsSync(f) || (c1.messages.at(-1) ?? '').includes(f), `${f} removed or named`);

  const q = provider({ offlineMerge: 'refuse' });
  const rid = lab.domainUuid('offrefuse');
  const r1 = await q.createSnapshot(rid, { name: 'r1', description: '', mode: 'crash', marker: marker() }, ctx());
  await q.createSnapshot(rid, { name: 'r2', description: '', mode: 'crash', marker: marker() }, ctx());
  const before = await lab.virsh('dumpxml', '--inactive', lab.domainName('offrefuse'));
  const e = await rejection(q.deleteSnapshot(rid, r1.providerRef, { children: true }, ctx()));
  tt.equal(e.kind, 'conflict', e.message);
  tt.match(e.message, /offlineMerge/);
  tt.equal((await q.listSnapshots(rid, ctx())).length, 2, 'nothing deleted');
  tt.equal((await lab.virsh('dumpxml', '--inactive', lab.domainName('offrefuse'))).stdout, before.stdout, 'domain unchanged');
  tt.equal(await powerState(q, rid), 'off', 'not started');
});

t.test('a merge whose attempt died while the domain was started paused: the retry finishes it and powers it off; a domain a user paused stays paused', async (tt) => {
  const p = provider();
  const { uri, key, xml } = MERGE_MARKER;
  for (const name of ['offcrash', 'userpaused']) {
    const id = lab.domainUuid(name);
    const s1 = await p.createSnapshot(id, { name: 's1', description: '', mode: 'crash', marker: marker() }, ctx());
    await p.createSnapshot(id, { name: 's2', description: '', mode: 'crash', marker: marker() }, ctx());
    // What an attempt leaves when the daemon is killed mid-merge: started paused, marked (live only).
    // A user's paused domain is the same without the mark.
    const dom = lab.domainName(name);
    tt.equal((await lab.virsh('start', '--paused', dom)).code, 0);
    if (name === 'offcrash') tt.equal((await lab.virsh('metadata', '--domain', dom, '--uri', uri, '--key', key, '--set', xml, '--live')).code, 0);
    await p.deleteSnapshot(id, s1.providerRef, { children: true }, ctx());
    tt.same(await p.listSnapshots(id, ctx()), [], `${name}: subtree deleted`);
    tt.same(await chain(name, true), [lab.diskPath(name)], `${name}: the persistent definition uses the base again`);
    const state = (await lab.virsh('domstate', dom)).stdout.trim();
    tt.equal(state, name === 'offcrash' ? 'shut off' : 'paused', name === 'offcrash' ? 'the retry powered off the domain the dead attempt had started' : 'the user’s paused domain is left paused');
  }
  // The mark dies with the QEMU process: a later start shows none.
  const dom = lab.domainName('offcrash');
  await lab.virsh('start', '--paused', dom);
  tt.notOk(parseDomainXml((await lab.virsh('dumpxml', dom)).stdout).startedPausedForMerge, 'no mark on a later start');
  await lab.virsh('destroy', dom);
  await lab.virsh('destroy', lab.domainName('userpaused'));
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
