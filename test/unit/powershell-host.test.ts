/**
 * The PowerShell host protocol's pure part: the fixed command, what the framer writes (taken apart
 * again: base64 → UTF-8 → JSON), and how `take` cuts replies out of the streams — byte-exact,
 * from any chunking, never fooled by output that looks like the end of a reply without the
 * session's token, and refusing what the host never writes. A real host runs in
 * test/integration/powershell-host.test.ts.
 */
import t from 'tap';
import { DECODE_STRINGS_FUNCTION, POWERSHELL_EXIT_DELEGATE, POWERSHELL_KILL_AFTER_MS, POWERSHELL_SETTINGS, opaqueStrings } from '../../providers/shared/command-encoding.ts';
import { HOST_BOOTSTRAP, HOST_MARK, hostFramer, powershellHostProtocol, powershellHostScript, type PowerShellHostFramer } from '../../providers/shared/powershell-host.ts';
import { SessionUnsupported, type Reply } from '../../providers/shared/session-protocol.ts';

const TOKEN = '0123456789abcdef0123456789abcdef';
const OTHER = 'fedcba9876543210fedcba9876543210';

const HOSTILE = ["it's", '"double"', '$(Remove-Item C:\\ -Recurse)', '`whoami`', 'a & calc.exe', 'line1\nline2\r\n', '%PATH%', '2024-05-01T10:00:00Z', 'snapshot ünïcödé 快照 🧪', 'x\uD800y'];

const decodeLine = (line: string): unknown => JSON.parse(Buffer.from(line, 'base64').toString('utf8'));

/** What the host writes at the end of reply `seq`. */
const end = (seq: number, envelope: Record<string, unknown>, token = TOKEN) => ({
  stdout: `\n${HOST_MARK} ${token} ${seq} ${JSON.stringify(envelope)}\n`,
  stderr: `\n${HOST_MARK} ${token} ${seq}\n`,
});

/** A framer that has taken the hello of a host on `windows` or not. */
function greeted(windows = false): PowerShellHostFramer {
  const f = hostFramer(TOKEN);
  const hello = end(0, { exitCode: 0, version: '7.6.10', edition: 'Core', windows });
  f.take(hello, 0);
  return f;
}

t.test('the command is a short, fixed bootstrap for either shell', async (t) => {
  const cmd = powershellHostProtocol({ provider: 'hyperv' });
  t.equal(cmd.name, 'powershell-host');
  t.equal(cmd.remoteKillAfterMs, POWERSHELL_KILL_AFTER_MS);
  const m = /^powershell -NoProfile -NonInteractive -EncodedCommand ([A-Za-z0-9+/]+=*)$/.exec(cmd.command);
  t.ok(m, 'only base64 after the fixed words: nothing for cmd.exe to interpret');
  t.equal(Buffer.from(m![1]!, 'base64').toString('utf16le'), HOST_BOOTSTRAP, 'the bootstrap reads the host script from stdin');
  t.ok(cmd.command.length < 600, `far under cmd.exe's 8,191 characters (${cmd.command.length})`);
  const ps = powershellHostProtocol({ provider: 'hyperv', shell: 'powershell', executable: 'pwsh' });
  t.match(ps.command, /^pwsh -NoProfile -NonInteractive -EncodedCommand [A-Za-z0-9+/]+=*; exit \$LASTEXITCODE$/);
  t.throws(() => powershellHostProtocol({ provider: 'hyperv', executable: 'pwsh; rm -rf /' }), /plain program name/);
});

t.test('hello: the host script, then the token on stdin only', async (t) => {
  const protocol = powershellHostProtocol({ provider: 'hyperv' });
  const a = protocol.open();
  const b = protocol.open();
  const [script, hello, rest] = a.hello().split('\n');
  t.equal(rest, '', 'two lines');
  const text = Buffer.from(script!, 'base64').toString('utf8');
  t.equal(text, powershellHostScript());
  for (const line of [...POWERSHELL_SETTINGS, ...DECODE_STRINGS_FUNCTION]) t.ok(text.includes(line), `the one-shot preamble's ${line.slice(0, 30)}…`);
  t.ok(text.includes(`$snapvisorHostExit = ${POWERSHELL_EXIT_DELEGATE}`), 'the one-shot watchdog exit');
  t.match(text, /while \(Receive-SnapvisorHostRequest\)/, 'then the loop of powershell-host.ps1');
  const sent = decodeLine(hello!) as { seq: number; token: string };
  t.equal(sent.seq, 0);
  t.match(sent.token, /^[0-9a-f]{32}$/, '128 random bits');
  t.notOk(protocol.command.includes(sent.token), 'never in the command line');
  t.not((decodeLine(b.hello().split('\n')[1]!) as { token: string }).token, sent.token, 'one token per session');
  t.throws(() => hostFramer('abc'), /128 bits/);
});

