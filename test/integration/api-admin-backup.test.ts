/** POST /v1/admin/backup: admin only, the database as the body, the daemon's temporary copy removed. */
import { readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { inspectDatabaseFile } from '../../src/store/backup.ts';
import { SCHEMA_VERSION } from '../../src/store/migrations/index.ts';
import { until } from '../e2e/daemon.ts';
import { build } from './api-helper.ts';

const leftovers = () => readdirSync(tmpdir()).filter((f) => /^snapvisor\.backup-.*\.tmp$/.test(f));

t.test('admin gets a consistent copy of the database; others get 403', async (t) => {
  const h = await build(t);
  const before = new Set(leftovers());
  t.equal((await h.call({ method: 'POST', url: '/v1/admin/backup', as: 'writer' })).statusCode, 403);
  t.equal((await h.call({ method: 'POST', url: '/v1/admin/backup', as: null })).statusCode, 401);
  t.equal((await h.call({ method: 'POST', url: '/v1/admin/backup', as: 'admin', payload: { path: '/etc/passwd' } })).statusCode, 400, 'no path from the client');

  const res = await h.call({ method: 'POST', url: '/v1/admin/backup', as: 'admin' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'application/vnd.sqlite3');
  t.equal(res.headers['x-snapvisor-schema-version'], String(SCHEMA_VERSION));
  t.match(String(res.headers['content-disposition']), /^attachment; filename="snapvisor-\d{4}-\d\d-\d\dT[\d-]+Z\.db"$/);
  const copy = path.join(t.testdir({}), 'copy.db');
  writeFileSync(copy, res.rawPayload);
  const report = inspectDatabaseFile(copy);
  t.same(report.integrity, ['ok']);
  t.same(report.missingTables, []);
  t.equal(report.schemaVersion, SCHEMA_VERSION);
  await until('temporary copy removed', async () => leftovers().every((f) => before.has(f)), 5000, 20);

  // Written once the response is sent.
  await until('audited', async () => (await h.store.audit.list({ limit: 10 })).some((a) => a.path === '/v1/admin/backup' && a.statusCode === 200 && a.principal === 'admin'), 5000, 20);
  t.pass('audited');
});
