/**
 * How a request becomes the one string an SSH server hands to the account's shell, and what the
 * remote exit code means. The transport (providers/shared/ssh.ts) knows nothing about shells: it
 * takes a `CommandEncoding` and sends whatever the encoding built.
 *
 * - `posixEncoding` (KVM's virsh, VirtualBox's VBoxManage): an argv, every word single-quoted for a
 *   POSIX login shell, `LC_ALL=C`, and coreutils `timeout --kill-after` as the remote deadline.
 * - `powershellEncoding` (Hyper-V on Windows OpenSSH): a script plus parameters. The script is our
 *   own code; the parameters (VM and snapshot names, descriptions — user data) travel as a base64
 *   JSON literal the script decodes, so no user string is ever spliced into code. The whole thing
 *   goes as `powershell -NoProfile -NonInteractive -EncodedCommand <base64 of UTF-16LE>`, whose
 *   alphabet (A-Z a-z 0-9 + / =) needs no quoting in cmd.exe or PowerShell.
 *
 * Why the PowerShell script carries its own deadline: Windows OpenSSH does not end a non-tty exec's
 * process when the channel or connection closes (PowerShell/Win32-OpenSSH#1751, open), and it
 * ignores signal requests. So an abort or local timeout stops our waiting, but only the in-script
 * watchdog stops the remote process (at `timeoutMs`; such errors are `sent`, as on POSIX).
 * Checked by hand with PowerShell 7.6 (pwsh) on Linux: params round-trip byte-exact, `exit N` comes
 * back as N under both shells' command shapes, the watchdog ends a sleeping or busy script with
 * 124. Not checked on Windows PowerShell 5.1 or a real Windows OpenSSH (none here).
 */
import { ProviderError } from '../contract.ts';
import type { RunOptions, RunResult } from './command-runner.ts';
import { REMOTE_KILL_AFTER_SEC, remoteCommand } from './shell-quote.ts';

export interface EncodeContext {
  /** The command's deadline; the encoding makes the remote side enforce it. */
  timeoutMs: number;
  /** What the caller wants on the command's stdin (RunOptions.stdin). */
  stdin?: string;
}

export interface EncodedCommand {
  /** The exec request's command string, exactly as sent. */
  command: string;
  /** Bytes for the command's stdin; absent = none (stdin is closed at once). */
  stdin?: string;
}

/** `timeout`: the encoding's own remote deadline ended the command. `exit`: an ordinary exit code. */
export type ExitMeaning = 'exit' | 'timeout';

export interface CommandEncoding<Request> {
  /** 'posix', 'powershell/cmd', … — for logs and messages. */
  readonly name: string;
  /**
   * How long after `timeoutMs` the remote side may still take to end the command by itself (for
   * coreutils: the --kill-after wait). The transport's local deadline waits this long, plus a grace.
   */
  readonly remoteKillAfterMs: number;
  /** Throws (never truncates or guesses) when the request cannot be carried. */
  encode(request: Request, ctx: EncodeContext): EncodedCommand;
  /** What a remote exit code means, given how long the command ran. */
  exitMeaning(exitCode: number, run: { elapsedMs: number; timeoutMs: number }): ExitMeaning;
  /** What to call the command in messages: a program name, never user data. */
  label(request: Request): string;
}

/** A runner for some request shape: CommandRunner is `RequestRunner<readonly string[]>`. */
export interface RequestRunner<Request> {
  run(request: Request, options?: RunOptions): Promise<RunResult>;
}

/** The remote deadline counts only when the command really ran that long (a tool may exit 124 itself). */
const DEADLINE_SLACK_MS = 50;

// ---------------------------------------------------------------------------------------------
// POSIX

/**
 * `LC_ALL=C timeout --kill-after=5 <sec> 'argv0' 'argv1' …` for a POSIX login shell (see
 * shell-quote.ts). coreutils `timeout` exits 124 after its TERM and 137 after its KILL.
 */
export const posixEncoding: CommandEncoding<readonly string[]> = {
  name: 'posix',
  remoteKillAfterMs: REMOTE_KILL_AFTER_SEC * 1000,
  encode(argv, { timeoutMs, stdin }) {
    return { command: remoteCommand(argv, { timeoutSec: timeoutMs / 1000 }), ...(stdin !== undefined ? { stdin } : {}) };
  },
  exitMeaning(exitCode, { elapsedMs, timeoutMs }) {
    return (exitCode === 124 || exitCode === 137) && elapsedMs >= timeoutMs - DEADLINE_SLACK_MS ? 'timeout' : 'exit';
  },
  label: (argv) => argv[0] ?? '',
};

