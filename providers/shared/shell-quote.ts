/**
 * The one place where an argv array becomes a command line for a remote POSIX shell.
 *
 * SSH has no argv: the server hands one string to the user's login shell (`$SHELL -c …`), so every
 * argument is single-quoted here, always — even "safe" words — so that no user string (a snapshot
 * name with `'`, `;`, `$()`, a newline) can ever be read as shell syntax. Inside single quotes a
 * POSIX shell interprets nothing; the only character needing care is `'` itself, written as `'\''`.
 * This assumes a POSIX login shell on the remote host (sh, dash, bash, zsh, ksh), not fish or cmd.exe.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// With the `u` flag a surrogate pair is one code point, so this matches only lone halves,
// which UTF-8 cannot carry (they would arrive as U+FFFD, not the caller's string).
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** Quote one argument for a POSIX shell: `'…'`, with `'` as `'\''`; `''` for the empty string. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('cannot pass a NUL character in a shell argument');
  if (LONE_SURROGATE.test(arg)) throw new Error('cannot pass a string with an unpaired surrogate (not valid UTF-8)');
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export interface RemoteCommandOptions {
  /** Extra environment for the command; names must be plain identifiers, values are quoted. */
  env?: Record<string, string>;
  /** Kill the command after this many seconds (coreutils `timeout`, then SIGKILL 5 s later). */
  timeoutSec?: number;
}

/** Seconds `timeout` waits after its TERM before it sends KILL. */
export const REMOTE_KILL_AFTER_SEC = 5;

/**
 * `LC_ALL=C [NAME='value' …] [timeout --kill-after=5 N] 'argv0' 'argv1' …`
 *
 * `LC_ALL=C` keeps tool messages untranslated, so error parsing works on every host. The remote
 * `timeout` exists because closing an SSH channel does not stop a command without a terminal:
 * only a deadline enforced on the remote side really ends it.
 */
export function remoteCommand(argv: readonly string[], opts: RemoteCommandOptions = {}): string {
  if (argv.length === 0) throw new Error('remoteCommand: empty argv');
  const words: string[] = ['LC_ALL=C'];
  for (const [name, value] of Object.entries(opts.env ?? {})) {
    if (!ENV_NAME.test(name)) throw new Error(`remoteCommand: invalid environment variable name ${JSON.stringify(name)}`);
    words.push(`${name}=${quoteArg(value)}`);
  }
  if (opts.timeoutSec !== undefined) {
    words.push('timeout', `--kill-after=${REMOTE_KILL_AFTER_SEC}`, formatSeconds(opts.timeoutSec));
  }
  for (const arg of argv) words.push(quoteArg(arg));
  return words.join(' ');
}

function formatSeconds(sec: number): string {
  if (!Number.isFinite(sec) || sec <= 0 || sec > 1e9) throw new Error(`remoteCommand: invalid timeout ${sec}`);
  // Millisecond precision, never exponent notation (coreutils parses "0.25", not "2.5e-1").
  const ms = Math.ceil(sec * 1000);
  return ms % 1000 === 0 ? String(ms / 1000) : (ms / 1000).toFixed(3);
}
