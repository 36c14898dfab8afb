/**
 * A real OpenSSH server on 127.0.0.1 for tests: own config, own host key, own authorized_keys,
 * all inside `dir`, so it never touches the machine's /etc/ssh and several labs can run at once.
 * Needs root (sshd switches to the login user) and /usr/sbin/sshd (test/labs/provision.sh installs it).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect, createServer } from 'node:net';
import { dirname, join, resolve, sep } from 'node:path';
import { withLabLockSync } from '../lab-lock.ts';

const SSHD = '/usr/sbin/sshd';
const READY_TIMEOUT_MS = 15_000;

export interface SshdLab {
  host: '127.0.0.1';
  port: number;
  /** `SHA256:<base64, no padding>`, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** known_hosts line: `[127.0.0.1]:<port> ssh-ed25519 AAAA…`. */
  hostKeyLine: string;
  /** The listener's pid. */
  pid: number;
  /** sshd's own log (`-E`), for assertions and post-mortems. */
  logFile: string;
  /** Kill the per-connection sshd processes (not the listener): every client sees its connection drop. */
  killSessions(): void;
  /** Stop the listener and every session it started. The host key stays in `dir` for a restart. */
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  dir: string;
  /** The only user allowed to log in. */
  user: string;
  /** OpenSSH public-key lines. */
  authorizedKeys: string[];
  /** Default: a free port. */
  port?: number;
  /** OpenSSH MaxSessions (channels per connection). 64 by default; real hosts have 10. */
  maxSessions?: number;
  /**
   * Environment for every session (sshd_config `SetEnv`, applied after sshd's own defaults, so it
   * can replace PATH). Names: [A-Za-z_][A-Za-z0-9_]*; values must not contain `"`, `\`, `%` or a
   * line break (sshd_config has no escaping for them). Absent: no SetEnv line at all.
   */
  setEnv?: Record<string, string>;
}

export async function startSshd(options: StartSshdOptions): Promise<SshdLab> {
  if (!existsSync(SSHD)) {
    throw new Error(
      `sshd lab: ${SSHD} is missing. Install OpenSSH server with \`bash test/labs/provision.sh\` (as root), ` +
        'or `apt-get install -y --no-install-recommends openssh-server`.',
    );
  }
  if (process.getuid?.() !== 0) throw new Error('sshd lab: must run as root (sshd switches to the login user)');
  const { dir, user } = options;
  // sshd_config has no quoting for paths: % starts a token, whitespace splits the value.
  if (/[\s%"]/.test(dir)) throw new Error(`sshd lab: directory path must not contain whitespace, % or ": ${dir}`);
  mkdirSync(dir, { recursive: true });
  // The login user reads authorized_keys itself (sshd drops to its uid for that), so it must traverse dir.
  // Nothing secret is readable: private keys in dir are root-owned 0600.
  chmodSync(dir, 0o755);
  makeTraversable(dir);
  // sshd's privilege-separation directory; Debian's systemd unit normally creates it.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKeyPath)) keygen(hostKeyPath, 'snapvisor-lab-host');
  const [keyType, keyBlob] = readFileSync(`${hostKeyPath}.pub`, 'utf8').trim().split(/\s+/);
  if (keyType === undefined || keyBlob === undefined) throw new Error(`sshd lab: cannot read ${hostKeyPath}.pub`);

  const authorizedKeysFile = join(dir, 'authorized_keys');
  writeFileSync(authorizedKeysFile, options.authorizedKeys.map((k) => k.trim()).join('\n') + '\n', { mode: 0o644 });
  chmodSync(authorizedKeysFile, 0o644);

  const port = options.port ?? (await freePort());
  const logFile = join(dir, 'sshd.log');
  const configFile = join(dir, 'sshd_config');
  writeFileSync(
    configFile,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyPath}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorizedKeysFile}`,
      `AllowUsers ${user}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin no',
      // The lab user's password is '*' (no password login); with PAM the account stack accepts a
      // key login for it, which is how Debian's own sshd runs.
      'UsePAM yes',
      // StrictModes checks every directory above authorized_keys: a dir under /tmp (world-writable,
      // sticky) fails it. The file is root-owned 0644 in a root-owned 0755 dir, so only root can
      // change it anyway.
      'StrictModes no',
      `MaxSessions ${options.maxSessions ?? 64}`,
      ...setEnvLines(options.setEnv),
      'MaxStartups 100:30:200',
      'UseDNS no',
      'PrintMotd no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );

  try {
    execFileSync(SSHD, ['-t', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`sshd lab: config rejected: ${String((e as { stderr?: Buffer }).stderr ?? e)}`);
  }

  // -D: stay in the foreground so we own the listener's pid; -E: log to a file, not syslog.
  const child = spawn(SSHD, ['-D', '-f', configFile, '-E', logFile], { stdio: 'ignore' });
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new Error('sshd lab: cannot start sshd');
  const exitCleanup = () => killTree(pid, true);
  process.on('exit', exitCleanup);

  try {
    await waitForBanner(port, child, logFile);
  } catch (e) {
    killTree(pid, true);
    process.off('exit', exitCleanup);
    throw e;
  }

  return {
    host: '127.0.0.1',
    port,
    hostKeyFingerprint: fingerprintOfBlob(keyBlob),
    hostKeyLine: `[127.0.0.1]:${port} ${keyType} ${keyBlob}`,
    pid,
    logFile,
    killSessions: () => killTree(pid, false),
    async stop() {
      process.off('exit', exitCleanup);
      killTree(pid, false);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function setEnvLines(env: Record<string, string> | undefined): string[] {
  if (env === undefined) return [];
  const words: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`sshd lab: invalid SetEnv name ${JSON.stringify(name)}`);
    if (/["\\%\r\n]/.test(value)) throw new Error(`sshd lab: SetEnv ${name} value must not contain ", \\, % or a line break: ${JSON.stringify(value)}`);
    words.push(`"${name}=${value}"`);
  }
  return words.length > 0 ? [`SetEnv ${words.join(' ')}`] : [];
}

/** An ed25519 key pair in `dir/<name>` (+ `.pub`), no passphrase. Reuses an existing pair. */
export function generateKeyPair(dir: string, name: string): { privateKey: string; publicKey: string; path: string } {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  if (!existsSync(path)) keygen(path, `snapvisor-lab-${name}`);
  return { privateKey: readFileSync(path, 'utf8'), publicKey: readFileSync(`${path}.pub`, 'utf8').trim(), path };
}

/**
 * A login user for the lab: created if missing with a home dir, /bin/bash (what real hosts run) and
 * password '*' — no password can match it, yet unlike useradd's '!' it does not count as "locked",
 * so key logins work with or without PAM. Missing groups are created; the user is added to them.
 */
export function ensureUser(name: string, groups: string[] = []): void {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`ensureUser: invalid user name ${JSON.stringify(name)}`);
  for (const group of groups) {
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(group)) throw new Error(`ensureUser: invalid group name ${JSON.stringify(group)}`);
  }
  // Test files run side by side: two of them may find the same user (or group) missing at once,
  // and the second useradd (groupadd) then fails because it exists. Check and create as one step.
  withLabLockSync('users', () => {
    for (const group of groups) {
      if (!succeeds('getent', ['group', group])) run('groupadd', ['--system', group]);
    }
    if (!succeeds('id', ['-u', name])) {
      run('useradd', ['--system', '--create-home', '--shell', '/bin/bash', ...(groups.length > 0 ? ['--groups', groups.join(',')] : []), name]);
    } else if (groups.length > 0) {
      run('usermod', ['--append', '--groups', groups.join(','), name]);
    }
    run('usermod', ['--password', '*', name]);
  });
}

