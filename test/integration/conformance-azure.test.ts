/**
 * The provider conformance suite for Azure: the real @azure/arm-compute client and the real
 * @azure/identity ClientSecretCredential against the in-process HTTPS ARM fake (test/labs/arm-fake),
 * a fresh fake per case, nothing allowed off loopback. Fixture: a running VM with one data disk
 * (so every snapshot is a set of two disk snapshots) and a deallocated VM.
 */
import t from 'tap';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createAzureProvider } from '../../providers/azure/index.ts';
import { startArmFake } from '../labs/arm-fake/index.ts';
import { guardLoopback } from '../labs/arm-fake/loopback-guard.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

guardLoopback(t);
const log = silentLogger();
const SUB = '6f1c2b9e-4d7a-4e1f-9c3b-2a5d8e7f0a11';

describeProviderConformance(t, {
  name: 'azure',
  // Sets are a tree only through their parent tags: deleting one re-parents its children (tags move up).
  deleteWithTwoChildren: 'reparent',
  // A revert deallocates the VM for the OS-disk swap and starts it again when it was running.
  powerStateAfterRevert: () => 'running',
  unknownVmId: `/subscriptions/${SUB}/resourceGroups/rg-conf/providers/Microsoft.Compute/virtualMachines/ghost`,
  unknownSnapshotRef: 'set:0123456789abcdef',
  readinessTimeoutMs: 10_000,
  async setup() {
    const fake = await startArmFake({ subscriptionId: SUB, lroPolls: 1 });
    const running = fake.addVm({ resourceGroup: 'rg-conf', name: 'web', power: 'running', dataDisks: 1 });
    const stopped = fake.addVm({ resourceGroup: 'rg-conf', name: 'db', power: 'deallocated' });
    const provider = createAzureProvider(
      'lab',
      {
        subscriptionId: fake.subscriptionId,
        resourceGroups: ['rg-conf'],
        credential: { tenantId: fake.tenantId, clientId: fake.clientId, clientSecret: fake.clientSecret, authorityHost: fake.authorityHost },
        endpoint: fake.endpoint,
        ca: fake.ca,
        pollIntervalMs: 10,
        offline: { shutdownTimeoutSec: 5 },
      },
      { log },
    );
    return {
      provider,
      runningVmId: running.id,
      stoppedVmId: stopped.id,
      async cleanup() {
        await provider.close();
        await fake.close();
      },
    };
  },
});
