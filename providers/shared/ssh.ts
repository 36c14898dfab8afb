/**
 * CommandRunner over SSH: one pooled connection per target, each command a channel on it.
 *
 * - Lazy connect; a dropped connection is noticed (socket close, keepalive) and the next call opens a
 *   new one. Failed connects back off 0.5 s → 10 s so a dead host is never hammered.
 * - At most `maxChannels` commands at once per connection: OpenSSH refuses the 11th session on one
 *   connection by default (MaxSessions 10) with "Channel open failure".
 * - The host key is pinned (fingerprint or known_hosts/public-key line); anything else is refused
 *   before authentication, so no secret is ever offered to an impostor.
 * - What is sent is decided by a CommandEncoding (command-encoding.ts): by default POSIX — an argv,
 *   quoted, under coreutils `timeout`; Hyper-V's PowerShell encoding takes a script + params instead.
 *   The transport itself never looks inside a command.
 * - A timeout is enforced twice: remotely by the encoding (closing a channel does not stop a
 *   command that has no terminal) and locally by a deadline a little later, in case the remote side
 *   never answers.
 * - Errors name user@host:port and never carry the key, passphrase or password.
 */
import { createHash } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { NodeSSH } from 'node-ssh';
import type { Logger } from '../contract.ts';
import { posixEncoding, type CommandEncoding, type EncodedCommand, type RequestRunner } from './command-encoding.ts';
import { CommandError, type RunOptions, type RunResult } from './command-runner.ts';
import { hideSecrets } from './hide-secrets.ts';
import type { RemoteStream, StreamEnd } from './session-protocol.ts';
import { within } from './sleep.ts';

export interface SshOptions {
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  /** OpenSSH/PEM private key text. */
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /**
   * The pinned host key: a `SHA256:<base64>` fingerprint, or OpenSSH known_hosts / `.pub` lines
   * (one per line; any of them may match). Required: an unknown key is never accepted.
   */
  hostKey: string;
  /** Concurrent channels on the connection. Default 10 (OpenSSH's MaxSessions). */
  maxChannels?: number;
  /** TCP + SSH handshake + auth. Default 15 s. */
  connectTimeoutMs?: number;
  /** SSH keepalive interval; 3 unanswered keepalives drop the connection. Default 15 s; 0 = off. */
  keepaliveMs?: number;
  /** Timeout for a command whose RunOptions has none. Default 120 s. */
  defaultTimeoutMs?: number;
  /** Guard against a runaway command filling memory (stdout + stderr). Default 64 MiB. */
  maxOutputBytes?: number;
}

/** What went wrong with the transport itself (not with the command). */
export type SshFailure = 'connect' | 'auth' | 'hostkey' | 'disconnected';

/**
 * A transport failure. It is a CommandError, so generic CommandRunner callers see `failure` and
 * `sent`: 'spawn' + sent=false when the command never left (connect/auth/host key), 'disconnected' +
 * sent=true when the connection dropped while the command may have been running.
 */
export class SshError extends CommandError {
  constructor(
    readonly transport: SshFailure,
    message: string,
    sent: boolean,
    /** `user@host:port`. */
    readonly endpoint: string,
    options?: { cause?: unknown },
  ) {
    super(transport === 'disconnected' && sent ? 'disconnected' : 'spawn', message, sent, options);
  }
}

/** Authentication refused or the host key does not match the pin: adapters map it to ProviderError `auth`. */
export class SshAuthError extends SshError {
  constructor(transport: 'auth' | 'hostkey', message: string, endpoint: string) {
    super(transport, message, false, endpoint);
  }
}

