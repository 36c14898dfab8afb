/**
 * KVM faults against the real lab, through SSH: a domain undefined behind our back, hostile and
 * dangerous snapshot names, the SSH session killed in the middle of a create (the engine-style
 * retry with the same marker must end with exactly one snapshot), libvirtd stopped and restarted.
 *
 * libvirtd is stopped last and restarted in a teardown: other labs on this machine see it down for
 * a few seconds only.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createKvmProvider, type KvmProvider } from '../../providers/kvm/index.ts';
import { testContext } from '../../providers/conformance/suite.ts';
import { markerForJob } from '../../providers/contract.ts';
import type { CommandRunner } from '../../providers/shared/command-runner.ts';
import { createSshRunner } from '../../providers/shared/ssh.ts';
import { createKvmLab, ensureLibvirt, LAB_SESSIONS, stopLibvirtd, type KvmLab } from '../labs/kvm/lab.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { dropMidCreate } from '../labs/kvm/dropped-create.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { holdLabLock } from '../labs/lab-lock.ts';

const log = silentLogger();
const ctx = () => testContext();
const marker = () => markerForJob(`fault-${randomUUID()}`);

const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-faults-'));
chmodSync(dir, 0o755);
let lab: KvmLab;
const providers: KvmProvider[] = [];

function provider(runner?: CommandRunner): KvmProvider {
  const p = createKvmProvider('lab', { uri: lab.uri, ssh: lab.ssh, commandTimeoutSec: 60, sessions: LAB_SESSIONS }, { log, ...(runner ? { runner } : {}) });
  providers.push(p);
  return p;
}

t.before(async () => {
  // This file stops and restarts the machine's one libvirtd: it runs with no other KVM file.
  await holdLabLock('kvm');
  lab = await createKvmLab({
    dir,
    domains: [
      { name: 'doomed', running: true },
      { name: 'hostile', running: true },
      { name: 'dropped', running: true },
      { name: 'daemon', running: true },
    ],
  });
});
t.teardown(async () => {
  await ensureLibvirt(); // in case the libvirtd case failed half-way
  await Promise.allSettled(providers.map((p) => p.close()));
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

t.test('a domain undefined behind our back → not_found', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('doomed');
  const s = await p.createSnapshot(id, { name: 'before', description: '', mode: 'memory', marker: marker() }, ctx());
  await lab.virsh('destroy', lab.domainName('doomed'));
  const u = await lab.virsh('undefine', lab.domainName('doomed'), '--snapshots-metadata');
  tt.equal(u.code, 0, `undefined (${u.stderr.trim()})`);
  tt.equal((await rejection(p.listSnapshots(id, ctx()))).kind, 'not_found', 'listSnapshots');
  tt.equal((await rejection(p.createSnapshot(id, { name: 'after', description: '', mode: 'memory', marker: marker() }, ctx()))).kind, 'not_found', 'createSnapshot');
  tt.equal((await rejection(p.revertSnapshot(id, s.providerRef, ctx()))).kind, 'not_found', 'revertSnapshot');
  tt.equal((await rejection(p.deleteSnapshot(id, s.providerRef, { children: false }, ctx()))).kind, 'not_found', 'deleteSnapshot');
  tt.notOk((await p.listVms(ctx())).some((v) => v.providerVmId === id), 'no longer listed');
});

t.test('hostile names round-trip; dangerous names are refused', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('hostile');
  // No '/' is allowed in a libvirt name, so the payload touches a relative path: the SSH user's home.
  const home = (await lab.runAsRoot(['getent', 'passwd', lab.ssh.username])).stdout.split(':')[5] ?? '/nonexistent';
  const pwned = join(home, 'PWNED');
  const names = [`it's "quoted"`, 'semi; colon', '$(touch PWNED) `touch PWNED`', '  spaces  around  ', 'unicode 🦀 é 日本', 'a\nnewline'];
  const made: string[] = [];
  for (const name of names) {
    const s = await p.createSnapshot(id, { name, description: `d: ${name}`, mode: 'memory', marker: marker() }, ctx());
    tt.equal(s.name, name, `created ${JSON.stringify(name)}`);
    made.push(s.providerRef);
  }
  const listed = await p.listSnapshots(id, ctx());
  tt.same(listed.map((s) => s.name).sort(), [...names].sort(), 'all listed literally');
  tt.same(listed.map((s) => s.description).sort(), names.map((n) => `d: ${n}`).sort(), 'descriptions literal');
  tt.notOk(existsSync(pwned), 'nothing ran');
  await p.revertSnapshot(id, made[2] ?? '', ctx());
  tt.equal((await p.listSnapshots(id, ctx())).find((s) => s.current)?.name, names[2], 'revert by a hostile name');
  for (const ref of made) await p.deleteSnapshot(id, ref, { children: false }, ctx());
  tt.same(await p.listSnapshots(id, ctx()), [], 'all deleted by name');

  for (const bad of ['a/b', '42', '-x', '', 'é'.repeat(101)]) {
    const e = await rejection(p.createSnapshot(id, { name: bad, description: '', mode: 'memory', marker: marker() }, ctx()));
    tt.equal(e.kind, 'invalid', `refused ${JSON.stringify(bad.slice(0, 20))}: ${e.message}`);
  }
  tt.same(await p.listSnapshots(id, ctx()), [], 'nothing was created');

  // A numeric name made outside Snapvisor: listed (owner external), but revert is refused (danger 1).
  const ext = await lab.virsh('snapshot-create-as', '--domain', lab.domainName('hostile'), '--name', '7');
  tt.equal(ext.code, 0, 'outside snapshot made');
  const outside = (await p.listSnapshots(id, ctx())).find((s) => s.name === '7');
  tt.equal(outside?.marker, null, 'no marker: made outside Snapvisor');
  tt.equal((await rejection(p.revertSnapshot(id, '7', ctx()))).kind, 'unsupported', 'numeric revert refused');
  await p.deleteSnapshot(id, '7', { children: false }, ctx());
});

t.test('SSH session killed mid-create: the retry with the same marker ends with exactly one snapshot', async (tt) => {
  for (const delayMs of [0, 30, 120]) {
    const ssh = createSshRunner(lab.ssh, { log });
    try {
      await dropMidCreate(tt, { lab, vmId: lab.domainUuid('dropped'), delayMs, through: ssh });
    } finally {
      await ssh.close();
    }
  }
});

t.test('SSH refuses us (pinned host key differs) → check says the target answered: reachable, authOk false', async (tt) => {
  const wrongKey = `SHA256:${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
  const p = createKvmProvider('lab', { uri: lab.uri, ssh: { ...lab.ssh, hostKey: wrongKey }, commandTimeoutSec: 60 }, { log });
  providers.push(p);
  const health = await p.check(ctx());
  tt.equal(health.reachable, true, `reachable: sshd answered (${health.message ?? ''})`);
  tt.equal(health.authOk, false, 'authOk false');
  tt.match(health.message ?? '', /host key|authentication/i);
  const e = await rejection(p.listVms(ctx()));
  tt.equal(e.kind, 'auth', 'calls are auth failures');
});

t.test('libvirtd stopped → transient and unhealthy; restarted → works again', async (tt) => {
  const p = provider();
  const id = lab.domainUuid('daemon');
  await p.listSnapshots(id, ctx());
  await stopLibvirtd();
  try {
    const e = await rejection(p.listSnapshots(id, ctx()));
    tt.equal(e.kind, 'transient', `listSnapshots: ${e.message}`);
    tt.equal(e.retry, 'transient', 'a read is safe to retry');
    const health = await p.check(ctx());
    tt.equal(health.reachable, false, `check() says unreachable (${health.message ?? ''})`);
  } finally {
    await ensureLibvirt();
  }
  tt.equal((await p.check(ctx())).reachable, true, 'reachable again');
  const s = await p.createSnapshot(id, { name: 'after-restart', description: '', mode: 'memory', marker: marker() }, ctx());
  tt.equal(s.name, 'after-restart', 'creates again');
});
