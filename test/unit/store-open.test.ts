import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MIGRATIONS } from '../../src/store/migrations/index.ts';
import { openDb } from '../../src/store/db.ts';
import { DatabaseDamagedError, openStore, StoreVersionError } from '../../src/store/index.ts';
import { DUE_SQL, FAIR_CANDIDATES_SQL, NEXT_QUEUED_PRINCIPAL_SQL } from '../../src/store/jobs.ts';

const tmp = (t: { teardown(fn: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'test.db');
};

t.test('a file database opens in WAL with foreign keys, migrated to the latest version', async (t) => {
  const path = tmp(t);
  const store = openStore(path);
  t.equal(await store.healthy(), true);
  store.close();
  t.equal(await store.healthy(), false, 'closed store is not healthy');
  const raw = new Database(path);
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(raw.pragma('user_version', { simple: true }), MIGRATIONS[MIGRATIONS.length - 1]!.version);
  raw.close();
  // Reopening applies nothing and keeps data.
  const again = openStore(path);
  const target = await again.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
  t.equal((await again.targets.get('lab'))?.id, target.id);
  again.close();
});

t.test('refuses a database written by a newer Snapvisor', async (t) => {
  const path = tmp(t);
  openStore(path).close();
  const raw = new Database(path);
  raw.pragma('user_version = 999');
  raw.close();
  t.throws(() => openStore(path), StoreVersionError);
});

t.test('foreign keys are enforced', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  await t.rejects(
    store.vms.apply({
      inserts: [
        {
          id: 'v1',
          targetId: 'no-such-target',
          providerVmId: 'p',
          name: 'x',
          powerState: 'off',
          rawPowerState: 'poweroff',
          consolidationNeeded: false,
          disks: null,
          firstSeenAt: 'a',
          lastSeenAt: 'a',
          goneAt: null,
        },
      ],
      updates: [],
      gone: [],
    }),
    /FOREIGN KEY/,
  );
});

t.test('the worker\'s queue queries are answered from indexes, without a sort', async (t) => {
  const file = tmp(t);
  const store = openStore(file);
  t.teardown(() => store.close());
  const raw = new Database(file, { readonly: true });
  t.teardown(() => raw.close());
  const plan = (sql: string, ...params: unknown[]) =>
    (raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>).map((r) => r.detail).join('\n');
  const due = plan(DUE_SQL, '2026-11-24T00:00:00.000Z', 50);
  t.match(due, /SEARCH j USING INDEX jobs_state_created \(state=\?\)/);
  t.match(due, /jobs_running_vm/);
  t.notMatch(due, /TEMP B-TREE/);
  t.match(plan(`SELECT count(*) FROM jobs r WHERE r.target_id = 'x' AND r.state = 'running'`), /jobs_running_target/);
  // The fair claim: each principal's candidates on a target in tag order straight from the index,
  // the VM-head check a seek, the next principal a seek (never a walk over the whole queue).
  const fair = plan(FAIR_CANDIDATES_SQL, { principal: 'p', targetId: 't', now: '2026-11-24T00:00:00.000Z', limit: 9 });
  t.match(fair, /SEARCH j USING INDEX jobs_queued_fair \(requested_by=\? AND target_id=\?\)/);
  t.match(fair, /SEARCH e USING INDEX jobs_queued_vm \(vm_id=\? AND created_at<\?\)/);
  t.match(fair, /jobs_running_vm/);
  t.notMatch(fair, /TEMP B-TREE/);
  t.match(plan(NEXT_QUEUED_PRINCIPAL_SQL, ''), /SEARCH jobs USING COVERING INDEX jobs_queued_fair \(requested_by>\?\)/);
  t.match(plan(`SELECT key, at, job_id FROM create_budget_events WHERE target_id = 'x' AND at >= '2026'`), /create_budget_events_key_at/);
  t.match(plan(`SELECT id, disks FROM vms WHERE id IN (SELECT value FROM json_each('["a","b"]'))`), /SEARCH vms USING INDEX sqlite_autoindex_vms_1 \(id=\?\)/);
});

t.test('migration 6 on a version-5 database: existing rows get null disks and details, the budget table is empty', async (t) => {
  const file = tmp(t);
  const five = openDb(file, undefined, MIGRATIONS.filter((m) => m.version <= 5));
  five.raw.exec(`INSERT INTO targets (id, name, kind) VALUES ('t', 'lab', 'azure');
    INSERT INTO vms (id, target_id, provider_vm_id, name, power_state, raw_power_state, first_seen_at, last_seen_at) VALUES ('v', 't', 'p', 'vm', 'off', 'off', 'a', 'a');
    INSERT INTO snapshots (id, vm_id, provider_ref, name, owner, state, first_seen_at) VALUES ('s', 'v', 'r', 'snap', 'external', 'present', 'a');`);
  five.raw.close();
  const store = openStore(file);
  t.teardown(() => store.close());
  t.equal((await store.vms.get('v'))?.disks, null);
  t.equal((await store.snapshots.get('s'))?.details, null);
  t.same(await store.budgets.recent('t', ''), []);
});

t.test('a damaged database is refused before anything writes to it: quick_check, foreign keys, a lone -wal', async (t) => {
  const path = tmp(t);
  openStore(path).close();
  // A row whose target does not exist, written with the checks off (as a damaged copy might hold).
  const raw = new Database(path);
  raw.pragma('foreign_keys = OFF');
  raw.prepare("INSERT INTO vms (id, target_id, provider_vm_id, name, power_state, raw_power_state, first_seen_at, last_seen_at) VALUES ('v1', 'no-such-target', 'p1', 'x', 'running', 'running', '2026-01-01', '2026-01-01')").run();
  raw.close();
  const before = readFileSync(path);
  t.throws(() => openStore(path), { name: 'DatabaseDamagedError', message: new RegExp(`^database ${path} is damaged: 1 row\\(s\\) break a foreign key \\(first: vms rowid \\d+ → targets\\); restore the last good backup`) });
  t.ok(readFileSync(path).equals(before), 'the file is unchanged');
  t.type(t.throws(() => openStore(path)), DatabaseDamagedError);

  const lone = tmp(t);
  writeFileSync(`${lone}-wal`, 'a log without its database');
  t.throws(() => openStore(lone), { name: 'DatabaseDamagedError', message: /is missing but its write-ahead log .*-wal is there/ });
  t.notOk(existsSync(lone), 'no empty database created');
});
