// The console as the daemon serves it: the real build, its security headers, nothing but its own
// files, no token needed for them (and still for the API), and GET /v1/whoami that it signs in with.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import t from 'tap';
import { buildUi } from '../../scripts/build-ui.mjs';
import { build } from './api-helper.ts';

const built = (async () => buildUi({ buildDir: t.testdir({}) }))();

t.test('the console is served with a strict CSP, its assets cached for good, index.html never', async (t) => {
  const dir = await built;
  const h = await build(t, { console: { dir } });
  const index = await h.call({ method: 'GET', url: '/ui/', as: null });
  t.equal(index.statusCode, 200);
  t.match(index.headers['content-type'], /^text\/html/);
  const csp = String(index.headers['content-security-policy']);
  t.match(csp, /default-src 'none'/);
  t.match(csp, /script-src 'self'(;|$)/);
  t.match(csp, /style-src 'self'(;|$)/);
  t.match(csp, /frame-ancestors 'none'/);
  t.notMatch(csp, /unsafe-inline|unsafe-eval/);
  t.equal(index.headers['x-content-type-options'], 'nosniff');
  t.equal(index.headers['cache-control'], 'no-cache');
  // Nothing inline for the CSP to refuse: every script has a src, no style element or attribute.
  t.notMatch(index.body, /<script(?![^>]*\bsrc=)[^>]*>/);
  t.notMatch(index.body, /<style|\sstyle=/);
  const same = await h.call({ method: 'GET', url: '/ui', as: null });
  t.equal(same.body, index.body, '/ui is the same page (its assets are named by absolute path)');

  const assets = readdirSync(path.join(dir, 'assets'));
  const script = assets.find((f) => f.endsWith('.js'))!;
  t.match(index.body, `/ui/assets/${script}`);
  const js = await h.call({ method: 'GET', url: `/ui/assets/${script}`, as: null });
  t.equal(js.statusCode, 200);
  t.match(js.headers['content-type'], /javascript/);
  t.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.equal(js.body, readFileSync(path.join(dir, 'assets', script), 'utf8'));
  // The build's compressed variants, chosen by Accept-Encoding; the same bytes once decoded.
  for (const [accept, encoding, decode] of [['br, gzip', 'br', brotliDecompressSync], ['gzip', 'gzip', gunzipSync]] as const) {
    const packed = await h.call({ method: 'GET', url: `/ui/assets/${script}`, as: null, headers: { 'accept-encoding': accept } });
    t.equal(packed.headers['content-encoding'], encoding, `Accept-Encoding: ${accept}`);
    t.match(String(packed.headers.vary), /accept-encoding/i);
    t.equal(decode(packed.rawPayload).toString('utf8'), js.body);
    t.ok(packed.rawPayload.length < js.body.length / 2, 'a fraction of the bytes');
  }
  t.equal((await h.call({ method: 'GET', url: `/ui/assets/${script}.gz`, as: null })).statusCode, 404, 'variants are not files of their own');

  const root = await h.call({ method: 'GET', url: '/', as: null });
  t.equal(root.statusCode, 302);
  t.equal(root.headers.location, '/ui/');
  t.equal((await h.call({ method: 'GET', url: '/v1/vms', as: null })).statusCode, 401, 'the API still needs a token');
});

t.test('only the build\'s own files: no way out of the folder, unknown files are a problem+json 404', async (t) => {
  const dir = await built;
  const h = await build(t, { console: { dir } });
  for (const url of ['/ui/assets/nope.js', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/assets/..%2f..%2fpackage.json', '/ui/%2e%2e%2f%2e%2e%2fpackage.json', '/ui/assets']) {
    const res = await h.call({ method: 'GET', url, as: null });
    t.not(res.statusCode, 200, url);
    t.notMatch(res.body, /"name": *"snapvisor"/, `${url} does not leak package.json`);
    if (res.statusCode === 404) t.match(res.headers['content-type'], /application\/problem\+json/, url);
  }
  t.equal((await h.call({ method: 'POST', url: '/ui/', as: null })).statusCode < 500, true, 'a POST is refused, not a crash');
});

t.test('without a build, /ui says how to make one (503), and the API is unaffected', async (t) => {
  const h = await build(t, { console: { dir: null } });
  const res = await h.call({ method: 'GET', url: '/ui/', as: null });
  t.equal(res.statusCode, 503);
  t.match(res.headers['content-type'], /application\/problem\+json/);
  t.equal(res.json().code, 'SNAPVISOR_ERR_CONSOLE_NOT_BUILT');
  t.match(res.json().detail, /npm run build:ui/);
  t.equal((await h.call({ method: 'GET', url: '/v1/vms' })).statusCode, 200);
});

t.test('GET /v1/whoami names the token and its scopes, never its value', async (t) => {
  const h = await build(t);
  const reader = await h.call({ method: 'GET', url: '/v1/whoami', as: 'reader' });
  t.equal(reader.statusCode, 200);
  t.same(reader.json(), { name: 'reader', scopes: ['read'] });
  const admin = await h.call({ method: 'GET', url: '/v1/whoami', as: 'admin' });
  t.same(admin.json(), { name: 'admin', scopes: ['read', 'write', 'admin'] }, 'implied scopes included');
  t.notMatch(admin.body, /t0ken/);
  t.equal((await h.call({ method: 'GET', url: '/v1/whoami', as: null })).statusCode, 401);
});
