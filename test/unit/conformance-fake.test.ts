/**
 * The in-memory fake provider the engine and API tests use must behave like a real adapter, so it
 * passes the same conformance suite (STYLE §2: only a shared suite catches fake-vs-real drift).
 */
import t from 'tap';
import { describeProviderConformance } from '../../providers/conformance/suite.ts';
import { createFakeProvider } from '../fixtures/fake-provider.ts';

describeProviderConformance(t, {
  name: 'fake',
  deleteWithTwoChildren: 'conflict',
  powerStateAfterRevert: () => 'running',
  async setup() {
    const provider = createFakeProvider('fake', {
      vms: [
        { id: 'c0ffee00-0000-4000-8000-000000000001', name: 'web01', powerState: 'running' },
        { id: 'c0ffee00-0000-4000-8000-000000000002', name: 'db01', powerState: 'off' },
      ],
    });
    return { provider, runningVmId: 'c0ffee00-0000-4000-8000-000000000001', stoppedVmId: 'c0ffee00-0000-4000-8000-000000000002', cleanup: () => {} };
  },
});
