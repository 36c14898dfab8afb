/**
 * Persistent virsh sessions against the real lab, through SSH: every command the adapter sends gives
 * the same exit code, stdout and stderr through a session as one virsh process would; hostile names
 * round-trip exactly (the ones virsh's line editor cannot carry go one-shot, counted); a hung or
 * cancelled command ends its session's remote virsh; an SSH drop mid-command is `sent` (uncertain)
 * and a create killed that way, retried with its marker, ends with exactly one snapshot.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { virshSessionProtocol } from '../../providers/kvm/virsh-session.ts';
import { CommandError, type RunResult } from '../../providers/shared/command-runner.ts';
import { createTargetTransport, withSessions } from '../../providers/shared/ssh-target.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { failureOf } from '../fixtures/provider-error.ts';
import { dropMidCreate } from '../labs/kvm/dropped-create.ts';
import { createKvmLab, ensureLibvirt, stopLibvirtd } from '../labs/kvm/lab.ts';
import { holdLabLock } from '../labs/lab-lock.ts';

const log = silentLogger();
const dir = mkdtempSync(join('/tmp', 'snapvisor-kvm-sessions-'));
chmodSync(dir, 0o755);
// This file stops libvirtd and counts the lab user's virsh sessions: it runs with no other KVM file.
await holdLabLock('kvm');
const lab = await createKvmLab({ dir, domains: [{ name: 'names', running: true }, { name: 'off', running: false }, { name: 'drop', running: true }] });
const transports: { close(): Promise<void> }[] = [];
t.teardown(async () => {
  await ensureLibvirt(); // in case the restart case failed half-way
  await Promise.allSettled(transports.map((x) => x.close()));
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function sessionTransport() {
  const base = createTargetTransport(lab.ssh, log);
  const s = withSessions(base, virshSessionProtocol(lab.uri), { log, size: 2 });
  transports.push(s);
  const sessions = s.sessions;
  if (sessions === undefined) throw new Error('an SSH transport opens streams');
  return { oneShot: base.runner, sessions };
}

const virsh = (...args: string[]) => ['virsh', '-c', lab.uri, ...args];
/** Remote virsh processes of this lab's user that are sessions (a virsh with no command after its URI). */
async function remoteSessions(): Promise<number> {
  const r = await lab.runAsRoot(['pgrep', '-c', '-u', lab.ssh.username, '-f', `^virsh -c ${lab.uri}$`]);
  return Number(r.stdout.trim() || '0');
}
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('every command the adapter sends: the same result through a session as one-shot', async (tt) => {
  const { oneShot, sessions } = sessionTransport();
  const dom = lab.domainUuid('names');
  const mk = await oneShot.run(virsh('snapshot-create-as', '--domain', dom, '--name', 'base', '--description', 'd'));
  tt.equal(mk.exitCode, 0, mk.stderr);
  const commands = [
    ['version', '--daemon'],
    ['list', '--all', '--uuid'],
    ['dumpxml', '--domain', dom],
    ['domstate', '--domain', dom],
    ['domstate', '--domain', lab.domainUuid('off')],
    ['snapshot-list', '--domain', dom, '--name'],
    ['snapshot-list', '--domain', dom, '--external', '--name'],
    ['snapshot-list', '--domain', dom, '--from', 'base', '--name'],
    ['snapshot-dumpxml', '--domain', dom, '--snapshotname', 'base'],
    ['snapshot-current', '--domain', dom, '--name'],
    ['snapshot-current', '--domain', lab.domainUuid('off'), '--name'],
    ['snapshot-dumpxml', '--domain', dom, '--snapshotname', 'no such'],
    ['domstate', '--domain', randomUUID()],
    ['blockjob', '--domain', dom, '--path', 'vda', '--info'],
    ['no-such-command'],
  ];
  let carried = 0;
  for (const c of commands) {
    const one: RunResult = await oneShot.run(virsh(...c));
    const before = sessions.stats().session;
    const through = await sessions.run(virsh(...c));
    carried += sessions.stats().session - before;
    tt.same(through, one, `${c.join(' ')} (exit ${one.exitCode})`);
  }
  tt.equal(carried, commands.length, 'all of them went through a session');
  tt.equal(sessions.stats().opened, 1, 'one session served them all, one after the other');
  await oneShot.run(virsh('snapshot-delete', '--domain', dom, '--snapshotname', 'base'));
});

