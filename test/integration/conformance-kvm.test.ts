/**
 * The provider conformance suite for KVM, against real libvirtd + QEMU on this machine, reached
 * only through SSH (sshd on loopback, a non-root user in group libvirt). Each case gets its own lab
 * (two tiny domains); if the lab cannot be provisioned, the test fails — it never skips.
 */
import t from 'tap';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import { createKvmLab, LAB_SESSIONS } from '../labs/kvm/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
// QEMU (user libvirt-qemu) must traverse to the disks: /tmp is world-traversable.
const base = '/tmp';

describeProviderConformance(t, {
  name: 'kvm',
  // libvirt deletes a snapshot with two children and re-parents them.
  deleteWithTwoChildren: 'reparent',
  // The lab's guests boot no OS, so no qemu-guest-agent answers: quiesced must say so (conflict).
  guestAgent: false,
  // A snapshot ref is a libvirt name; a random UUID is a valid name that does not exist.
  powerStateAfterRevert: (mode) => (mode === 'offline' ? 'off' : 'running'),
  async setup() {
    const dir = mkdtempSync(join(base, 'snapvisor-kvm-conf-'));
    chmodSync(dir, 0o755);
    const lab = await createKvmLab({ dir, domains: [{ name: 'web', running: true }, { name: 'db', running: false }] });
    const provider = createKvmProvider(
      'lab',
      {
        uri: lab.uri,
        ssh: { host: lab.ssh.host, port: lab.ssh.port, username: lab.ssh.username, privateKey: lab.ssh.privateKey, hostKey: lab.ssh.hostKey },
        commandTimeoutSec: 60,
        sessions: LAB_SESSIONS,
        // The lab's guests have no OS: ACPI shutdown is ignored, so offline mode must pull the plug.
        offline: { shutdownTimeoutSec: 1, forcePowerOff: true },
      },
      { log, pollIntervalMs: 200 },
    );
    return {
      provider,
      runningVmId: lab.domainUuid('web'),
      stoppedVmId: lab.domainUuid('db'),
      async cleanup() {
        await provider.close();
        await lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
