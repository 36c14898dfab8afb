/**
 * Issue 10 item 3: a request that fails authentication writes nothing (it is counted in /metrics),
 * and an audit row holds a bounded path without the query string.
 */
import t from 'tap';
import { AUDIT_PATH_MAX } from '../../src/api/plugins/audit.ts';
import { build, eventually } from './api-helper.ts';

const counter = (body: string, reason: string) => {
  const m = new RegExp(`^snapvisor_http_unauthenticated_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(body);
  return m ? Number(m[1]) : NaN;
};

t.test('a burst of 1,000 unauthenticated mutations writes no audit row and moves the counter by 1,000', async (t) => {
  const h = await build(t);
  const vmId = await h.vmId('web-1');
  const metrics = async () => (await h.call({ url: '/metrics', as: 'reader' })).body;
  const before = await metrics();
  for (const reason of ['missing', 'malformed', 'unknown']) t.equal(counter(before, reason), 0, `${reason} starts at 0`);

  const headers = [{}, { authorization: 'Basic Zm9vOmJhcg==' }, { authorization: 'Bearer not-a-configured-token' }];
  for (let i = 0; i < 1000; i++) {
    const res = await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots?n=${i}`, payload: { name: `x${i}`, mode: 'memory' }, as: null, headers: headers[i % 3]! });
    if (res.statusCode !== 401) t.fail(`request ${i} answered ${res.statusCode}`);
  }
  // A request that is audited, after the burst: once its row is there, the burst's hooks have run.
  await h.call({ method: 'POST', url: `/v1/vms/${vmId}/snapshots`, payload: { name: 'x', mode: 'crash' } });
  const rows = await eventually(async () => {
    const list = await h.store.audit.list({ limit: 2000 });
    return list.length > 0 ? list : undefined;
  });
  t.same(rows.map((r) => [r.principal, r.statusCode]), [['writer', 422]], 'only the authenticated request is audited');
  t.same((await h.snapshotOfStore()).jobs, [], 'and no job exists');

  const after = await metrics();
  t.equal(counter(after, 'missing'), 334);
  t.equal(counter(after, 'malformed'), 333);
  t.equal(counter(after, 'unknown'), 333);
  t.match(after, /# TYPE snapvisor_http_unauthenticated_total counter/);
});

t.test('an audit row holds the path without its query string, cut to a bounded length', async (t) => {
  const h = await build(t);
  // No route: a long path parameter would be a 414 before routing (Fastify's maxParamLength).
  const long = `/v1/no-such-route/${'a'.repeat(5000)}`;
  const res = await h.call({ method: 'POST', url: `${long}?token=s3cret-value`, payload: { name: 'x', mode: 'memory' } });
  t.equal(res.statusCode, 404);
  const short = await h.call({ method: 'POST', url: `/v1/vms/nope/snapshots?apiKey=s3cret-value`, payload: { name: 'x', mode: 'memory' } });
  t.equal(short.statusCode, 404);
  const rows = await eventually(async () => {
    const list = await h.store.audit.list({ limit: 10 });
    return list.length >= 2 ? list.reverse() : undefined;
  });
  t.equal(rows[0]!.path.length, AUDIT_PATH_MAX);
  t.equal(rows[0]!.path, `${long.slice(0, AUDIT_PATH_MAX - 1)}…`);
  t.equal(rows[1]!.path, '/v1/vms/nope/snapshots');
  for (const r of rows) t.notMatch(r.path, /s3cret|\?/, 'no query string is stored');
});
