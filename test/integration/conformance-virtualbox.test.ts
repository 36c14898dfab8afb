/**
 * The provider conformance suite for VirtualBox, against the VBoxManage simulator. The lab is
 * provisioned here, in a temp dir, per case; if it cannot be, the test fails (never skips).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();

describeProviderConformance(t, {
  name: 'virtualbox',
  deleteWithTwoChildren: 'conflict',
  // A memory snapshot restores to `saved`, which the adapter starts again; an offline one stays off.
  powerStateAfterRevert: (mode) => (mode === 'offline' ? 'off' : 'running'),
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'snapvisor-vbox-conf-'));
    const lab = createVboxLab({
      dir,
      stepMs: 2,
      vms: [
        { name: 'web01', state: 'running', guest: { acpi: 'honours', shutdownMs: 50 } },
        { name: 'db01', state: 'poweroff' },
      ],
    });
    const state = lab.readState();
    const id = (name: string) => {
      const vm = state.vms.find((v) => v.name === name);
      if (!vm) throw new Error(`lab has no VM ${name}`);
      return vm.uuid;
    };
    const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 30, offline: { shutdownTimeoutSec: 5 } }, { log, pollIntervalMs: 20 });
    return {
      provider,
      runningVmId: id('web01'),
      stoppedVmId: id('db01'),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});
