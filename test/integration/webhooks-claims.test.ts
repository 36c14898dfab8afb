/**
 * Webhook rounds claim their rows (store claimDue: the row's next attempt moves to the claim's end,
 * so another replica leaves it alone). Rows a round claimed but did not attempt are given back as
 * they were: one cut short by the stop is due again at once for the next start (not only when the
 * claim ends), and one a slow receiver kept waiting past the first delivery timeout of the claim is
 * sent by the next round. SQLite store, fake provider, a local node:http receiver.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../fixtures/fake-provider.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const TIMEOUT_MS = 10_000;

/** A receiver whose `answer` handles each request (by arrival number); `got(n)` resolves at the n-th. */
async function receiver(t: TapTest, answer: (n: number, res: ServerResponse) => void) {
  const ids: string[] = [];
  const open: ServerResponse[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      ids.push(String(req.headers['snapvisor-delivery']));
      open.push(res);
      for (const w of waiters.filter((x) => ids.length >= x.n)) w.resolve();
      answer(ids.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    ids,
    got: (n: number) => new Promise<void>((resolve) => (ids.length >= n ? resolve() : waiters.push({ n, resolve }))),
  };
}

/** Outbox rows written before the engine starts (as a failed job's event would write them). */
async function enqueue(store: Store, count: number, at: string): Promise<string[]> {
  const rows = Array.from({ length: count }, (_, i) => ({
    id: `00000000-0000-4000-8000-00000000000${i + 1}`,
    webhook: 'ops',
    eventType: 'job.failed',
    eventKey: `job.failed:${i}`,
    body: JSON.stringify({ n: i }),
    createdAt: at,
  }));
  await store.webhooks.enqueue(rows);
  return rows.map((r) => r.id);
}

function engineOn(t: TapTest, store: Store, port: number, now: () => Date): Engine {
  const engine = createEngine({
    store,
    registry: fakeRegistry([{ spec: fakeSpec('lab'), provider: createFakeProvider('lab', { vms: [] }) }]),
    log: silentLogger(),
    now,
    settings: { workerPollMs: 10, syncIntervalMs: 0 },
    webhooks: [{ name: 'ops', url: `http://127.0.0.1:${port}/in`, secret: 'wh-secret-0123456789abcdef-xyz', events: ['job.failed'], giveUpAfterDays: 3 }],
    webhookSettings: { timeoutMs: TIMEOUT_MS, backoff: { initialMs: 60_000, maxMs: 60_000 } },
  });
  t.teardown(() => engine.stop({ graceMs: 0 }));
  return engine;
}

t.test('a delivery cut short by the stop is given back as it was: due at once for the next start', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  const r = await receiver(t, () => {}); // never answers
  const at = new Date().toISOString();
  const [id] = await enqueue(store, 1, at);
  const engine = engineOn(t, store, r.port, () => new Date());
  await engine.start();
  await r.got(1);
  t.not((await store.webhooks.get(id!))?.nextAttemptAt, at, 'claimed while in flight');
  await engine.stop({ graceMs: 0 });
  t.match(await store.webhooks.get(id!), { attempts: 0, nextAttemptAt: at, deliveredAt: null, givenUpAt: null }, 'pending as before the round');
});

t.test('rows a slow receiver kept waiting past the first timeout of their claim are given back and sent by the next round', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  let nowMs = Date.parse('2026-01-01T00:00:00.000Z');
  const r = await receiver(t, (n, res) => {
    // The first delivery takes longer than one timeout (on the engine's clock), then fails.
    if (n === 1) nowMs += TIMEOUT_MS + 1;
    res.writeHead(n === 1 ? 503 : 204).end();
  });
  const [first, second] = await enqueue(store, 2, new Date(nowMs).toISOString());
  const engine = engineOn(t, store, r.port, () => new Date(nowMs));
  await engine.start();
  await r.got(2);
  await engine.webhookRound();
  t.same(r.ids, [first, second], 'the second row sent once, after the first');
  t.match(await store.webhooks.get(first!), { attempts: 1, deliveredAt: null }, 'the first waits for its retry');
  t.match(await store.webhooks.get(second!), { attempts: 1, deliveredAt: new Date(nowMs).toISOString() }, 'the second delivered by the next round, not when its claim ran out');
});
