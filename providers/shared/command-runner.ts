import { spawn } from 'node:child_process';

/**
 * The transport for every hypervisor tool that runs as a process (VBoxManage, virsh, PowerShell).
 * It takes an argv array — never a shell string — so a user's snapshot name is always one argument.
 * Implemented locally here; the SSH transport implements the same interface.
 */
export interface RunOptions {
  signal?: AbortSignal;
  /** Kill the command after this long. */
  timeoutMs?: number;
  stdin?: string;
  /** Called with each chunk of stderr as it arrives (VBoxManage writes progress there). */
  onStderr?: (chunk: string) => void;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * `disconnected`: a remote transport (SSH) lost its connection while the command may have been
 * running — always with `sent` = true; the local runner never reports it.
 */
export type CommandFailure = 'timeout' | 'aborted' | 'spawn' | 'output-limit' | 'disconnected';

/** The command did not finish with an exit code. `sent` tells whether it may have acted. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly failure: CommandFailure,
    message: string,
    /** True when the process started, so the hypervisor may have acted on it. */
    readonly sent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CommandRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export interface LocalRunnerOptions {
  /** Extra environment for every command (merged over the daemon's own, minus secrets it never had). */
  env?: Record<string, string>;
  defaultTimeoutMs?: number;
  /** Guard against a runaway tool filling memory. */
  maxOutputBytes?: number;
}

const KILL_GRACE_MS = 2_000;

export function createLocalRunner(options: LocalRunnerOptions = {}): CommandRunner {
  const maxOutput = options.maxOutputBytes ?? 64 * 1024 * 1024;
  return {
    run(argv, runOptions = {}) {
      const [file, ...args] = argv;
      if (file === undefined) return Promise.reject(new CommandError('spawn', 'empty argv', false));
      const timeoutMs = runOptions.timeoutMs ?? options.defaultTimeoutMs ?? 120_000;
      return new Promise<RunResult>((resolve, reject) => {
        if (runOptions.signal?.aborted) {
          reject(new CommandError('aborted', `${file}: aborted before start`, false));
          return;
        }
        // detached: the command gets its own process group so a timeout kills its children too.
        const child = spawn(file, args, {
          env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...options.env },
          stdio: ['pipe', 'pipe', 'pipe'],
          detached: true,
        });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let size = 0;
        let failure: CommandFailure | undefined;
        let killTimer: NodeJS.Timeout | undefined;

        const kill = (why: CommandFailure) => {
          if (failure !== undefined) return;
          failure = why;
          signalGroup('SIGTERM');
          killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
          killTimer.unref();
        };
        const signalGroup = (sig: NodeJS.Signals) => {
          if (child.pid === undefined) return;
          try {
            process.kill(-child.pid, sig);
          } catch {
            // already gone
          }
        };
        const timer = setTimeout(() => kill('timeout'), timeoutMs);
        const onAbort = () => kill('aborted');
        runOptions.signal?.addEventListener('abort', onAbort, { once: true });

        const collect = (into: Buffer[]) => (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxOutput) kill('output-limit');
          else into.push(chunk);
        };
        child.stdout.on('data', collect(out));
        child.stderr.on('data', (chunk: Buffer) => {
          collect(err)(chunk);
          runOptions.onStderr?.(chunk.toString('utf8'));
        });
        child.stdin.on('error', () => {
          // the command may exit without reading stdin; its exit code tells the story
        });
        child.stdin.end(runOptions.stdin ?? '');

        child.on('error', (e) => {
          clearTimeout(timer);
          runOptions.signal?.removeEventListener('abort', onAbort);
          reject(new CommandError('spawn', `${file}: cannot start (${(e as NodeJS.ErrnoException).code ?? e.message})`, false, { cause: e }));
        });
        child.on('close', (code, sig) => {
          clearTimeout(timer);
          if (killTimer) clearTimeout(killTimer);
          runOptions.signal?.removeEventListener('abort', onAbort);
          if (failure !== undefined) {
            const what = failure === 'timeout' ? `timed out after ${timeoutMs} ms` : failure === 'aborted' ? 'aborted' : 'produced too much output';
            reject(new CommandError(failure, `${file}: ${what}`, true));
            return;
          }
          resolve({
            exitCode: code ?? (sig ? 128 : 1),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
          });
        });
      });
    },
  };
}
