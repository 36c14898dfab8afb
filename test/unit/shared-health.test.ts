import t from 'tap';
import { ProviderError, type CallContext } from '../../providers/contract.ts';
import { checkHealth, healthFromError } from '../../providers/shared/health.ts';
import { createGuards } from '../../providers/shared/guards.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const ctx = (signal = new AbortController().signal): CallContext => ({ signal, log: silentLogger(), progress: () => {} });
const guards = createGuards('kvm', 'k');

t.test('a probe that works: reachable, its version, auth ok', async (t) => {
  t.same(await checkHealth(ctx(), guards, async () => 'libvirt 9.0.0'), { reachable: true, version: 'libvirt 9.0.0', authOk: true });
});

t.test('transient: unreachable; auth: the target answered, so reachable with authOk false', async (t) => {
  const down = await checkHealth(ctx(), guards, async () => {
    throw guards.err('transient', 'connection refused');
  });
  t.same(down, { reachable: false, message: "[snapvisor] [kvm] target 'k': connection refused" });
  const refused = await checkHealth(ctx(), guards, async () => {
    throw guards.err('auth', 'SSH authentication failed');
  });
  t.same([refused.reachable, refused.authOk], [true, false]);
  t.match(refused.message, /SSH authentication failed/);
});

t.test('anything else is a failure, not a health answer', async (t) => {
  t.equal(healthFromError(new ProviderError('kvm', 'internal', 'odd')), null);
  t.equal(healthFromError(new Error('plain')), null);
  const e = await rejection(checkHealth(ctx(), guards, async () => {
    throw guards.err('internal', 'unexpected output');
  }));
  t.equal(e.kind, 'internal');
  await t.rejects(checkHealth(ctx(), guards, async () => {
    throw new TypeError('bug');
  }), TypeError);
});

t.test('cancelled before start: the probe is not called', async (t) => {
  let called = false;
  const e = await rejection(checkHealth(ctx(AbortSignal.abort()), guards, async () => {
    called = true;
    return 'x';
  }));
  t.equal(e.kind, 'transient');
  t.notOk(called);
});