// ---------------------------------------------------------------------------------------------
// PowerShell

/** JSON data: what ConvertFrom-Json gives back to the script as `$Params`. */
export type PowerShellValue = string | number | boolean | null | PowerShellValue[] | { [key: string]: PowerShellValue };

export interface PowerShellRequest {
  /**
   * The script: fixed text written in the adapter, never built from user input. It reads its
   * inputs from `$Params` (a PSCustomObject from ConvertFrom-Json). It runs with
   * `$ErrorActionPreference = 'Stop'`, so an error ends it with exit code 1; `exit N` works.
   */
  script: string;
  /** Inputs, passed as data. Keys are JSON property names (`$Params.vmName`). */
  params?: { [key: string]: PowerShellValue };
}

export type PowerShellRunner = RequestRunner<PowerShellRequest>;

/**
 * The account's default shell on the Windows host (Windows OpenSSH's `DefaultShell`; cmd.exe unless
 * changed). It decides the command's shape and its length limit.
 */
export type WindowsShell = 'cmd' | 'powershell';

export interface PowerShellEncodingOptions {
  /** Names the adapter in a refusal (ProviderError's provider). */
  provider: string;
  /** Default 'cmd' (Windows OpenSSH's default). */
  shell?: WindowsShell;
  /** Default 'powershell' (Windows PowerShell 5.1, where the Hyper-V module lives); 'pwsh' for PowerShell 7. */
  executable?: string;
  /**
   * Where the request's script and params travel. `command` (default): inside -EncodedCommand,
   * within the shell's length limit. `stdin`: -EncodedCommand carries only a small, fixed bootstrap
   * (the preamble, then "read the request from stdin and run it"), and the script plus its params go
   * on stdin as base64 of UTF-8 JSON (each string opaque, see opaqueStrings) — no length limit, and
   * still no user data in any command line.
   * Under cmd.exe an encoded script tops out near 3,000 characters, which the preamble (watchdog and
   * params decoder) already uses nearly half of; an adapter with real scripts (Hyper-V) sends them
   * on stdin. A request in this mode has no stdin of its own.
   */
  scriptOn?: 'command' | 'stdin';
}

/** cmd.exe's longest command line (Microsoft KB 830473). */
export const CMD_MAX_COMMAND_CHARS = 8191;
/**
 * With DefaultShell = powershell.exe sshd starts `<shell path> -c "<command>"` through CreateProcess,
 * whose limit is 32,767 characters; about 700 are kept for the shell's own path and switch.
 */
export const POWERSHELL_MAX_COMMAND_CHARS = 32_000;

/** Extra time the remote side gets after `timeoutMs` before its watchdog kills the process outright. */
export const POWERSHELL_KILL_AFTER_MS = 5_000;
/** The exit code the watchdog gives a timed-out script: coreutils `timeout`'s, so logs read the same. */
export const POWERSHELL_TIMEOUT_EXIT = 124;

/** Windows' exit code after TerminateProcess(…, -1) (Process.Kill), as SSH's uint32 exit-status. */
const WINDOWS_KILLED_EXIT = 0xffff_ffff;
const EXECUTABLE = /^[A-Za-z0-9._-]+$/;

export function powershellEncoding(options: PowerShellEncodingOptions): CommandEncoding<PowerShellRequest> {
  const shell = options.shell ?? 'cmd';
  const executable = powershellExecutable('powershellEncoding', options.executable);
  const limit = shell === 'cmd' ? CMD_MAX_COMMAND_CHARS : POWERSHELL_MAX_COMMAND_CHARS;
  return {
    name: `powershell/${shell}`,
    remoteKillAfterMs: POWERSHELL_KILL_AFTER_MS,
    encode(request, { timeoutMs, stdin }) {
      let script: string;
      if (options.scriptOn === 'stdin') {
        if (stdin !== undefined) throw new Error('powershellEncoding: a request sent on stdin cannot carry stdin of its own');
        stdin = stdinRequest(request);
        script = powershellScript({ script: STDIN_BOOTSTRAP }, { timeoutMs });
      } else {
        script = powershellScript(request, { timeoutMs });
      }
      const command = powershellCommandLine(executable, shell, script);
      if (command.length > limit) {
        // Refused, never truncated: a cut base64 string would run a different script (or none).
        throw new ProviderError(
          options.provider,
          'invalid',
          `the PowerShell command is ${command.length} characters, over the ${limit}-character limit of a ${shell === 'cmd' ? 'cmd.exe' : 'PowerShell'} default shell on the SSH host; shorten the request (a long description or name?)`,
        );
      }
      return { command, ...(stdin !== undefined ? { stdin } : {}) };
    },
    exitMeaning(exitCode, { elapsedMs, timeoutMs }) {
      const killed = exitCode === POWERSHELL_TIMEOUT_EXIT || exitCode === WINDOWS_KILLED_EXIT || exitCode === 137;
      return killed && elapsedMs >= timeoutMs - DEADLINE_SLACK_MS ? 'timeout' : 'exit';
    },
    label: () => executable,
  };
}

