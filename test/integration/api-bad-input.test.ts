/**
 * Bad input: each answer is a precise 4xx application/problem+json, and nothing stored changes
 * (jobs, snapshots, provider mutations all compared before and after).
 */
import t, { type Test } from 'tap';
import { build, type Harness } from './api-helper.ts';

interface Case {
  name: string;
  request: (h: Harness, ids: { vm: string; snapshot: string }) => Parameters<Harness['call']>[0];
  status: number;
  code: string;
  type: string;
  check?: (t: Test, body: Record<string, unknown>, res: { headers: Record<string, unknown> }) => void;
}

const cases: Case[] = [
  {
    name: 'malformed JSON',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, headers: { 'content-type': 'application/json' }, payload: '{"name": "x", "mode": ' }),
    status: 400, code: 'SNAPVISOR_ERR_MALFORMED_BODY', type: 'malformed_body',
  },
  {
    name: 'empty JSON body',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, headers: { 'content-type': 'application/json' }, payload: '' }),
    status: 400, code: 'SNAPVISOR_ERR_MALFORMED_BODY', type: 'malformed_body',
  },
  {
    name: 'unknown field',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory', memory: true } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same(body.errors, [{ path: 'body/memory', message: 'unknown field' }]),
  },
  {
    name: 'unknown field on a body-less route',
    request: (_h, { snapshot }) => ({ method: 'POST', url: `/v1/snapshots/${snapshot}/revert`, payload: { force: true } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same(body.errors, [{ path: 'body/force', message: 'unknown field' }]),
  },
  {
    name: 'wrong types (no coercion of bodies)',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 42, mode: 'memory', description: true } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => {
      const paths = (body.errors as Array<{ path: string }>).map((e) => e.path).sort();
      t.same(paths, ['body/description', 'body/name']);
    },
  },
  {
    name: 'string "true" for a boolean body field',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/consolidate`, payload: { dryRun: 'true' } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same((body.errors as Array<{ path: string }>).map((e) => e.path), ['body/dryRun']),
  },
  {
    name: 'missing required field',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { mode: 'memory' } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same(body.errors, [{ path: 'body/name', message: 'is required' }]),
  },
  {
    name: 'empty name',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: '', mode: 'memory' } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
  },
  {
    name: 'a mode that does not exist',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'warp' } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same((body.errors as Array<{ path: string }>).map((e) => e.path), ['body/mode']),
  },
  {
    name: 'JSON array instead of an object',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: [{ name: 'x', mode: 'memory' }] }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
  },
  {
    name: 'wait out of range',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots?wait=301`, payload: { name: 'x', mode: 'memory' } }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
    check: (t, body) => t.same((body.errors as Array<{ path: string }>).map((e) => e.path), ['querystring/wait']),
  },
  {
    name: 'oversized body',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory', description: 'd'.repeat(70 * 1024) } }),
    status: 413, code: 'SNAPVISOR_ERR_BODY_TOO_LARGE', type: 'body_too_large',
  },
  {
    name: 'wrong content type',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, headers: { 'content-type': 'text/plain' }, payload: 'name=x&mode=memory' }),
    status: 415, code: 'SNAPVISOR_ERR_UNSUPPORTED_MEDIA_TYPE', type: 'unsupported_media_type',
  },
  {
    name: 'form-encoded body',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=x&mode=memory' }),
    status: 415, code: 'SNAPVISOR_ERR_UNSUPPORTED_MEDIA_TYPE', type: 'unsupported_media_type',
  },
  {
    name: 'unknown VM on create',
    request: () => ({ method: 'POST', url: '/v1/vms/00000000-0000-4000-8000-000000000000/snapshots', payload: { name: 'x', mode: 'memory' } }),
    status: 404, code: 'SNAPVISOR_ERR_VM_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown VM on read',
    request: () => ({ url: '/v1/vms/no-such-vm', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_VM_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown VM snapshot list',
    request: () => ({ url: '/v1/vms/no-such-vm/snapshots?view=tree', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_VM_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown snapshot on read',
    request: () => ({ url: '/v1/snapshots/no-such-snapshot', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_SNAPSHOT_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown snapshot on revert',
    request: () => ({ method: 'POST', url: '/v1/snapshots/no-such-snapshot/revert' }),
    status: 404, code: 'SNAPVISOR_ERR_SNAPSHOT_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown snapshot on delete',
    request: () => ({ method: 'DELETE', url: '/v1/snapshots/no-such-snapshot?children=true' }),
    status: 404, code: 'SNAPVISOR_ERR_SNAPSHOT_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown job',
    request: () => ({ url: '/v1/jobs/no-such-job', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_JOB_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown job on cancel',
    request: () => ({ method: 'POST', url: '/v1/jobs/no-such-job/cancel' }),
    status: 404, code: 'SNAPVISOR_ERR_JOB_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown target',
    request: () => ({ url: '/v1/targets/nowhere', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_TARGET_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown target as a VM filter',
    request: () => ({ url: '/v1/vms?target=nowhere', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_TARGET_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'unknown target sync',
    request: () => ({ method: 'POST', url: '/v1/targets/nowhere/sync', as: 'admin' }),
    status: 404, code: 'SNAPVISOR_ERR_TARGET_NOT_FOUND', type: 'not_found',
  },
  {
    name: 'a mode the target cannot do',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'crash' } }),
    status: 422, code: 'SNAPVISOR_ERR_MODE_UNSUPPORTED', type: 'unsupported',
    check: (t, body) => t.match(body.detail, /VirtualBox cannot take a disk-only snapshot/),
  },
  {
    name: 'invalid job state filter',
    request: () => ({ url: '/v1/jobs?state=exploded', as: 'reader' }),
    status: 400, code: 'SNAPVISOR_ERR_VALIDATION', type: 'validation',
  },
  {
    name: 'invalid cursor',
    request: () => ({ url: '/v1/jobs?cursor=not-a-cursor', as: 'reader' }),
    status: 400, code: 'SNAPVISOR_ERR_INVALID_CURSOR', type: 'invalid',
  },
  {
    name: 'missing token',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: null }),
    status: 401, code: 'SNAPVISOR_ERR_UNAUTHENTICATED', type: 'unauthenticated',
    check: (t, _body, res) => t.match(res.headers['www-authenticate'], /^Bearer/),
  },
  {
    name: 'invalid token',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: null, headers: { authorization: 'Bearer not-a-real-token' } }),
    status: 401, code: 'SNAPVISOR_ERR_INVALID_TOKEN', type: 'unauthenticated',
    check: (t, _body, res) => t.match(res.headers['www-authenticate'], /^Bearer .*error="invalid_token"/),
  },
  {
    name: 'malformed Authorization header',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: null, headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
    status: 401, code: 'SNAPVISOR_ERR_INVALID_TOKEN', type: 'unauthenticated',
    check: (t, _body, res) => t.match(res.headers['www-authenticate'], /^Bearer/),
  },
  {
    name: 'read-only token on POST',
    request: (_h, { vm }) => ({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory' }, as: 'reader' }),
    status: 403, code: 'SNAPVISOR_ERR_FORBIDDEN', type: 'forbidden',
    check: (t, body) => t.match(body.detail, /'write'/),
  },
  {
    name: 'read-only token on DELETE',
    request: (_h, { snapshot }) => ({ method: 'DELETE', url: `/v1/snapshots/${snapshot}`, as: 'reader' }),
    status: 403, code: 'SNAPVISOR_ERR_FORBIDDEN', type: 'forbidden',
  },
  {
    name: 'unknown route',
    request: () => ({ url: '/v1/nothing-here', as: 'reader' }),
    status: 404, code: 'SNAPVISOR_ERR_ROUTE_NOT_FOUND', type: 'route_not_found',
  },
  {
    name: 'method not allowed',
    request: (_h, { snapshot }) => ({ method: 'PUT', url: `/v1/snapshots/${snapshot}`, payload: {} }),
    status: 405, code: 'SNAPVISOR_ERR_METHOD_NOT_ALLOWED', type: 'method_not_allowed',
    check: (t, _body, res) => t.equal(res.headers.allow, 'GET, HEAD, DELETE'),
  },
];

t.test('bad input', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  const db = await h.vmId('db-1');
  const snapshot = (await h.engine.listSnapshots(db, { includeGone: false }))[0]!.id;
  const before = await h.snapshotOfStore();
  t.equal(before.snapshots.length, 2);

  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const res = await h.call(c.request(h, { vm, snapshot }));
      t.equal(res.statusCode, c.status, 'status');
      t.equal(res.headers['content-type'], 'application/problem+json', 'problem+json');
      const body = JSON.parse(res.body) as Record<string, unknown>;
      t.equal(body.status, c.status);
      t.equal(body.code, c.code);
      t.equal(body.type, `urn:snapvisor:problem:${c.type}`);
      t.type(body.title, 'string');
      t.type(body.detail, 'string');
      t.ok((body.detail as string).length > 0, 'detail says why');
      t.equal(body.instance, (res.raw.req.url ?? '').split('?')[0]);
      t.type(body.requestId, 'string');
      c.check?.(t, body, res);
      t.same(await h.snapshotOfStore(), before, 'nothing stored changed');
    });
  }
});

t.test('a smaller configured bodyLimit is honoured', async (t) => {
  const h = await build(t, { bodyLimit: 100 });
  const vm = await h.vmId('web-1');
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x'.repeat(120), mode: 'memory' } });
  t.equal(res.statusCode, 413);
  t.same((await h.snapshotOfStore()).jobs, []);
});

t.test('query strings are coerced: limit and booleans from text', async (t) => {
  const h = await build(t);
  const res = await h.call({ url: '/v1/vms?limit=1&includeGone=true', as: 'reader' });
  t.equal(res.statusCode, 200);
  t.equal(JSON.parse(res.body).items.length, 1);
  const bad = await h.call({ url: '/v1/vms?limit=lots', as: 'reader' });
  t.equal(bad.statusCode, 400);
  t.same(JSON.parse(bad.body).errors.map((e: { path: string }) => e.path), ['querystring/limit']);
});
