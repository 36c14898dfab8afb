/**
 * Bugs the API fuzz stage (api-fuzz.test.ts) found, each pinned by the request that showed it.
 */
import t from 'tap';
import { build } from './api-helper.ts';

t.test('an app built without a logger reports its log level as silent, not a 500', async (t) => {
  // The stand-in logger Fastify uses with `logger: false` has no level: the answer failed its own schema.
  const h = await build(t);
  const got = await h.call({ url: '/v1/admin/log-level', as: 'admin' });
  t.equal(got.statusCode, 200, got.body);
  t.same(got.json(), { level: 'silent' });
  const put = await h.call({ method: 'PUT', url: '/v1/admin/log-level', as: 'admin', payload: { level: 'debug' } });
  t.equal(put.statusCode, 200, put.body);
  t.same(put.json(), { previous: 'silent', level: 'debug' });
});
