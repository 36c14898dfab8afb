/**
 * The command encodings as pure functions. The POSIX one is checked by real shells in
 * shell-quote.test.ts and over real sshd in ssh-transport.test.ts; here: that it is exactly what
 * the transport always sent. The PowerShell one is taken apart again: base64 → UTF-16LE → script,
 * and the script's params literal → base64 → UTF-8 → JSON, which must equal the params exactly,
 * while no user string appears anywhere in the script or the command line.
 */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import {
  CMD_MAX_COMMAND_CHARS,
  POWERSHELL_MAX_COMMAND_CHARS,
  encodeScript,
  posixEncoding,
  powershellArgv,
  powershellEncoding,
  powershellScript,
  STDIN_BOOTSTRAP,
  opaqueStrings,
  stdinRequest,
  type PowerShellRequest,
} from '../../providers/shared/command-encoding.ts';
import { remoteCommand } from '../../providers/shared/shell-quote.ts';
import { CommandError } from '../../providers/shared/command-runner.ts';
import { optionProblems } from '../../providers/shared/options.ts';
import { WindowsSshTargetSchema, createPowerShellTransport } from '../../providers/shared/ssh-target.ts';
import type { Logger } from '../../providers/contract.ts';

const HOSTILE = [
  "it's",
  "'",
  '"double"',
  '$(Remove-Item C:\\ -Recurse)',
  '$env:USERNAME',
  '${x}',
  '`whoami`',
  '`n`r`0',
  'a; Stop-Computer',
  'a & calc.exe',
  'a | Out-File x',
  "'@\n$(evil)\n'@",
  '@"\n$(evil)\n"@',
  'line1\nline2\r\n',
  '%PATH%',
  '^&^|',
  '<#comment#>',
  '# not a comment',
  'snapshot ünïcödé 快照 🧪',
  '\u2018smart\u2019 \u201cquotes\u201d',
  '\u0000nul',
  '',
];

function decodeCommand(command: string): string {
  const m = /^powershell -NoProfile -NonInteractive -EncodedCommand ([A-Za-z0-9+/=]+)(?:; exit \$LASTEXITCODE)?$/.exec(command);
  if (!m) throw new Error(`unexpected command shape: ${command.slice(0, 120)}`);
  return Buffer.from(m[1]!, 'base64').toString('utf16le');
}

function paramsOf(script: string): unknown {
  const m = /^\$Params = \[System\.Text\.Encoding\]::UTF8\.GetString\(\[System\.Convert\]::FromBase64String\('([A-Za-z0-9+/=]*)'\)\) \| ConvertFrom-Json$/m.exec(script);
  if (!m) throw new Error('no $Params line');
  return decodeStrings(JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as unknown);
}

/** What the preamble's ConvertFrom-SvString does: every string was base64 of UTF-16LE. */
function decodeStrings(v: unknown): unknown {
  if (typeof v === 'string') return Buffer.from(v, 'base64').toString('utf16le');
  if (Array.isArray(v)) return v.map(decodeStrings);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decodeStrings(x)]));
  return v;
}

t.test('posix: exactly the command line the SSH runner always built', async (t) => {
  const argv = ['virsh', '-c', 'qemu:///system', 'snapshot-create-as', 'dom 1', "it's; $(x)"];
  t.same(posixEncoding.encode(argv, { timeoutMs: 30_000 }), { command: remoteCommand(argv, { timeoutSec: 30 }) });
  t.equal(posixEncoding.encode(['true'], { timeoutMs: 250 }).command, "LC_ALL=C timeout --kill-after=5 0.250 'true'");
  t.same(posixEncoding.encode(['cat'], { timeoutMs: 1000, stdin: 'data\n' }), { command: "LC_ALL=C timeout --kill-after=5 1 'cat'", stdin: 'data\n' });
  t.equal(posixEncoding.remoteKillAfterMs, 5000);
  t.equal(posixEncoding.label(argv), 'virsh');
  t.throws(() => posixEncoding.encode([], { timeoutMs: 1000 }), /empty argv/);
  t.throws(() => posixEncoding.encode(['a\0b'], { timeoutMs: 1000 }), /NUL/);
});