t.test('hostile names round-trip exactly; what the line editor cannot carry goes one-shot', async (tt) => {
  const { sessions } = sessionTransport();
  const dom = lab.domainUuid('names');
  const carried = [`it's "quoted"`, `'\\''`, 'semi; colon', '$(touch PWNED) `id`', '  spaces  around  ', 'unicode 🦀 é 日本', '--leading-dashes', '#hash', 'back\\slash', '!!', '~ * ?'];
  const notCarried = ['a\nnewline', 'a\ttab', 'del\u007f'];
  for (const name of [...carried, ...notCarried]) {
    const before = sessions.stats();
    const r = await sessions.run(virsh('snapshot-create-as', '--domain', dom, '--name', name, '--description', `d: ${name}`));
    tt.equal(r.exitCode, 0, `created ${JSON.stringify(name)} ${r.stderr}`);
    const after = sessions.stats();
    tt.equal(after.session - before.session, notCarried.includes(name) ? 0 : 1, `${JSON.stringify(name)} ${notCarried.includes(name) ? 'one-shot' : 'through the session'}`);
  }
  for (const name of [...carried, ...notCarried]) {
    const xml = await sessions.run(virsh('snapshot-dumpxml', '--domain', dom, '--snapshotname', name));
    tt.equal(xml.exitCode, 0, `read back ${JSON.stringify(name)}`);
    const direct = await lab.virsh('snapshot-dumpxml', '--domain', lab.domainName('names'), '--snapshotname', name);
    tt.equal(direct.code, 0, `libvirt has exactly ${JSON.stringify(name)}`);
    tt.equal(xml.stdout, `${direct.stdout}`, 'the same XML as libvirt gives root');
  }
  for (const name of [...carried, ...notCarried]) {
    const d = await sessions.run(virsh('snapshot-delete', '--domain', dom, '--snapshotname', name));
    tt.equal(d.exitCode, 0, `deleted ${JSON.stringify(name)}`);
  }
  tt.equal((await lab.runAsRoot(['sh', '-c', 'ls ~snaplab/PWNED 2>/dev/null | wc -l'])).stdout.trim(), '0', 'nothing ran');
});

t.test('a hung or cancelled command ends its remote virsh; the next command gets a fresh session', async (tt) => {
  const { sessions } = sessionTransport();
  await sessions.run(virsh('version'));
  await until('one session runs on the host', async () => (await remoteSessions()) >= 1);
  const baseline = await remoteSessions();
  const e = await failureOf(sessions.run(virsh('event', '--all', '--timeout', '60'), { timeoutMs: 1_000 }), CommandError);
  tt.ok(e.failure === 'timeout' && e.sent, `timed out, sent (${e.message})`);
  await until('the hung virsh is gone from the host', async () => (await remoteSessions()) < baseline);

  await sessions.run(virsh('version'));
  const ac = new AbortController();
  const cancelled = sessions.run(virsh('event', '--all', '--timeout', '60'), { signal: ac.signal });
  setTimeout(() => ac.abort(), 300);
  const a = await failureOf(cancelled, CommandError);
  tt.ok(a.failure === 'aborted' && a.sent, `aborted, sent (${a.message})`);
  await until('the cancelled virsh is gone from the host', async () => (await remoteSessions()) < baseline);
  tt.equal((await sessions.run(virsh('domstate', '--domain', lab.domainUuid('off')))).stdout, 'shut off\n\n', 'works again');
});

t.test('SSH dropped mid-command: the command is sent (uncertain), the next one reconnects', async (tt) => {
  const { sessions } = sessionTransport();
  await sessions.run(virsh('version'));
  const running = sessions.run(virsh('event', '--all', '--timeout', '60'));
  await new Promise((r) => setTimeout(r, 300));
  lab.killSshSessions();
  const e = await failureOf(running, CommandError);
  tt.ok(e.failure === 'disconnected' && e.sent, `disconnected, sent (${e.message})`);
  tt.equal((await sessions.run(virsh('domstate', '--domain', lab.domainUuid('off')))).stdout, 'shut off\n\n', 'a new connection and session');
});

t.test('a create killed by an SSH drop inside a session: uncertain, and the retry with its marker makes exactly one', async (tt) => {
  for (const delayMs of [0, 30, 120]) {
    const { sessions } = sessionTransport();
    const oneShotBefore = sessions.stats().oneShot;
    await dropMidCreate(tt, {
      lab,
      vmId: lab.domainUuid('drop'),
      delayMs,
      through: sessions,
      afterFirst: () => tt.equal(sessions.stats().oneShot, oneShotBefore, 'the first attempt went through sessions only, its create included'),
    });
  }
});

t.test('libvirtd restarted under a session: its commands fail while it is down, then work again, nothing left over', async (tt) => {
  const { oneShot, sessions } = sessionTransport();
  const state = virsh('domstate', '--domain', lab.domainUuid('off'));
  tt.equal((await sessions.run(state)).exitCode, 0);
  // Restarted while the session idles: virsh notices, reconnects before the next command.
  await stopLibvirtd();
  await ensureLibvirt();
  tt.same(await sessions.run(state), await oneShot.run(state), 'the next command as if nothing happened');
  tt.same(await sessions.run(state), await oneShot.run(state), 'and the one after');
  await stopLibvirtd();
  try {
    const down = await sessions.run(state);
    tt.equal(down.exitCode, 1, 'a command while libvirtd is down fails');
    tt.match(down.stderr, /Failed to connect socket|failed to connect to the hypervisor/, `with the reason (${down.stderr.trim()})`);
  } finally {
    await ensureLibvirt();
  }
  tt.same(await sessions.run(state), await oneShot.run(state), 'works again after the restart');
  tt.equal(sessions.stats().opened, 1, 'the same session all along');
});
