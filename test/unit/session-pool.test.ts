// The session pool, driving real local `sh` processes through a small test protocol: every path a
// request can take (session, one-shot, timeout, abort, a dying or garbling interpreter, idle close).
import t from 'tap';
import { CommandError, createLocalRunner } from '../../providers/shared/command-runner.ts';
import { openLocalStream } from '../../providers/shared/local-stream.ts';
import { createSessionRunner, type SessionPoolOptions } from '../../providers/shared/session-pool.ts';
import { SessionUnsupported, type SessionProtocol } from '../../providers/shared/session-protocol.ts';
import { quoteArg } from '../../providers/shared/shell-quote.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { failureOf } from '../fixtures/provider-error.ts';

type Argv = readonly string[];

/** `sh` reading commands: each request is its argv quoted, then its exit code and a sentinel on each stream. */
function shProtocol(over: Partial<SessionProtocol<Argv>> & { hello?: string } = {}): SessionProtocol<Argv> {
  let sessions = 0;
  return {
    name: 'sh',
    command: 'exec sh',
    remoteKillAfterMs: 0,
    carries: (argv) => argv[0] !== 'one-shot',
    open() {
      const token = `tok${++sessions}x`;
      const frameOf = (line: string, seq: number) => `${line}\nprintf '\\n%s %s %s\\n' ${token} ${seq} "$?"; printf '%s %s\\n' ${token} ${seq} >&2\n`;
      return {
        hello: () => frameOf(over.hello ?? 'echo hello', 0),
        frame: (argv, { seq }) => frameOf(argv.map(quoteArg).join(' '), seq),
        take({ stdout, stderr }, seq) {
          const m = new RegExp(`\\n${token} ${seq} (\\d+)\\n`).exec(stdout);
          const errMark = `${token} ${seq}\n`;
          const e = stderr.indexOf(errMark);
          if (!m || e < 0) return undefined;
          if (seq === 0 && stdout.slice(0, m.index) !== 'hello\n') throw new SessionUnsupported(`hello said ${JSON.stringify(stdout.slice(0, m.index))}`);
          if (stdout.slice(0, m.index).includes('GARBLE')) throw new Error('garbled');
          return { result: { exitCode: Number(m[1]), stdout: stdout.slice(0, m.index), stderr: stderr.slice(0, e) }, consumed: { stdout: m.index + m[0].length, stderr: e + errMark.length } };
        },
      };
    },
    ...over,
  };
}

const local = createLocalRunner();
function pool(over: Partial<SessionPoolOptions<Argv>> = {}) {
  const oneShotCalls: Argv[] = [];
  const runner = createSessionRunner<Argv>({
    protocol: shProtocol(),
    open: openLocalStream,
    oneShot: { run: (argv, o) => (oneShotCalls.push(argv), local.run(argv[0] === 'one-shot' ? argv.slice(1) : argv, o)) },
    log: silentLogger(),
    size: 2,
    ...over,
  });
  t.teardown(() => runner.close());
  return { runner, oneShotCalls };
}

const failed = (p: Promise<unknown>) => failureOf(p, CommandError);

t.test('requests go through one session, in order, with exact output and exit codes', async (t) => {
  const { runner, oneShotCalls } = pool();
  t.same(await runner.run(['printf', '%s', `it's "x" $(no) é`]), { exitCode: 0, stdout: `it's "x" $(no) é`, stderr: '' });
  t.same(await runner.run(['sh', '-c', 'echo out; echo err >&2; exit 3']), { exitCode: 3, stdout: 'out\n', stderr: 'err\n' });
  t.same(await runner.run(['one-shot', 'echo', 'hi']), { exitCode: 0, stdout: 'hi\n', stderr: '' }, 'not carried: one-shot');
  t.same(await runner.run(['cat'], { stdin: 'in' }), { exitCode: 0, stdout: 'in', stderr: '' }, 'its own stdin: one-shot');
  t.same(oneShotCalls.length, 2);
  t.same(runner.stats(), { session: 2, oneShot: 2, opened: 1, open: 1 });
});