/**
 * Every directory above `dir` must let the login user pass (o+x), or sshd cannot read
 * authorized_keys as that user and every key login fails. mkdtemp makes 0700 directories: under the
 * temp dir we add o+x only (no listing); elsewhere we refuse rather than loosen the machine's dirs.
 */
function makeTraversable(dir: string): void {
  const tmp = resolve(tmpdir());
  for (let d = dirname(resolve(dir)); d !== dirname(d); d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) !== 0) continue;
    if (!d.startsWith(tmp + sep)) {
      throw new Error(`sshd lab: ${d} is not traversable by other users (o+x); put the lab dir under ${tmp}`);
    }
    chmodSync(d, (mode & 0o7777) | 0o001);
  }
}

/** `SHA256:` + unpadded base64 of the SHA-256 of the key blob (OpenSSH's fingerprint format). */
export function fingerprintOfBlob(base64Blob: string): string {
  return 'SHA256:' + createHash('sha256').update(Buffer.from(base64Blob, 'base64')).digest('base64').replace(/=+$/, '');
}

function keygen(path: string, comment: string): void {
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

function run(file: string, args: string[]): void {
  try {
    execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`sshd lab: ${file} ${args.join(' ')} failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`);
  }
}

function succeeds(file: string, args: string[]): boolean {
  try {
    execFileSync(file, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('sshd lab: no free port'))));
    });
  });
}

/** Poll until the listener answers with an SSH banner; fail with sshd's own log if it died. */
async function waitForBanner(port: number, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`sshd lab: sshd exited during start-up:\n${logTail(logFile)}`);
    if (await bannerOk(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd lab: no SSH banner on 127.0.0.1:${port} after ${READY_TIMEOUT_MS} ms:\n${logTail(logFile)}`);
}

function bannerOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk: Buffer) => done(chunk.toString('latin1').startsWith('SSH-2.0-')));
  });
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no sshd log)';
  }
}

/**
 * SIGKILL the listener's descendants that are sshd processes — the per-connection monitor and its
 * unprivileged child — so the TCP connection drops at once. Commands those sessions started are left
 * running, as after a real network drop. With `listenerToo`, the listener goes as well.
 */
function killTree(listenerPid: number, listenerToo: boolean): void {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentOf(Number(entry));
    if (ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const victims: number[] = [];
  const walk = (pid: number) => {
    for (const child of children.get(pid) ?? []) {
      if (!isSshd(child)) continue;
      victims.push(child);
      walk(child);
    }
  };
  walk(listenerPid);
  if (listenerToo) victims.push(listenerPid);
  for (const pid of victims) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^PPid:\s+(\d+)$/m.exec(status);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

function isSshd(pid: number): boolean {
  try {
    // OpenSSH ≥ 9.8 runs sessions as `sshd-session`; 9.2 (Debian 12) as `sshd`.
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().startsWith('sshd');
  } catch {
    return false;
  }
}
