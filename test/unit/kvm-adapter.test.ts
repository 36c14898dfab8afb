/**
 * Pure parts of the KVM adapter: name rules (the reproduced dangers), overlay naming, the version
 * report, and the mapping of libvirt's error messages (taken from reference/kvm.md) to error kinds.
 */
import t from 'tap';
import { fromRunError, fromVirshFailure, NO_DOMAIN, NO_SNAPSHOT } from '../../providers/kvm/errors.ts';
import { descriptionWithMarker, splitMarker } from '../../providers/shared/description-marker.ts';
import { memoryPath, nameProblems, overlayPath, specValue } from '../../providers/kvm/naming.ts';
import { parseOptions } from '../../providers/kvm/options.ts';
import { parseVersion, versionAtLeast } from '../../providers/kvm/parse.ts';
import { CommandError } from '../../providers/shared/command-runner.ts';
import { SshAuthError } from '../../providers/shared/ssh.ts';
import { ProviderError } from '../../providers/contract.ts';

const call = { what: 'do it', mutating: true };
const fail = (stderr: string) => fromVirshFailure({ exitCode: 1, stdout: '', stderr }, call);

t.test('name rules', async (t) => {
  t.same(nameProblems('nightly "q" ; $(x) 🦀\nline2'), [], 'hostile but harmless names pass');
  for (const bad of ['', 'a/b', '9', '007', '-rf', 'x'.repeat(201), 'a\0b']) t.ok(nameProblems(bad).length > 0, `refused: ${JSON.stringify(bad.slice(0, 10))}`);
  t.same(nameProblems('x'.repeat(200)), [], '200 bytes is fine');
  t.ok(nameProblems('é'.repeat(101)).length > 0, 'the limit is in bytes');
  t.same(nameProblems('9a'), [], 'digits plus a letter are fine');
});

t.test('overlay names: next to the leaf, safe characters, unique per marker, numbered on collision', async (t) => {
  const a = overlayPath('/var/lib/img/web.qcow2', 'web 1', 'vda', 'nightly "q"/../x', 'snapvisor:job1');
  t.match(a, /^\/var\/lib\/img\/web_1\.vda\.nightly_q_\.\._x-[0-9a-f]{10}\.qcow2$/);
  t.not(a, overlayPath('/var/lib/img/web.qcow2', 'web 1', 'vda', 'nightly "q"/../x', 'snapvisor:job2'), 'another job, another file');
  t.match(overlayPath('/i/w.qcow2', 'w', 'vda', 's', 'm', 2), /-2\.qcow2$/);
  t.match(memoryPath('/i/w.qcow2', 'w', 's', 'm'), /^\/i\/w\.mem\.s-[0-9a-f]{10}\.mem$/);
  t.equal(specValue('/a,b/c'), '/a,,b/c', 'commas doubled for --diskspec');
});

t.test('marker in the description', async (t) => {
  t.same(splitMarker(descriptionWithMarker('hello\n\nworld', 'snapvisor:j')), { description: 'hello\n\nworld', marker: 'snapvisor:j' });
  t.same(splitMarker(descriptionWithMarker('', 'snapvisor:j')), { description: '', marker: 'snapvisor:j' });
  t.same(splitMarker('made by hand'), { description: 'made by hand', marker: null });
});

t.test('version', async (t) => {
  const v = parseVersion('Compiled against library: libvirt 9.0.0\nUsing library: libvirt 9.0.0\nUsing API: QEMU 9.0.0\nRunning hypervisor: QEMU 7.2.22\nRunning against daemon: 9.0.0\n');
  t.same(v, { library: '9.0.0', daemon: '9.0.0', hypervisor: 'QEMU 7.2.22' });
  t.notOk(versionAtLeast('9.0.0', 9, 9));
  t.ok(versionAtLeast('9.9.0', 9, 9));
  t.ok(versionAtLeast('10.0.0', 9, 9));
  t.notOk(versionAtLeast(null, 9, 0));
});

