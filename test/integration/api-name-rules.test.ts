// The target's declared name rules and the VM's stored power state are checked before any job exists:
// 400 / 409 problem+json, no job row, nothing stored changes.
import t from 'tap';
import { build } from './api-helper.ts';

const jobCount = async (h: Awaited<ReturnType<typeof build>>) => (await h.call({ url: '/v1/jobs', as: 'reader' })).json().items.length;

t.test('a name the target cannot take is 400 before any job exists', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('web-1');
  const before = await jobCount(h);
  for (const [name, why] of [
    ['-rf', /must not start with '-'/],
    ['a\u0000b', /NUL/],
  ] as const) {
    const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name, mode: 'memory' } });
    t.equal(res.statusCode, 400, JSON.stringify(name));
    t.equal(res.headers['content-type'], 'application/problem+json');
    const body = res.json();
    t.equal(body.code, 'SNAPVISOR_ERR_NAME_INVALID');
    t.match(body.detail, why);
    t.match(body.problems, [why], 'the broken rules are listed');
  }
  t.equal(await jobCount(h), before, 'no job was stored');
  const caps = (await h.call({ url: '/v1/targets/lab', as: 'reader' })).json().capabilities;
  t.ok(caps.limits.nameRules.some((r: { pattern: string }) => r.pattern === '^-'), 'the rules are published with the capabilities');
  t.type(caps.readiness, 'boolean');
});

t.test('a memory snapshot of a VM stored as powered off is 409 up front', async (t) => {
  const h = await build(t);
  const vm = await h.vmId('db-1');
  const before = await jobCount(h);
  const res = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots`, payload: { name: 'with ram', mode: 'memory' } });
  t.equal(res.statusCode, 409);
  t.match(res.json(), { code: 'SNAPVISOR_ERR_VM_POWERED_OFF', powerState: 'off' });
  t.equal(await jobCount(h), before, 'no job was stored');
  const offline = await h.call({ method: 'POST', url: `/v1/vms/${vm}/snapshots?wait=10`, payload: { name: 'cold', mode: 'offline' } });
  t.equal(offline.json().state, 'succeeded', 'the same VM takes an offline snapshot');
});
