// A bearer token shorter than 24 characters stops the daemon at start, exit 2 like every config
// error, naming the token (by its name, or SNAPVISOR_TOKEN in the demo) and never printing it.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { api, runDaemonToExit, startDaemon } from './daemon.ts';

const config = (dir: string) => {
  const file = path.join(dir, 'snapvisor.yaml');
  writeFileSync(file, ['tokens:', '  - { name: ci-robot, value: env:E2E_TOKEN, scopes: [read] }', 'targets: []', ''].join('\n'));
  return file;
};

t.test('a 23-character token: exit 2 naming the token, never showing it', async (t) => {
  const dir = t.testdir({});
  const short = 'q'.repeat(23);
  const res = await runDaemonToExit({ cwd: dir, env: { SNAPVISOR_CONFIG: config(dir), E2E_TOKEN: short } });
  t.equal(res.code, 2);
  t.match(res.stderr, /\/tokens\/0\/value: token 'ci-robot' is 23 characters long; at least 24 are required/);
  t.notOk(res.stderr.includes(short) || res.stdout.includes(short), 'the value is never printed');
  t.notMatch(res.stderr, /at .*\.ts:\d+/, 'no stack trace');
});

t.test('a 24-character token is accepted', async (t) => {
  const dir = t.testdir({});
  const token = 'q'.repeat(24);
  const d = await startDaemon({ cwd: dir, env: { SNAPVISOR_CONFIG: config(dir), E2E_TOKEN: token } });
  t.teardown(() => d.kill('SIGKILL'));
  t.equal((await api(d, token, 'GET', '/v1/targets')).status, 200);
});

t.test("demo: a short SNAPVISOR_TOKEN is refused by the variable's name", async (t) => {
  const dir = t.testdir({});
  const short = 'dev-token';
  const res = await runDaemonToExit({ cwd: dir, env: { SNAPVISOR_TOKEN: short } });
  t.equal(res.code, 2);
  t.match(res.stderr, /SNAPVISOR_TOKEN: is 9 characters long; at least 24 are required/);
  t.notOk(res.stderr.includes(short), 'the value is never printed');
});
