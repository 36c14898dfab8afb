import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { ProviderError } from '../../providers/contract.ts';
import type { Gate } from '../fixtures/fake-provider.ts';
import { build } from './api-helper.ts';

const json = (res: { body: string }) => JSON.parse(res.body);

t.test('/healthz is open; /readyz and /metrics need a token', async (t) => {
  const h = await build(t);
  const health = await h.call({ url: '/healthz', as: null });
  t.equal(health.statusCode, 200);
  t.same(json(health), { status: 'ok' });

  t.equal((await h.call({ url: '/readyz', as: null })).statusCode, 401);
  const ready = await h.call({ url: '/readyz', as: 'reader' });
  t.equal(ready.statusCode, 200);
  t.equal(json(ready).ready, true);
  t.same(json(ready).targets.map((x: { name: string }) => x.name), ['lab']);

  t.equal((await h.call({ url: '/metrics', as: null })).statusCode, 401);
  await h.call({ url: '/v1/vms', as: 'reader' });
  const metrics = await h.call({ url: '/metrics', as: 'reader' });
  t.equal(metrics.statusCode, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  t.match(metrics.body, /# TYPE snapvisor_http_request_duration_seconds histogram/);
  t.match(metrics.body, /snapvisor_http_request_duration_seconds_count\{method="GET",route="\/v1\/vms",status_code="200"\} 1/);
  t.match(metrics.body, /snapvisor_jobs/, "the engine's job metrics are there too");
});

t.test('/readyz is 503 when the store is gone', async (t) => {
  const h = await build(t);
  h.store.close();
  const res = await h.call({ url: '/readyz', as: 'reader' });
  t.equal(res.statusCode, 503);
  t.equal(json(res).ready, false);
});

t.test('/readyz: 503 (problem+json) until the first inventory of every target was read, then 200', async (t) => {
  let gate!: Gate;
  const h = await build(t, { waitForSync: false, beforeStart: (p) => void (gate = p.get('lab')!.hold('listVms')) });
  await gate.reached;
  const before = await h.call({ url: '/readyz', as: 'reader' });
  t.equal(before.statusCode, 503);
  t.match(before.headers['content-type'], /^application\/problem\+json/);
  t.match(json(before), {
    status: 503,
    code: 'SNAPVISOR_ERR_NOT_READY',
    detail: "first inventory not finished: 'lab'",
    ready: false,
    store: true,
    readiness: 'all',
    targets: [{ name: 'lab', synced: null, reason: null }],
  });
  gate.release();
  let after = await h.call({ url: '/readyz', as: 'reader' });
  for (let i = 0; i < 500 && after.statusCode !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
    after = await h.call({ url: '/readyz', as: 'reader' });
  }
  t.equal(after.statusCode, 200);
  t.match(json(after), { ready: true, reason: null, targets: [{ name: 'lab', healthy: true, synced: true, reason: null }] });
  t.ok((await h.engine.listVms({ limit: 10 })).items.length > 0, 'the VMs were there when it said ready');
});

t.test('/readyz under readiness all: 503 naming an unreachable target and why; any: 200 while another target synced', async (t) => {
  const failLab = (p: Map<string, import('../fixtures/fake-provider.ts').FakeProvider>) =>
    p.get('lab')!.failNext('listVms', new ProviderError('virtualbox', 'transient', 'connect ECONNREFUSED 10.0.0.5:22'));
  const all = await build(t, { extraTargets: [{ name: 'lab2', provider: { vms: [{ name: 'other' }] } }], beforeStart: failLab });
  const res = await all.call({ url: '/readyz', as: 'reader' });
  t.equal(res.statusCode, 503);
  const body = json(res);
  t.match(body.detail, /unreachable: 'lab' \(inventory failed: .*ECONNREFUSED 10\.0\.0\.5:22\)/);
  t.match(body.targets, [
    { name: 'lab', synced: false, reason: /ECONNREFUSED/ },
    { name: 'lab2', synced: true, reason: null },
  ]);
  // The next pass reads it: ready again, without a restart.
  await all.engine.syncTarget('lab');
  t.equal((await all.call({ url: '/readyz', as: 'reader' })).statusCode, 200);

  const any = await build(t, { readiness: 'any', extraTargets: [{ name: 'lab2', provider: { vms: [{ name: 'other' }] } }], beforeStart: failLab });
  const ok = await any.call({ url: '/readyz', as: 'reader' });
  t.equal(ok.statusCode, 200);
  t.match(json(ok), { ready: true, readiness: 'any', targets: [{ name: 'lab', synced: false, reason: /ECONNREFUSED/ }, { name: 'lab2', synced: true }] });

  // any, with every target unreachable (a failing check): 503 with each reason.
  const none = await build(t, {
    readiness: 'any',
    extraTargets: [{ name: 'lab2', provider: { health: { reachable: false, message: 'host key mismatch' } } }],
    beforeStart: (p) => p.get('lab')!.setHealth({ reachable: false, message: 'no route to host' }),
  });
  const down = await none.call({ url: '/readyz', as: 'reader' });
  t.equal(down.statusCode, 503);
  t.equal(json(down).detail, "no target could be inventoried: 'lab' (the target is unreachable: no route to host), 'lab2' (the target is unreachable: host key mismatch)");
});

t.test('OpenAPI document lists every route, with bearer security and problem responses', async (t) => {
  const h = await build(t);
  t.equal((await h.call({ url: '/openapi.json', as: null })).statusCode, 401);
  const res = await h.call({ url: '/openapi.json', as: 'reader' });
  t.equal(res.statusCode, 200);
  const doc = json(res);
  t.equal(doc.info.title, 'Snapvisor');
  t.equal(doc.info.version, '0.0.0-test');
  t.same(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: 'Token with scopes read, write, admin' });
  const expected: Record<string, string[]> = {
    '/healthz': ['get'],
    '/readyz': ['get'],
    '/metrics': ['get'],
    '/v1/targets': ['get'],
    '/v1/targets/{target}': ['get'],
    '/v1/targets/{target}/sync': ['post'],
    '/v1/vms': ['get'],
    '/v1/vms/{vmId}': ['get'],
    '/v1/vms/{vmId}/snapshots': ['delete', 'get', 'post'],
    '/v1/vms/{vmId}/consolidate': ['post'],
    '/v1/snapshots/{snapshotId}': ['delete', 'get'],
    '/v1/snapshots/{snapshotId}/revert': ['post'],
    '/v1/jobs': ['get'],
    '/v1/jobs/{jobId}': ['get'],
    '/v1/jobs/{jobId}/cancel': ['post'],
    '/v1/jobs/{jobId}/retry': ['post'],
    '/v1/policies': ['get', 'post'],
    '/v1/policies/{policyId}': ['delete', 'get', 'patch'],
    '/v1/policies/{policyId}/plan': ['get'],
    '/v1/policies/{policyId}/run': ['post'],
    '/v1/policies/{policyId}/runs': ['get'],
    '/v1/policies/{policyId}/runs/{runId}': ['get'],
    '/v1/events': ['get'],
    '/v1/admin/backup': ['post'],
    '/v1/admin/log-level': ['get', 'put'],
    '/v1/snapshot-groups': ['get', 'post'],
    '/v1/snapshot-groups/{groupId}': ['delete', 'get'],
    '/v1/snapshot-groups/{groupId}/retry': ['post'],
    '/v1/snapshot-groups/{groupId}/revert': ['post'],
    '/v1/drift': ['get'],
    '/v1/whoami': ['get'],
  };
  t.same(Object.keys(doc.paths).sort(), Object.keys(expected).sort());
  for (const [path, methods] of Object.entries(expected)) {
    t.same(Object.keys(doc.paths[path]).sort(), methods, path);
  }
  t.same(doc.paths['/healthz'].get.security, [], 'healthz is open');
  const create = doc.paths['/v1/vms/{vmId}/snapshots'].post;
  t.same(Object.keys(create.responses).sort(), ['200', '202', '400', '401', '403', '404', '409', '413', '415', '422', '429', '500', '502', '503', '507']);
  t.same(create.responses['422'].content['application/json'].schema, { $ref: '#/components/schemas/Problem' });
  t.same(create.requestBody.content['application/json'].schema.required, ['name', 'mode']);
  t.equal(create.requestBody.content['application/json'].schema.additionalProperties, false);
  t.ok(doc.components.schemas.SnapshotTreeNode, 'the recursive tree node is a named schema');
  t.ok(doc.components.schemas.Problem);
  // Every $ref resolves inside the document.
  const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]!);
  t.ok(refs.length > 0);
  for (const ref of new Set(refs)) t.ok(doc.components.schemas[ref], `ref ${ref} resolves`);

  const docs = await h.call({ url: '/docs', as: 'reader' });
  t.equal(docs.statusCode, 200);
  t.match(docs.headers['content-type'], /text\/html/);
});

