/**
 * Issue 10, items 8 and 9: every error is application/problem+json with an x-request-id — the
 * router's and the body parser's, and those Node's HTTP parser answers before Fastify has a
 * request (over a real socket) — and snapshot names/descriptions are kept as sent or refused.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import { build, TOKENS, type Harness } from './api-helper.ts';

function isProblem(t: Test, res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, code: string, detail?: RegExp) {
  t.equal(res.statusCode, status, 'status');
  t.equal(res.headers['content-type'], 'application/problem+json', 'problem+json');
  t.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'x-request-id');
  const body = JSON.parse(res.body) as Record<string, unknown>;
  t.match(body, { status, code, type: /^urn:snapvisor:problem:/, title: String, detail: String, instance: String });
  t.equal(body.requestId, res.headers['x-request-id'], 'the body carries the same id');
  if (detail) t.match(body.detail, detail);
  return body;
}

const create = (h: Harness, vm: string, payload: string | Buffer | object, query = '') =>
  h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots${query}`, headers: { 'content-type': 'application/json' }, payload: payload as string });

t.test('router errors are problems: bad percent-encoding (400), an over-long path segment (414)', async (t) => {
  const h = await build(t);
  isProblem(t, await h.call({ url: '/v1/vms/%E0%A4%A', as: 'reader' }), 400, 'SNAPVISOR_ERR_BAD_URL', /percent-encoding/);
  isProblem(t, await h.call({ url: '/v1/vms/%E0%A4%A/snapshots', as: 'reader' }), 400, 'SNAPVISOR_ERR_BAD_URL');
  isProblem(t, await h.call({ url: `/v1/vms/${'a'.repeat(500)}`, as: 'reader' }), 414, 'SNAPVISOR_ERR_URI_TOO_LONG');
});

t.test('body-parser errors are problems with an x-request-id', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  isProblem(t, await create(h, vm, '{"name": "x", "mode": '), 400, 'SNAPVISOR_ERR_MALFORMED_BODY', /not valid JSON/);
  isProblem(t, await create(h, vm, ''), 400, 'SNAPVISOR_ERR_MALFORMED_BODY', /empty/);
  isProblem(t, await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, headers: { 'content-type': 'text/plain' }, payload: 'x' }), 415, 'SNAPVISOR_ERR_UNSUPPORTED_MEDIA_TYPE');
  isProblem(t, await create(h, vm, JSON.stringify({ name: 'x', mode: 'memory', description: 'd'.repeat(70 * 1024) })), 413, 'SNAPVISOR_ERR_BODY_TOO_LARGE');
  isProblem(t, await create(h, vm, '{"name":"x","mode":"memory","__proto__":{"admin":true}}'), 400, 'SNAPVISOR_ERR_MALFORMED_BODY', /^the body must not contain a __proto__ key$/);
  isProblem(t, await create(h, vm, '{"name":"x","mode":"memory","options":{"__proto__":{}}}'), 400, 'SNAPVISOR_ERR_MALFORMED_BODY', /__proto__ key/);
  isProblem(t, await create(h, vm, '{"name":"x","mode":"memory","constructor":{"prototype":{}}}'), 400, 'SNAPVISOR_ERR_MALFORMED_BODY', /^the body must not contain a constructor\.prototype key$/);
  const ok = await create(h, vm, '\ufeff{"name":"bom","mode":"memory"}');
  t.equal(ok.statusCode, 202, 'a leading byte-order mark is still accepted');
  t.same((await h.snapshotOfStore()).jobs.length, 1, 'nothing refused made a job');
});

t.test('?wait= takes only a decimal integer 0..300', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  for (const wait of ['1e2', '0x10', ' 5', '5.0', '+5', '-1', '05', '', '301', 'abc']) {
    const res = await create(h, vm, { name: 'x', mode: 'memory' }, `?wait=${encodeURIComponent(wait)}`);
    const body = isProblem(t, res, 400, 'SNAPVISOR_ERR_VALIDATION');
    t.same((body.errors as Array<{ path: string }>).map((e) => e.path), ['querystring/wait'], JSON.stringify(wait));
  }
  const snapshot = (await h.engine.listSnapshots(await h.vmId('db-1'), { includeGone: false }))[0]!.id;
  isProblem(t, await h.call({ method: 'DELETE', url: `/v1/snapshots/${snapshot}?wait=1e1` }), 400, 'SNAPVISOR_ERR_VALIDATION');
  t.same((await h.snapshotOfStore()).jobs, [], 'no job');
  for (const wait of ['0', '5', '300']) {
    const res = await create(h, vm, { name: `w${wait}`, mode: 'memory' }, `?wait=${wait}`);
    t.ok([200, 202].includes(res.statusCode), `wait=${wait} accepted`);
  }
});

t.test('the Bearer scheme is case-insensitive (RFC 9110 §11.1)', async (t) => {
  const h = await build(t);
  for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
    const res = await h.call({ url: '/v1/vms', as: null, headers: { authorization: `${scheme} ${TOKENS.reader}` } });
    t.equal(res.statusCode, 200, scheme);
  }
  isProblem(t, await h.call({ url: '/v1/vms', as: null, headers: { authorization: `Basic ${TOKENS.reader}` } }), 401, 'SNAPVISOR_ERR_INVALID_TOKEN');
});

t.test('names and descriptions: refused naming the character, or kept exactly as sent', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  const refused: Array<[string | Buffer, string, RegExp]> = [
    [JSON.stringify({ name: 'abc\rd', mode: 'memory' }), 'SNAPVISOR_ERR_NAME_INVALID', /^the snapshot name contains U\+000D \(carriage return\) at position 3$/],
    [JSON.stringify({ name: 'a\u0000b', mode: 'memory' }), 'SNAPVISOR_ERR_NAME_INVALID', /U\+0000 \(NUL\) at position 1/],
    [JSON.stringify({ name: 'line\nbreak', mode: 'memory' }), 'SNAPVISOR_ERR_NAME_INVALID', /U\+000A \(line feed\) at position 4/],
    [JSON.stringify({ name: 'tab\there', mode: 'memory' }), 'SNAPVISOR_ERR_NAME_INVALID', /U\+0009 \(tab\)/],
    [JSON.stringify({ name: 'del\u007f', mode: 'memory' }), 'SNAPVISOR_ERR_NAME_INVALID', /U\+007F \(delete\) at position 3/],
    ['{"name":"a\\ud800b","mode":"memory"}', 'SNAPVISOR_ERR_NAME_INVALID', /lone surrogate U\+D800 .*at position 1/],
    ['{"name":"é\\udfffx","mode":"memory"}', 'SNAPVISOR_ERR_NAME_INVALID', /lone surrogate U\+DFFF .*at position 1/],
    [JSON.stringify({ name: 'ok', description: 'first\r\nsecond', mode: 'memory' }), 'SNAPVISOR_ERR_DESCRIPTION_INVALID', /^the snapshot description contains U\+000D \(carriage return\) at position 5$/],
    [JSON.stringify({ name: 'ok', description: 'bell\u0007', mode: 'memory' }), 'SNAPVISOR_ERR_DESCRIPTION_INVALID', /U\+0007 \(bell\)/],
    [Buffer.concat([Buffer.from('{"name":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('b","mode":"memory"}')]), 'SNAPVISOR_ERR_MALFORMED_BODY', /^the body is not valid UTF-8: byte 0xFF at offset 10$/],
    [Buffer.concat([Buffer.from('{"name":"ok","mode":"memory","description":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 'SNAPVISOR_ERR_MALFORMED_BODY', /byte 0xC3 at offset 44/],
    [Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('","mode":"memory"}')]), 'SNAPVISOR_ERR_MALFORMED_BODY', /not valid UTF-8/],
  ];
  for (const [payload, code, detail] of refused) {
    const body = isProblem(t, await create(h, vm, payload), 400, code, detail);
    if (code !== 'SNAPVISOR_ERR_MALFORMED_BODY') t.same(body.problems, [body.detail], 'listed as the problem');
  }
  t.same((await h.snapshotOfStore()).jobs, [], 'no job for any refused text');

  // Kept exactly: no trimming, no Unicode normalisation (NFD stays NFD), LF and TAB allowed in a description.
  const name = '  e\u0301t\u00e9 \u{1F600} ';
  const description = 'line one\n\tline two\n';
  const res = await create(h, vm, { name, description, mode: 'memory' }, '?wait=10');
  t.equal(res.statusCode, 200);
  t.equal(res.json().state, 'succeeded');
  const call = h.provider.callsOf('createSnapshot').at(-1) as unknown as { args?: unknown[] } | undefined;
  t.ok(call, 'the provider was called');
  t.match(JSON.stringify(call), JSON.stringify(name).slice(1, -1), 'the provider got the name as sent');
  const stored = (await h.engine.listSnapshots(vm, { includeGone: false })).find((s) => s.name === name);
  t.ok(stored, 'stored byte for byte');
  t.equal(stored?.description, description);
});

/** A raw HTTP/1.1 exchange: what the server wrote before it closed the connection. */
function raw(port: number, send: (socket: net.Socket) => void): Promise<{ text: string; ms: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += String(d)));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ text, ms: Date.now() - start }));
    socket.on('connect', () => send(socket));
  });
}

