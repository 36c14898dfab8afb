/**
 * The session protocol of a long-lived PowerShell host (powershell-host.ps1): one PowerShell per
 * session instead of one per request, so a request costs its script, not PowerShell's start-up
 * (about 1.5 s) and the Hyper-V module's import.
 *
 * The command is as short and fixed as the one-shot `stdin` mode's: `-EncodedCommand` carries
 * only a bootstrap that reads the host script from the first line of stdin, so cmd.exe's 8,191
 * characters are never near. Every request is then one line of stdin — base64 of UTF-8 JSON
 * `{seq, timeoutMs, script, params}`, every string param opaque (opaqueStrings) — so parameters
 * are data and never in a command line, and the scripts are the same fixed files as one-shot.
 *
 * A reply is the request's own stdout and stderr, exactly as a one-shot run writes them, each
 * ended by "\n##snapvisor-host <token> <seq>" (stdout's with `{"exitCode":N}`); the random token
 * of the session is written only on its stdin, so no script output — a snapshot description
 * included — can end a reply early. A request that outlives its timeoutMs ends the whole host
 * (exit 124, killed 5 s later, as the one-shot watchdog does): the session dies with it.
 *
 * `carries`: every request the one-shot `stdin` mode can send. Like that mode, a request in a
 * session has an empty stdin of its own; the Hyper-V adapter never gives one.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  DECODE_STRINGS_FUNCTION,
  POWERSHELL_EXIT_DELEGATE,
  POWERSHELL_KILL_AFTER_MS,
  POWERSHELL_KILL_DELEGATE,
  POWERSHELL_SETTINGS,
  base64Line,
  powershellCommandLine,
  powershellExecutable,
  powershellTimeoutMs,
  requestPayload,
  type PowerShellRequest,
  type WindowsShell,
} from './command-encoding.ts';
import { packageFile } from './package-file.ts';
import { SessionUnsupported, type Reply, type SessionFramer, type SessionProtocol } from './session-protocol.ts';

export interface PowerShellHostOptions {
  /** Names the adapter in messages. */
  provider: string;
  /** The account's default shell on the Windows host (default 'cmd'). */
  shell?: WindowsShell;
  /** Default 'powershell' (Windows PowerShell 5.1); 'pwsh' for PowerShell 7. */
  executable?: string;
}

/** What the hello taught a framer about its host. */
export interface PowerShellHostInfo {
  version: string;
  edition: string;
  windows: boolean;
}

export interface PowerShellHostFramer extends SessionFramer<PowerShellRequest> {
  /** Known once the hello's reply was taken. */
  readonly host: PowerShellHostInfo | undefined;
}

/** Begins the end-of-reply line on both streams; the session's token follows it. */
export const HOST_MARK = '##snapvisor-host';

/** The `-EncodedCommand` script: read the host script from stdin's first line and run it in the global scope. */
export const HOST_BOOTSTRAP = '. ([ScriptBlock]::Create([System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String([Console]::In.ReadLine()))))';

let hostScriptCache: string | undefined;

/** The host script as the bootstrap runs it: the shared preamble pieces, then powershell-host.ps1. */
export function powershellHostScript(): string {
  hostScriptCache ??= [
    ...POWERSHELL_SETTINGS,
    ...DECODE_STRINGS_FUNCTION,
    `$snapvisorHostExit = ${POWERSHELL_EXIT_DELEGATE}`,
    `$snapvisorHostKill = ${POWERSHELL_KILL_DELEGATE}`,
    `$snapvisorHostKillAfterMs = ${POWERSHELL_KILL_AFTER_MS}`,
    readFileSync(packageFile('providers', 'shared', 'powershell-host.ps1'), 'utf8'),
  ].join('\n');
  return hostScriptCache;
}