/** With the default (POSIX) encoding an SshRunner is a CommandRunner: `run(argv)`. */
export interface SshRunner<Request = readonly string[]> extends RequestRunner<Request> {
  /**
   * Start a long-lived remote process whose stdin stays open (a persistent session: see
   * session-pool.ts). It holds one of the connection's channels until it ends. `command` is sent as
   * is: the caller builds it from fixed text and quoted arguments only.
   */
  openStream(command: string, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<RemoteStream>;
  /** End the connection; running commands fail with `aborted`, later calls are refused. */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** Extra local wait after the encoding's remote deadline (and its KILL) should have ended the command. */
const LOCAL_GRACE_MS = 2_000;
const BACKOFF_INITIAL_MS = 500;
/** Retries of a refused channel open: 25, 50, 100, 200, 400 ms. */
const CHANNEL_RETRIES = 5;
const CHANNEL_RETRY_MS = 25;
const BACKOFF_MAX_MS = 10_000;

// ssh2 ships no types, so node-ssh's typings see it as `any`; these are the few members we use.
interface ClientLike {
  setNoDelay(noDelay: boolean): unknown;
  on(event: 'error', listener: (err: Error & { level?: string }) => void): unknown;
  on(event: 'close' | 'end', listener: () => void): unknown;
  setMaxListeners(n: number): unknown;
}
interface ChannelLike {
  signal(name: string): unknown;
  close(): unknown;
  write?(data: string): unknown;
  on?(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on?(event: 'exit', listener: (code: number | null, signal?: string) => void): unknown;
  on?(event: 'close', listener: () => void): unknown;
  stderr?: { on(event: 'data', listener: (chunk: Buffer) => void): unknown };
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: { signal(channelId: number, name: string): unknown } };
}

/**
 * Ask sshd to signal the command (RFC 4254 §6.9; OpenSSH ≥ 7.9 sends it to the session's process
 * group). ssh2's `signal()` silently does nothing once stdin is closed, which node-ssh always does
 * right after the exec, so the request is sent on the protocol directly while the channel is open.
 */
function signalRemote(channel: ChannelLike, name: string): void {
  const protocol = channel._client?._protocol;
  const out = channel.outgoing;
  // 'eof' = we sent EOF on stdin; requests are still allowed until the channel is closed.
  if (protocol !== undefined && out !== undefined && (out.state === 'open' || out.state === 'eof')) protocol.signal(out.id, name);
  else channel.signal(name);
}

interface Connection {
  ssh: NodeSSH;
  dead: boolean;
  /** Commands running on it: told when the connection drops. */
  running: Set<(err: CommandError) => void>;
}

export interface SshRunnerDeps<Request> {
  log: Logger;
  /** How a request becomes the remote command line. Default: POSIX (argv). */
  encoding?: CommandEncoding<Request>;
}

export function createSshRunner(options: SshOptions, deps: { log: Logger }): SshRunner;
export function createSshRunner<Request>(options: SshOptions, deps: SshRunnerDeps<Request> & { encoding: CommandEncoding<Request> }): SshRunner<Request>;
export function createSshRunner<Request>(options: SshOptions, deps: SshRunnerDeps<Request>): SshRunner<Request> {
  const encoding = (deps.encoding ?? posixEncoding) as CommandEncoding<Request>;
  const port = options.port ?? 22;
  const endpoint = `${options.username}@${options.host}:${port}`;
  const log = deps.log.child({ ssh: endpoint });
  const pins = parseHostKeyPins(options.hostKey);
  const maxChannels = options.maxChannels ?? 10;
  if (!Number.isInteger(maxChannels) || maxChannels < 1) throw new Error(`ssh ${endpoint}: maxChannels must be a positive integer`);
  if (options.privateKey === undefined && options.password === undefined) {
    throw new Error(`ssh ${endpoint}: needs privateKey or password`);
  }
  const secrets = [options.privateKey, options.passphrase, options.password].filter((s): s is string => s !== undefined && s !== '');
  const redact = (text: string): string => hideSecrets(text, secrets);

  const slots = createSemaphore(maxChannels);
  let current: Connection | undefined;
  let connecting: Promise<Connection> | undefined;
  let failedConnects = 0;
  let nextConnectAt = 0;
  let closed = false;

  async function open(): Promise<Connection> {
    const wait = nextConnectAt - Date.now();
    if (wait > 0) await sleep(wait);
    if (closed) throw new SshError('connect', `ssh ${endpoint}: runner closed`, false, endpoint);
    const ssh = new NodeSSH();
    let presentedKey: string | undefined;
    try {
      await ssh.connect({
        host: options.host,
        port,
        username: options.username,
        ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
        ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
        ...(options.password !== undefined ? { password: options.password } : {}),
        tryKeyboard: false,
        readyTimeout: options.connectTimeoutMs ?? 15_000,
        keepaliveInterval: options.keepaliveMs ?? 15_000,
        keepaliveCountMax: 3,
        ...(pins.keyTypes.length > 0 ? { algorithms: { serverHostKey: hostKeyAlgorithms(pins.keyTypes) } } : {}),
        hostVerifier: (key: Buffer) => {
          if (hostKeyMatches(pins, key)) return true;
          presentedKey = fingerprintOf(key);
          return false;
        },
      });
    } catch (err) {
      ssh.dispose();
      failedConnects++;
      nextConnectAt = Date.now() + Math.min(BACKOFF_INITIAL_MS * 2 ** (failedConnects - 1), BACKOFF_MAX_MS);
      const e = connectError(err, presentedKey);
      log.warn({ failure: e.transport, attempt: failedConnects }, e.message);
      throw e;
    }
    failedConnects = 0;
    nextConnectAt = 0;
    const conn: Connection = { ssh, dead: false, running: new Set() };
    const client = ssh.connection as ClientLike;
    // Many small request/reply exchanges (a session command is one line and a short answer): with
    // Nagle's algorithm on, each waited ~40 ms for the server's delayed ACK (measured: 44 → 2 ms per
    // virsh session command). OpenSSH's own client sets TCP_NODELAY for interactive sessions too.
    client.setNoDelay(true);
    // node-ssh adds one 'error' listener per command in flight.
    client.setMaxListeners(maxChannels * 2 + 10);
    const drop = (why: string) => {
      if (conn.dead) return;
      conn.dead = true;
      if (current === conn) current = undefined;
      if (!closed) log.warn({ running: conn.running.size }, `ssh connection lost: ${why}`);
      for (const fail of [...conn.running]) {
        fail(
          closed
            ? new CommandError('aborted', `ssh ${endpoint}: runner closed while the command ran`, true)
            : new SshError('disconnected', `ssh ${endpoint}: connection lost while the command ran (${why})`, true, endpoint),
        );
      }
      ssh.dispose();
    };
    // An 'error' without a listener would crash the process.
    client.on('error', (err) => drop(redact(err.message)));
    client.on('end', () => drop('closed by server'));
    client.on('close', () => drop('socket closed'));
    log.debug({}, 'ssh connected');
    return conn;
  }

  function connectError(err: unknown, presentedKey: string | undefined): SshError {
    const e = err as (Error & { level?: string; code?: string }) | undefined;
    if (presentedKey !== undefined) {
      return new SshAuthError(
        'hostkey',
        `ssh ${endpoint}: host key ${presentedKey} does not match the pinned key; refusing to connect (update hostKey if the host was rebuilt)`,
        endpoint,
      );
    }
    const detail = redact(e?.message ?? String(err));
    if (e?.level === 'client-authentication') {
      return new SshAuthError('auth', `ssh ${endpoint}: authentication failed (${detail})`, endpoint);
    }
    if (/privateKey|private key|passphrase/i.test(detail)) {
      // ssh2 cannot parse or decrypt the key: wrong passphrase or not a key. Never echo the key.
      return new SshAuthError('auth', `ssh ${endpoint}: cannot use the private key (${detail})`, endpoint);
    }
    return new SshError('connect', `ssh ${endpoint}: cannot connect (${e?.code ?? detail})`, false, endpoint);
  }

  async function connection(signal: AbortSignal | undefined, deadline: number): Promise<Connection> {
    if (current !== undefined && !current.dead) return current;
    connecting ??= open().finally(() => (connecting = undefined));
    const conn = await waitFor(connecting, signal, deadline, 'connecting');
    current = conn;
    return conn;
  }

  /** Wait for `promise` unless the caller aborts or its deadline passes first (nothing was sent yet). */
  function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined, deadline: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(new CommandError('timeout', `ssh ${endpoint}: timed out while ${what}`, false))), Math.max(0, deadline - Date.now()));
      const onAbort = () => finish(() => reject(new CommandError('aborted', `ssh ${endpoint}: aborted while ${what}`, false)));
      signal?.addEventListener('abort', onAbort, { once: true });
      let done = false;
      const finish = (f: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      promise.then(
        (v) => finish(() => resolve(v)),
        (e: unknown) => finish(() => reject(e)),
      );
    });
  }

  async function run(request: Request, runOptions: RunOptions = {}): Promise<RunResult> {
    if (closed) throw new CommandError('spawn', `ssh ${endpoint}: runner closed`, false);
    const { signal } = runOptions;
    if (signal?.aborted) throw new CommandError('aborted', `ssh ${endpoint}: aborted before start`, false);
    const timeoutMs = runOptions.timeoutMs ?? options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    const encoded = encoding.encode(request, { timeoutMs, ...(runOptions.stdin !== undefined ? { stdin: runOptions.stdin } : {}) });
    const started = Date.now();
    const deadline = started + timeoutMs + encoding.remoteKillAfterMs + LOCAL_GRACE_MS;
    const program = encoding.label(request);

    const release = await slots.acquire(signal, deadline, (why) =>
      why === 'aborted'
        ? new CommandError('aborted', `ssh ${endpoint}: aborted while waiting for a free channel`, false)
        : new CommandError('timeout', `ssh ${endpoint}: timed out while waiting for a free channel`, false),
    );
    try {
      const conn = await connection(signal, deadline);
      return await exec(conn, encoded, program, runOptions, { started, timeoutMs, deadline });
    } finally {
      release();
    }
  }

  function exec(
    conn: Connection,
    { command, stdin }: EncodedCommand,
    program: string,
    runOptions: RunOptions,
    time: { started: number; timeoutMs: number; deadline: number },
  ): Promise<RunResult> {
    const maxOutput = options.maxOutputBytes ?? 64 * 1024 * 1024;
    const { signal } = runOptions;
    return new Promise<RunResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      const stderrText = new StringDecoder('utf8');
      let channel: ChannelLike | undefined;
      let stopped = false;
      let settled = false;

      const stopRemote = () => {
        stopped = true;
        if (channel === undefined) return;
        try {
          signalRemote(channel, 'TERM');
          channel.close();
        } catch {
          // connection already gone
        }
      };
      const settle = (outcome: { error: Error } | { result: RunResult }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        conn.running.delete(onDrop);
        if ('error' in outcome) reject(outcome.error);
        else resolve(outcome.result);
      };
      const onDrop = (e: CommandError) => settle({ error: e });
      const fail = (failure: 'timeout' | 'aborted' | 'output-limit', message: string) => {
        stopRemote();
        settle({ error: new CommandError(failure, `${program}: ${message}`, true) });
      };
      const timer = setTimeout(() => fail('timeout', `timed out after ${time.timeoutMs} ms (no answer from ${endpoint})`), Math.max(0, time.deadline - Date.now()));
      const onAbort = () => fail('aborted', 'aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      conn.running.add(onDrop);
      const collect = (into: Buffer[], chunk: Buffer) => {
        size += chunk.length;
        if (size > maxOutput) fail('output-limit', 'produced too much output');
        else into.push(chunk);
      };

      const start = (attempt: number) => conn.ssh
        .execCommand(command, {
          noTrim: true,
          ...(stdin !== undefined ? { stdin } : {}),
          onChannel: (ch: ChannelLike) => {
            channel = ch;
            if (stopped || settled) stopRemote();
          },
          onStdout: (chunk: Buffer) => collect(out, chunk),
          onStderr: (chunk: Buffer) => {
            collect(err, chunk);
            const text = stderrText.write(chunk);
            if (text !== '' && !settled) runOptions.onStderr?.(text);
          },
        })
        .then(
          (res) => {
            if (settled) return;
            if (res.code === null && res.signal === null) {
              // A channel closed without exit status: the connection went away under it.
              settle({ error: new SshError('disconnected', `ssh ${endpoint}: connection lost while ${program} ran`, true, endpoint) });
              return;
            }
            const exitCode = res.code ?? 128 + signalNumber(res.signal);
            // The encoding's remote deadline (coreutils `timeout`: 124 after TERM, 137 after its KILL).
            if (encoding.exitMeaning(exitCode, { elapsedMs: Date.now() - time.started, timeoutMs: time.timeoutMs }) === 'timeout') {
              settle({ error: new CommandError('timeout', `${program}: timed out after ${time.timeoutMs} ms and was killed on ${endpoint}`, true) });
              return;
            }
            const tail = stderrText.end();
            if (tail !== '') runOptions.onStderr?.(tail);
            settle({ result: { exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') } });
          },
          (e: unknown) => {
            if (settled) return;
            const message = redact(e instanceof Error ? e.message : String(e));
            if (/channel open failure/i.test(message)) {
              // Refused before the command was sent. sshd frees a session slot a moment after the
              // channel's close reaches it, so a slot we just released can still count there:
              // retry briefly (nothing ran), then report it (e.g. server MaxSessions < maxChannels).
              const delay = CHANNEL_RETRY_MS * 2 ** attempt;
              if (attempt < CHANNEL_RETRIES && !conn.dead && Date.now() + delay < time.deadline) {
                log.debug({ attempt: attempt + 1 }, 'ssh channel refused; retrying');
                setTimeout(() => {
                  if (!settled && !conn.dead) start(attempt + 1);
                }, delay);
                return;
              }
              settle({ error: new CommandError('spawn', `ssh ${endpoint}: channel refused (${message})`, false, { cause: e }) });
              return;
            }
            if (!conn.dead) {
              // The server answered and refused the exec request: nothing ran.
              settle({ error: new CommandError('spawn', `ssh ${endpoint}: cannot run ${program} (${message})`, false, { cause: e }) });
              return;
            }
            settle({ error: new SshError('disconnected', `ssh ${endpoint}: connection lost while starting ${program} (${message})`, true, endpoint) });
          },
        );
      start(0);
    });
  }

  async function openStream(command: string, opts: { signal?: AbortSignal; timeoutMs: number }): Promise<RemoteStream> {
    if (closed) throw new CommandError('spawn', `ssh ${endpoint}: runner closed`, false);
    const deadline = Date.now() + opts.timeoutMs;
    const release = await slots.acquire(opts.signal, deadline, (why) =>
      new CommandError(why, `ssh ${endpoint}: ${why === 'aborted' ? 'aborted' : 'timed out'} while waiting for a free channel`, false),
    );
    let conn: Connection;
    try {
      conn = await connection(opts.signal, deadline);
    } catch (e) {
      release();
      throw e;
    }
    const client = conn.ssh.connection as ClientLike & { exec(command: string, cb: (err: Error | undefined, channel: ChannelLike) => void): unknown };
    return new Promise<RemoteStream>((resolve, reject) => {
      client.exec(command, (err, channel) => {
        if (err) {
          release();
          reject(new CommandError('spawn', `ssh ${endpoint}: cannot start a session (${redact(err.message)})`, false, { cause: err }));
          return;
        }
        resolve(streamOf(conn, channel, release));
      });
    });
  }

  function streamOf(conn: Connection, channel: ChannelLike, release: () => void): RemoteStream {
    const listeners: ((from: 'stdout' | 'stderr', text: string) => void)[] = [];
    const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    const emit = (from: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const text = decoders[from].write(chunk);
      if (text !== '') for (const l of listeners) l(from, text);
    };
    channel.on?.('data', emit('stdout'));
    channel.stderr?.on('data', emit('stderr'));
    let exitCode: number | null = null;
    let killed = false;
    let finish: (end: StreamEnd) => void = () => {};
    const ended = new Promise<StreamEnd>((resolve) => {
      finish = (end) => {
        conn.running.delete(onDrop);
        release();
        finish = () => {};
        resolve(end);
      };
    });
    const onDrop = (e: CommandError) => finish({ exitCode: null, error: e });
    conn.running.add(onDrop);
    channel.on?.('exit', (code) => (exitCode = code));
    channel.on?.('close', () =>
      finish({
        exitCode,
        error: killed
          ? new CommandError('aborted', `ssh ${endpoint}: session stopped`, true)
          : new SshError('disconnected', `ssh ${endpoint}: the session's process ended (${exitCode === null ? 'no exit status' : `exit code ${exitCode}`})`, true, endpoint),
      }),
    );
    return {
      write: (text) => {
        if (!conn.dead && !killed) channel.write?.(text);
      },
      onData: (listener) => listeners.push(listener),
      ended,
      kill: () => {
        if (killed) return;
        killed = true;
        try {
          signalRemote(channel, 'TERM');
          channel.close();
        } catch {
          // connection already gone
        }
      },
    };
  }

  return {
    run,
    openStream,
    async close() {
      closed = true;
      slots.rejectAll(() => new CommandError('aborted', `ssh ${endpoint}: runner closed`, false));
      const conn = current ?? (await connecting?.catch(() => undefined));
      current = undefined;
      if (conn === undefined || conn.dead) return;
      const client = conn.ssh.connection as ClientLike | null;
      const gone = new Promise<void>((resolve) => {
        if (client === null) resolve();
        else client.on('close', () => resolve());
      });
      conn.ssh.dispose();
      await within(gone, 2_000);
    },
  };
}

export interface HostKeyPins {
  /** Unpadded base64 SHA-256 fingerprints. */
  fingerprints: string[];
  /** base64 key blobs from known_hosts / .pub lines. */
  blobs: string[];
  /** Key types named by those lines, to ask the server for the pinned type first. */
  keyTypes: string[];
}

/** Parse the `hostKey` option; throws when it pins nothing. */
export function parseHostKeyPins(hostKey: string): HostKeyPins {
  const pins: HostKeyPins = { fingerprints: [], blobs: [], keyTypes: [] };
  for (const raw of hostKey.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('SHA256:')) {
      pins.fingerprints.push(line.slice('SHA256:'.length).replace(/=+$/, ''));
      continue;
    }
    // known_hosts: [markers] hosts type blob [comment]; .pub: type blob [comment]. @cert-authority and
    // @revoked lines are not pins.
    if (line.startsWith('@')) continue;
    const words = line.split(/\s+/);
    const typeAt = words.findIndex((w) => /^(ssh-|ecdsa-sha2-|sk-)/.test(w));
    const type = typeAt >= 0 ? words[typeAt] : undefined;
    const blob = typeAt >= 0 ? words[typeAt + 1] : undefined;
    if (type === undefined || blob === undefined || !/^[A-Za-z0-9+/]+=*$/.test(blob)) {
      throw new Error('hostKey: expected "SHA256:<base64>" or an OpenSSH known_hosts/public-key line');
    }
    pins.blobs.push(blob.replace(/=+$/, ''));
    if (!pins.keyTypes.includes(type)) pins.keyTypes.push(type);
  }
  if (pins.fingerprints.length === 0 && pins.blobs.length === 0) throw new Error('hostKey: no host key given (an unknown key is never accepted)');
  return pins;
}