t.test('demo mode marks responses and targets', async (t) => {
  const h = await build(t, { demo: true });
  const res = await h.call({ url: '/v1/targets', as: 'reader' });
  t.equal(res.headers['x-snapvisor-demo'], 'true');
  t.equal((await h.call({ url: '/healthz', as: null })).headers['x-snapvisor-demo'], 'true');
  const plain = await build(t);
  t.equal((await plain.call({ url: '/v1/targets', as: 'reader' })).headers['x-snapvisor-demo'], undefined);
});

interface SseMessage {
  event: string;
  data: unknown;
}

/** Opens /v1/events on a real socket and collects messages and comment lines. */
function openStream(port: number, token: string) {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const waiters: Array<() => void> = [];
  let statusCode = 0;
  let headers: Record<string, unknown> = {};
  let close = () => {};
  const connected = new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/v1/events', headers: { authorization: `Bearer ${token}` } }, (res) => {
      statusCode = res.statusCode ?? 0;
      headers = res.headers;
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = '';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (event) messages.push({ event, data: JSON.parse(data) });
          for (const w of waiters.splice(0)) w();
        }
      });
      resolve();
    });
    req.on('error', reject);
    req.end();
    close = () => req.destroy();
  });
  const until = async (predicate: () => boolean) => {
    while (!predicate()) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { connected, messages, comments, until, close: () => close(), status: () => statusCode, headers: () => headers };
}