/** The executable option checked: a plain program name (it goes into a command line as it is). */
export function powershellExecutable(who: string, executable = 'powershell'): string {
  if (!EXECUTABLE.test(executable)) throw new Error(`${who}: executable must be a plain program name, not ${JSON.stringify(executable)}`);
  return executable;
}

/** The command line that runs `script` with `executable` from the account's shell. */
export function powershellCommandLine(executable: string, shell: WindowsShell, script: string): string {
  const invoke = `${executable} -NoProfile -NonInteractive -EncodedCommand ${encodeScript(script)}`;
  // Under a PowerShell DefaultShell the inner process is a native command: `-c` would turn any
  // exit code but 0 into 1, so its $LASTEXITCODE is passed on explicitly.
  return shell === 'cmd' ? invoke : `${invoke}; exit $LASTEXITCODE`;
}

/** `-EncodedCommand`'s argument: base64 of the script's UTF-16LE bytes. */
export function encodeScript(script: string): string {
  if (/[\uD800-\uDFFF]/u.test(script)) throw new Error('powershell: cannot encode a string with an unpaired surrogate');
  return Buffer.from(script, 'utf16le').toString('base64');
}

/**
 * The full script `-EncodedCommand` carries: a preamble (strict errors, no progress records, UTF-8
 * stdout, the deadline watchdog), `$Params` decoded from a base64 JSON literal, then the request's
 * script. Exported for tests and for running the same script locally.
 */
export function powershellScript(request: PowerShellRequest, opts: { timeoutMs: number }): string {
  checkScript(request.script);
  const ms = powershellTimeoutMs(opts.timeoutMs);
  const paramsB64 = Buffer.from(paramsJson(request), 'utf8').toString('base64');
  return [
    ...POWERSHELL_SETTINGS,
    // The remote deadline, like coreutils `timeout --kill-after`: exit 124 at the deadline, kill
    // the process 5 s later if that exit hangs.
    `$snapvisorExit = ${POWERSHELL_EXIT_DELEGATE}`,
    `$snapvisorDeadline = New-Object System.Threading.CancellationTokenSource ${ms}`,
    '$null = $snapvisorDeadline.Token.Register($snapvisorExit)',
    `$snapvisorKill = New-Object System.Threading.CancellationTokenSource ${ms + POWERSHELL_KILL_AFTER_MS}`,
    `$null = $snapvisorKill.Token.Register(${POWERSHELL_KILL_DELEGATE})`,
    // User data arrives as data: base64 (no quote, `$`, backtick or newline can survive it) of UTF-8 JSON.
    `$Params = [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('${paramsB64}')) | ConvertFrom-Json`,
    ...DECODE_STRINGS_FUNCTION,
    '$Params = ConvertFrom-SvString $Params',
    request.script,
  ].join('\n');
}

/**
 * What every request runs under, one-shot or in a session host (powershell-host.ts): strict errors,
 * no progress records, UTF-8 stdout.
 */
export const POWERSHELL_SETTINGS: readonly string[] = [
  "$ErrorActionPreference = 'Stop'",
  "$ProgressPreference = 'SilentlyContinue'",
  // Windows PowerShell writes the console's OEM code page to a pipe; names are not ASCII-only.
  'try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }',
];

/**
 * The watchdog's actions, as expressions giving a System.Action: exit 124, and kill the process.
 * Compiled delegates, not script blocks: a timer fires on a thread that has no PowerShell runspace
 * to run a script block on.
 */
export const POWERSHELL_EXIT_DELEGATE =
  "[System.Linq.Expressions.Expression]::Lambda([System.Action], [System.Linq.Expressions.Expression]::Call([System.Environment].GetMethod('Exit'), [System.Linq.Expressions.Expression]::Constant(" +
  String(POWERSHELL_TIMEOUT_EXIT) +
  '))).Compile()';
export const POWERSHELL_KILL_DELEGATE = "[System.Delegate]::CreateDelegate([System.Action], [System.Diagnostics.Process]::GetCurrentProcess(), 'Kill')";

