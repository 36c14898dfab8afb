import t from 'tap';
import pg from 'pg';
import { connectStore, StoreVersionError } from '../../src/store/index.ts';
import { openPgDb } from '../../src/store/pg/db.ts';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/store/migrations/index.ts';
import { freshDatabase } from '../labs/postgres/lab.ts';

t.test('replicas starting together migrate once, to the same version as SQLite', async (t) => {
  const db = await freshDatabase('open');
  t.teardown(() => db.drop());
  const stores = await Promise.all([1, 2, 3].map(() => connectStore(db.url)));
  t.teardown(() => Promise.all(stores.map((s) => s.close())));
  for (const s of stores) t.equal(s.dialect, 'postgres');
  const c = new pg.Client(db.url);
  await c.connect();
  t.teardown(() => c.end());
  const versions = (await c.query('SELECT version FROM snapvisor_schema ORDER BY version')).rows.map((r) => r.version);
  t.same(versions, MIGRATIONS.map((m) => m.version), 'every migration applied exactly once');
  t.equal(Math.max(...versions), SCHEMA_VERSION);
  t.ok(await stores[0]!.healthy());
  t.equal(await stores[0]!.writeProbe(), null);
});

t.test('a database migrated by a newer build is refused', async (t) => {
  const db = await freshDatabase('open');
  t.teardown(() => db.drop());
  const first = await openPgDb(db.url);
  await first.run('INSERT INTO snapvisor_schema (version) VALUES (?)', [SCHEMA_VERSION + 1]);
  await first.close();
  await t.rejects(openPgDb(db.url), StoreVersionError);
});

t.test('the store location never shows the password', async (t) => {
  const db = await freshDatabase('open');
  t.teardown(() => db.drop());
  const url = db.url.replace('snapvisor@', 'snapvisor:s3cret-pw@');
  const store = await connectStore(url);
  t.teardown(() => store.close());
  t.notMatch(store.location, /s3cret-pw/);
  t.match(store.location, /\*\*\*/);
});

t.test('an unreachable server rejects the open with the reason, and fails health', async (t) => {
  await t.rejects(connectStore('postgres://snapvisor@127.0.0.1:1/nothing'), /ECONNREFUSED|connect/);
});
