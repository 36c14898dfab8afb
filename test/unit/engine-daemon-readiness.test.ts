/**
 * Issue 10 item 7: daemon readiness (/readyz) means usable — the engine's ready() under readiness all and any, and
 * a daemon without targets.
 */
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import { harness } from './engine-harness.ts';

t.test('no targets: not ready before start, ready after it', async (t) => {
  const h = await harness(t, { targets: [], start: false });
  t.match(await h.engine.ready(), { ready: false, reason: 'the engine is starting', targets: [] });
  await h.engine.start();
  t.match(await h.engine.ready(), { ready: true, reason: null, targets: [] });
});

t.test('all: a failing listVms makes it unready until a pass reads the target; any: one synced target is enough', async (t) => {
  const h = await harness(t, {
    targets: [{ name: 'a', provider: { vms: [{ name: 'x' }] } }, { name: 'b', provider: { vms: [{ name: 'y' }] } }],
    start: false,
  });
  h.providers.get('b')!.failNext('listVms', new ProviderError('virtualbox', 'auth', 'permission denied (publickey)'));
  await h.engine.start();
  t.match(await h.engine.ready(), {
    ready: false,
    readiness: 'all',
    reason: "unreachable: 'b' (inventory failed: [snapvisor] [virtualbox] permission denied (publickey))",
    targets: [{ name: 'a', synced: true }, { name: 'b', synced: false, healthy: false }],
  });
  await h.engine.syncTarget('b');
  t.match(await h.engine.ready(), { ready: true, reason: null });
  // A later pass that fails makes it unready again (the latest pass counts).
  h.providers.get('a')!.setHealth({ reachable: false, message: 'timed out' });
  await h.engine.syncTarget('a');
  t.match(await h.engine.ready(), { ready: false, reason: "unreachable: 'a' (the target is unreachable: timed out)" });

  const any = await harness(t, {
    targets: [{ name: 'a', provider: { vms: [{ name: 'x' }], health: { reachable: false, message: 'timed out' } } }, { name: 'b' }],
    settings: { readiness: 'any' },
  });
  t.match(await any.engine.ready(), { ready: true, readiness: 'any', targets: [{ name: 'a', synced: false }, { name: 'b', synced: true }] });
});

t.test('a change of readiness is logged at warn once', async (t) => {
  const { createEngine } = await import('../../src/engine/engine.ts');
  const { openStore } = await import('../../src/store/index.ts');
  const { createFakeProvider, fakeRegistry, fakeSpec } = await import('../fixtures/fake-provider.ts');
  const warnings: Array<{ fields: unknown; message: string }> = [];
  const log = { debug() {}, info() {}, error() {}, warn: (fields: unknown, message: string) => void warnings.push({ fields, message }), child: () => log };
  const store = openStore(':memory:');
  const provider = createFakeProvider('lab', { vms: [{ name: 'x' }], health: { reachable: false, message: 'timed out' } });
  const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('lab'), provider }]), log, settings: { syncIntervalMs: 0, workerPollMs: 2 } });
  t.teardown(async () => {
    await engine.stop({ graceMs: 0 });
    store.close();
  });
  await engine.start();
  const readiness = () => warnings.filter((w) => /daemon is (not )?ready/.test(w.message)).map((w) => w.message);
  t.same(readiness(), ['daemon is not ready']);
  await engine.ready();
  await engine.syncTarget('lab');
  await engine.ready();
  t.same(readiness(), ['daemon is not ready'], 'the same state again: not logged again');
  provider.setHealth({ reachable: true });
  await engine.syncTarget('lab');
  await engine.ready();
  t.same(readiness(), ['daemon is not ready', 'daemon is ready']);
});
