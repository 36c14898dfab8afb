// `npm start` (the esbuild bundle in .build/) with a `kind: vmware` target against vcsim: the shipped
// WSDL must be found from the bundle, secrets come from env:/file:, and a snapshot job runs end to end.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startVcsim } from '../labs/vcsim/lab.ts';
import { api, startDaemon, until } from './daemon.ts';

t.test('the bundled daemon drives a vcsim target', async (t) => {
  const cwd = t.testdir({});
  const lab = await startVcsim({ dir: join(cwd, 'vcsim') });
  t.teardown(() => lab.stop());
  writeFileSync(join(cwd, 'ca.pem'), lab.caPem);
  writeFileSync(
    join(cwd, 'snapvisor.yaml'),
    [
      'tokens: [{ name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }]',
      'logLevel: info',
      'engine: { workerPollMs: 50, syncIntervalSec: 0 }',
      `targets: [{ name: vc, kind: vmware, url: ${JSON.stringify(lab.sdkUrl)}, username: ${JSON.stringify(lab.username)}, password: env:E2E_VC_PASSWORD, ca: "file:${join(cwd, 'ca.pem')}" }]`,
      '',
    ].join('\n'),
  );
  const token = 'e2e-vmware-token-5e8d0b6a9f3c';
  const d = await startDaemon({ cwd, env: { SNAPVISOR_CONFIG: join(cwd, 'snapvisor.yaml'), E2E_TOKEN: token, E2E_VC_PASSWORD: lab.password } });
  t.teardown(() => d.kill('SIGKILL'));
  const vms = await until('vcsim VMs synced', async () => {
    const r = await api<{ items: Array<{ id: string; name: string }> }>(d, token, 'GET', '/v1/vms?target=vc');
    return r.body.items.length === lab.vmCount ? r.body.items : undefined;
  });
  const vm = vms.find((v) => v.name === 'DC0_H0_VM0')!;
  const created = await api<{ state: string; result: { snapshotId: string } | null }>(d, token, 'POST', `/v1/vms/${vm.id}/snapshots?wait=60`, { name: 'e2e', mode: 'crash' });
  t.equal(created.status, 200);
  t.equal(created.body.state, 'succeeded');
  const target = await api<{ health: { reachable: boolean } }>(d, token, 'GET', '/v1/targets/vc');
  t.equal(target.body.health.reachable, true, 'target healthy');
  t.notOk(d.stdout().includes(lab.password) || d.stderr().includes(lab.password), 'the vCenter password never reaches the logs');
});