t.test('a request is one line of base64 JSON, its strings opaque', async (t) => {
  const f = hostFramer(TOKEN);
  const params = { vmId: 'web01', names: HOSTILE, nested: { n: 3, ok: true, none: null } };
  const line = f.frame({ script: 'Get-VM -Id $Params.vmId', params }, { seq: 7, timeoutMs: 30_000.4 });
  t.match(line, /^[A-Za-z0-9+/]+=*\n$/);
  t.same(decodeLine(line.trim()), { seq: 7, timeoutMs: 30_001, script: 'Get-VM -Id $Params.vmId', params: opaqueStrings(params) });
  const readable = Buffer.from(line, 'base64').toString('utf8');
  for (const s of HOSTILE) t.notOk(readable.includes(s) || line.includes(s), `not readable as such: ${JSON.stringify(s)}`);
  t.notOk(readable.includes(TOKEN), 'a request does not repeat the token');
  t.same((decodeLine(f.frame({ script: 'x' }, { seq: 1, timeoutMs: 1 }).trim()) as { params: unknown }).params, {}, 'no params: {}');
  for (const bad of [0, -1, Number.NaN, Infinity, 3e9]) t.throws(() => f.frame({ script: 'x' }, { seq: 1, timeoutMs: bad }), /invalid timeout/, String(bad));
  for (const seq of [0, -1, 1.5]) t.throws(() => f.frame({ script: 'x' }, { seq, timeoutMs: 1000 }), /invalid seq/);
  t.throws(() => f.frame({ script: ' ' }, { seq: 1, timeoutMs: 1000 }), /empty script/);
});

t.test('carries what the one-shot stdin mode can send', async (t) => {
  const p = powershellHostProtocol({ provider: 'hyperv' });
  t.ok(p.carries({ script: 'Get-VM', params: { n: 'x\uD800', d: '2024-05-01T10:00:00Z' } }), 'any params: lone surrogates travel as UTF-16');
  t.notOk(p.carries({ script: '' }), 'an empty script is the one-shot encoding’s to refuse');
  t.notOk(p.carries({ script: 'Get-VM # \uDC00' }), 'a lone surrogate in a script cannot cross UTF-8');
});

t.test('take: the hello teaches the host, and only with the token', async (t) => {
  const f = hostFramer(TOKEN);
  t.equal(f.take({ stdout: '', stderr: '' }, 0), undefined);
  t.equal(f.take(end(0, { exitCode: 0, version: '7.6.10' }, OTHER), 0), undefined, 'another session’s token is output, not an end');
  const hello = end(0, { exitCode: 0, version: '5.1.17763.1', edition: 'Desktop', windows: true });
  const reply = f.take({ stdout: hello.stdout + 'more', stderr: hello.stderr }, 0)!;
  t.same(reply, { result: { exitCode: 0, stdout: '5.1.17763.1', stderr: '' }, consumed: { stdout: hello.stdout.length, stderr: hello.stderr.length } });
  t.same(f.host, { version: '5.1.17763.1', edition: 'Desktop', windows: true });
  const old = hostFramer(TOKEN);
  const e = t.throws(() => old.take(end(0, { exitCode: 0, version: '4.0', unsupported: 'PowerShell 4.0 has no nested pipelines' }), 0));
  t.type(e, SessionUnsupported);
  t.match((e as Error).message, /PowerShell 4\.0/);
});

