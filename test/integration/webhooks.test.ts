/**
 * Webhooks against a real local HTTP receiver (node:http): the engine over an SQLite store with
 * the fake provider. A failed job is delivered signed; a receiver that is down gets it after a
 * retry; pending rows survive a restart (a second engine on the same database file); a receiver that
 * never answers delays no job; a 4xx is given up at once; neither the secret nor the URL's
 * password reaches a log line or a stored error.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ProviderError, type Logger } from '../../providers/contract.ts';
import { verifyWebhookSignature } from '../../src/domain/webhook.ts';
import { createEngine, type Engine, type WebhookSpec } from '../../src/engine/engine.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, type FakeProvider } from '../fixtures/fake-provider.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const SECRET = 'wh-secret-0123456789abcdef-xyz';
const PASSWORD = 'pw-never-logged-4711';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local receiver; `answer` decides each request's status ('hang': never answers until closed). */
async function receiver(t: TapTest, answer: (n: number) => number | 'hang' = () => 204, port = 0) {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      for (const w of waiters.filter((x) => received.length >= x.n)) w.resolve();
      const status = answer(received.length);
      if (status === 'hang') hanging.push(res);
      else res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging.splice(0)) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return {
    port: (server.address() as AddressInfo).port,
    received,
    hanging,
    close,
    /** Resolves once `n` requests have arrived. */
    got: (n: number) => new Promise<void>((resolve) => (received.length >= n ? resolve() : waiters.push({ n, resolve }))),
  };
}

/** A port nothing listens on (listened on, then closed). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Every log line, as JSON, to search for secrets. */
function recordingLogger(lines: string[]): Logger {
  const make = (bindings: Record<string, unknown>): Logger => {
    const put = (obj: object, msg?: string) => lines.push(JSON.stringify({ ...bindings, ...obj, msg }));
    return { debug: put, info: put, warn: put, error: put, child: (b) => make({ ...bindings, ...b }) };
  };
  return make({});
}

interface Setup {
  engine: Engine;
  store: Store;
  provider: FakeProvider;
  vmId: (name: string) => Promise<string>;
}

async function setup(t: TapTest, port: number, options: { db?: string; lines?: string[]; events?: WebhookSpec['events']; teardown?: boolean; now?: () => Date } = {}): Promise<Setup> {
  const store = openStore(options.db ?? ':memory:');
  const provider = createFakeProvider('lab', { vms: [{ name: 'web-1', powerState: 'running' }] });
  const registry = fakeRegistry([{ spec: fakeSpec('lab'), provider }]);
  const engine = createEngine({
    store,
    registry,
    log: recordingLogger(options.lines ?? []),
    settings: { workerPollMs: 10, syncIntervalMs: 0, maxAttempts: 1 },
    webhooks: [{ name: 'ops', url: `http://hook:${PASSWORD}@127.0.0.1:${port}/in`, secret: SECRET, events: options.events ?? ['job.failed'], giveUpAfterDays: 3 }],
    webhookSettings: { timeoutMs: 10_000, backoff: { initialMs: 20, maxMs: 40 } },
    ...(options.now ? { now: options.now } : {}),
  });
  await engine.start();
  if (options.teardown !== false) {
    t.teardown(async () => {
      await engine.stop({ graceMs: 100 });
      store.close();
    });
  }
  const vmId = async (name: string) => (await engine.listVms({ limit: 10, name })).items[0]!.id;
  return { engine, store, provider, vmId };
}

const meta = (key: string) => ({ principal: 'test', requestHash: key });

/** Submits a create the fake provider refuses for good: the job ends failed. */
async function failedJob(s: Setup, key = 'a') {
  s.provider.failNext('createSnapshot', new ProviderError('lab', 'invalid', 'refused by the test'));
  const { job } = await s.engine.submit({ kind: 'snapshot.create', vmId: await s.vmId('web-1'), name: 'x', description: '', mode: 'memory' }, meta(key));
  const done = await s.engine.waitForJob(job.id, 30_000);
  return done;
}

/**
 * Delivery rounds until `probe` holds, for up to `timeoutMs`. Bounded by time, not by a count of
 * rounds: a round before a row's backoff (20–40 ms here) has passed does nothing and returns at once,
 * so 500 of them could all fall inside one backoff on a quick machine (seen in CI).
 */