t.test('a busy pool sends the overflow one-shot instead of queueing', async (t) => {
  const { runner } = pool({ size: 1 });
  const slow = runner.run(['sleep', '0.5']);
  await new Promise((r) => setTimeout(r, 100));
  t.same((await runner.run(['echo', 'quick'])).stdout, 'quick\n');
  await slow;
  t.equal(runner.stats().oneShot, 1);
  t.equal(runner.stats().session, 1);
});

t.test('a request past its deadline ends its session; the next one gets a fresh session', async (t) => {
  const { runner } = pool();
  await runner.run(['true']);
  const started = Date.now();
  const e = await failed(runner.run(['sleep', '30'], { timeoutMs: 300 }));
  t.equal(e.failure, 'timeout');
  t.equal(e.sent, true, 'it may have acted');
  t.ok(Date.now() - started < 5_000, 'not waiting for the command');
  t.equal(runner.stats().open, 0, 'the session was stopped');
  t.same((await runner.run(['echo', 'again'])).stdout, 'again\n');
  t.equal(runner.stats().opened, 2);
});

t.test('an abort ends the session; the request is sent=true', async (t) => {
  const { runner } = pool();
  const ac = new AbortController();
  const p = runner.run(['sleep', '30'], { signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  const e = await failed(p);
  t.equal(e.failure, 'aborted');
  t.equal(e.sent, true);
  const before = await failed(runner.run(['true'], { signal: AbortSignal.abort() }));
  t.equal(before.sent, false, 'aborted before it started: nothing sent');
});

t.test('an interpreter that dies mid-request: the request fails as sent, never retried', async (t) => {
  const { runner } = pool();
  const e = await failed(runner.run(['sh', '-c', 'kill -9 $PPID; sleep 5']));
  t.equal(e.failure, 'disconnected');
  t.equal(e.sent, true);
  t.same((await runner.run(['echo', 'next'])).stdout, 'next\n', 'a fresh session');
});

t.test("a protocol with its own remote deadline: the interpreter's exit after timeoutMs is a timeout", async (t) => {
  const { runner } = pool({ protocol: { ...shProtocol(), remoteKillAfterMs: 1_000 } });
  const e = await failed(runner.run(['sh', '-c', 'sleep 0.4; kill -9 $PPID'], { timeoutMs: 300 }));
  t.equal(e.failure, 'timeout', e.message);
  const early = await failed(runner.run(['sh', '-c', 'kill -9 $PPID'], { timeoutMs: 5_000 }));
  t.equal(early.failure, 'disconnected', 'an early death is not the deadline');
});

t.test('a reply that does not parse or is too long ends the session', async (t) => {
  const { runner } = pool({ maxOutputChars: 10_000 });
  const garbled = await failed(runner.run(['echo', 'GARBLE']));
  t.equal(garbled.failure, 'disconnected');
  t.match(garbled.message, /unexpected reply/);
  const big = await failed(runner.run(['head', '-c', '100000', '/dev/zero']));
  t.equal(big.failure, 'output-limit');
  t.equal(runner.stats().open, 0);
});

t.test('a hello that shows no framing turns sessions off for good; an open failure backs off', async (t) => {
  const off = pool({ protocol: shProtocol({ hello: 'echo nope' }) });
  t.same((await off.runner.run(['echo', 'x'])).stdout, 'x\n');
  t.same((await off.runner.run(['echo', 'y'])).stdout, 'y\n');
  t.match(off.runner.stats(), { session: 0, oneShot: 2, opened: 0, unsupported: /hello said "nope\\n"/ });

  const broken = pool({ open: async () => Promise.reject(new CommandError('spawn', 'cannot connect', false)) });
  t.same((await broken.runner.run(['echo', 'x'])).stdout, 'x\n', 'one-shot meanwhile');
  t.match(broken.runner.stats(), { session: 0, oneShot: 1, opened: 0 });
  t.notOk('unsupported' in broken.runner.stats(), 'not off for good');
});

t.test('an idle session is closed; close() ends them all and refuses more', async (t) => {
  const { runner } = pool({ idleMs: 100 });
  await runner.run(['true']);
  t.equal(runner.stats().open, 1);
  await new Promise((r) => setTimeout(r, 400));
  t.equal(runner.stats().open, 0, 'closed when idle');
  await runner.run(['true']);
  await runner.close();
  t.equal(runner.stats().open, 0);
  t.equal((await failed(runner.run(['true']))).sent, false);
});
