// Create options a target declares (capabilities.createOptions, e.g. Azure's `incremental`): the API
// takes exactly those, typed as declared, and the provider gets them; anything else is a 400 before
// any job exists.
import t from 'tap';
import { build } from './api-helper.ts';

const jobCount = async (h: Awaited<ReturnType<typeof build>>) => (await h.call({ url: '/v1/jobs', as: 'reader' })).json().items.length;

t.test('a target that declares no create options refuses any, naming it', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  const before = await jobCount(h);
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory', options: { incremental: false } } });
  t.equal(res.statusCode, 400);
  t.equal(res.headers['content-type'], 'application/problem+json');
  t.match(res.json(), { code: 'SNAPVISOR_ERR_OPTION_INVALID', detail: /unknown create option 'incremental' \(this target takes none\)/ });
  t.equal(await jobCount(h), before, 'no job was stored');
});

t.test('declared options: published, checked by type, passed to the provider, kept for retries', async (t) => {
  const h = await build(t, {
    provider: { capabilities: { createOptions: { incremental: { type: 'boolean', description: 'incremental or full' }, copies: { type: 'integer', description: 'n' } } } },
  });
  const caps = (await h.call({ url: '/v1/targets/lab', as: 'reader' })).json().capabilities;
  t.match(caps.createOptions, { incremental: { type: 'boolean' }, copies: { type: 'integer' } }, 'published with the capabilities');
  const vm = await h.vmId('web-1');
  for (const [options, why] of [
    [{ incremental: 'no' }, /create option 'incremental' must be a boolean/],
    [{ copies: 1.5 }, /create option 'copies' must be an integer/],
    [{ constructor: true }, /unknown create option 'constructor' \(this target takes: incremental, copies\)/],
  ] as const) {
    const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'x', mode: 'memory', options } });
    t.equal(res.statusCode, 400, JSON.stringify(options));
    t.match(res.json().detail, why);
  }
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots?wait=10`, payload: { name: 'full', mode: 'memory', options: { incremental: false } } });
  t.equal(res.statusCode, 200, res.body);
  t.equal(res.json().state, 'succeeded');
  const call = h.provider.calls.find((c) => c.op === 'createSnapshot' && c.spec?.name === 'full');
  t.same(call?.spec?.options, { incremental: false }, 'the provider got the option');
  const plain = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots?wait=10`, payload: { name: 'plain', mode: 'memory' } });
  t.equal(plain.json().state, 'succeeded');
  t.equal(h.provider.calls.find((c) => c.op === 'createSnapshot' && c.spec?.name === 'plain')?.spec?.options, undefined, 'no options: none passed');
});
