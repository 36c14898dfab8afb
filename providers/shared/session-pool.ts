/**
 * A runner that sends requests through a few long-lived interpreter sessions (see
 * session-protocol.ts) and everything else through the ordinary one-shot runner.
 *
 * - One request at a time per session; up to `size` sessions per target, opened on demand and
 *   closed after `idleMs` unused. A request that finds them all busy runs one-shot at once rather
 *   than queueing behind a long command (a blockcommit can hold a session for an hour).
 * - A request the protocol cannot carry exactly, or one with its own stdin or a progress listener,
 *   runs one-shot: never a mangled version.
 * - A session is never trusted after anything unexpected: a timeout, an abort, a reply that does
 *   not parse or an over-long output ends it (the remote process is stopped) and the next request
 *   opens a fresh one. A request in flight when its session dies fails with the transport's error,
 *   `sent` = true (the adapter reports `uncertain` for a mutating call): it is never retried blindly.
 * - A hello that shows the interpreter cannot be framed (SessionUnsupported) turns sessions off for
 *   the target (logged once); any other failure to open one backs off for a while, one-shot meanwhile.
 */
import type { Logger } from '../contract.ts';
import type { RequestRunner } from './command-encoding.ts';
import { CommandError, type RunOptions, type RunResult } from './command-runner.ts';
import { within } from './sleep.ts';
import { SessionUnsupported, type Reply, type RemoteStream, type SessionFramer, type SessionProtocol, type StreamOpener } from './session-protocol.ts';

export interface SessionPoolOptions<Request> {
  protocol: SessionProtocol<Request>;
  open: StreamOpener;
  /** Runs what no session takes. */
  oneShot: RequestRunner<Request>;
  log: Logger;
  /** Sessions per target. Default 3. */
  size?: number;
  /** Close a session unused this long. Default 60 s. */
  idleMs?: number;
  /** Start-up + hello. Default 30 s. */
  openTimeoutMs?: number;
  /** Timeout for a request whose RunOptions has none. Default 120 s. */
  defaultTimeoutMs?: number;
  /** Guard against a runaway reply filling memory. Default 64 MiB. */
  maxOutputChars?: number;
}

export interface SessionStats {
  /** Requests answered through a session. */
  session: number;
  /** Requests sent one-shot (not carried, pool busy, sessions off or failing). */
  oneShot: number;
  /** Sessions opened so far. */
  opened: number;
  /** Sessions open now. */
  open: number;
  /** Why sessions are off for this target, once a hello showed they cannot work. */
  unsupported?: string;
}

export interface SessionRunner<Request> extends RequestRunner<Request> {
  stats(): SessionStats;
  close(): Promise<void>;
}

/** Without a remote deadline of the protocol's own, the pool's kill at timeoutMs is the deadline. */
const LOCAL_GRACE_MS = 2_000;
/** A killed request counts as the remote deadline's only when it really ran that long. */
const DEADLINE_SLACK_MS = 50;
/** After a session failed to open (not "unsupported"): one-shot only for this long. */
const OPEN_BACKOFF_MS = 30_000;

interface Session<Request> {
  stream: RemoteStream;
  framer: SessionFramer<Request>;
  seq: number;
  busy: boolean;
  dead: boolean;
  stdout: string;
  stderr: string;
  /** Called on every arrival while a reply is awaited. */
  onArrival?: () => void;
  onEnd?: (error: Error) => void;
  idle?: NodeJS.Timeout;
}