async function until(s: Setup, probe: () => Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await s.engine.webhookRound();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

const metric = async (engine: Engine, line: RegExp) => (await engine.metrics()).body.split('\n').find((l) => line.test(l));

t.test('a failed job is delivered once, signed, with its headers', async (t) => {
  const lines: string[] = [];
  const r = await receiver(t);
  const s = await setup(t, r.port, { lines });
  const job = await failedJob(s);
  t.equal(job.state, 'failed');
  await r.got(1);
  const [hit] = r.received;
  t.equal(hit!.headers['content-type'], 'application/json');
  t.equal(hit!.headers['snapvisor-event'], 'job.failed');
  const body = JSON.parse(hit!.body) as { id: string; type: string; job: { id: string; state: string; error: { kind: string } } };
  t.equal(body.type, 'job.failed');
  t.equal(body.job.id, job.id);
  t.equal(body.job.error.kind, 'invalid');
  t.equal(hit!.headers['snapvisor-delivery'], body.id, 'the delivery id is in the header and the body');
  t.equal(hit!.headers.authorization, `Basic ${Buffer.from(`hook:${PASSWORD}`).toString('base64')}`, 'URL credentials travel as Basic auth');
  const headers = { timestamp: hit!.headers['snapvisor-timestamp'] as string, signature: hit!.headers['snapvisor-signature'] as string };
  t.match(headers.signature, /^sha256=[0-9a-f]{64}$/);
  // As a receiver computes it, independently of our helper: HMAC-SHA256(secret, "<timestamp>.<body>").
  t.equal(headers.signature, `sha256=${createHmac('sha256', SECRET).update(`${headers.timestamp}.${hit!.body}`).digest('hex')}`);
  t.ok(Math.abs(Number(headers.timestamp) - Date.now() / 1000) < 300, 'the timestamp is unix seconds, now');
  const now = Math.floor(Date.now() / 1000);
  t.ok(verifyWebhookSignature(SECRET, headers, hit!.body, now), 'the signature verifies with the secret');
  t.notOk(verifyWebhookSignature('another-secret-0123456789abcdef', headers, hit!.body, now), 'not with another secret');
  t.notOk(verifyWebhookSignature(SECRET, headers, `${hit!.body} `, now), 'not over another body');
  t.notOk(verifyWebhookSignature(SECRET, headers, hit!.body, now + 600), 'not outside the replay window');
  await until(s, async () => (await s.store.webhooks.get(body.id))?.deliveredAt != null);
  t.equal((await s.store.webhooks.get(body.id))?.attempts, 1);
  t.match(await metric(s.engine, /^snapvisor_webhook_deliveries_total\{webhook="ops",result="delivered"\}/), / 1$/);
  t.match(await metric(s.engine, /^snapvisor_webhook_outbox_pending\{webhook="ops"\}/), / 0$/);
  t.equal(r.received.length, 1, 'sent once');
  t.notOk(lines.some((l) => l.includes(SECRET) || l.includes(PASSWORD)), 'neither the secret nor the password is logged');
});

t.test('a receiver that is down gets the event after a retry', async (t) => {
  const lines: string[] = [];
  const port = await freePort();
  const s = await setup(t, port, { lines });
  await failedJob(s);
  const [row] = await s.store.webhooks.listByWebhook('ops');
  t.ok(row, 'the outbox row is written');
  await until(s, async () => ((await s.store.webhooks.get(row!.id))?.attempts ?? 0) >= 2);
  const failing = await s.store.webhooks.get(row!.id);
  t.equal(failing?.deliveredAt, null);
  t.match(failing?.lastError, /could not reach the receiver \(ECONNREFUSED\)/);
  t.notMatch(failing?.lastError ?? '', /127\.0\.0\.1|hook|pw-/, 'the stored error names no address or credentials');
  t.match(await metric(s.engine, /^snapvisor_webhook_outbox_pending\{webhook="ops"\}/), / 1$/);
  const r = await receiver(t, () => 200, port);
  await until(s, async () => (await s.store.webhooks.get(row!.id))?.deliveredAt != null);
  t.equal(r.received.length, 1);
  t.equal(r.received[0]!.headers['snapvisor-delivery'], row!.id);
  t.ok(((await s.store.webhooks.get(row!.id))?.attempts ?? 0) >= 3, 'delivered on a later attempt');
  t.match(await metric(s.engine, /^snapvisor_webhook_deliveries_total\{webhook="ops",result="retry"\}/), / [1-9]\d*$/);
  t.notOk(lines.some((l) => l.includes(SECRET) || l.includes(PASSWORD)), 'neither the secret nor the password is logged');
});

t.test('rows pending when the daemon stops are delivered by the next engine on the same database', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-webhooks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'snapvisor.db');
  const port = await freePort();
  const first = await setup(t, port, { db, teardown: false });
  await failedJob(first);
  const [row] = await first.store.webhooks.listByWebhook('ops');
  await until(first, async () => ((await first.store.webhooks.get(row!.id))?.attempts ?? 0) >= 1);
  await first.engine.stop({ graceMs: 100 });
  first.store.close();

  const r = await receiver(t, () => 200, port);
  const second = await setup(t, port, { db });
  await r.got(1);
  await until(second, async () => (await second.store.webhooks.get(row!.id))?.deliveredAt != null);
  t.equal(r.received.length, 1, 'delivered once');
  t.equal(r.received[0]!.headers['snapvisor-delivery'], row!.id, 'with the delivery id it had before the restart');
});

