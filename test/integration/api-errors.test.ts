/**
 * The one error handler, tested directly on a tiny Fastify instance (as fastify/demo does with
 * 'Kaboom!'), and the log hygiene of the real app: a 5xx never leaks its message or stack, and a
 * bearer token never reaches the logs.
 */
import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import problem from '../../src/api/plugins/problem.ts';
import { SnapvisorError } from '../../src/domain/errors.ts';
import { build, TOKENS } from './api-helper.ts';

function captureLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), text: () => lines.join('') };
}

async function tiny(t: { teardown(fn: () => unknown): void }, thrown: () => unknown, logger?: FastifyBaseLogger) {
  const app = Fastify(logger ? { loggerInstance: logger } : {});
  await app.register(problem);
  app.get('/boom', async () => {
    throw thrown();
  });
  t.teardown(() => app.close());
  return app;
}

t.test('an unexpected error is a generic 500 problem: no message, no stack, a request id — and the detail is logged', async (t) => {
  const log = captureLogger();
  const app = await tiny(t, () => new Error('Kaboom! db password=hunter2 at /etc/secret'), log.logger);
  const res = await app.inject('/boom');
  t.equal(res.statusCode, 500);
  t.equal(res.headers['content-type'], 'application/problem+json');
  const body = JSON.parse(res.body);
  t.same(Object.keys(body).sort(), ['code', 'detail', 'instance', 'requestId', 'status', 'title', 'type']);
  t.equal(body.detail, 'internal error');
  t.equal(body.code, 'SNAPVISOR_ERR_INTERNAL');
  t.notMatch(res.body, /Kaboom|hunter2|secret|at \//);
  t.match(log.text(), /Kaboom!/, 'the operator finds the cause in the log');
  t.match(log.text(), new RegExp(body.requestId), 'correlated by request id');
});

t.test('thrown non-errors are 500 too', async (t) => {
  const app = await tiny(t, () => 'a string with internals');
  const res = await app.inject('/boom');
  t.equal(res.statusCode, 500);
  t.notMatch(res.body, /internals/);
});

const kinds: Array<[ProviderError, number, RegExp | null]> = [
  [new ProviderError('virtualbox', 'not_found', 'no VM abc'), 404, /no VM abc/],
  [new ProviderError('virtualbox', 'conflict', 'the VM is locked'), 409, /locked/],
  [new ProviderError('virtualbox', 'unsupported', 'cannot quiesce'), 422, /cannot quiesce/],
  [new ProviderError('virtualbox', 'invalid', 'bad name'), 400, /bad name/],
  [new ProviderError('virtualbox', 'throttled', 'slow down', { retryAfterMs: 2500 }), 429, /slow down/],
  [new ProviderError('virtualbox', 'transient', 'ssh to 10.0.0.5 timed out'), 503, null],
  [new ProviderError('virtualbox', 'auth', 'login for root@10.0.0.5 failed'), 502, null],
  [new ProviderError('virtualbox', 'quota', 'datastore ds1 full'), 507, null],
  [new ProviderError('virtualbox', 'internal', 'unexpected output: <stderr>'), 500, null],
];

t.test('ProviderError kinds map to statuses; 5xx details stay generic', async (t) => {
  for (const [err, status, shown] of kinds) {
    await t.test(`${err.kind} → ${status}`, async (t) => {
      const app = await tiny(t, () => err);
      const res = await app.inject('/boom');
      t.equal(res.statusCode, status);
      const body = JSON.parse(res.body);
      t.equal(body.type, `urn:snapvisor:problem:${err.kind}`);
      t.equal(body.code, `SNAPVISOR_ERR_${err.kind.toUpperCase()}`);
      if (shown) t.match(body.detail, shown);
      else t.notMatch(res.body, /10\.0\.0\.5|root@|ds1|stderr/, 'no target internals in a 5xx');
      if (err.kind === 'throttled') {
        t.equal(res.headers['retry-after'], '3');
        t.equal(body.retryAfter, 3);
      }
    });
  }
});

t.test('SnapvisorError keeps its code and safe extra fields; idempotency reuse is 422', async (t) => {
  const app = await tiny(t, () => new SnapvisorError('unsupported', 'SNAPVISOR_ERR_MODE_UNSUPPORTED', 'no crash mode here', { extra: { reason: 'disk-only needs a running VM', status: 999 } }));
  const body = JSON.parse((await app.inject('/boom')).body);
  t.equal(body.status, 422, 'extra cannot override reserved fields');
  t.equal(body.reason, 'disk-only needs a running VM');
  t.equal(body.code, 'SNAPVISOR_ERR_MODE_UNSUPPORTED');

  const reuse = await tiny(t, () => new SnapvisorError('invalid', 'SNAPVISOR_ERR_IDEMPOTENCY_KEY_REUSED', 'key used for another request'));
  t.equal((await reuse.inject('/boom')).statusCode, 422);
});

t.test('the bearer token never appears in the logs', async (t) => {
  const log = captureLogger();
  const h = await build(t, { logger: log.logger });
  const vm = await h.vmId('web-1');
  await h.call({ url: '/v1/vms', as: 'admin' });
  await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: 'writer' });
  await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: 'reader' });
  await h.call({ url: '/v1/vms', as: null, headers: { authorization: 'Bearer wrong-but-secret-looking-token' } });
  await h.call({ url: '/v1/vms/missing', as: 'writer' });
  const text = log.text();
  t.ok(text.length > 0, 'something was logged');
  t.match(text, /request completed/);
  const atInfo = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 30);
  t.notOk(atInfo.some((l) => l.msg === 'incoming request'), 'one line per request at info (incoming request is debug)');
  t.match(text, /incoming request/, 'debug still shows requests as they arrive');
  for (const token of [...Object.values(TOKENS), 'wrong-but-secret-looking-token']) t.notOk(text.includes(token), 'token absent');
  t.notMatch(text, /Bearer/);
});

t.test('a redaction-free logger that serializes headers still cannot print the token', async (t) => {
  const log = captureLogger();
  const h = await build(t, { logger: log.logger });
  const app = h.app;
  // Fastify's req serializer drops headers; a plain `headers` object is caught by redaction.
  app.log.info({ req: { headers: { authorization: `Bearer ${TOKENS.admin}` } } }, 'someone logs a request');
  app.log.info({ headers: { authorization: `Bearer ${TOKENS.admin}` } }, 'someone logs headers');
  t.notOk(log.text().includes(TOKENS.admin));
  t.match(log.text(), /\[redacted\]/);
});
