/**
 * The SSH CommandRunner against a real OpenSSH server on loopback (test/labs/sshd), logging in as
 * the dedicated user `snapssh`. The server runs on this machine, so "is the remote process gone?"
 * is answered by /proc directly.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../providers/contract.ts';
import { CommandError, type CommandRunner } from '../../providers/shared/command-runner.ts';
import { SshAuthError, SshError, createSshRunner, type SshOptions, type SshRunner } from '../../providers/shared/ssh.ts';
import { ensureUser, generateKeyPair, startSshd, type SshdLab } from '../labs/sshd/lab.ts';
import { until } from '../unit/engine-harness.ts';

const USER = 'snapssh';
const PASSWORD = 'hunter2-not-a-real-password';
const PASSPHRASE = 'correct horse battery staple';
const WRONG_PASSPHRASE = 'wrong-passphrase-xyz';

const root = mkdtempSync(join(tmpdir(), 'ssh-transport-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
ensureUser(USER);
const clientKey = generateKeyPair(join(root, 'client'), 'id');
const strangerKey = generateKeyPair(join(root, 'client'), 'stranger');
const otherHost = generateKeyPair(join(root, 'client'), 'other-host');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-f', join(root, 'client', 'locked')]);
const lockedKey = readFileSync(join(root, 'client', 'locked'), 'utf8');

let lab: SshdLab = await startSshd({ dir: join(root, 'sshd'), user: USER, authorizedKeys: [clientKey.publicKey] });
t.teardown(() => lab.stop());

// Every message logged or thrown is kept, to check that no secret ever appears in one.
const seen: string[] = [];
const log: Logger = {
  debug: (o, m) => void seen.push(JSON.stringify(o), m ?? ''),
  info: (o, m) => void seen.push(JSON.stringify(o), m ?? ''),
  warn: (o, m) => void seen.push(JSON.stringify(o), m ?? ''),
  error: (o, m) => void seen.push(JSON.stringify(o), m ?? ''),
  child: () => log,
};

const runners: SshRunner[] = [];
function runner(over: Partial<SshOptions> = {}, port = lab.port, logger: Logger = log): SshRunner {
  const r = createSshRunner({ host: '127.0.0.1', port, username: USER, privateKey: clientKey.privateKey, hostKey: lab.hostKeyLine, ...over }, { log: logger });
  runners.push(r);
  return r;
}
t.teardown(async () => {
  for (const r of runners) await r.close();
});

async function failure(p: Promise<unknown>): Promise<CommandError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof Error) seen.push(e.message, String(e.stack));
    if (e instanceof CommandError) return e;
    throw e;
  }
  throw new Error('expected the command to fail');
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (!existsSync(`/proc/${pid}`)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !existsSync(`/proc/${pid}`);
}

async function remoteTmp(r: CommandRunner): Promise<string> {
  const res = await r.run(['mktemp', '-d']);
  return res.stdout.trim();
}

const HOSTILE = ['', ' ', "it's", '"q"', 'a; touch ran', '$(touch ran)', '`touch ran`', 'l1\nl2', '\t', 'ünï 快照 🧪', '-n', '--', '*', '~', '$HOME', '\\', ' trailing  '];

t.test('argv, exit codes, stdout, stderr and stdin are byte-exact', async (t) => {
  const r = runner();
  const cwd = await remoteTmp(r);
  const printed = await r.run(['sh', '-c', 'cd "$1" && shift && printf "%s\\0" "$@"', 'sh', cwd, ...HOSTILE]);
  t.equal(printed.exitCode, 0, printed.stderr);
  t.same(printed.stdout.split('\0').slice(0, -1), HOSTILE, 'each argument arrived as one, unchanged');
  t.same((await r.run(['ls', '-A', cwd])).stdout, '', 'nothing ran: no file was created');

  const failed = await r.run(['sh', '-c', 'printf "out \\n" ; printf "%s" "$1" >&2; exit 7', 'sh', "err 'ü' \n"]);
  t.same(failed, { exitCode: 7, stdout: 'out \n', stderr: "err 'ü' \n" }, 'whitespace is not trimmed');

  const killed = await r.run(['sh', '-c', 'kill -TERM $$']);
  t.equal(killed.exitCode, 143, 'killed by a signal: 128 + SIGTERM');

  const stdin = 'line one\nünï 🧪\n';
  t.equal((await r.run(['cat'], { stdin })).stdout, stdin);

  // Multi-byte characters split across SSH packets must not be mangled.
  const big = await r.run(['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do printf "ü快🧪"; i=$((i+1)); done']);
  t.equal(big.stdout, 'ü快🧪'.repeat(20000));

  const chunks: string[] = [];
  const withStderr = await r.run(['sh', '-c', 'printf "progress 50%%\\n" >&2; printf "progress ü\\n" >&2'], { onStderr: (c) => chunks.push(c) });
  t.equal(chunks.join(''), 'progress 50%\nprogress ü\n', 'onStderr sees the stderr text');
  t.equal(withStderr.stderr, 'progress 50%\nprogress ü\n');

  const env = await r.run(['sh', '-c', 'printf %s "$LC_ALL"']);
  t.equal(env.stdout, 'C', 'every remote command runs with LC_ALL=C');
  await r.run(['rmdir', cwd]);
});

t.test('the host key may be pinned as a SHA256 fingerprint', async (t) => {
  const r = runner({ hostKey: lab.hostKeyFingerprint });
  t.equal((await r.run(['echo', 'ok'])).stdout, 'ok\n');
});

const CONCURRENT = 'echo "$SSH_CONNECTION"; date +%s.%N; sleep 0.4; date +%s.%N';

/** Largest number of commands running at the same instant, from their remote start/end times. */
function peakOverlap(outputs: string[]): { peak: number; connections: number } {
  const lines = outputs.map((o) => o.trim().split('\n'));
  const events = lines.flatMap((l) => [
    { at: Number(l[1]), delta: 1 },
    { at: Number(l[2]), delta: -1 },
  ]);
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let now = 0;
  let peak = 0;
  for (const e of events) peak = Math.max(peak, (now += e.delta));
  return { peak, connections: new Set(lines.map((l) => l[0])).size };
}