export function powershellHostProtocol(options: PowerShellHostOptions): SessionProtocol<PowerShellRequest> {
  const executable = powershellExecutable('powershellHostProtocol', options.executable);
  const command = powershellCommandLine(executable, options.shell ?? 'cmd', HOST_BOOTSTRAP);
  return {
    name: 'powershell-host',
    command,
    remoteKillAfterMs: POWERSHELL_KILL_AFTER_MS,
    carries: (request) => {
      try {
        // A lone surrogate cannot cross UTF-8 in the script (params carry them as UTF-16 base64);
        // the one-shot encoding refuses such a script with its own message.
        return !/[\uD800-\uDFFF]/u.test(requestPayload(request).script);
      } catch {
        return false;
      }
    },
    open: () => hostFramer(randomBytes(16).toString('hex')),
  };
}

/** A framer with a given token: exported for tests; sessions get a random one from `open()`. */
export function hostFramer(token: string): PowerShellHostFramer {
  if (!/^[0-9a-f]{32}$/.test(token)) throw new Error('powershell host: the token must be 128 bits in hex');
  let host: PowerShellHostInfo | undefined;
  const mark = `\n${HOST_MARK} ${token} `;
  return {
    get host() {
      return host;
    },
    hello: () => Buffer.from(powershellHostScript(), 'utf8').toString('base64') + '\n' + base64Line({ seq: 0, token }),
    frame: (request, { seq, timeoutMs }) => {
      if (!Number.isSafeInteger(seq) || seq < 1) throw new Error(`powershell host: invalid seq ${seq}`);
      return base64Line({ seq, timeoutMs: powershellTimeoutMs(timeoutMs), ...requestPayload(request) });
    },
    take: (received, seq) => {
      const out = endLine(received.stdout, mark, seq);
      const err = endLine(received.stderr, mark, seq);
      if (out === undefined || err === undefined) return undefined;
      if (err.rest !== '') throw new Error(`powershell host: unexpected end of reply ${seq} on stderr`);
      const envelope = parseEnvelope(out.rest, seq);
      if (seq === 0) {
        if (typeof envelope.unsupported === 'string') throw new SessionUnsupported(`powershell host: ${envelope.unsupported}`);
        host = {
          version: typeof envelope.version === 'string' ? envelope.version : '',
          edition: typeof envelope.edition === 'string' ? envelope.edition : '',
          windows: envelope.windows === true,
        };
      }
      const exitCode = envelope.exitCode as number;
      const reply: Reply = {
        result: {
          // As the process's own exit status would be: Windows keeps all 32 bits (unsigned over SSH), POSIX the low 8.
          exitCode: host?.windows ? exitCode >>> 0 : exitCode & 0xff,
          stdout: seq === 0 ? (host?.version ?? '') : received.stdout.slice(0, out.at),
          stderr: seq === 0 ? '' : received.stderr.slice(0, err.at),
        },
        consumed: { stdout: out.end, stderr: err.end },
      };
      return reply;
    },
  };
}

interface EndLine {
  /** Where the request's own output stops (the mark's leading newline). */
  at: number;
  /** Just past the end line's newline. */
  end: number;
  /** What follows "<seq>" on the line, without its separating space. */
  rest: string;
}

/** The end line of reply `seq` in one stream; undefined until it has fully arrived. */
function endLine(text: string, mark: string, seq: number): EndLine | undefined {
  const at = text.indexOf(mark);
  if (at < 0) return undefined;
  const newline = text.indexOf('\n', at + mark.length);
  if (newline < 0) return undefined;
  const line = text.slice(at + mark.length, newline);
  const m = /^(\d+)(?: (.*))?$/s.exec(line);
  if (!m) throw new Error('powershell host: malformed end of reply');
  if (Number(m[1]) !== seq) throw new Error(`powershell host: reply ${m[1]} arrived while waiting for ${seq}`);
  return { at, end: newline + 1, rest: m[2] ?? '' };
}

function parseEnvelope(text: string, seq: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`powershell host: reply ${seq} ends with no JSON envelope`);
  }
  if (typeof value !== 'object' || value === null || !Number.isSafeInteger((value as Record<string, unknown>).exitCode)) {
    throw new Error(`powershell host: reply ${seq} has no exit code`);
  }
  return value as Record<string, unknown>;
}
