/**
 * The provider conformance suite for VMware, against vcsim (test/labs/vcsim) with TLS pinned to the
 * lab's own certificate. One vcsim serves the whole file; every case gets a VM nobody touched yet
 * (40 VMs in the lab: one per case) and a fresh provider (its own session). If the lab cannot be built or
 * started, the test fails — it never skips.
 *
 * vcsim limits (reference/vmware.md): a revert does not change the power state, so every mode
 * reverts to `running`; memory/quiesce refusals, consolidation and paging are not simulated — those
 * paths are covered against the vim25 responder (test/labs/vim-responder), not here.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance, testContext } from '../../providers/conformance/suite.ts';
import { createVmwareProvider } from '../../providers/vmware/index.ts';
import { createVimClient } from '../../providers/vmware/client.ts';
import { waitForTask } from '../../providers/vmware/tasks.ts';
import { startVcsim, type VcsimLab } from '../labs/vcsim/lab.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const log = silentLogger();
const dir = mkdtempSync(join(tmpdir(), 'snapvisor-vmware-conf-'));

interface Shared {
  lab: VcsimLab;
  stoppedVmId: string;
  fresh: string[];
}
let shared: Promise<Shared> | undefined;

async function start(): Promise<Shared> {
  const lab = await startVcsim({ dir, vms: 20 });
  const options = { url: lab.sdkUrl, username: lab.username, password: lab.password, ca: lab.caPem };
  const probe = createVmwareProvider('lab', options, { log });
  const vms = (await probe.listVms(testContext())).filter((v) => v.powerState === 'running').map((v) => v.providerVmId);
  await probe.close();
  const stoppedVmId = vms.shift();
  if (!stoppedVmId) throw new Error('vcsim lab has no VMs');
  // Power one VM off with the adapter's own transport (vcsim's VMs all start powered on).
  const client = createVimClient({ url: lab.sdkUrl, username: lab.username, password: lab.password, tls: { kind: 'ca', ca: lab.caPem }, requestTimeoutMs: 10_000, log });
  const vm = { type: 'VirtualMachine', value: stoppedVmId };
  const task = await client.powerOffTask(vm, { signal: AbortSignal.timeout(10_000) });
  await waitForTask(client, task, testContext(), { call: { what: 'power off the fixture VM', mutating: true }, timeoutMs: 10_000 });
  await client.close();
  return { lab, stoppedVmId, fresh: vms };
}

t.teardown(async () => {
  if (shared) await (await shared).lab.stop();
  rmSync(dir, { recursive: true, force: true });
});

describeProviderConformance(t, {
  name: 'vmware',
  deleteWithTwoChildren: 'reparent',
  unknownVmId: 'vm-999999',
  unknownSnapshotRef: 'snapshot-999999',
  // vcsim's revert never changes the power state (reference: not simulated).
  powerStateAfterRevert: () => 'running',
  async setup() {
    shared ??= start();
    const s = await shared;
    const runningVmId = s.fresh.shift();
    if (!runningVmId) throw new Error('the vcsim lab ran out of untouched VMs: raise vms');
    const provider = createVmwareProvider(
      'lab',
      { url: s.lab.sdkUrl, username: s.lab.username, password: s.lab.password, ca: s.lab.caPem, requestTimeoutSec: 30, taskTimeoutSec: 60, offline: { shutdownTimeoutSec: 10 } },
      { log, pollIntervalMs: 20 },
    );
    return { provider, runningVmId, stoppedVmId: s.stoppedVmId, cleanup: () => provider.close() };
  },
});