t.test('20 concurrent commands share one connection, never more than maxChannels (10) at once', async (t) => {
  // The lab server allows 64 sessions per connection, so only the runner's own cap limits the peak.
  const r = runner({ maxChannels: 10 });
  const results = await Promise.all(Array.from({ length: 20 }, () => r.run(['sh', '-c', CONCURRENT])));
  t.ok(results.every((x) => x.exitCode === 0), 'all 20 succeeded');
  const { peak, connections } = peakOverlap(results.map((x) => x.stdout));
  t.equal(connections, 1, 'one SSH connection (same client port) for all of them');
  t.ok(peak <= 10, `at most 10 at once (peak ${peak})`);
  t.ok(peak >= 5, `they did run concurrently (peak ${peak})`);
});

t.test("against OpenSSH's default MaxSessions 10, maxChannels 10 works and more is refused", async (t) => {
  const strict = await startSshd({ dir: join(root, 'sshd-strict'), user: USER, authorizedKeys: [clientKey.publicKey], maxSessions: 10 });
  t.teardown(() => strict.stop());
  const r = runner({ hostKey: strict.hostKeyLine, maxChannels: 10 }, strict.port);
  const results = await Promise.all(Array.from({ length: 20 }, () => r.run(['sh', '-c', CONCURRENT])));
  t.ok(results.every((x) => x.exitCode === 0), 'all 20 succeeded');
  t.equal(peakOverlap(results.map((x) => x.stdout)).connections, 1, 'on one connection');

  // Control: without the cap the server refuses channels (longer than the runner's open retries).
  const uncapped = runner({ hostKey: strict.hostKeyLine, maxChannels: 20 }, strict.port);
  const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => uncapped.run(['sleep', '2'])));
  const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
  t.ok(refused.length > 0, `with maxChannels 20, the server refused ${refused.length} channel(s)`);
  for (const o of refused) {
    t.ok(o.reason instanceof CommandError && o.reason.failure === 'spawn' && !o.reason.sent, 'a refused channel is spawn, not sent');
  }
});

t.test('a timeout kills the remote command', async (t) => {
  const r = runner();
  const dir = await remoteTmp(r);
  const started = Date.now();
  const err = await failure(r.run(['sh', '-c', 'echo $$ > "$1/pid"; exec sleep 60', 'sh', dir], { timeoutMs: 1_000 }));
  t.equal(err.failure, 'timeout');
  t.equal(err.sent, true);
  t.ok(Date.now() - started < 5_000, 'reported at the remote deadline, not after 60 s');
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  t.ok(pid > 1, `remote pid ${pid}`);
  t.ok(await gone(pid, 3_000), 'the remote sleep is gone');
  await r.run(['rm', '-r', dir]);
});

t.test('abort closes the channel and stops the remote command; queued callers can abort too', async (t) => {
  const r = runner({ maxChannels: 1 });
  const dir = await remoteTmp(r);
  const ac = new AbortController();
  const running = r.run(['sh', '-c', 'echo $$ > "$1/pid"; exec sleep 60', 'sh', dir], { signal: ac.signal, timeoutMs: 60_000 });
  // The only channel is busy: this one waits in the queue.
  const queuedAc = new AbortController();
  const queued = r.run(['touch', join(dir, 'queued-ran')], { signal: queuedAc.signal });
  const until = Date.now() + 5_000;
  while (!existsSync(join(dir, 'pid')) && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));

  queuedAc.abort();
  const qErr = await failure(queued);
  t.equal(qErr.failure, 'aborted');
  t.equal(qErr.sent, false, 'a queued command was never sent');

  ac.abort();
  const err = await failure(running);
  t.equal(err.failure, 'aborted');
  t.equal(err.sent, true);
  t.ok(await gone(pid, 3_000), 'the remote sleep is gone');
  t.notOk(existsSync(join(dir, 'queued-ran')), 'the aborted queued command never ran');
  t.equal((await r.run(['echo', 'next'])).stdout, 'next\n', 'the channel slot was given back');
  await r.run(['rm', '-r', dir]);
});

