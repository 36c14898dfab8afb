/**
 * The VMware adapter's HTTP client (providers/vmware/soap-http.ts) against a local HTTP server:
 * the session cookie, no redirects, the whole-exchange timeout, abort, a connection cut mid-body,
 * and that each failure is classified the way faults.ts expects.
 */
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { transportErrorFrom } from '../../providers/vmware/faults.ts';
import { createSoapHttp } from '../../providers/vmware/soap-http.ts';

const seenCookies: Array<string | undefined> = [];
const server = http.createServer((req, res) => {
  seenCookies.push(req.headers.cookie);
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString('utf8')));
  req.on('end', () => {
    switch (req.url) {
      case '/login':
        res.writeHead(200, { 'set-cookie': ['other=1; Path=/', 'vmware_soap_session="abc"; Path=/; HttpOnly'] });
        return res.end(`echo:${body}`);
      case '/redirect':
        res.writeHead(302, { location: '/login' });
        return res.end();
      case '/never':
        return; // no answer
      case '/cut':
        res.writeHead(200, { 'content-length': '1000' });
        res.write('partial');
        return setTimeout(() => res.destroy(), 20);
      default:
        res.writeHead(200);
        return res.end(`echo:${body}`);
    }
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const agent = new http.Agent({ keepAlive: true });
t.teardown(() => {
  agent.destroy();
  server.closeAllConnections();
  server.close();
});

const post = (path: string, extra: { timeout?: number; signal?: AbortSignal } = {}) => ({
  url: `${base}${path}`,
  method: 'POST',
  headers: { 'Content-Type': 'text/xml', 'Content-Length': 5 },
  data: 'hello',
  ...extra,
});

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a failure');
}

t.test('the session cookie is taken from the answer and sent with later calls, until forgotten', async (t) => {
  const h = createSoapHttp(agent);
  seenCookies.length = 0;
  const first = await h.request(post('/login'));
  t.equal(first.status, 200);
  t.equal(first.data, 'echo:hello', 'the body went out and the answer came back');
  await h.request(post('/other'));
  h.forgetSession();
  await h.request(post('/other'));
  t.same(seenCookies, [undefined, 'vmware_soap_session="abc"', undefined]);
  const stranger = createSoapHttp(agent);
  seenCookies.length = 0;
  await stranger.request(post('/other'));
  t.same(seenCookies, [undefined], 'the cookie belongs to one target’s client only');
});

t.test('a redirect is answered as it is, never followed (it would re-send the Login body)', async (t) => {
  const h = createSoapHttp(agent);
  seenCookies.length = 0;
  const res = await h.request(post('/redirect'));
  t.equal(res.status, 302);
  t.equal(seenCookies.length, 1, 'one request only');
});

t.test('no answer within the timeout: ETIMEDOUT, classified as a timeout that may have been sent', async (t) => {
  const h = createSoapHttp(agent);
  const started = Date.now();
  const err = await failure(h.request(post('/never', { timeout: 150 })));
  t.equal(err.code, 'ETIMEDOUT');
  t.ok(Date.now() - started < 2000, 'gave up at the timeout');
  t.match(transportErrorFrom(err), { failure: 'timeout', maybeSent: true });
});

t.test('an aborted signal stops the exchange: ABORT_ERR, classified as aborted', async (t) => {
  const h = createSoapHttp(agent);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const err = await failure(h.request(post('/never', { signal: controller.signal, timeout: 5000 })));
  t.equal(err.code, 'ABORT_ERR');
  t.match(transportErrorFrom(err), { failure: 'aborted' });
  const already = await failure(h.request(post('/other', { signal: AbortSignal.abort() })));
  t.equal(already.code, 'ABORT_ERR', 'an already-aborted signal sends nothing');
});

t.test('the connection cut in the middle of the answer: ECONNRESET, classified as a reset', async (t) => {
  const h = createSoapHttp(agent);
  const err = await failure(h.request(post('/cut', { timeout: 5000 })));
  t.equal(err.code, 'ECONNRESET');
  t.match(transportErrorFrom(err), { failure: 'reset', maybeSent: true });
  t.notMatch(err.message, /hello/, 'the request body is not in the error');
});

t.test('nothing listening: ECONNREFUSED, classified as not sent', async (t) => {
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const h = createSoapHttp(agent);
  const err = await failure(h.request({ ...post('/x'), url: `http://127.0.0.1:${port}/x` }));
  t.equal(err.code, 'ECONNREFUSED');
  t.match(transportErrorFrom(err), { failure: 'refused', maybeSent: false });
});
