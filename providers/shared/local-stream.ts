/**
 * A RemoteStream on a local child process: the session pool's opener for a target without `ssh:`,
 * and the tests' way to drive an interpreter (virsh, pwsh) exactly as a session would.
 * `command` is a POSIX shell command line, as an SSH server would hand it to a login shell.
 */
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { CommandError } from './command-runner.ts';
import type { RemoteStream, StreamEnd, StreamOpener } from './session-protocol.ts';

const KILL_GRACE_MS = 2_000;

export function spawnStream(command: string, env: Record<string, string> = {}): RemoteStream {
  // detached: its own process group, so kill() reaches what the shell started too.
  const child = spawn('sh', ['-c', command], { env: { ...process.env, LC_ALL: 'C', ...env }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const listeners: ((from: 'stdout' | 'stderr', text: string) => void)[] = [];
  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  const emit = (from: 'stdout' | 'stderr') => (chunk: Buffer) => {
    const text = decoders[from].write(chunk);
    if (text !== '') for (const l of listeners) l(from, text);
  };
  child.stdout.on('data', emit('stdout'));
  child.stderr.on('data', emit('stderr'));
  child.stdin.on('error', () => {
    // the process ended without reading: `ended` tells why
  });
  let killed = false;
  const signalGroup = (sig: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  const ended = new Promise<StreamEnd>((resolve) => {
    child.on('error', (e) => resolve({ exitCode: null, error: new CommandError('spawn', `sh: cannot start (${e.message})`, false, { cause: e }) }));
    // 'exit', not 'close': a grandchild holding the pipes must not keep a dead session looking alive.
    child.on('exit', (code, sig) => {
      const why = killed ? 'was stopped' : `ended (${code !== null ? `exit code ${code}` : `signal ${sig ?? '?'}`})`;
      resolve({ exitCode: code, error: new CommandError(killed ? 'aborted' : 'disconnected', `local session ${why}`, true) });
    });
  });
  return {
    write: (text) => {
      if (child.stdin.writable) child.stdin.write(text);
    },
    onData: (listener) => listeners.push(listener),
    ended,
    kill: () => {
      if (killed) return;
      killed = true;
      signalGroup('SIGTERM');
      child.stdin.destroy();
      setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS).unref();
    },
  };
}

/** The StreamOpener of local sessions. */
export const openLocalStream: StreamOpener = async (command) => spawnStream(command);
