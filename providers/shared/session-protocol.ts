/**
 * Persistent remote sessions: one long-lived interpreter (virsh, a PowerShell host) on an SSH
 * channel, fed one request at a time on stdin, instead of one process (and one fresh hypervisor
 * connection) per command. What is generic lives here and in session-pool.ts; what a given
 * interpreter reads and writes is its SessionProtocol (kvm/virsh-session.ts,
 * shared/powershell-host.ts).
 *
 * The protocol frames every request with a random per-session token, so the end of each reply is
 * known exactly from the bytes, never guessed from timing, and no output (a snapshot description
 * included) can forge it: the token is never sent anywhere but on the session's own stdin.
 */
import type { RunResult } from './command-runner.ts';

/** A running remote process whose stdin stays open: the transport's part of a session. */
export interface RemoteStream {
  /** Write on the process's stdin (UTF-8). */
  write(text: string): void;
  /** Output as it arrives, decoded as UTF-8 per stream (a character split across chunks is kept whole). */
  onData(listener: (from: 'stdout' | 'stderr', text: string) => void): void;
  /** Settles once: the process ended, the channel closed or the connection went away. Never rejects. */
  readonly ended: Promise<StreamEnd>;
  /** Stop the remote process (TERM where the server honours signal requests) and close the channel. */
  kill(): void;
}

export interface StreamEnd {
  /** The remote exit status, when the server sent one. */
  exitCode: number | null;
  /**
   * Why it ended, as a transport error (an SshError `disconnected` for a dropped connection, a
   * CommandError otherwise): a request in flight fails with it (its `sent` is true).
   */
  error: Error;
}

/** Opens the long-lived process: over SSH (SshRunner.openStream) or, in tests, a local child. */
export type StreamOpener = (command: string, opts: { signal?: AbortSignal; timeoutMs: number }) => Promise<RemoteStream>;

/** The session cannot frame requests at all (an interpreter too old, a host that refuses): use one-shot. */
export class SessionUnsupported extends Error {
  override readonly name = 'SessionUnsupported';
}

/**
 * How one kind of interpreter is driven. Pure: no I/O, no timers; the pool does those.
 */
export interface SessionProtocol<Request> {
  /** 'virsh', 'powershell-host': for logs and messages. */
  readonly name: string;
  /** The remote command line that starts one interpreter (for the account's login shell). */
  readonly command: string;
  /**
   * How long after a request's `timeoutMs` the interpreter may still take to end itself (a
   * PowerShell host's own watchdog: 5 s); 0 when only the pool's kill ends a hung request.
   */
  readonly remoteKillAfterMs: number;
  /**
   * Whether the request can go through a session exactly as it would as one process. False (a
   * name the interpreter's parser cannot carry, a request with its own stdin, a command that is
   * not the interpreter's): the pool runs it one-shot instead, never a mangled version.
   */
  carries(request: Request): boolean;
  /** A framer for one new session: holds its random token and whatever the hello taught it. */
  open(): SessionFramer<Request>;
}

export interface SessionFramer<Request> {
  /** Written right after the process starts; its reply (seq 0) shows the session works. */
  hello(): string;
  /** The text that sends one request (seq ≥ 1). Only called for requests `carries()` accepted. */
  frame(request: Request, ctx: { seq: number; timeoutMs: number }): string;
  /**
   * Read the reply to request `seq` (0 = the hello) from what has arrived so far on each stream.
   * undefined: not complete yet. Otherwise the result — exit code, stdout and stderr exactly as the
   * same request run one-shot would give them — and how many characters of each stream it used.
   * Throws SessionUnsupported (hello only) when the interpreter cannot be framed, and any other
   * Error when the stream is not what the protocol expects (the pool ends the session).
   */
  take(received: { stdout: string; stderr: string }, seq: number): Reply | undefined;
}

export interface Reply {
  result: RunResult;
  consumed: { stdout: number; stderr: number };
}
