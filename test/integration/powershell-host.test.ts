/**
 * The PowerShell host (providers/shared/powershell-host.ts + .ps1) in a real PowerShell 7.6, driven
 * exactly as a session drives it: its command through `sh -c` (spawnStream), the framer's hello and
 * requests on stdin, `take` on what comes back. The reference is one-shot: the same script run with
 * `pwsh -EncodedCommand` (powershellArgv) must give the same stdout, byte for byte, and the same
 * exit code. Windows PowerShell 5.1 is not here: the host's syntax is kept to 5.1's, untested.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { powershellArgv, type PowerShellRequest } from '../../providers/shared/command-encoding.ts';
import { createLocalRunner, type RunResult } from '../../providers/shared/command-runner.ts';
import { spawnStream } from '../../providers/shared/local-stream.ts';
import { powershellHostProtocol, type PowerShellHostFramer } from '../../providers/shared/powershell-host.ts';
import type { RemoteStream, StreamEnd } from '../../providers/shared/session-protocol.ts';
import { parsePowerShellStderr } from '../../providers/hyperv/parse.ts';
import { ensurePwsh, PWSH } from '../labs/hyperv/lab.ts';
import type { TapTest } from '../../providers/conformance/suite.ts';

ensurePwsh();
const ENV = { PATH: `/opt/snapvisor/pwsh:${process.env.PATH ?? ''}`, DOTNET_ROOT: '/usr/share/dotnet', POWERSHELL_TELEMETRY_OPTOUT: '1' };
const local = createLocalRunner({ env: ENV });
const protocol = powershellHostProtocol({ provider: 'test', executable: 'pwsh' });

interface Host {
  run(request: PowerShellRequest, timeoutMs?: number): Promise<RunResult>;
  stream: RemoteStream;
  framer: PowerShellHostFramer;
}

/** A session without the pool: hello, then one request at a time, each reply cut out by `take`. */
async function openHost(t: TapTest): Promise<Host> {
  const stream = spawnStream(protocol.command, ENV);
  t.teardown(() => stream.kill());
  const framer = protocol.open() as PowerShellHostFramer;
  const received = { stdout: '', stderr: '' };
  let wake: () => void = () => {};
  let ended: StreamEnd | undefined;
  stream.onData((from, text) => {
    received[from] += text;
    wake();
  });
  void stream.ended.then((e) => {
    ended = e;
    wake();
  });
  const take = async (seq: number): Promise<RunResult> => {
    for (;;) {
      const reply = framer.take(received, seq);
      if (reply) {
        received.stdout = received.stdout.slice(reply.consumed.stdout);
        received.stderr = received.stderr.slice(reply.consumed.stderr);
        return reply.result;
      }
      if (ended) throw new Error(`the host ended (exit code ${ended.exitCode}) before reply ${seq}; stderr: ${received.stderr.slice(0, 2000)}`);
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  stream.write(framer.hello());
  await take(0);
  let seq = 0;
  return {
    run: (request, timeoutMs = 30_000) => {
      seq++;
      stream.write(framer.frame(request, { seq, timeoutMs }));
      return take(seq);
    },
    stream,
    framer,
  };
}

const oneShot = (request: PowerShellRequest) => local.run(powershellArgv(request, { timeoutMs: 60_000, executable: PWSH }), { timeoutMs: 60_000 });

t.test('the hello reports the host', async (t) => {
  const host = await openHost(t);
  t.same(host.framer.host, { version: '7.6.10', edition: 'Core', windows: false });
});

t.test('the same stdout, byte for byte, and the same exit code as one-shot', async (t) => {
  const host = await openHost(t);
  const scripts = [
    '"plain"',
    '[Console]::Out.Write("no newline at the end")',
    '[Console]::Out.Write("crlf`r`nand lf`nthen none")',
    "[Console]::Out.WriteLine(\"snapshot ünïcödé 快照 🧪 'quoted' `\"double`\" $(1+1)\")",
    '[Console]::Out.Write("lone " + [string][char]0xD800 + " surrogate")',
    // Lines that look like the end of a reply, without this session's token.
    '[Console]::Out.WriteLine("##snapvisor-host 0123456789abcdef0123456789abcdef 1 {""exitCode"":9}"); [Console]::Out.Write("`n##snapvisor-host")',
    'exit 0',
    'exit 2',
    'Write-Output "before"; exit 42',
    'exit 300',
    'throw "boom"',
    'Write-Output "a"; Write-Error "stopped by the preference"; "not reached"',
    'Get-Item /nonexistent -ErrorAction SilentlyContinue',
    'Get-Item /nonexistent -ErrorAction SilentlyContinue; "then fine"',
    '"a" +',
    'Write-Host "host"; Write-Host -NoNewline "no-nl"; Write-Warning "careful"; Write-Verbose "chatty" -Verbose; Write-Information "info"; "out"',
    'Write-Output 1, 2; Get-Item / | Select-Object Name; [Console]::Out.Write("direct")',
    '"a"; return; "b"',
    'break',
    '"stdin [" + [Console]::In.ReadToEnd() + "]"',
    // common.ps1's shape: functions that end the script with `exit` from inside try/catch.
    [
      "function Out-Result($Value) { [Console]::Out.WriteLine('##snapvisor-result ' + (ConvertTo-Json -InputObject $Value -Compress)); exit 0 }",
      "function Stop-Refusal([string]$Message) { [Console]::Out.WriteLine('##snapvisor-error ' + (ConvertTo-Json -InputObject ([ordered]@{ kind = 'conflict'; message = $Message }) -Compress)); exit 2 }",
      'try { if ($Params.refuse) { Stop-Refusal "no: $($Params.name)" }; Out-Result ([ordered]@{ name = $Params.name; n = $Params.n }) } catch { exit 1 }',
    ].join('\n'),
  ];
  for (const script of scripts) {
    const paramSets: PowerShellRequest['params'][] = script.includes('$Params') ? [{ name: 'web 01', n: 3 }, { name: "it's", refuse: true }] : [{}];
    for (const params of paramSets) {
      const request: PowerShellRequest = { script, ...(params ? { params } : {}) };
      const viaHost = await host.run(request);
      const reference = await oneShot(request);
      t.same({ exitCode: viaHost.exitCode, stdout: viaHost.stdout }, { exitCode: reference.exitCode, stdout: reference.stdout }, `${script} ${JSON.stringify(params)}`);
      const [h, r] = [parsePowerShellStderr(viaHost.stderr), parsePowerShellStderr(reference.stderr)];
      t.same(h.warnings, r.warnings, 'the same warnings on stderr');
      if (reference.exitCode === 1 && r.text !== '') t.match(h.text, r.text.split('\n').at(-1)!.replace(/^\s*\|\s*/, ''), 'the error’s message on stderr');
    }
  }
});

t.test('an uncaught error: exit 1, its text on stderr as CLIXML the adapter reads', async (t) => {
  const host = await openHost(t);
  const r = await host.run({ script: 'Write-Output "partial"\nthrow "Checkpoint operation failed."' });
  t.equal(r.exitCode, 1);
  t.equal(r.stdout, 'partial\n');
  t.match(r.stderr, /^#< CLIXML\n<Objs [^>]*><S S="Error">/);
  // The error view (ConciseView) with its "Line |" frame, as one-shot shows an error past line 1.
  t.match(parsePowerShellStderr(r.stderr).text, /^Exception: Line \|\n\s+2 \|\s+throw "Checkpoint operation failed\."\n[\s\S]*\| Checkpoint operation failed\.$/);
  const next = await host.run({ script: '"still here"' });
  t.same(next, { exitCode: 0, stdout: 'still here\n', stderr: '' }, 'the host lives on; the next reply has nothing of it');
});

t.test('nothing leaks from one request to the next', async (t) => {
  const host = await openHost(t);
  const report = [
    '$r = [ordered]@{}',
    '$r.vars = @($x, $global:g, $script:s, $LASTEXITCODE, $_) -join "|"',
    '$r.functions = @(Get-Command -Name F, GF, Out-Result -CommandType Function -ErrorAction Ignore).Count',
    '$r.alias = [bool](Get-Alias -Name zz -ErrorAction Ignore)',
    '$r.errors = $Error.Count',
    '$r.prefs = @($ErrorActionPreference, $WarningPreference, $VerbosePreference, $ProgressPreference, $PSDefaultParameterValues.Count) -join "|"',
    '$r.location = (Get-Location).Path',
    '$r.env = [string]$env:SNAPVISOR_LEAK',
    '$r.params = @($Params.PSObject.Properties).Count',
    '[Console]::Out.WriteLine((ConvertTo-Json -InputObject $r -Compress))',
  ].join('\n');
  const before = await host.run({ script: report });
  t.equal(before.exitCode, 0, before.stderr);
  const polluted = await host.run({
    script: [
      '$x = 1; $global:g = 2; $script:s = 3; function F { }; function global:GF { }',
      "function Out-Result { }; Set-Alias -Name zz -Value Get-Date -Scope Global",
      "$global:ErrorActionPreference = 'Continue'; $WarningPreference = 'Stop'; $global:VerbosePreference = 'Continue'; $global:ProgressPreference = 'Continue'",
      "$PSDefaultParameterValues['*:Verbose'] = $true; Set-Location /; $env:SNAPVISOR_LEAK = 'yes'",
      'Get-Item /nonexistent -ErrorAction SilentlyContinue; $global:LASTEXITCODE = 9',
      '$Params.extra = 1',
      '[Console]::SetOut([System.IO.TextWriter]::Null); [Console]::SetError([System.IO.TextWriter]::Null)',
      'exit 5',
    ].join('\n'),
    params: { a: 'x' },
  });
  t.equal(polluted.exitCode, 5);
  const after = await host.run({ script: report });
  t.same(after, before, 'variables, functions, aliases, $Error, preferences, location, environment, Console streams: as before');
  t.match(before.stdout, /"errors":0/);
  t.match(before.stdout, /"prefs":"Stop\|Continue\|SilentlyContinue\|SilentlyContinue\|0"/, "the one-shot preamble's preferences");
});

t.test('parameters round-trip as data: date-like, unicode, quotes, $(), newlines, lone surrogates', async (t) => {
  const host = await openHost(t);
  const values = ['2024-05-01T10:00:00Z', 'snapshot ünïcödé 快照 🧪', "it's \"quoted\"", '$(Remove-Item -Recurse /) `whoami` ${x}', 'line1\nline2\r\nline3', 'x\uD800y\uDC00', '', '\u0000nul'];
  // Each value's UTF-16 code units in hex: an encoder would replace a lone surrogate.
  const script = "foreach ($v in $Params.values) { [Console]::Out.WriteLine($v.GetType().Name + ' ' + (-join ($v.ToCharArray() | ForEach-Object { '{0:x4}' -f [int]$_ }))) }\n$Params.nested.when.GetType().Name";
  const r = await host.run({ script, params: { values, nested: { when: '2024-05-01T10:00:00Z' } } });
  t.equal(r.exitCode, 0, r.stderr);
  const units = (v: string) => [...Array(v.length).keys()].map((i) => v.charCodeAt(i).toString(16).padStart(4, '0')).join('');
  t.same(r.stdout.split('\n'), [...values.map((v) => `String ${units(v)}`), 'String', ''], 'every value a String, every UTF-16 code unit kept');
  t.same(await oneShot({ script, params: { values, nested: { when: '2024-05-01T10:00:00Z' } } }), r, 'as one-shot decodes them');
});

t.test('a request past its timeout ends the host with 124', async (t) => {
  const host = await openHost(t);
  t.equal((await host.run({ script: '"warm"' })).exitCode, 0);
  const started = Date.now();
  const stuck = host.run({ script: 'Start-Sleep -Seconds 60' }, 1500);
  const end = await host.stream.ended;
  const took = Date.now() - started;
  t.equal(end.exitCode, 124, "the request's watchdog exits the whole host");
  t.ok(took >= 1500 && took < 10_000, `after the request's 1500 ms (${took} ms)`);
  await t.rejects(stuck, /the host ended \(exit code 124\)/);
});

t.test('a busy request past its timeout ends the host too', async (t) => {
  const host = await openHost(t);
  void host.run({ script: 'while ($true) { }' }, 1000).catch(() => {});
  t.equal((await host.stream.ended).exitCode, 124);
});

t.test('the host exits cleanly at the end of its stdin', async (t) => {
  // spawnStream has no way to close stdin alone: the process is started here as it would be.
  const child = spawn('sh', ['-c', protocol.command], { env: { ...process.env, ...ENV }, stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  const framer = protocol.open();
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const helloTaken = new Promise<void>((resolve) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      if (framer.take({ stdout, stderr }, 0)) resolve();
    });
  });
  child.stdin.write(framer.hello());
  await helloTaken;
  child.stdin.write(framer.frame({ script: '"last"' }, { seq: 1, timeoutMs: 10_000 }));
  child.stdin.end();
  const started = Date.now();
  t.equal(await exited, 0, 'exit code 0');
  t.ok(Date.now() - started < 5000, 'at once, after the request it had');
  const hello = framer.take({ stdout, stderr }, 0)!.consumed;
  const reply = framer.take({ stdout: stdout.slice(hello.stdout), stderr: stderr.slice(hello.stderr) }, 1);
  t.same(reply?.result, { exitCode: 0, stdout: 'last\n', stderr: '' }, 'the request before the end was answered');
});
