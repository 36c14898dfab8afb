// The CLI's local operations with a PostgreSQL database: doctor checks the server read-only (it
// never migrates) and never prints the password; backup --local and restore refuse, naming
// PostgreSQL's own tools.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run } from '../../src/cli/run.ts';
import { openPgDb } from '../../src/store/pg/db.ts';
import { SCHEMA_VERSION } from '../../src/store/migrations/index.ts';
import { freshDatabase, freePort } from '../labs/postgres/lab.ts';

const root = mkdtempSync(path.join(tmpdir(), 'snapvisor-cli-pg-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

async function cli(args: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env: { E2E_TOKEN: 'cli-postgres-token-0123456789abcdef', ...env },
    cwd: root,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    fetch: globalThis.fetch,
    sleep: async () => {},
  });
  return { code, stdout, stderr, lines: stdout.split('\n').filter(Boolean) };
}

function config(database: string): string {
  const file = path.join(root, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, ['tokens:', '  - { name: ops, value: env:E2E_TOKEN, scopes: [read, write, admin] }', `database: ${JSON.stringify(database)}`, 'targets: []', ''].join('\n'));
  return file;
}

t.test('doctor: an empty database, a migrated one, an unreachable server; the password never shown', async (t) => {
  const db = await freshDatabase('cli');
  t.teardown(() => db.drop());
  const url = db.url.replace('snapvisor@', 'snapvisor:pw-s3cret@');
  let res = await cli(['doctor', '--config', config(url)]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.lines[1], /^ok   database: postgres:\/\/snapvisor:\*\*\*@127\.0\.0\.1:\d+\/\w+: reachable, no Snapvisor schema yet: the daemon creates it at start$/);
  t.notMatch(res.stdout + res.stderr, /pw-s3cret/);

  const migrated = await openPgDb(db.url);
  await migrated.close();
  res = await cli(['doctor', '--config', config(url)]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.lines[1], new RegExp(`reachable, schema version ${SCHEMA_VERSION} \\(current\\)$`));

  const port = await freePort();
  res = await cli(['doctor', '--config', config(`postgres://snapvisor:pw-s3cret@127.0.0.1:${port}/nothing`)]);
  t.equal(res.code, 1);
  t.match(res.lines[1], /^fix  database: postgres:\/\/snapvisor:\*\*\*@127\.0\.0\.1:\d+\/nothing: cannot connect: .*ECONNREFUSED/);
  t.notMatch(res.stdout + res.stderr, /pw-s3cret/);
});

t.test('backup --local and restore refuse a PostgreSQL database (SNAPVISOR_DB), naming pg_dump', async (t) => {
  const env = { SNAPVISOR_DB: 'postgres://snapvisor:pw-s3cret@127.0.0.1:5432/snapvisor' };
  const file = path.join(root, 'backup.db');
  writeFileSync(file, 'not a database');
  for (const [command, ...rest] of [['backup', '--local', path.join(root, 'out.db')], ['restore', file]]) {
    const args = [command!, ...rest];
    const res = await cli(args, env);
    t.not(res.code, 0, command!);
    t.match(res.stderr, /the database is PostgreSQL \(postgres:\/\/snapvisor:\*\*\*@127\.0\.0\.1:5432\/snapvisor\).*pg_dump/, command!);
    t.notMatch(res.stderr, /pw-s3cret/);
  }
});