t.test('libvirt errors → kinds', async (t) => {
  const cases: Array<[string, string, string?]> = [
    ["error: failed to get domain 'x'", 'not_found', NO_DOMAIN],
    ["error: Domain snapshot not found: no domain snapshot with matching name 'x'", 'not_found', NO_SNAPSHOT],
    ['error: operation failed: domain moment x already exists', 'conflict'],
    ["error: invalid snapshot name 'a/b': name can't contain '/'", 'invalid'],
    ['error: argument unsupported: QEMU guest agent is not configured', 'conflict'],
    ['error: Guest agent is not responding: QEMU guest agent is not connected', 'conflict'],
    ["error: block copy still active: disk 'vda' already in active block job", 'conflict'],
    ['error: Failed to revert snapshot x\nerror: Requested operation is not valid: domain has active block job', 'conflict'],
    ['error: Failed to revert snapshot x\nerror: unsupported configuration: revert to external snapshot not supported yet', 'unsupported'],
    ['error: Operation not supported: deleting external snapshot that has internal snapshot as parent not supported', 'unsupported'],
    ['error: XML error: memory state cannot be saved with offline or disk-only snapshot', 'conflict'],
    ["error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/run/libvirt/libvirt-sock': No such file or directory", 'transient'],
    ['error: Cannot recv data: Connection reset by peer', 'transient'],
    ['error: invalid argument: could not find base disk source in disk source chain', 'internal'],
  ];
  for (const [stderr, kind, code] of cases) {
    const e = fail(stderr);
    t.equal(e.kind, kind, stderr.split('\n').pop() ?? '');
    if (code) t.equal(e.nativeCode, code);
    t.notMatch(e.message, /(^|: |\n)error: /, 'prefix stripped');
  }
  t.match(fail('error: argument unsupported: QEMU guest agent is not configured').message, /qemu-guest-agent/, 'says what is missing');
  t.match(fail('error: Failed to revert snapshot x\nerror: something odd').message, /something odd/, 'the reason line, not the generic one');
  t.equal(fail('error: Failed to connect socket').retry, 'transient', 'nothing applied: safe to retry');
});

t.test('transport errors → kinds', async (t) => {
  const timeout = fromRunError(new CommandError('timeout', 'virsh: timed out', true), call);
  t.same([timeout.kind, timeout.retry], ['transient', 'uncertain'], 'a mutating call that timed out is uncertain');
  const readTimeout = fromRunError(new CommandError('timeout', 'x', true), { what: 'read', mutating: false });
  t.equal(readTimeout.retry, 'transient');
  const dropped = fromRunError(new CommandError('disconnected', 'ssh dropped', true), call);
  t.same([dropped.kind, dropped.retry], ['transient', 'uncertain']);
  const neverSent = fromRunError(new CommandError('spawn', 'connect refused', false), call);
  t.same([neverSent.kind, neverSent.retry], ['transient', 'transient']);
  const auth = fromRunError(new SshAuthError('hostkey', 'ssh u@h:22: host key mismatch', 'u@h:22'), call);
  t.equal(auth.kind, 'auth');
  t.ok(auth instanceof ProviderError);
});

t.test('check: one health rule — an SSH refusal is reachable with authOk false, a dead connection unreachable', async (t) => {
  const { createKvmProvider } = await import('../../providers/kvm/index.ts');
  const { silentLogger } = await import('../fixtures/fake-provider.ts');
  const log = silentLogger();
  const ctx = { signal: new AbortController().signal, log, progress: () => {} };
  const throwing = (e: Error) => createKvmProvider('t', {}, { log, runner: { run: async () => Promise.reject(e) } });
  t.match(await throwing(new SshAuthError('auth', 'ssh u@h:22: all authentication methods failed', 'u@h:22')).check(ctx), { reachable: true, authOk: false, message: /SSH authentication failed/ });
  t.match(await throwing(new CommandError('spawn', 'connect ECONNREFUSED', false)).check(ctx), { reachable: false, message: /ECONNREFUSED/ });
  const up = createKvmProvider('t', {}, { log, runner: { run: async () => ({ exitCode: 0, stdout: 'Running against daemon: 9.0.0\nRunning hypervisor: QEMU 7.2.0\n', stderr: '' }) } });
  t.same(await up.check(ctx), { reachable: true, version: 'libvirt 9.0.0, QEMU 7.2.0', authOk: true });
});

t.test('options', async (t) => {
  const o = parseOptions('t', {});
  t.same(o, { uri: 'qemu:///system', ssh: undefined, sessions: true, commandTimeoutSec: 300, snapshotStyle: 'internal', offline: { shutdownTimeoutSec: 120, forcePowerOff: false }, offlineMerge: 'start-paused', consolidate: { maxChainDepth: 1, timeoutSec: 3600 } });
  t.throws(() => parseOptions('t', { bogus: 1 }), /unknown option 'bogus'/);
  t.same(parseOptions('t', { offline: { forcePowerOff: true } }).offline, { shutdownTimeoutSec: 120, forcePowerOff: true }, 'the shared offline option');
  t.throws(() => parseOptions('t', { offline: { forceOff: true } }), /offline\.forceOff was renamed to offline\.forcePowerOff/, 'the old key is refused with its new name');
  t.throws(() => parseOptions('t', { snapshotStyle: 'weird' }), /snapshotStyle/);
  t.throws(() => parseOptions('t', { ssh: { host: 'h', username: 'u', hostKey: 'SHA256:x' } }), /privateKey' or 'password/);
  let message = '';
  try {
    parseOptions('t', { ssh: { host: 'h', username: 'u', hostKey: 'k', password: 'hunter2', extra: 1 } });
  } catch (e) {
    message = e instanceof Error ? e.message : '';
  }
  t.match(message, /unknown option 'ssh.extra'/);
  t.notMatch(message, /hunter2/, 'secrets never echoed');
});