t.test('posix: exit codes 124/137 mean timed out only when the deadline really passed', async (t) => {
  const at = (code: number, elapsedMs: number) => posixEncoding.exitMeaning(code, { elapsedMs, timeoutMs: 1000 });
  t.equal(at(124, 1000), 'timeout');
  t.equal(at(137, 6000), 'timeout');
  t.equal(at(124, 960), 'timeout', 'within the 50 ms slack');
  t.equal(at(124, 10), 'exit', 'a tool that exits 124 by itself is an ordinary exit');
  t.equal(at(137, 10), 'exit');
  for (const code of [0, 1, 2, 125, 126, 127, 143]) t.equal(at(code, 5000), 'exit', String(code));
});

t.test('powershell: the command decodes to our script, with params as data', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv' });
  t.equal(enc.name, 'powershell/cmd');
  const params = { vmName: 'web01', names: HOSTILE, nested: { description: 'two\nlines', n: 3, ok: true, none: null } };
  const script = "Get-VMSnapshot -VMName $Params.vmName | Select-Object Name | ConvertTo-Json";
  const { command, stdin } = enc.encode({ script, params }, { timeoutMs: 30_000 });
  t.equal(stdin, undefined);
  t.match(command, /^powershell -NoProfile -NonInteractive -EncodedCommand [A-Za-z0-9+/]+=*$/, 'only base64 after the fixed words: nothing for cmd.exe to interpret');
  const decoded = decodeCommand(command);
  t.equal(Buffer.from(decoded, 'utf16le').toString('base64'), command.split(' ').at(-1), 'base64 of UTF-16LE, round-trips');
  t.equal(decoded, powershellScript({ script, params }, { timeoutMs: 30_000 }));
  t.ok(decoded.endsWith(`\n${script}`), 'the request script comes last, unchanged');
  t.same(paramsOf(decoded), params, 'params decode to exactly what was sent');
  for (const s of HOSTILE.filter((s) => s.length > 2)) {
    t.notOk(decoded.includes(s), `not spliced into the script: ${JSON.stringify(s)}`);
    t.notOk(command.includes(s), `not in the command line: ${JSON.stringify(s)}`);
  }
  t.match(decoded, /^\$ErrorActionPreference = 'Stop'$/m);
  t.match(decoded, /^\$ProgressPreference = 'SilentlyContinue'$/m);
  t.match(decoded, /CancellationTokenSource 30000$/m, 'the remote deadline is the timeout');
  t.match(decoded, /CancellationTokenSource 35000$/m, 'and the hard kill 5 s later');
  t.match(decoded, /Constant\(124\)/, 'timing out exits 124, like coreutils timeout');
});

t.test('powershell: no params is an empty object; stdin passes through', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv' });
  const { command, stdin } = enc.encode({ script: 'Get-VM' }, { timeoutMs: 1000, stdin: 'input' });
  t.same(paramsOf(decodeCommand(command)), {});
  t.equal(stdin, 'input');
});