/** Throws for a script that cannot be a request's (empty, or not a string). */
export function checkScript(script: unknown): void {
  if (typeof script !== 'string' || script.trim() === '') throw new Error('powershell: empty script');
}

/** A request's deadline as the whole milliseconds a CancellationTokenSource takes (its kill comes 5 s later). */
export function powershellTimeoutMs(timeoutMs: number): number {
  const ms = Math.ceil(timeoutMs);
  if (!Number.isFinite(ms) || ms <= 0 || ms > 2_147_483_647 - POWERSHELL_KILL_AFTER_MS) throw new Error(`powershell: invalid timeout ${timeoutMs}`);
  return ms;
}

/** The params as the JSON the script decodes: every string opaque (opaqueStrings). */
function paramsJson(request: PowerShellRequest): string {
  const json = JSON.stringify(opaqueStrings(request.params ?? {}));
  if (json === undefined) throw new Error('powershell: params are not JSON');
  return json;
}

/**
 * The bootstrap of the `stdin` mode: after the preamble, read the whole of stdin (one line of base64:
 * no code page can change it), decode the request and dot-source its script, so `$Params`, the
 * preamble's settings and `exit N` work exactly as in the `command` mode. The preamble's own
 * `$Params` (empty) is replaced by the request's.
 */
export const STDIN_BOOTSTRAP = [
  '$snapvisorRequest = [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String([Console]::In.ReadToEnd().Trim())) | ConvertFrom-Json',
  '$Params = ConvertFrom-SvString $snapvisorRequest.params',
  '. ([ScriptBlock]::Create($snapvisorRequest.script))',
].join('\n');

/** What the `stdin` mode writes on stdin: base64 of the UTF-8 JSON `{script, params}`, and a newline. */
export function stdinRequest(request: PowerShellRequest): string {
  return base64Line(requestPayload(request));
}

/** `{script, params}` as both the `stdin` mode and a session host read them (params opaque). */
export function requestPayload(request: PowerShellRequest): { script: string; params: PowerShellValue } {
  checkScript(request.script);
  return { script: request.script, params: opaqueStrings(request.params ?? {}) };
}

/** One line of stdin: base64 (no code page can change it) of the value's UTF-8 JSON, and a newline. */
export function base64Line(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64') + '\n';
}

/**
 * Every string in the params as base64 of its UTF-16LE code units. PowerShell 7's ConvertFrom-Json
 * turns a string that looks like a date ("2024-05-01T10:00:00Z", a plausible snapshot name) into a
 * DateTime, and Windows PowerShell's does not: no string survives as such in the JSON, so both give
 * back exactly what was sent — lone surrogates included, which UTF-16 holds and UTF-8 cannot.
 */
export function opaqueStrings(value: PowerShellValue): PowerShellValue {
  if (typeof value === 'string') return Buffer.from(value, 'utf16le').toString('base64');
  if (Array.isArray(value)) return value.map(opaqueStrings);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, opaqueStrings(v)]));
  return value;
}

/** The decoder of `opaqueStrings` the preamble applies to `$Params` (in place for objects and arrays). */
export const DECODE_STRINGS_FUNCTION: readonly string[] = [
  // Short names: in the `command` mode every character here costs 2.67 of cmd.exe's 8,191.
  // The code units copied as they are: Encoding.Unicode.GetString would turn a lone surrogate into U+FFFD.
  'function ConvertFrom-SvString($v) { if ($v -is [string]) { $b = [Convert]::FromBase64String($v); $c = New-Object char[] ($b.Length / 2); [Buffer]::BlockCopy($b, 0, $c, 0, $b.Length); return [string]::new($c) }',
  '  if ($v -is [object[]]) { for ($i = 0; $i -lt $v.Length; $i++) { $v[$i] = ConvertFrom-SvString $v[$i] }; return ,$v }',
  '  if ($null -ne $v -and $v.PSObject.BaseObject -is [Management.Automation.PSCustomObject]) { foreach ($p in @($v.PSObject.Properties)) { $p.Value = ConvertFrom-SvString $p.Value } }; $v }',
];

/**
 * The argv that runs a request with a local PowerShell (the daemon on the Windows host itself, or
 * `pwsh` in a test): no shell in between, so no length limit but CreateProcess's own. The local
 * runner enforces its timeout; the script's watchdog is a second, remote-style one.
 */
export function powershellArgv(request: PowerShellRequest, opts: { timeoutMs: number; executable?: string }): string[] {
  return [opts.executable ?? 'powershell', '-NoProfile', '-NonInteractive', '-EncodedCommand', encodeScript(powershellScript(request, opts))];
}