export function hostKeyMatches(pins: HostKeyPins, key: Buffer): boolean {
  const fp = fingerprintOf(key).slice('SHA256:'.length);
  const blob = key.toString('base64').replace(/=+$/, '');
  return pins.fingerprints.includes(fp) || pins.blobs.includes(blob);
}

/** OpenSSH's `SHA256:<base64 without padding>` of a raw host key blob. */
export function fingerprintOf(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

/** Signature algorithms for pinned key types: an RSA key is offered as rsa-sha2-* by modern servers. */
function hostKeyAlgorithms(types: readonly string[]): string[] {
  return types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));
}

function signalNumber(name: string | null): number {
  if (name === null) return 0;
  const key = (name.startsWith('SIG') ? name : `SIG${name}`) as keyof typeof osConstants.signals;
  return osConstants.signals[key] ?? 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A counting semaphore whose queued callers can give up (abort, deadline) or be refused (close). */
function createSemaphore(limit: number) {
  let active = 0;
  type Waiter = { grant: () => void; refuse: (e: Error) => void };
  const queue: Waiter[] = [];
  const releaser = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      active--;
      const next = queue.shift();
      if (next !== undefined) {
        active++;
        next.grant();
      }
    };
  };
  return {
    acquire(signal: AbortSignal | undefined, deadline: number, giveUp: (why: 'aborted' | 'timeout') => Error): Promise<() => void> {
      if (active < limit && queue.length === 0) {
        active++;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const leave = (why: 'aborted' | 'timeout') => {
          const at = queue.indexOf(waiter);
          if (at >= 0) queue.splice(at, 1);
          cleanup();
          reject(giveUp(why));
        };
        const onAbort = () => leave('aborted');
        const timer = setTimeout(() => leave('timeout'), Math.max(0, deadline - Date.now()));
        const cleanup = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        };
        const waiter: Waiter = {
          grant: () => {
            cleanup();
            resolve(releaser());
          },
          refuse: (e) => {
            cleanup();
            reject(e);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        queue.push(waiter);
      });
    },
    rejectAll(error: () => Error) {
      for (const w of queue.splice(0)) w.refuse(error());
    },
  };
}