export function createSessionRunner<Request>(o: SessionPoolOptions<Request>): SessionRunner<Request> {
  const { protocol, log } = o;
  const size = o.size ?? 3;
  const idleMs = o.idleMs ?? 60_000;
  const maxOutput = o.maxOutputChars ?? 64 * 1024 * 1024;
  const sessions = new Set<Session<Request>>();
  let opening = 0;
  let retryOpenAt = 0;
  let unsupported: string | undefined;
  let closed = false;
  const counts = { session: 0, oneShot: 0, opened: 0 };

  function oneShot(request: Request, options: RunOptions): Promise<RunResult> {
    counts.oneShot++;
    return o.oneShot.run(request, options);
  }

  function end(s: Session<Request>, why: string): void {
    if (s.dead) return;
    s.dead = true;
    sessions.delete(s);
    clearTimeout(s.idle);
    log.debug({ session: protocol.name, why }, 'session ended');
    s.stream.kill();
  }

  /** Wait for reply `seq`, or fail on the session's end, the deadline, an abort or garbage. */
  function awaitReply(s: Session<Request>, seq: number, t: { timeoutMs: number; signal?: AbortSignal | undefined; remoteDeadline: boolean }): Promise<RunResult> {
    const started = Date.now();
    return new Promise<RunResult>((resolve, reject) => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        t.signal?.removeEventListener('abort', onAbort);
        s.onArrival = undefined;
        s.onEnd = undefined;
        f();
      };
      const fail = (error: Error, why: string) => {
        end(s, why);
        settle(() => reject(error));
      };
      const wait = t.timeoutMs + (t.remoteDeadline && protocol.remoteKillAfterMs > 0 ? protocol.remoteKillAfterMs + LOCAL_GRACE_MS : 0);
      const timer = setTimeout(() => fail(new CommandError('timeout', `${protocol.name} session: timed out after ${t.timeoutMs} ms; the session was stopped`, true), 'timeout'), wait);
      const onAbort = () => fail(new CommandError('aborted', `${protocol.name} session: aborted; the session was stopped`, true), 'aborted');
      t.signal?.addEventListener('abort', onAbort, { once: true });
      s.onEnd = (error) => {
        // The protocol's own deadline (a PowerShell host's watchdog) ends the whole interpreter.
        const ranOut = t.remoteDeadline && protocol.remoteKillAfterMs > 0 && Date.now() - started >= t.timeoutMs - DEADLINE_SLACK_MS;
        settle(() => reject(ranOut ? new CommandError('timeout', `${protocol.name} session: timed out after ${t.timeoutMs} ms and was ended on the host`, true) : error));
      };
      s.onArrival = () => {
        if (s.stdout.length + s.stderr.length > maxOutput) {
          fail(new CommandError('output-limit', `${protocol.name} session: produced too much output`, true), 'output limit');
          return;
        }
        let reply: Reply | undefined;
        try {
          reply = s.framer.take({ stdout: s.stdout, stderr: s.stderr }, seq);
        } catch (e) {
          if (e instanceof SessionUnsupported) {
            fail(e, 'unsupported');
            return;
          }
          const message = e instanceof Error ? e.message : String(e);
          fail(new CommandError('disconnected', `${protocol.name} session: unexpected reply (${message}); the session was stopped`, true, { cause: e }), 'unexpected reply');
          return;
        }
        if (reply === undefined) return;
        s.stdout = s.stdout.slice(reply.consumed.stdout);
        s.stderr = s.stderr.slice(reply.consumed.stderr);
        const result = reply.result;
        settle(() => resolve(result));
      };
      s.onArrival(); // the reply may be complete already
    });
  }

  async function openSession(signal: AbortSignal | undefined): Promise<Session<Request>> {
    const timeoutMs = o.openTimeoutMs ?? 30_000;
    const stream = await o.open(protocol.command, { ...(signal ? { signal } : {}), timeoutMs });
    const s: Session<Request> = { stream, framer: protocol.open(), seq: 0, busy: true, dead: false, stdout: '', stderr: '' };
    stream.onData((from, text) => {
      s[from] += text;
      s.onArrival?.();
    });
    void stream.ended.then((e) => {
      const wasDead = s.dead;
      s.dead = true;
      sessions.delete(s);
      clearTimeout(s.idle);
      if (!wasDead) log.debug({ session: protocol.name, why: e.error.message }, 'session ended');
      s.onEnd?.(e.error);
    });
    try {
      stream.write(s.framer.hello());
      await awaitReply(s, 0, { timeoutMs, signal, remoteDeadline: false });
    } catch (e) {
      end(s, 'hello failed');
      throw e;
    }
    counts.opened++;
    log.debug({ session: protocol.name }, 'session opened');
    return s;
  }

  /** An idle session, a new one if there is room, or undefined: run one-shot. */
  async function acquire(signal: AbortSignal | undefined): Promise<Session<Request> | undefined> {
    for (const s of sessions) {
      if (!s.busy && !s.dead) {
        s.busy = true;
        clearTimeout(s.idle);
        return s;
      }
    }
    if (unsupported !== undefined || sessions.size + opening >= size || Date.now() < retryOpenAt) return undefined;
    opening++;
    try {
      const s = await openSession(signal);
      if (closed) {
        end(s, 'runner closed');
        return undefined;
      }
      sessions.add(s);
      return s;
    } catch (e) {
      if (e instanceof SessionUnsupported) {
        unsupported = e.message;
        log.warn({ session: protocol.name, reason: e.message }, 'persistent sessions are off for this target: one process per command');
      } else if (!signal?.aborted) {
        retryOpenAt = Date.now() + OPEN_BACKOFF_MS;
        log.warn({ session: protocol.name, err: e instanceof Error ? e.message : String(e) }, 'cannot open a session; one process per command for a while');
      }
      return undefined;
    } finally {
      opening--;
    }
  }

  function idle(s: Session<Request>): void {
    s.busy = false;
    clearTimeout(s.idle);
    s.idle = setTimeout(() => end(s, 'idle'), idleMs);
    s.idle.unref();
  }

  return {
    async run(request, options = {}) {
      if (closed) throw new CommandError('spawn', `${protocol.name} session: runner closed`, false);
      if (options.signal?.aborted) throw new CommandError('aborted', `${protocol.name}: aborted before start`, false);
      if (options.stdin !== undefined || options.onStderr !== undefined || !protocol.carries(request)) return oneShot(request, options);
      const s = await acquire(options.signal);
      if (s === undefined) return oneShot(request, options);
      const timeoutMs = options.timeoutMs ?? o.defaultTimeoutMs ?? 120_000;
      const seq = ++s.seq;
      if (s.stderr !== '') {
        // Written between requests (virsh's notice that libvirtd went away): about no request.
        log.debug({ session: protocol.name, stderr: s.stderr.slice(0, 500) }, 'session wrote between requests');
        s.stderr = '';
      }
      try {
        s.stream.write(s.framer.frame(request, { seq, timeoutMs }));
        const result = await awaitReply(s, seq, { timeoutMs, signal: options.signal, remoteDeadline: true });
        counts.session++;
        if (!s.dead) idle(s);
        return result;
      } catch (e) {
        end(s, 'request failed');
        throw e;
      }
    },
    stats: () => ({ ...counts, open: sessions.size, ...(unsupported !== undefined ? { unsupported } : {}) }),
    async close() {
      closed = true;
      const ending = [...sessions].map((s) => s.stream.ended);
      for (const s of [...sessions]) end(s, 'runner closed');
      await within(Promise.all(ending), 2_000);
    },
  };
}
