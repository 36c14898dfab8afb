/**
 * The provider conformance suite for Hyper-V, through SSH only: a real sshd on loopback whose lab
 * user runs real PowerShell 7.6 (`powershell` is a shim that execs pwsh), with the lab's Hyper-V
 * module standing in for the cmdlets (test/labs/hyperv). Each case gets its own lab; a lab that
 * cannot be provisioned fails the test — it never skips. Calls go through persistent PowerShell
 * hosts (the default); SNAPVISOR_TEST_HYPERV_SESSIONS=off runs the suite with one PowerShell per
 * call (not in `npm test`: about 200 s more; hyperv-faults.test.ts keeps a one-shot round trip).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createHyperVProvider } from '../../providers/hyperv/index.ts';
import { createHyperVLab, LAB_SESSIONS } from '../labs/hyperv/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();

describeProviderConformance(t, {
  name: 'hyperv',
  // Remove-VMSnapshot without -IncludeAllChildSnapshots re-parents the children (reference §2.4).
  deleteWithTwoChildren: 'reparent',
  // Restore-VMSnapshot (§2.3): a running VM restored to a checkpoint without memory ends off.
  powerStateAfterRevert: (mode) => (mode === 'memory' ? 'running' : 'off'),
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'snapvisor-hv-conf-'));
    const lab = await createHyperVLab({ dir, vms: [{ name: 'web', state: 'Running' }, { name: 'db', state: 'Off' }], mergeMs: 300 });
    const provider = createHyperVProvider(
      'lab',
      { ssh: lab.ssh, sessions: LAB_SESSIONS, commandTimeoutSec: 60, mergeWaitSec: 30, offline: { shutdownTimeoutSec: 10, forcePowerOff: false } },
      { log, pollIntervalMs: 200 },
    );
    return {
      provider,
      runningVmId: lab.vmId('web'),
      stoppedVmId: lab.vmId('db'),
      async cleanup() {
        await provider.close();
        await lab.cleanup();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
});
