/**
 * The SSH runner takes its command encoding as a strategy: against the real sshd lab, a runner
 * given another encoding sends exactly that encoding's command and stdin, reads exit codes the way
 * the encoding says, and waits for the remote side as long as the encoding says. (The POSIX
 * encoding is the default: ssh-transport.test.ts covers it end to end.)
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../providers/contract.ts';
import type { CommandEncoding } from '../../providers/shared/command-encoding.ts';
import { CommandError } from '../../providers/shared/command-runner.ts';
import { quoteArg } from '../../providers/shared/shell-quote.ts';
import { createSshRunner, type SshRunner } from '../../providers/shared/ssh.ts';
import { ensureUser, generateKeyPair, startSshd } from '../labs/sshd/lab.ts';

const USER = 'snapssh';
const root = mkdtempSync(join(tmpdir(), 'ssh-encoding-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
ensureUser(USER);
const clientKey = generateKeyPair(join(root, 'client'), 'id');
const lab = await startSshd({ dir: join(root, 'sshd'), user: USER, authorizedKeys: [clientKey.publicKey] });
t.teardown(() => lab.stop());

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** A request that is not an argv: a shell snippet plus a value, the value passed as data on stdin. */
interface ProbeRequest {
  snippet: string;
  value: string;
}

const seen: { request: ProbeRequest; timeoutMs: number; stdin: string | undefined }[] = [];
const probe: CommandEncoding<ProbeRequest> = {
  name: 'probe',
  remoteKillAfterMs: 0,
  encode(request, ctx) {
    seen.push({ request, timeoutMs: ctx.timeoutMs, stdin: ctx.stdin });
    // No LC_ALL, no `timeout`: what arrives is this command and nothing the transport added.
    return { command: `V=$(cat); ${request.snippet}`, stdin: request.value };
  },
  exitMeaning: (code) => (code === 42 ? 'timeout' : 'exit'),
  label: () => 'probe-program',
};

const runners: SshRunner<ProbeRequest>[] = [];
t.teardown(async () => {
  for (const r of runners) await r.close();
});
function runner(): SshRunner<ProbeRequest> {
  const r = createSshRunner({ host: '127.0.0.1', port: lab.port, username: USER, privateKey: clientKey.privateKey, hostKey: lab.hostKeyLine }, { log: quiet, encoding: probe });
  runners.push(r);
  return r;
}

t.test('the encoding decides the command and its stdin', async (t) => {
  const r = runner();
  const value = "it's; $(touch ran) `x` ü 🧪\nline 2";
  const res = await r.run({ snippet: 'printf "%s|%s" "${LC_ALL-unset}" "$V"', value }, { timeoutMs: 5000, stdin: 'caller stdin' });
  t.same(res, { exitCode: 0, stdout: `unset|${value}`, stderr: '' }, 'no LC_ALL, no timeout wrapper; stdin is the encoding’s');
  t.same(seen.at(-1), { request: { snippet: 'printf "%s|%s" "${LC_ALL-unset}" "$V"', value }, timeoutMs: 5000, stdin: 'caller stdin' }, 'the encoding got the request, timeout and caller stdin');
  const late = await r.run({ snippet: 'sleep 0.5; exit 124', value: '' }, { timeoutMs: 300 });
  t.equal(late.exitCode, 124, '124 after the deadline (POSIX: timed out) is an ordinary exit code to this encoding');
  const quoted = await r.run({ snippet: `printf %s ${quoteArg('a b')}`, value: '' });
  t.equal(quoted.stdout, 'a b');
});

t.test('the encoding decides which exit code means the remote deadline ended the command', async (t) => {
  const r = runner();
  const e = await r.run({ snippet: 'exit 42', value: '' }, { timeoutMs: 5000 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.type(e, CommandError);
  t.equal((e as CommandError).failure, 'timeout');
  t.equal((e as CommandError).sent, true);
  t.match((e as CommandError).message, /^probe-program: timed out after 5000 ms and was killed on snapssh@127\.0\.0\.1/, 'named by the encoding’s label');
});

t.test('the local deadline waits the encoding’s remoteKillAfterMs (0 here) plus the grace, no longer', async (t) => {
  const r = runner();
  const started = Date.now();
  const e = await r.run({ snippet: 'sleep 30', value: '' }, { timeoutMs: 300 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  const took = Date.now() - started;
  t.equal((e as CommandError).failure, 'timeout');
  t.match((e as CommandError).message, /no answer from/);
  t.ok(took >= 2200 && took < 4500, `gave up after ${took} ms: 300 + 0 + the 2000 ms grace (POSIX would wait 5 s more)`);
});
