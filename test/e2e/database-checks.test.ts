// Start-up refuses a database it cannot use safely (issue 10, items 6 and 11), with one line on
// stderr naming the file or directory and exit code 2, and writes nothing: a configured database
// whose directory is missing (no mkdir -p: a typo or an unmounted volume is not a fresh start),
// a damaged file (quick_check), and a deleted database whose write-ahead log was left behind.
// The default data directory (./data, what `npm start` uses) is still created.
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { inspectDatabaseFile } from '../../src/store/backup.ts';
import { openStore } from '../../src/store/index.ts';
import { runDaemonToExit, startDaemon } from './daemon.ts';

/** integrity_check reports the damage in rows, or fails reading the page at all. */
function sqliteSaysDamaged(file: string): boolean {
  try {
    return inspectDatabaseFile(file).integrity[0] !== 'ok';
  } catch (e) {
    return /malformed|not a database|corrupt/i.test((e as Error).message);
  }
}

const TOKEN = 'e2e-dbcheck-token-19c3-5e8d0b6a9f3c';
const env = (config: string, extra: Record<string, string> = {}) => ({ SNAPVISOR_CONFIG: config, E2E_TOKEN: TOKEN, ...extra });
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function writeConfig(dir: string, database: string | null): string {
  const file = path.join(dir, 'snapvisor.yaml');
  writeFileSync(
    file,
    [
      'tokens:',
      '  - { name: ops, value: env:E2E_TOKEN, scopes: [read, write, admin] }',
      ...(database === null ? [] : [`database: ${JSON.stringify(database)}`]),
      'engine: { workerPollMs: 50, syncIntervalSec: 0 }',
      'targets: []',
      '',
    ].join('\n'),
  );
  return file;
}

/** A real Snapvisor database with enough rows to span many pages. */
async function realDatabase(file: string): Promise<void> {
  const store = openStore(file);
  for (let i = 0; i < 3000; i++) {
    await store.audit.insert({ at: new Date(1_700_000_000_000 + i).toISOString(), principal: 'ops', method: 'POST', path: `/v1/vms/${i}/snapshots`, statusCode: 202, jobId: null, detail: `row ${i} ${'x'.repeat(120)}` });
  }
  store.close();
}

t.test('a configured database whose directory does not exist: exit 2 naming the directory, nothing created', async (t) => {
  const dir = t.testdir({});
  const missing = path.join(dir, 'not-mounted', 'db');
  const config = writeConfig(dir, path.join(missing, 'snapvisor.db'));
  const res = await runDaemonToExit({ cwd: dir, env: env(config) });
  t.equal(res.code, 2);
  t.equal(res.stderr, `snapvisor: the database directory ${missing} does not exist (database ${path.join(missing, 'snapvisor.db')}, from ${config} /database); create it or correct the path\n`);
  t.notOk(existsSync(path.join(dir, 'not-mounted')), 'no mkdir -p');

  const viaEnv = await runDaemonToExit({ cwd: dir, env: env(config, { SNAPVISOR_DB: path.join(missing, 'x.db') }) });
  t.equal(viaEnv.code, 2);
  t.match(viaEnv.stderr, new RegExp(`^snapvisor: the database directory ${re(missing)} does not exist \\(database .*x\\.db, from SNAPVISOR_DB\\); create it or correct the path\\n$`));
  t.notOk(existsSync(path.join(dir, 'not-mounted')));
});

t.test('no database in the configuration: the default ./data is created, as for npm start', async (t) => {
  const dir = t.testdir({});
  const config = writeConfig(dir, null);
  const d = await startDaemon({ cwd: dir, env: env(config) });
  t.teardown(() => d.kill('SIGKILL'));
  t.ok(existsSync(path.join(dir, 'data', 'snapvisor.db')), 'data/snapvisor.db created');
  t.equal((await d.kill('SIGTERM')).code, 0);
});

t.test('a damaged database (garbage over a middle page): exit 2 naming the file, the file unchanged', async (t) => {
  const dir = t.testdir({});
  const db = path.join(dir, 'snapvisor.db');
  await realDatabase(db);
  const pages = readFileSync(db).length / 4096;
  t.ok(pages > 20, `a database of ${pages} pages`);
  const bytes = readFileSync(db);
  const page = Math.floor(pages / 2);
  for (let i = page * 4096; i < (page + 1) * 4096; i++) bytes[i] = (i * 131 + 7) & 0xff;
  writeFileSync(db, bytes);
  t.ok(sqliteSaysDamaged(db), 'SQLite agrees the file is damaged');

  const config = writeConfig(dir, db);
  const res = await runDaemonToExit({ cwd: dir, env: env(config) });
  t.equal(res.code, 2);
  t.match(res.stderr, new RegExp(`^snapvisor: database ${re(db)} is damaged: .+; restore the last good backup \\(snapvisor restore\\)\\n$`));
  t.notMatch(res.stdout, /migration applied|listening/);
  t.ok(readFileSync(db).equals(bytes), 'the database file is byte for byte as it was');
});

t.test('a deleted database whose -wal is still there: exit 2, nothing created, the log unchanged', async (t) => {
  const dir = t.testdir({});
  const db = path.join(dir, 'snapvisor.db');
  await realDatabase(db);
  // Transactions only in the log, as after a crash: write with checkpoints off, keep a copy of the log.
  const raw = new Database(db);
  raw.pragma('wal_autocheckpoint = 0');
  raw.prepare("UPDATE audit_log SET detail = 'only in the log' WHERE id <= 50").run();
  copyFileSync(`${db}-wal`, path.join(dir, 'kept-wal'));
  raw.close();
  rmSync(db);
  rmSync(`${db}-shm`, { force: true });
  copyFileSync(path.join(dir, 'kept-wal'), `${db}-wal`);
  const wal = readFileSync(`${db}-wal`);
  t.ok(wal.length > 0, 'the log has content');

  const config = writeConfig(dir, db);
  const res = await runDaemonToExit({ cwd: dir, env: env(config) });
  t.equal(res.code, 2);
  t.equal(res.stderr, `snapvisor: database ${db} is missing but its write-ahead log ${db}-wal is there: refusing to create an empty database over it (put the database file back, or restore a backup with snapvisor restore)\n`);
  t.notOk(existsSync(db), 'no empty database created');
  t.ok(readFileSync(`${db}-wal`).equals(wal), 'the log is unchanged');
});