t.test('SSE: a job event arrives over a real connection; heartbeats; unsubscribed on close', async (t) => {
  const h = await build(t, { sseHeartbeatMs: 50 });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = h.app.server.address() as AddressInfo;
  const stream = openStream(port, 'adm1n-t0ken-value-7c1f-5e8d0b6a9f3c');
  await stream.connected;
  t.equal(stream.status(), 200);
  t.match(stream.headers()['content-type'], /^text\/event-stream/);

  const vm = await h.vmId('web-1');
  const created = JSON.parse((await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'streamed', mode: 'memory' } })).body);
  await stream.until(() => stream.messages.some((m) => m.event === 'job' && (m.data as { id: string; state: string }).id === created.id && (m.data as { state: string }).state === 'succeeded'));
  const jobEvents = stream.messages.filter((m) => m.event === 'job').map((m) => m.data as { id: string; state: string; requestedBy: string });
  t.ok(jobEvents.every((j) => j.id === created.id && j.requestedBy === 'writer'));
  t.ok(stream.messages.some((m) => m.event === 'snapshot'), 'the new snapshot is announced too');

  await stream.until(() => stream.comments.includes('heartbeat'));
  t.pass('heartbeat comment received');

  // Closing the client ends the server side of the stream (and its engine subscription).
  stream.close();
  const connections = () => new Promise<number>((resolve, reject) => h.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  while ((await connections()) > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  t.pass('server saw the client go');
  await h.app.close();
});

t.test('SSE needs a read token', async (t) => {
  const h = await build(t);
  t.equal((await h.call({ url: '/v1/events', as: null })).statusCode, 401);
});

t.test('app.close() ends open event streams', async (t) => {
  const h = await build(t);
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = h.app.server.address() as AddressInfo;
  const stream = openStream(port, 're4der-t0ken-value-8e0c-5e8d0b6a9f3c');
  await stream.connected;
  await h.app.close();
  t.pass('closed while a client was still connected');
  stream.close();
});