function rawProblem(t: Test, text: string, status: number, code: string) {
  const [head = '', body = ''] = text.split('\r\n\r\n');
  t.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), `status ${status}`);
  t.match(head, /\r\ncontent-type: application\/problem\+json\r\n/i, 'problem+json');
  const id = /\r\nx-request-id: ([0-9a-f-]{36})/i.exec(head)?.[1];
  t.ok(id, 'x-request-id');
  const problem = JSON.parse(body) as Record<string, unknown>;
  t.match(problem, { status, code, type: /^urn:snapvisor:problem:/, title: String, detail: String, instance: String, requestId: id });
}

t.test('over a real socket: 431, 414, 400 and the request timeout are problems too', async (t) => {
  const h = await build(t, { requestTimeoutMs: 500 });
  await h.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (h.app.server.address() as net.AddressInfo).port;
  const vm = await h.vmId('web-1');

  const big = await raw(port, (s) => s.write(`GET /v1/vms HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
  rawProblem(t, big.text, 431, 'SNAPVISOR_ERR_HEADERS_TOO_LARGE');
  const longUrl = await raw(port, (s) => s.write(`GET /v1/vms?name=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`));
  rawProblem(t, longUrl.text, 414, 'SNAPVISOR_ERR_URI_TOO_LONG');
  const garbage = await raw(port, (s) => s.write('NOT HTTP AT ALL\r\n\r\n'));
  rawProblem(t, garbage.text, 400, 'SNAPVISOR_ERR_BAD_REQUEST');

  // Authenticated, headers complete, then the body trickles in a byte every 100 ms: cut off near 500 ms.
  const slow = await raw(port, (s) => {
    s.write(`POST /v1/vms/${vm}/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.writer}\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{"na`);
    const timer = setInterval(() => !s.destroyed && s.write(' '), 100);
    s.on('close', () => clearInterval(timer));
  });
  rawProblem(t, slow.text, 408, 'SNAPVISOR_ERR_REQUEST_TIMEOUT');
  t.ok(slow.ms < 3000, `cut off after ${slow.ms} ms, well before the body would have arrived (5.6 s)`);
  t.same((await h.snapshotOfStore()).jobs, [], 'no job');
});
