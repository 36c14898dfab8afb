/**
 * The virsh side of persistent sessions: `virsh -c <uri>` reading commands on stdin.
 *
 * What a virsh session really does (libvirt 9.0, measured; see test/integration/kvm-sessions.test.ts):
 * - It prints a welcome banner first, and after every command's output one more newline
 *   (vshPrintExtra, as the one-shot virsh the adapter runs does too): a reply's stdout is the same.
 * - Even with stdin a pipe, virsh reads lines through readline, which echoes the prompt and the
 *   line on stdout (`virsh # <line>\n`, non-ASCII bytes as octal escapes), wraps a long echo at
 *   80 columns with `\n\r` unless COLUMNS says wider and, for a tab, completes file names
 *   (mangling the line). Control characters are editing keys. So a line carries only printable
 *   characters, INPUTRC=/dev/null keeps the account's key bindings out, and the hello checks that a
 *   long non-ASCII line comes back exactly.
 * - Its tokenizer reads `'…'` literally and `\x` outside quotes as x: the POSIX quoting of
 *   shell-quote.ts (`'` as `'\''`) gives each argument back exactly, so the one quoting function
 *   serves both. A quoted `--x` is still an option, as it is in one-shot argv.
 * - A failed command prints `error: …` lines on stderr and virsh goes on; `echo --err X` prints
 *   `error: X` (libvirt 4.5, RHEL 7's, has no `--err`: the hello sees it and sessions stay off).
 *   When libvirtd goes away virsh says `error: Disconnected from <uri> due to end of file` whenever
 *   it notices, and before the next command reconnects by itself (`error: Reconnected to the
 *   hypervisor`): neither is a failure of a command.
 *
 * Framing of request N (token T, random per session, never in any output but the sentinels):
 *   sent:   <command>\n  echo --err T"N"\n  echo T"N"\n
 *   stdout: <prompt><echo of command>\n <output>\n <prompt>echo --err T"N"\n\n <prompt>echo T"N"\n TN\n
 *   stderr: <errors> error: TN\n
 * `echo T"N"` prints `TN`, which its own echoed line does not contain, so only virsh's answer
 * matches. The exit code is 1 when an `error:` line came before the stderr sentinel, as virsh's own.
 */
import { randomBytes } from 'node:crypto';
import { quoteArg, remoteCommand } from '../shared/shell-quote.ts';
import { SessionUnsupported, type Reply, type SessionFramer, type SessionProtocol } from '../shared/session-protocol.ts';

/** Printable only: C0 and C1 controls and DEL are readline keys (tab completes, ^A moves, …). */
const NOT_CARRIED = /[\u0000-\u001f\u007f-\u009f]|[\uD800-\uDFFF]/u;
/** A long, non-ASCII line the hello must get back exactly (readline wraps its echo at 80 columns). */
const PROBE = `snapvisor-probe é€😀 ${'x'.repeat(1000)}`;
/** The width readline is told; a longer line (quoted, 4 columns a byte at worst) is sent one-shot. */
const LINE_MAX = 1_000_000;
/**
 * What virsh prints about its own connection, not about the command: the close callback's notice
 * (at any moment, from its event thread) and its reconnection before the next command. A command
 * that then fails says so in lines of its own.
 */
const CONNECTION_NOTICES = /^error: (Reconnected to the hypervisor|Disconnected from \S+ due to [^\n]*)\n/gm;

export function virshSessionProtocol(uri: string): SessionProtocol<readonly string[]> {
  const prefix = ['virsh', '-c', uri];
  return {
    name: 'virsh',
    // COLUMNS: readline cannot ask a pipe its width, assumes 80 and wraps its echo with newlines.
    // Not -q, as the adapter's one-shot virsh: -q also drops messages (vshPrintExtra) such as
    // blockjob's "No current block job for vda", not only the welcome banner.
    command: remoteCommand(['virsh', '-c', uri], { env: { INPUTRC: '/dev/null', COLUMNS: String(LINE_MAX) } }),
    remoteKillAfterMs: 0,
    carries(argv) {
      if (argv.length <= prefix.length || prefix.some((p, i) => argv[i] !== p)) return false;
      return argv.every((a) => !NOT_CARRIED.test(a)) && argv.reduce((n, a) => n + a.length * 4 + 3, 0) < LINE_MAX;
    },
    open: () => virshFramer(randomBytes(12).toString('hex')),
  };
}

/** One session's framer; exported with its token for the unit tests. */
export function virshFramer(token: string): SessionFramer<readonly string[]> {
  let prompt: string | undefined;
  const line = (argv: readonly string[]) => argv.map(quoteArg).join(' ');
  const frameOf = (words: readonly string[], seq: number) => `${line(words)}\necho --err ${token}"${seq}"\necho ${token}"${seq}"\n`;

  return {
    hello: () => frameOf(['echo', PROBE], 0),
    frame: (argv, { seq }) => frameOf(argv.slice(3), seq),
    take(received, seq): Reply | undefined {
      const { stdout, stderr } = received;
      const endMark = `echo ${token}"${seq}"\n${token}${seq}\n`;
      const end = stdout.indexOf(endMark);
      if (end < 0) return undefined;
      const errMark = `error: ${token}${seq}\n`;
      const errAt = stderr.indexOf(errMark);
      if (errAt < 0) {
        if (seq === 0 && /doesn't support option --err/.test(stderr)) throw new SessionUnsupported("this virsh's echo has no --err, which framing needs");
        return undefined; // stderr is a separate pipe: its sentinel may still be on its way
      }
      if (prompt === undefined) {
        // The hello teaches the prompt ('virsh # ', 'virsh > ' read-only): what precedes the echo.
        prompt = stdout.slice(stdout.lastIndexOf('\n', end - 1) + 1, end);
      }
      // Only the hello's reply starts with something else: virsh's welcome banner.
      const start = seq === 0 ? stdout.indexOf(prompt) : 0;
      if (start < 0 || !stdout.startsWith(prompt, start)) throw new Error(`virsh session: reply ${seq} does not start with the prompt`);
      const errEcho = stdout.lastIndexOf(`${prompt}echo --err ${token}"${seq}"\n\n`, end);
      const outputStart = stdout.indexOf('\n', start) + 1;
      if (errEcho < 0 || outputStart === 0 || outputStart > errEcho) throw new Error(`virsh session: reply ${seq} is not framed as sent`);
      const output = stdout.slice(outputStart, errEcho);
      const errors = stderr.slice(0, errAt).replace(CONNECTION_NOTICES, '');
      if (seq === 0 && (output !== `${PROBE}\n` || errors !== '')) {
        throw new SessionUnsupported('virsh does not give a long non-ASCII line back exactly through its line editor');
      }
      return {
        result: { exitCode: /^error: /m.test(errors) ? 1 : 0, stdout: output, stderr: errors },
        consumed: { stdout: end + endMark.length, stderr: errAt + errMark.length },
      };
    },
  };
}
