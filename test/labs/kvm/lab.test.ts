// The KVM lab itself: real libvirtd, real sshd, a non-root user reaching qemu:///system over SSH.
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKvmLab, ensureLibvirt } from './lab.ts';

function ssh(lab: Awaited<ReturnType<typeof createKvmLab>>, dir: string, command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const key = join(dir, 'client-key');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(key, lab.ssh.privateKey, { mode: 0o600 });
  writeFileSync(knownHosts, `${lab.ssh.hostKey}\n`);
  const args = ['-i', key, '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
    '-p', String(lab.ssh.port), `${lab.ssh.username}@${lab.ssh.host}`, command];
  return new Promise((resolve) => {
    execFile('ssh', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 255) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('ensureLibvirt is idempotent and reports the library version', async (t) => {
  const a = await ensureLibvirt();
  const b = await ensureLibvirt();
  t.match(a.version, /^\d+\.\d+\.\d+$/);
  t.same(a, b);
});

t.test('a lab: domains as asked, reachable over SSH by the non-root lab user, gone after cleanup', async (t) => {
  const dir = t.testdir();
  const lab = await createKvmLab({
    dir,
    domains: [
      { name: 'web01', running: true, agentChannel: true },
      { name: 'db01', running: false },
    ],
  });
  t.teardown(() => lab.cleanup());
  t.equal(lab.uri, 'qemu:///system');
  t.equal(lab.ssh.username, 'snaplab');
  t.not(lab.domainName('web01'), 'web01', 'prefixed per lab');
  t.throws(() => lab.domainUuid('nope'), /no domain/);

  const state = await lab.virsh('domstate', lab.domainName('web01'));
  t.equal(state.stdout.trim(), 'running');
  t.equal((await lab.virsh('domstate', lab.domainName('db01'))).stdout.trim(), 'shut off');
  t.equal((await lab.virsh('domuuid', lab.domainName('db01'))).stdout.trim(), lab.domainUuid('db01'));
  const xml = (await lab.virsh('dumpxml', lab.domainName('web01'))).stdout;
  t.match(xml, /<domain type='qemu'/);
  t.match(xml, /org\.qemu\.guest_agent\.0/);
  t.notMatch((await lab.virsh('dumpxml', lab.domainName('db01'))).stdout, /guest_agent/);

  const remote = await ssh(lab, dir, `id -un; LC_ALL=C virsh -c qemu:///system domuuid ${lab.domainName('web01')}`);
  t.equal(remote.code, 0, remote.stderr);
  t.same(remote.stdout.trim().split('\n'), ['snaplab', lab.domainUuid('web01')]);

  // The lab user can snapshot (this is what the provider does).
  const snap = await ssh(lab, dir, `LC_ALL=C virsh -c qemu:///system snapshot-create-as ${lab.domainName('web01')} s1`);
  t.equal(snap.code, 0, snap.stderr);

  const disk = lab.diskPath('web01');
  t.ok(existsSync(disk));
  await lab.cleanup();
  await lab.cleanup();
  t.equal((await lab.virsh('domstate', lab.domainName('web01'))).code, 1, 'domain undefined (with its snapshot metadata)');
  t.notOk(existsSync(disk), 'disk removed');
  t.not((await ssh(lab, dir, 'true')).code, 0, 'sshd stopped');
});

t.test('two labs side by side do not collide', async (t) => {
  const dir = t.testdir();
  const [a, b] = await Promise.all([
    createKvmLab({ dir: join(dir, 'a'), domains: [{ name: 'vm', running: false }] }),
    createKvmLab({ dir: join(dir, 'b'), domains: [{ name: 'vm', running: false }] }),
  ]);
  t.teardown(async () => {
    await a.cleanup();
    await b.cleanup();
  });
  t.not(a.domainName('vm'), b.domainName('vm'));
  t.not(a.domainUuid('vm'), b.domainUuid('vm'));
  t.not(a.ssh.port, b.ssh.port);
});
