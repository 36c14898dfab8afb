/**
 * A real libvirt + QEMU lab on this machine (software emulation, no /dev/kvm), reached the way a
 * production host is: over SSH, as a non-root user in group `libvirt`.
 *
 * Facts this relies on (measured): /work/shared/reference/kvm.md. Packages come from
 * test/labs/provision.sh; everything else (users, libvirtd.conf, daemons) is done here, because
 * there is no systemd and no libvirt-daemon-system package to do it.
 *
 * Used by tests and by hand, so it must not import tap.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { processAlive } from '../file-lock.mjs';
import { holdLabLock, holdLabLockShared, withLabLockSync } from '../lab-lock.ts';
import { ensureUser, generateKeyPair, startSshd } from '../sshd/lab.ts';

export const LAB_URI = 'qemu:///system';
export const LAB_USER = 'snaplab';
/**
 * The adapter's `sessions` option for the lab's tests: on (the default) unless
 * SNAPVISOR_TEST_KVM_SESSIONS=off, which runs them with one virsh process per command
 * (test/integration/*-oneshot.test.ts set it).
 */
export const LAB_SESSIONS = process.env['SNAPVISOR_TEST_KVM_SESSIONS'] !== 'off';
const LIBVIRT_GROUP = 'libvirt';
const QEMU_USER = 'libvirt-qemu';
const LIBVIRTD_CONF = '/etc/libvirt/libvirtd.conf';
const VIRTLOGD_SOCK = '/run/libvirt/virtlogd-sock';
const LIBVIRT_SOCK = '/run/libvirt/libvirt-sock';
const REQUIRED_COMMANDS = ['virsh', 'libvirtd', 'virtlogd', 'qemu-system-x86_64', 'qemu-img'];
const FIX = 'run `sudo bash test/labs/provision.sh` (installs libvirt, QEMU and OpenSSH server)';

// Without polkit/D-Bus this is the only way a non-root user reaches qemu:///system.
const LIBVIRTD_CONF_TEXT = `# Written by Snapvisor's KVM lab (test/labs/kvm/lab.ts): no polkit/systemd here, so members of
# group ${LIBVIRT_GROUP} get the read-write socket without further authentication.
unix_sock_group = "${LIBVIRT_GROUP}"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
`;