t.test('a wrong host key is refused before any command runs', async (t) => {
  const marker = join(root, 'client', 'hostkey-ran');
  const impostorPin = `[127.0.0.1]:${lab.port} ${otherHost.publicKey}`;
  for (const hostKey of [impostorPin, 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']) {
    const r = runner({ hostKey });
    const err = await failure(r.run(['touch', marker]));
    t.ok(err instanceof SshAuthError, 'SshAuthError');
    t.equal((err as SshError).transport, 'hostkey');
    t.equal(err.sent, false);
    t.match(err.message, `${USER}@127.0.0.1:${lab.port}`, 'names user@host:port');
    t.match(err.message, lab.hostKeyFingerprint, 'shows the key the server presented');
  }
  t.notOk(existsSync(marker), 'no command ran');
  t.throws(() => runner({ hostKey: '' }), /no host key/, 'no pin, no runner');
});

t.test('authentication failures are SshAuthError naming user@host:port, never the secret', async (t) => {
  const cases: Array<[string, Partial<SshOptions>]> = [
    ['a key the server does not know', { privateKey: strangerKey.privateKey }],
    ['a password (password auth is off)', { privateKey: undefined, password: PASSWORD }],
    ['an encrypted key with the wrong passphrase', { privateKey: lockedKey, passphrase: WRONG_PASSPHRASE }],
  ];
  for (const [what, over] of cases) {
    const err = await failure(runner(over).run(['true']));
    t.ok(err instanceof SshAuthError, `${what}: SshAuthError (${err.message})`);
    t.equal((err as SshError).transport, 'auth', what);
    t.equal(err.sent, false, what);
    t.match(err.message, `${USER}@127.0.0.1:${lab.port}`, what);
  }
});

t.test('a connection dropped mid-command fails it as disconnected; the next command reconnects', async (t) => {
  const r = runner();
  const before = (await r.run(['sh', '-c', 'echo "$SSH_CONNECTION"'])).stdout;
  const pending = r.run(['sleep', '5']);
  await new Promise((res) => setTimeout(res, 300));
  lab.killSessions();
  const err = await failure(pending);
  t.ok(err instanceof SshError, 'SshError');
  t.equal((err as SshError).transport, 'disconnected');
  t.equal(err.failure, 'disconnected');
  t.equal(err.sent, true, 'the command may have acted');
  const after = (await r.run(['sh', '-c', 'echo "$SSH_CONNECTION"'])).stdout;
  t.not(after, before, 'a new connection (different client port)');
});

t.test('sshd down: connect error with backoff; sshd back: works again', async (t) => {
  // This runner's own log (forwarded to the shared one): other runners' connections drop too.
  let lost = false;
  const own: Logger = { ...log, warn: (o, m) => ((lost ||= (m ?? '').includes('ssh connection lost')), log.warn(o, m)), child: () => own };
  const r = runner({}, lab.port, own);
  t.equal((await r.run(['echo', 'up'])).stdout, 'up\n');
  const { port } = lab;
  await lab.stop();
  // sshd's exit closes our pooled connection, but the client sees the close a moment later; a command
  // sent in between fails as 'disconnected' (the test above covers that). Here: once it is known down.
  await until(() => lost, 5_000);
  const first = await failure(r.run(['echo', 'down']));
  t.ok(first instanceof SshError && first.transport === 'connect', `connect error: ${first.message}`);
  t.equal(first.failure, 'spawn');
  t.equal(first.sent, false);
  const t0 = Date.now();
  await failure(r.run(['echo', 'down']));
  t.ok(Date.now() - t0 >= 400, 'the second attempt waited for the backoff (0.5 s)');

  lab = await startSshd({ dir: join(root, 'sshd'), user: USER, authorizedKeys: [clientKey.publicKey], port });
  t.equal((await r.run(['echo', 'back'])).stdout, 'back\n');
});

t.test('close() ends the runner', async (t) => {
  const r = runner();
  await r.run(['true']);
  await r.close();
  const err = await failure(r.run(['true']));
  t.equal(err.failure, 'spawn');
  t.match(err.message, /closed/);
});

t.test('no secret appears in any error or log message', async (t) => {
  const keyLines = [clientKey.privateKey, strangerKey.privateKey, lockedKey]
    .flatMap((k) => k.split('\n'))
    .filter((l) => l.length > 20 && !l.startsWith('-----'));
  t.ok(seen.length > 10, `checked ${seen.length} messages`);
  const text = seen.join('\n');
  for (const secret of [PASSWORD, PASSPHRASE, WRONG_PASSPHRASE, ...keyLines]) {
    t.notOk(text.includes(secret), `secret not leaked: ${secret.slice(0, 6)}…`);
  }
});