t.test('take: a reply is exactly the request’s output, from any chunking', async (t) => {
  const f = greeted();
  const cases: { stdout: string; stderr: string }[] = [
    { stdout: 'no newline at the end', stderr: '' },
    { stdout: '', stderr: '' },
    { stdout: '\n\n', stderr: '\r\n' },
    { stdout: 'windows\r\nlines\r\n', stderr: '#< CLIXML\r\n<Objs Version="1.1.0.1"><S S="Error">x_x000D__x000A_</S></Objs>' },
    { stdout: `##snapvisor-result {"a":1}\n${HOST_MARK} ${OTHER} 1 {"exitCode":5}\n${HOST_MARK} 1 {"exitCode":5}\n`, stderr: `\n${HOST_MARK} ${OTHER} 1\n` },
    { stdout: `\n${HOST_MARK} ${TOKEN.slice(0, 31)} 1 {"exitCode":5}\n${HOST_MARK}  ${TOKEN} 1 {"exitCode":5}`, stderr: `${HOST_MARK} ${TOKEN} 1\n` },
    { stdout: 'ünïcödé 快照 🧪 \uFFFD', stderr: '🧪' },
  ];
  for (const c of cases) {
    const tail = end(1, { exitCode: 3 });
    const next = end(2, { exitCode: 0 });
    const stdout = c.stdout + tail.stdout + 'next request’s output' + next.stdout;
    const stderr = c.stderr + tail.stderr + next.stderr;
    let got: Reply | undefined;
    // Grow the two streams one character at a time, in turns: the reply shows only when both ends are whole.
    for (let i = 0; i <= Math.max(stdout.length, stderr.length) && got === undefined; i++) {
      const seen = { stdout: stdout.slice(0, i), stderr: stderr.slice(0, i) };
      got = f.take(seen, 1);
      if (got === undefined) continue;
      t.ok(seen.stdout.length >= c.stdout.length + tail.stdout.length && seen.stderr.length >= c.stderr.length + tail.stderr.length, 'not before both ends arrived');
    }
    t.same(got, { result: { exitCode: 3, stdout: c.stdout, stderr: c.stderr }, consumed: { stdout: c.stdout.length + tail.stdout.length, stderr: c.stderr.length + tail.stderr.length } }, JSON.stringify(c.stdout));
  }
});

t.test('take: exit codes as the process itself would end', async (t) => {
  const reply = (f: PowerShellHostFramer, code: number) => f.take(end(1, { exitCode: code }), 1)!.result.exitCode;
  const posix = greeted(false);
  const windows = greeted(true);
  for (const code of [0, 1, 2, 42, 124]) {
    t.equal(reply(posix, code), code);
    t.equal(reply(windows, code), code);
  }
  t.equal(reply(posix, 300), 44, 'POSIX keeps the low 8 bits');
  t.equal(reply(posix, -1), 255);
  t.equal(reply(windows, 300), 300, 'Windows keeps 32');
  t.equal(reply(windows, -1), 0xffffffff, 'unsigned, as SSH’s exit-status');
});

t.test('take: what the host never writes ends the session', async (t) => {
  const f = greeted();
  const bad: [string, { stdout: string; stderr: string }, RegExp][] = [
    ['another seq', end(2, { exitCode: 0 }), /reply 2 arrived while waiting for 1/],
    ['no seq', { stdout: `\n${HOST_MARK} ${TOKEN} x {"exitCode":0}\n`, stderr: end(1, {}).stderr }, /malformed/],
    ['no envelope', { stdout: `\n${HOST_MARK} ${TOKEN} 1\n`, stderr: end(1, {}).stderr }, /no JSON envelope/],
    ['broken JSON', { stdout: `\n${HOST_MARK} ${TOKEN} 1 {"exitCode":\n`, stderr: end(1, {}).stderr }, /no JSON envelope/],
    ['no exit code', end(1, { exitcode: 0 }), /no exit code/],
    ['a fractional exit code', end(1, { exitCode: 1.5 }), /no exit code/],
    ['more on the stderr end', { stdout: end(1, { exitCode: 0 }).stdout, stderr: `\n${HOST_MARK} ${TOKEN} 1 {}\n` }, /on stderr/],
  ];
  for (const [what, received, message] of bad) t.throws(() => f.take(received, 1), message, what);
});