t.test('powershell, script on stdin: a fixed bootstrap in the command, the request as base64 JSON on stdin', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv', scriptOn: 'stdin' });
  const params = { vmName: 'web01', names: HOSTILE };
  const script = 'Get-VMSnapshot -VMName $Params.vmName\n'.repeat(400);
  const { command, stdin } = enc.encode({ script, params }, { timeoutMs: 30_000 });
  t.ok(command.length < 6000, `the command stays well under cmd.exe's limit whatever the script (${command.length} chars)`);
  t.same(enc.encode({ script: 'x', params: { d: 'y'.repeat(50_000) } }, { timeoutMs: 30_000 }).command, enc.encode({ script: 'z' }, { timeoutMs: 30_000 }).command, 'and does not depend on the request');
  const decoded = decodeCommand(command);
  t.ok(decoded.endsWith(STDIN_BOOTSTRAP), 'the bootstrap comes after the preamble');
  t.match(decoded, /CancellationTokenSource 30000$/m, 'the deadline watchdog is still in the command');
  t.match(stdin, /^[A-Za-z0-9+/]+=*\n$/, 'stdin is one line of base64');
  const sent = JSON.parse(Buffer.from(stdin!.trim(), 'base64').toString('utf8')) as { script: string; params: unknown };
  t.equal(sent.script, script, 'which carries the script as it is');
  t.same(decodeStrings(sent.params), params, 'and the params, every string opaque (base64 of UTF-16LE)');
  t.notOk(JSON.stringify(sent.params).includes('web01'), 'no string is readable as such: nothing for ConvertFrom-Json to take for a date');
  for (const s of HOSTILE.filter((s) => s.length > 2)) t.notOk(command.includes(s) || decoded.includes(s), `not in the command: ${JSON.stringify(s)}`);
  t.throws(() => enc.encode({ script: 'x' }, { timeoutMs: 1000, stdin: 'mine' }), /cannot carry stdin/);
  t.equal(stdinRequest({ script: 'Get-VM' }), Buffer.from('{"script":"Get-VM","params":{}}').toString('base64') + '\n');
  t.same(opaqueStrings({ a: ['2024-05-01T10:00:00Z', 1, true, null], b: { c: 'x\uD800' } }), {
    a: [Buffer.from('2024-05-01T10:00:00Z', 'utf16le').toString('base64'), 1, true, null],
    b: { c: Buffer.from([0x78, 0x00, 0x00, 0xd8]).toString('base64') },
  }, 'strings only, lone surrogates kept as UTF-16 code units');
});

t.test('powershell: a PowerShell default shell passes the exit code on', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv', shell: 'powershell' });
  t.equal(enc.name, 'powershell/powershell');
  const { command } = enc.encode({ script: 'exit 3' }, { timeoutMs: 1000 });
  t.match(command, /; exit \$LASTEXITCODE$/, '-c would turn a native exit code other than 0 into 1');
  t.ok(decodeCommand(command).endsWith('\nexit 3'));
  const pwsh = powershellEncoding({ provider: 'hyperv', executable: 'pwsh' });
  t.match(pwsh.encode({ script: 'Get-VM' }, { timeoutMs: 1000 }).command, /^pwsh -NoProfile /);
  t.equal(pwsh.label({ script: 'x' }), 'pwsh');
  t.throws(() => powershellEncoding({ provider: 'hyperv', executable: 'power shell; rm' }), /plain program name/);
});

t.test('powershell: a command over the shell limit is refused, never truncated', async (t) => {
  const cmd = powershellEncoding({ provider: 'hyperv', shell: 'cmd' });
  const ps = powershellEncoding({ provider: 'hyperv', shell: 'powershell' });
  const lengthFor = (enc: typeof cmd, n: number) => enc.encode({ script: 'Get-VM', params: { d: 'x'.repeat(n) } }, { timeoutMs: 1000 }).command.length;
  const fitsIn = (enc: typeof cmd, n: number) => {
    try {
      return lengthFor(enc, n) <= CMD_MAX_COMMAND_CHARS;
    } catch {
      return false;
    }
  };
  // The longest description that still fits under cmd.exe, and the command it gives.
  let fits = 0;
  while (fitsIn(cmd, fits + 1)) fits++;
  t.ok(fits > 300, `a ${fits}-character description fits (each costs about 9.5 characters of the command; long requests go on stdin)`);
  t.ok(lengthFor(cmd, fits) > CMD_MAX_COMMAND_CHARS - 8, `its command (${lengthFor(cmd, fits)}) is at the limit: base64 grows 4 characters at a time`);
  const err = t.throws(() => lengthFor(cmd, fits + 40)) as ProviderError;
  t.type(err, ProviderError);
  t.equal(err.kind, 'invalid');
  t.equal(err.provider, 'hyperv');
  t.match(err.message, /over the 8191-character limit of a cmd\.exe default shell/);
  t.notMatch(err.message, /xxxx/, 'the request itself is not echoed');
  t.ok(lengthFor(ps, fits + 40) > CMD_MAX_COMMAND_CHARS, 'a PowerShell default shell takes longer commands');
  t.throws(() => lengthFor(ps, POWERSHELL_MAX_COMMAND_CHARS), /32000-character limit of a PowerShell default shell/);
});

