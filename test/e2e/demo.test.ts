// `npm start` with no config file on a machine with no hypervisor: the demo configuration runs the
// bundled VirtualBox simulator, is marked demo, prints a generated token once, and works end to end.
import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { api, startDaemon, until, type Daemon } from './daemon.ts';

t.test('demo mode works out of the box and is marked demo', async (t) => {
  const cwd = t.testdir({});
  const d = await startDaemon({ cwd });
  t.teardown(() => d.kill('SIGKILL'));
  // The banner follows the 'listening' line the helper waits for (a separate write).
  const token = await until('the banner', async () => /Admin token: (\S+)/.exec(d.stdout())?.[1], 10_000).catch(() => undefined);
  t.ok(token, 'a generated token is printed');
  t.match(token!, /^svd_/);
  t.ok(d.logs().some((l) => l.demo === true && /DEMO/.test(String(l.msg))), 'logs say demo');
  t.notOk(d.logs().some((l) => JSON.stringify(l).includes(token!)), 'the token never appears in a log line');

  const health = await fetch(`${d.url}/healthz`);
  t.equal(health.status, 200, '/healthz is open');
  const denied = await fetch(`${d.url}/v1/targets`);
  t.equal(denied.status, 401, 'everything else needs the token');

  const targets = await api<{ items: Array<{ name: string; demo: boolean; kind: string }> }>(d, token!, 'GET', '/v1/targets');
  t.equal(targets.status, 200);
  t.same(targets.body.items.map((x) => [x.name, x.kind, x.demo]), [['demo-vbox', 'virtualbox', true]]);
  t.equal(targets.headers.get('x-snapvisor-demo'), 'true');

  const vms = await until('demo VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string; powerState: string }> }>(d, token!, 'GET', '/v1/vms');
    return r.body.items.length >= 5 ? r.body.items : undefined;
  });
  const web = vms.find((v) => v.name === 'web-01')!;
  t.equal(web.powerState, 'running');
  const created = await api<{ id: string; state: string; result: { snapshotId: string } | null }>(d, token!, 'POST', `/v1/vms/${web.id}/snapshots?wait=60`, {
    name: 'first demo snapshot',
    mode: 'memory',
  });
  t.equal(created.status, 200, 'finished within the wait');
  t.equal(created.body.state, 'succeeded');
  const tree = await api<{ roots: Array<{ id: string; current: boolean; name: string }> }>(d, token!, 'GET', `/v1/vms/${web.id}/snapshots?view=tree`);
  t.equal(tree.body.roots[0]!.name, 'first demo snapshot');
  t.equal(tree.body.roots[0]!.id, created.body.result!.snapshotId);
  t.ok(tree.body.roots[0]!.current);
});

t.test('a bad config file stops the daemon with the key and the reason', async (t) => {
  const cwd = t.testdir({ 'bad.yaml': 'tokens: []\nlisten: { port: "x" }\n' });
  const err = await startDaemon({ cwd, env: { SNAPVISOR_CONFIG: 'bad.yaml' } }).then(
    () => null,
    (e: Error) => e,
  );
  t.ok(err, 'does not start');
  t.match(err!.message, /\/listen\/port/);
  t.match(err!.message, /\/tokens/);
  t.notMatch(err!.message, /at .*\.ts:\d+/, 'no stack trace for a config error');
});

t.test('the demo is relocatable: a copied tree drives its own simulator, never the one it was copied from', async (t) => {
  const root = t.testdir({ a: {} });
  const a = path.join(root, 'a');
  const b = path.join(root, 'b');
  const token = 'demo-relocation-token-0123456789';
  const state = (dir: string) => readFileSync(path.join(dir, 'data/demo/vbox-state.json'), 'utf8');
  const snapshotNames = (dir: string, vm: string) =>
    Object.values((JSON.parse(state(dir)) as { vms: Array<{ name: string; snapshots: Record<string, { name: string }> }> }).vms.find((v) => v.name === vm)!.snapshots)
      .map((s) => s.name)
      .sort();
  const snapshot = async (d: Daemon, name: string) => {
    const vms = await until('demo VMs synced', async () => {
      const r = await api<{ items: Array<{ id: string; name: string }> }>(d, token, 'GET', '/v1/vms');
      return r.body.items.length >= 5 ? r.body.items : undefined;
    });
    const created = await api<{ state: string }>(d, token, 'POST', `/v1/vms/${vms.find((v) => v.name === 'web-01')!.id}/snapshots?wait=60`, { name, mode: 'memory' });
    t.equal(created.body.state, 'succeeded', `${name} made: ${JSON.stringify(created.body)}`);
  };

  const first = await startDaemon({ cwd: a, env: { SNAPVISOR_TOKEN: token } });
  t.teardown(() => first.kill('SIGKILL'));
  await snapshot(first, 'made in A');
  await first.kill('SIGTERM');
  cpSync(a, b, { recursive: true });
  const aBefore = state(a);
  t.notOk(readFileSync(path.join(b, 'data/demo/VBoxManage'), 'utf8').includes(a), "the copied wrapper names nothing of A's tree");

  const second = await startDaemon({ cwd: b, env: { SNAPVISOR_TOKEN: token } });
  t.teardown(() => second.kill('SIGKILL'));
  await snapshot(second, 'made in B');
  await second.kill('SIGTERM');
  t.same(snapshotNames(b, 'web-01'), ['made in A', 'made in B'], "B's daemon drove B's simulator");
  t.equal(state(a), aBefore, "A's simulator state is untouched");
  t.same(snapshotNames(a, 'web-01'), ['made in A']);
});