const DOMAIN_DISK_MB = 16;
const START_TIMEOUT_MS = 60_000;
// Test labs are named svt<pid>-<hex>-…; a lab whose process is gone is reaped by the next lab.
const TEST_PREFIX = /^svt(\d+)-[0-9a-f]{6}-/;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv without a shell (LC_ALL=C so libvirt messages stay untranslated). Never rejects on exit status. */
export function run(argv: readonly string[], timeoutMs = 120_000): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) return Promise.reject(new Error('kvm lab: empty command'));
  return new Promise((resolvePromise) => {
    execFile(
      file,
      args,
      { env: { ...process.env, LC_ALL: 'C' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const e = error as NodeJS.ErrnoException & { code?: number | string };
          code = typeof e.code === 'number' ? e.code : 127;
          if (typeof e.code === 'string') stderr = `${stderr}${e.message}\n`;
        }
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}

function runSync(argv: readonly string[]): RunResult {
  const [file, ...args] = argv;
  const r = spawnSync(file ?? '', args, { env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? 127, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? `${r.error.message}\n` : '') };
}

function virsh(...args: string[]): Promise<RunResult> {
  return run(['virsh', '-c', LAB_URI, ...args]);
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function processRunning(name: string): boolean {
  return runSync(['pgrep', '-x', name]).code === 0;
}

function ensureGroup(name: string): void {
  if (runSync(['getent', 'group', name]).code === 0) return;
  const r = runSync(['groupadd', '-r', name]);
  // A parallel lab may have created it between the two calls (exit 9 = name not unique).
  if (r.code !== 0 && r.code !== 9) throw new Error(`kvm lab: groupadd ${name} failed: ${r.stderr.trim()}`);
}

function ensureQemuUser(): void {
  ensureGroup(QEMU_USER);
  if (runSync(['getent', 'passwd', QEMU_USER]).code !== 0) {
    // libvirt's QEMU driver refuses to start without it ("Failed to parse user 'libvirt-qemu'").
    const r = runSync(['useradd', '-r', '-g', QEMU_USER, '-d', '/var/lib/libvirt', '-s', '/usr/sbin/nologin', QEMU_USER]);
    if (r.code !== 0 && r.code !== 9) throw new Error(`kvm lab: useradd ${QEMU_USER} failed: ${r.stderr.trim()}`);
  }
  if (qemuUserLacksKvm()) {
    // On a host with /dev/kvm, libvirt probes QEMU with KVM, then finds /dev/kvm not usable by the
    // user it runs QEMU as and throws the capabilities away: every call that needs them (define,
    // version, start) probed QEMU again, about 7 s each. libvirt-daemon-system's postinst makes the
    // same membership. libvirtd reads it when it starts (kvm-faults restarts it).
    const r = runSync(['usermod', '-aG', 'kvm', QEMU_USER]);
    if (r.code !== 0) throw new Error(`kvm lab: usermod -aG kvm ${QEMU_USER} failed: ${r.stderr.trim()}`);
  }
}

/** /dev/kvm is there, owned by group kvm, and the QEMU user is not in that group. */
function qemuUserLacksKvm(): boolean {
  if (!existsSync('/dev/kvm') || runSync(['getent', 'group', 'kvm']).code !== 0) return false;
  return !runSync(['id', '-nG', QEMU_USER]).stdout.split(/\s+/).includes('kvm');
}

function socketGroupIsLibvirt(): boolean {
  try {
    const gid = statSync(LIBVIRT_SOCK).gid;
    const line = runSync(['getent', 'group', LIBVIRT_GROUP]).stdout.split(':');
    return line[2] !== undefined && Number(line[2]) === gid;
  } catch {
    return false;
  }
}

/**
 * Makes qemu:///system usable: packages present (else throws with the fix), users and groups,
 * /etc/libvirt/libvirtd.conf, virtlogd and libvirtd running. Idempotent; when everything is already
 * up it costs one `virsh version` (not cached: fault tests stop libvirtd and call this to restart it).
 */
export async function ensureLibvirt(): Promise<{ version: string }> {
  // There is one libvirtd for the machine. Files that only add their own domains (named per lab)
  // share it: the `kvm` lock, held shared until the process exits. The ones that stop and restart it
  // (kvm-faults, kvm-sessions) or count the lab user's virsh processes take it exclusively with
  // holdLabLock('kvm') before their first use, and run alone.
  await holdLabLockShared('kvm');
  const missing = REQUIRED_COMMANDS.filter((c) => !onPath(c));
  if (missing.length > 0) throw new Error(`kvm lab: missing ${missing.join(', ')}: ${FIX}`);

  if (processRunning('virtlogd') && socketGroupIsLibvirt() && !qemuUserLacksKvm()) {
    const version = await virshVersion();
    if (version) return { version };
  }
  if (!isRoot()) throw new Error('kvm lab: libvirtd is not running (or not set up for group libvirt) and only root can start it');

  // Other labs add users and groups at the same time (sshd/lab.ts ensureUser): check and create as one step.
  withLabLockSync('users', () => {
    ensureGroup(LIBVIRT_GROUP);
    ensureQemuUser();
  });
  // Sharers may all find libvirtd down at once: one of them writes the configuration and starts the
  // daemons, the others then find them running with it.
  withLabLockSync('kvm-setup', () => {
    // libvirtd exits during init without its log dir; sshd refuses to start without /run/sshd.
    for (const dir of ['/var/log/libvirt', '/var/lib/libvirt', '/run/sshd', dirname(LIBVIRTD_CONF)]) mkdirSync(dir, { recursive: true });
    const current = existsSync(LIBVIRTD_CONF) ? readFileSync(LIBVIRTD_CONF, 'utf8') : '';
    const confChanged = current !== LIBVIRTD_CONF_TEXT;
    if (confChanged) writeFileSync(LIBVIRTD_CONF, LIBVIRTD_CONF_TEXT);

    // Domains cannot start without virtlogd ("Failed to connect socket to '/run/libvirt/virtlogd-sock'").
    if (!processRunning('virtlogd') || !existsSync(VIRTLOGD_SOCK)) {
      const r = runSync(['virtlogd', '-d']);
      if (r.code !== 0) throw new Error(`kvm lab: virtlogd -d failed (exit ${r.code}): ${r.stderr.trim()}`);
    }
    if (processRunning('libvirtd') && (confChanged || !socketGroupIsLibvirt())) {
      // Running with another configuration: the socket would not be usable by the lab user.
      throw new Error(
        `kvm lab: libvirtd is running without the lab's ${LIBVIRTD_CONF} (socket group is not ${LIBVIRT_GROUP}); ` +
          'stop it (kill its pid) and run the tests again',
      );
    }
    if (!processRunning('libvirtd')) {
      // `libvirtd -d` exits 0 even when the daemon dies during init, so success is only the poll below.
      const r = runSync(['libvirtd', '-d']);
      if (r.code !== 0) throw new Error(`kvm lab: libvirtd -d failed (exit ${r.code}): ${r.stderr.trim()}`);
      // Until its socket is there, the next sharer in here would take it for a foreign libvirtd.
      const until = Date.now() + START_TIMEOUT_MS;
      while (!socketGroupIsLibvirt() && processRunning('libvirtd') && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const version = await virshVersion((stderr) => (last = stderr));
    if (version) return { version };
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`kvm lab: libvirtd did not answer \`virsh -c ${LAB_URI} version\` within ${START_TIMEOUT_MS / 1000} s: ${last.trim()}`);
}

/** Stops libvirtd (SIGTERM via its pid file) and waits until it is gone; running domains keep running. */
export async function stopLibvirtd(timeoutMs = 30_000): Promise<void> {
  // Only an exclusive holder may stop it (see ensureLibvirt); a sharer asking is refused at once.
  await holdLabLock('kvm');
  const pid = Number(readFileSync('/run/libvirtd.pid', 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 1) throw new Error('kvm lab: no libvirtd pid in /run/libvirtd.pid');
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kvm lab: libvirtd (pid ${pid}) did not exit within ${timeoutMs} ms`);
}

async function virshVersion(onError?: (stderr: string) => void): Promise<string | undefined> {
  const r = await virsh('version');
  if (r.code !== 0) {
    onError?.(r.stderr);
    return undefined;
  }
  return /^Using library: libvirt (\S+)/m.exec(r.stdout)?.[1] ?? r.stdout.trim();
}

// ---------------------------------------------------------------------------------------------

export interface KvmLabDomain {
  /** Name inside the lab; libvirt's name is `domainName(name)` (prefixed, unique per lab). */
  name: string;
  running: boolean;
  /** Add the virtio-serial channel `org.qemu.guest_agent.0` (no agent runs in the guest). */
  agentChannel?: boolean;
}

export interface KvmLabOptions {
  dir: string;
  domains: KvmLabDomain[];
  /** libvirt name prefix; default `svt<pid>-<random>-`. Labs with the default prefix whose process died are reaped. */
  prefix?: string;
}

export interface KvmLab {
  uri: 'qemu:///system';
  ssh: { host: string; port: number; username: string; privateKey: string; hostKey: string };
  /** Fixed per lab, set in the domain XML. */
  domainUuid(name: string): string;
  /** The libvirt domain name of a lab domain (prefix + name). */
  domainName(name: string): string;
  /** The qcow2 image the domain was defined with. */
  diskPath(name: string): string;
  /** Runs a command locally as root, without a shell (for setup and for faking faults behind the provider's back). */
  runAsRoot(argv: string[]): Promise<RunResult>;
  /** `virsh -c qemu:///system …` as root. */
  virsh(...args: string[]): Promise<RunResult>;
  /** Kills the per-connection sshd children (drops live SSH sessions), keeps the listener. */
  killSshSessions(): void;
  /** Destroys and undefines the domains (with snapshot metadata), removes disks and overlays, stops sshd. Idempotent. */
  cleanup(): Promise<void>;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

export function domainXml(options: { name: string; uuid: string; disk: string; agentChannel: boolean }): string {
  const channel = options.agentChannel
    ? `    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n`
    : '';
  // No OS, no NIC, no graphics: the guest idles in firmware at ~1% CPU.
  return `<domain type='qemu'>
  <name>${xmlEscape(options.name)}</name>
  <uuid>${options.uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${xmlEscape(options.disk)}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
${channel}    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** libvirt-qemu must be able to reach the disks: every ancestor needs o+x. */
function assertTraversable(dir: string): void {
  for (let d = dirname(dir); ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(`kvm lab: ${d} is not traversable by others (mode ${(mode & 0o777).toString(8)}); QEMU (user ${QEMU_USER}) could not open disks under ${dir}`);
    }
    if (dirname(d) === d) return;
  }
}

async function reapDeadLabs(): Promise<void> {
  const r = await virsh('list', '--all', '--name');
  if (r.code !== 0) return;
  for (const name of r.stdout.split('\n').map((l) => l.trim())) {
    const m = TEST_PREFIX.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (processAlive(pid)) continue;
    await virsh('destroy', name);
    await virsh('undefine', name, '--snapshots-metadata');
  }
}

export async function createKvmLab(options: KvmLabOptions): Promise<KvmLab> {
  await ensureLibvirt();
  if (!isRoot()) throw new Error('kvm lab: createKvmLab must run as root (it defines domains and starts sshd)');
  const names = new Set<string>();
  for (const d of options.domains) {
    if (names.has(d.name)) throw new Error(`kvm lab: duplicate domain name ${JSON.stringify(d.name)}`);
    names.add(d.name);
  }
  await reapDeadLabs();

  const dir = resolve(options.dir);
  const diskDir = join(dir, 'disks');
  mkdirSync(diskDir, { recursive: true, mode: 0o755 });
  assertTraversable(diskDir);
  spawnSync('chmod', ['0755', dir, diskDir]);

  const prefix = options.prefix ?? `svt${process.pid}-${randomBytes(3).toString('hex')}-`;
  const domains = new Map<string, { libvirtName: string; uuid: string; disk: string }>();
  options.domains.forEach((d, i) => {
    domains.set(d.name, { libvirtName: `${prefix}${d.name}`, uuid: randomUUID(), disk: join(diskDir, `disk${i}.qcow2`) });
  });

  let sshd: Awaited<ReturnType<typeof startSshd>> | undefined;
  let cleaned = false;
  const destroySync = (): void => {
    for (const d of domains.values()) {
      runSync(['virsh', '-c', LAB_URI, 'destroy', d.libvirtName]);
      runSync(['virsh', '-c', LAB_URI, 'undefine', d.libvirtName, '--snapshots-metadata']);
    }
  };
  // A crashed test must not leave QEMU processes behind. First among the exit hooks: before the
  // `kvm` lock (taken earlier, in ensureLibvirt) is released to the next KVM test.
  const onExit = (): void => {
    if (!cleaned) destroySync();
  };
  process.prependOnceListener('exit', onExit);

  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    process.removeListener('exit', onExit);
    const problems: string[] = [];
    for (const d of domains.values()) {
      await virsh('destroy', d.libvirtName); // fails when already off or gone: fine
      const u = await virsh('undefine', d.libvirtName, '--snapshots-metadata');
      if (u.code !== 0 && !/failed to get domain/.test(u.stderr)) problems.push(`undefine ${d.libvirtName}: ${u.stderr.trim()}`);
    }
    // External snapshot overlays land next to the base image by default, so they go with diskDir.
    rmSync(diskDir, { recursive: true, force: true });
    if (sshd) await sshd.stop();
    if (problems.length > 0) throw new Error(`kvm lab cleanup: ${problems.join('; ')}`);
  };

  try {
    for (const [i, d] of options.domains.entries()) {
      const entry = domains.get(d.name);
      if (!entry) continue;
      const img = await run(['qemu-img', 'create', '-q', '-f', 'qcow2', entry.disk, `${DOMAIN_DISK_MB}M`]);
      if (img.code !== 0) throw new Error(`kvm lab: qemu-img create failed: ${img.stderr.trim()}`);
      const xmlPath = join(dir, `domain${i}.xml`);
      writeFileSync(xmlPath, domainXml({ name: entry.libvirtName, uuid: entry.uuid, disk: entry.disk, agentChannel: d.agentChannel ?? false }));
      const def = await virsh('define', xmlPath);
      if (def.code !== 0) throw new Error(`kvm lab: virsh define ${entry.libvirtName} failed: ${def.stderr.trim()}`);
      if (d.running) {
        const start = await virsh('start', entry.libvirtName);
        if (start.code !== 0) throw new Error(`kvm lab: virsh start ${entry.libvirtName} failed: ${start.stderr.trim()}`);
      }
    }

    withLabLockSync('users', () => {
      ensureUser(LAB_USER, [LIBVIRT_GROUP]);
      if (!runSync(['id', '-nG', LAB_USER]).stdout.split(/\s+/).includes(LIBVIRT_GROUP)) {
        const r = runSync(['usermod', '-aG', LIBVIRT_GROUP, LAB_USER]);
        if (r.code !== 0) throw new Error(`kvm lab: usermod -aG ${LIBVIRT_GROUP} ${LAB_USER} failed: ${r.stderr.trim()}`);
      }
    });
    const key = generateKeyPair(dir, 'snaplab');
    sshd = await startSshd({ dir: join(dir, 'sshd'), user: LAB_USER, authorizedKeys: [key.publicKey] });

    const lookup = (name: string) => {
      const entry = domains.get(name);
      if (!entry) throw new Error(`kvm lab: no domain ${JSON.stringify(name)} in this lab`);
      return entry;
    };
    const server = sshd;
    return {
      uri: LAB_URI,
      ssh: { host: server.host, port: server.port, username: LAB_USER, privateKey: key.privateKey, hostKey: server.hostKeyLine },
      domainUuid: (name) => lookup(name).uuid,
      domainName: (name) => lookup(name).libvirtName,
      diskPath: (name) => lookup(name).disk,
      runAsRoot: (argv) => run(argv),
      virsh,
      killSshSessions: () => server.killSessions(),
      cleanup,
    };
  } catch (error) {
    await cleanup().catch(() => undefined);
    throw error;
  }
}