t.test('a receiver that never answers delays no job', async (t) => {
  const r = await receiver(t, () => 'hang');
  const s = await setup(t, r.port);
  const failed = await failedJob(s);
  t.equal(failed.state, 'failed');
  await r.got(1);
  // The delivery is in flight and unanswered; jobs go on.
  const { job } = await s.engine.submit({ kind: 'snapshot.create', vmId: await s.vmId('web-1'), name: 'next', description: '', mode: 'memory' }, meta('b'));
  const done = await s.engine.waitForJob(job.id, 30_000);
  t.equal(done.state, 'succeeded');
  t.equal(r.hanging.length, 1, 'the delivery was still unanswered when the job ended');
  const [row] = await s.store.webhooks.listByWebhook('ops');
  t.equal(row?.deliveredAt, null);
});

t.test('a 4xx refusal is given up at once and kept; other events are not sent', async (t) => {
  const r = await receiver(t, () => 410);
  const s = await setup(t, r.port);
  // A succeeded job is no job.failed event.
  const { job } = await s.engine.submit({ kind: 'snapshot.create', vmId: await s.vmId('web-1'), name: 'ok', description: '', mode: 'memory' }, meta('ok'));
  t.equal((await s.engine.waitForJob(job.id, 30_000)).state, 'succeeded');
  t.same(await s.store.webhooks.listByWebhook('ops'), [], 'nothing written for a success');
  await failedJob(s);
  const [row] = await s.store.webhooks.listByWebhook('ops');
  await until(s, async () => (await s.store.webhooks.get(row!.id))?.givenUpAt != null);
  const given = await s.store.webhooks.get(row!.id);
  t.equal(given?.attempts, 1, 'not retried');
  t.match(given?.lastError, /HTTP 410/);
  t.equal(r.received.length, 1);
  t.match(await metric(s.engine, /^snapvisor_webhook_deliveries_total\{webhook="ops",result="failed"\}/), / 1$/);
});

t.test('a delivery still failing giveUpAfterDays after its event is given up, and kept', async (t) => {
  let shiftMs = 0;
  const port = await freePort();
  const s = await setup(t, port, { now: () => new Date(Date.now() + shiftMs) });
  await failedJob(s);
  const [row] = await s.store.webhooks.listByWebhook('ops');
  await until(s, async () => ((await s.store.webhooks.get(row!.id))?.attempts ?? 0) >= 1);
  t.equal((await s.store.webhooks.get(row!.id))?.givenUpAt, null, 'retried at first');
  shiftMs = 3 * 86_400_000 + 60_000;
  await until(s, async () => (await s.store.webhooks.get(row!.id))?.givenUpAt != null);
  const given = await s.store.webhooks.get(row!.id);
  t.match(given?.lastError, /ECONNREFUSED.*given up after 3 day\(s\)/);
  t.equal(given?.deliveredAt, null);
  t.match(await metric(s.engine, /^snapvisor_webhook_deliveries_total\{webhook="ops",result="failed"\}/), / 1$/);
  t.match(await metric(s.engine, /^snapvisor_webhook_outbox_pending\{webhook="ops"\}/), / 0$/);
});
