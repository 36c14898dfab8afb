// The shutdown sequence with scripted steps: its order, its bound when a step hangs, and the
// second signal. The real daemon's shutdown is tested in test/e2e/lifecycle.test.ts.
import t from 'tap';
import { createShutdown, HARD_MARGIN_MS, type ShutdownSteps } from '../../src/shutdown.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

function scripted(overrides: Partial<ShutdownSteps> = {}) {
  const calls: string[] = [];
  const steps: ShutdownSteps = {
    closeApi: async () => void calls.push('closeApi'),
    dropConnections: () => void calls.push('dropConnections'),
    stopEngine: async (graceMs) => void calls.push(`stopEngine(${graceMs})`),
    closeProviders: async () => void calls.push('closeProviders'),
    closeStore: () => void calls.push('closeStore'),
    ...overrides,
  };
  const exits: number[] = [];
  const shutdown = createShutdown({ graceMs: 50, log: silentLogger(), steps, exit: (code) => exits.push(code) });
  return { calls, exits, shutdown };
}

const never = () => new Promise<never>(() => {});

t.test('in order: API closing and the engine stopping with the grace, then providers, then the store; exit 0', async (t) => {
  const s = scripted();
  s.shutdown.onSignal('SIGTERM');
  t.equal(await s.shutdown.done, 0);
  t.same(s.calls, ['closeApi', 'stopEngine(50)', 'closeProviders', 'closeStore']);
  t.same(s.exits, [0]);
});

t.test('open connections are dropped once the engine has stopped', async (t) => {
  const s = scripted({ closeApi: never });
  s.shutdown.onSignal('SIGTERM');
  t.equal(await s.shutdown.done, 0);
  t.ok(s.calls.includes('dropConnections'));
  t.equal(s.calls.at(-1), 'closeStore');
});

t.test('a step that never ends: the store is closed and the process exits 1 at grace + the margin', async (t) => {
  const s = scripted({ stopEngine: never });
  const started = Date.now();
  s.shutdown.onSignal('SIGTERM');
  t.equal(await s.shutdown.done, 1);
  const took = Date.now() - started;
  t.ok(took >= 50 + HARD_MARGIN_MS - 20 && took < 50 + HARD_MARGIN_MS + 500, `exited after ${took} ms`);
  t.ok(50 + HARD_MARGIN_MS <= 50 + 2_000, 'within the promised grace + 2 s');
  t.same(s.calls.filter((c) => c === 'closeStore'), ['closeStore']);
});

t.test('a second signal exits 1 at once, closing the store once', async (t) => {
  const s = scripted({ stopEngine: never });
  s.shutdown.onSignal('SIGTERM');
  s.shutdown.onSignal('SIGINT');
  t.equal(await s.shutdown.done, 1);
  t.same(s.exits, [1]);
  t.same(s.calls.filter((c) => c === 'closeStore'), ['closeStore']);
});