t.test('powershell: what cannot be carried is refused', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv' });
  t.throws(() => enc.encode({ script: '  ' }, { timeoutMs: 1000 }), /empty script/);
  t.throws(() => enc.encode({ script: 'Get-VM # \uDC00' }, { timeoutMs: 1000 }), /unpaired surrogate/);
  for (const bad of [0, -1, Number.NaN, Infinity, 3e9]) t.throws(() => enc.encode({ script: 'Get-VM' }, { timeoutMs: bad }), /invalid timeout/, String(bad));
  t.equal(encodeScript('🧪'), Buffer.from([0x3e, 0xd8, 0xea, 0xdd]).toString('base64'), 'U+1F9EA is the UTF-16LE pair D83E DDEA');
});

t.test('powershell: a lone surrogate in params is data too (.NET strings are UTF-16)', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv' });
  const params = { n: 'x\uD800y' };
  t.same(paramsOf(decodeCommand(enc.encode({ script: 'Get-VM', params }, { timeoutMs: 1000 }).command)), params);
});

t.test('powershell: exit codes', async (t) => {
  const enc = powershellEncoding({ provider: 'hyperv' });
  const at = (code: number, elapsedMs: number) => enc.exitMeaning(code, { elapsedMs, timeoutMs: 1000 });
  t.equal(at(124, 1000), 'timeout', 'the watchdog exit');
  t.equal(at(0xffffffff, 6000), 'timeout', 'Process.Kill on Windows (TerminateProcess -1, uint32)');
  t.equal(at(137, 6000), 'timeout', 'Process.Kill of pwsh on Linux (SIGKILL)');
  t.equal(at(124, 10), 'exit', 'a script that exits 124 early is an ordinary exit');
  for (const code of [0, 1, 2, 3]) t.equal(at(code, 5000), 'exit', String(code));
});

t.test('powershell: local argv carries the same script', async (t) => {
  const request: PowerShellRequest = { script: '$Params.a', params: { a: "'@" } };
  const argv = powershellArgv(request, { timeoutMs: 2000, executable: 'pwsh' });
  t.same(argv.slice(0, 4), ['pwsh', '-NoProfile', '-NonInteractive', '-EncodedCommand']);
  t.equal(Buffer.from(argv[4]!, 'base64').toString('utf16le'), powershellScript(request, { timeoutMs: 2000 }));
});

t.test('a Windows ssh block: `shell` reaches the encoding, and is not an SSH option', async (t) => {
  const base = { host: '127.0.0.1', port: 1, username: 'snap', password: 'x', hostKey: 'SHA256:AAAA', connectTimeoutMs: 2000 };
  t.same(optionProblems(WindowsSshTargetSchema, { ...base, shell: 'powershell' }), []);
  t.same(optionProblems(WindowsSshTargetSchema, { ...base, shell: 'bash' }), ["option 'shell' must be one of \"cmd\", \"powershell\""]);
  const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
  const long = { script: 'Get-VM', params: { d: 'x'.repeat(2000) } };
  const viaCmd = createPowerShellTransport({ ...base }, { provider: 'hyperv', log: quiet });
  const viaPs = createPowerShellTransport({ ...base, shell: 'powershell' }, { provider: 'hyperv', log: quiet });
  t.teardown(() => Promise.all([viaCmd.close(), viaPs.close()]));
  const refused = await viaCmd.runner.run(long).catch((e: unknown) => e);
  t.type(refused, ProviderError, 'cmd (the default): refused before connecting');
  const tried = await viaPs.runner.run(long).catch((e: unknown) => e);
  t.type(tried, CommandError, 'powershell: not refused; the (closed) port is what fails');
  t.equal((tried as CommandError).failure, 'spawn');
});
