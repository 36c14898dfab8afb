/**
 * The provider conformance suite for VirtualBox with VBoxManage on another host: the simulator run
 * through a real sshd on loopback as the unprivileged user `snapvbox`, the adapter configured with an
 * `ssh:` block only (no injected runner) — the path a `kind: virtualbox` target with `ssh:` takes.
 * Hostile names and descriptions cross the remote shell here, quoted by the transport.
 */
import t from 'tap';
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { ensureUser, generateKeyPair, startSshd, type SshdLab } from '../labs/sshd/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const USER = 'snapvbox';
const log = silentLogger();
const root = mkdtempSync(join(tmpdir(), 'snapvisor-vbox-ssh-'));
chmodSync(root, 0o755);
ensureUser(USER);
const uid = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }).trim());
const key = generateKeyPair(root, 'client');
const sshd: SshdLab = await startSshd({ dir: join(root, 'sshd'), user: USER, authorizedKeys: [key.publicKey], maxSessions: 10 });
t.teardown(async () => {
  await sshd.stop();
  rmSync(root, { recursive: true, force: true });
});

/** The simulator writes its state file and lock next to it, as the SSH user. */
function giveTo(dir: string): void {
  chownSync(dir, uid, gid);
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) giveTo(p);
    else chownSync(p, uid, gid);
  }
}

let lab = 0;
describeProviderConformance(t, {
  name: 'virtualbox over SSH',
  deleteWithTwoChildren: 'conflict',
  powerStateAfterRevert: (mode) => (mode === 'offline' ? 'off' : 'running'),
  async setup() {
    const dir = join(root, `lab-${++lab}`);
    const vbox = createVboxLab({
      dir,
      stepMs: 2,
      vms: [
        { name: 'web01', state: 'running', guest: { acpi: 'honours', shutdownMs: 50 } },
        { name: 'db01', state: 'poweroff' },
      ],
    });
    giveTo(dir);
    const state = vbox.readState();
    const id = (name: string) => {
      const vm = state.vms.find((v) => v.name === name);
      if (!vm) throw new Error(`lab has no VM ${name}`);
      return vm.uuid;
    };
    const provider = createVirtualBoxProvider(
      'lab',
      {
        vboxmanage: vbox.vboxmanage,
        ssh: { host: sshd.host, port: sshd.port, username: USER, privateKey: key.privateKey, hostKey: sshd.hostKeyFingerprint },
        commandTimeoutSec: 30,
        offline: { shutdownTimeoutSec: 5 },
      },
      { log, pollIntervalMs: 20 },
    );
    return {
      provider,
      runningVmId: id('web01'),
      stoppedVmId: id('db01'),
      cleanup: async () => {
        await provider.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});

t.test('the suite above ran VBoxManage through sshd, as the SSH user', async (t) => {
  const logText = readFileSync(sshd.logFile, 'utf8');
  t.match(logText, new RegExp(`Accepted publickey for ${USER}`), 'sshd accepted the adapter');
  // One pooled connection per provider (one provider per case), not one per command.
  const logins = logText.match(new RegExp(`Accepted publickey for ${USER}`, 'g'))?.length ?? 0;
  t.ok(logins <= lab, `${logins} logins for ${lab} providers`);
});
