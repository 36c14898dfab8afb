// `snapvisor backup` against the real daemon while jobs run and requests keep coming, then
// `snapvisor restore` into a fresh data directory and a second daemon on it: the trees and jobs
// are the first daemon's as of the backup. Restore refuses while a daemon has the database open.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { run } from '../../src/cli/run.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, startDaemon, until, type Daemon } from './daemon.ts';

const TOKEN = 'e2e-backup-token-91b2-5e8d0b6a9f3c';
const FINAL = ['succeeded', 'failed', 'cancelled'];

interface JobBody { id: string; kind: string; state: string; vmId: string; result: unknown; error: unknown; createdAt: string; finishedAt: string | null }
interface TreeBody { roots: unknown[]; currentSnapshotId: string | null }

function writeConfig(dir: string, vboxmanage: string): string {
  const file = path.join(dir, 'snapvisor.yaml');
  writeFileSync(
    file,
    [
      'tokens:',
      '  - { name: ops, value: env:E2E_TOKEN, scopes: [read, write, admin] }',
      `database: ${JSON.stringify(path.join(dir, 'data', 'snapvisor.db'))}`,
      'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 30 }',
      'targets:',
      `  - { name: lab, kind: virtualbox, vboxmanage: ${JSON.stringify(vboxmanage)}, concurrency: 4 }`,
      '',
    ].join('\n'),
  );
  return file;
}

async function cli(args: string[], env: Record<string, string>, cwd: string) {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    env,
    cwd,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    fetch: globalThis.fetch,
    sleep: () => new Promise((resolve) => setTimeout(resolve, 20)),
  });
  return { code, stdout, stderr };
}

async function vmIds(d: Daemon, names: string[]): Promise<Record<string, string>> {
  return until('VMs synced', async () => {
    const { body } = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms?target=lab');
    const ids = Object.fromEntries(body.items.map((v) => [v.name, v.id]));
    return names.every((n) => ids[n]) ? ids : undefined;
  });
}

async function allJobs(d: Daemon): Promise<JobBody[]> {
  const items: JobBody[] = [];
  let cursor: string | null = null;
  do {
    const page: { body: { items: JobBody[]; next: string | null } } = await api(d, TOKEN, 'GET', `/v1/jobs?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    items.push(...page.body.items);
    cursor = page.body.next;
  } while (cursor);
  return items.sort((a, b) => a.id.localeCompare(b.id));
}

const tree = async (d: Daemon, vmId: string) => (await api<TreeBody>(d, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots?view=tree`)).body;

t.test('backup under load, restore into a fresh daemon: same trees and jobs; restore refuses a live daemon', async (t) => {
  const dir = t.testdir({ one: {}, two: {} });
  // Slow enough that jobs are still running while the backup is taken.
  const lab = createVboxLab({ dir: path.join(dir, 'lab'), stepMs: 150, vms: ['quiet', 'busy-1', 'busy-2', 'busy-3'].map((name) => ({ name, state: 'running' as const })) });
  t.teardown(() => {
    spawnSync('pkill', ['-KILL', '-f', lab.dir]);
  });
  const config1 = writeConfig(path.join(dir, 'one'), lab.vboxmanage);
  const config2 = writeConfig(path.join(dir, 'two'), lab.vboxmanage);
  const env1 = { SNAPVISOR_CONFIG: config1, E2E_TOKEN: TOKEN };
  const env2 = { SNAPVISOR_CONFIG: config2, E2E_TOKEN: TOKEN };

  // A configured database's directory must exist; the second one is made by the restore.
  mkdirSync(path.join(dir, 'one', 'data'));
  const d1 = await startDaemon({ cwd: dir, env: env1 });
  t.teardown(() => d1.kill('SIGKILL'));
  const ids = await vmIds(d1, ['quiet', 'busy-1', 'busy-2', 'busy-3']);

  // A settled tree on 'quiet': two snapshots, one child of the other.
  for (const name of ['base', 'patched']) {
    const made = await api<JobBody>(d1, TOKEN, 'POST', `/v1/vms/${ids.quiet}/snapshots?wait=60`, { name, mode: 'memory' });
    t.equal(made.body.state, 'succeeded', `${name}: ${JSON.stringify(made.body.error)}`);
  }
  const quietTree = await tree(d1, ids.quiet!);

  // Load: jobs on the busy VMs (one running per VM, the rest queued behind it) and a stream of
  // submissions and reads that goes on while the backup is taken.
  const submit = (vm: string, name: string) => api<JobBody>(d1, TOKEN, 'POST', `/v1/vms/${ids[vm]}/snapshots`, { name, mode: 'memory' });
  for (const vm of ['busy-1', 'busy-2', 'busy-3']) for (const n of [1, 2]) t.equal((await submit(vm, `${vm}-load-${n}`)).status, 202);
  await until('jobs running', async () => (await allJobs(d1)).filter((j) => j.state === 'running').length >= 2);

  let loading = true;
  let submittedDuringBackup = 0;
  const load = (async () => {
    for (let i = 0; loading; i++) {
      const vm = `busy-${(i % 3) + 1}`;
      if ((await submit(vm, `${vm}-during-${i}`)).status === 202) submittedDuringBackup++;
      await api(d1, TOKEN, 'GET', '/v1/jobs?limit=50');
    }
  })();

  const before = await allJobs(d1);
  const backupFile = path.join(dir, 'snapvisor-backup.db');
  const backup = await cli(['--url', d1.url, '--token', TOKEN, 'backup', backupFile], {}, dir);
  const after = await allJobs(d1);
  loading = false;
  await load;
  t.equal(backup.code, 0, backup.stderr);
  t.match(backup.stdout, /^backup written to .*snapvisor-backup\.db \(\d+ bytes, schema version \d+, integrity ok\)\n$/);
  t.equal(readFileSync(backupFile).subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
  t.ok(submittedDuringBackup > 0, 'requests kept coming while the backup ran');
  const runningAtBackup = before.filter((j) => !FINAL.includes(j.state));
  t.ok(runningAtBackup.length > 0, 'jobs were queued or running when the backup was taken');

  // --local reads the database file itself, here while the daemon keeps it open (a WAL reader).
  const local = await cli(['backup', path.join(dir, 'local-copy.db'), '--local'], env1, dir);
  t.equal(local.code, 0, local.stderr);
  t.match(local.stdout, /^backup written to .*local-copy\.db \(\d+ bytes, schema version \d+, integrity ok\)\n$/);

  // The file is never overwritten by accident.
  const again = await cli(['--url', d1.url, '--token', TOKEN, 'backup', backupFile], {}, dir);
  t.equal(again.code, 1);
  t.match(again.stderr, /already exists \(--force replaces it\)/);

  // Restore refuses while the daemon has the database open, and changes nothing.
  const db1 = path.join(dir, 'one', 'data', 'snapvisor.db');
  const sizeBefore = readFileSync(db1).length;
  const refused = await cli(['restore', backupFile], env1, dir);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`^error: ${db1.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another Snapvisor daemon \\(pid ${d1.proc.pid} on .*, since .*\\): stop it first\n$`));
  t.equal(readFileSync(db1).length, sizeBefore, 'the live database was not touched');

  t.equal((await d1.kill('SIGTERM')).code, 0, 'the first daemon stops cleanly (running jobs finish)');

  const restored = await cli(['restore', backupFile], env2, dir);
  t.equal(restored.code, 0, restored.stderr);
  const db2 = path.join(dir, 'two', 'data', 'snapvisor.db');
  t.match(restored.stdout, `restored ${backupFile} into ${db2}`);

  const d2 = await startDaemon({ cwd: dir, env: env2 });
  t.teardown(() => d2.kill('SIGKILL'));

  // Trees: the settled VM's tree is the first daemon's, Snapvisor ids included.
  t.same(await tree(d2, ids.quiet!), quietTree, "the quiet VM's tree came back with the same ids");
  // Same VM ids: the inventory is the restored one, not rediscovered.
  t.same(await vmIds(d2, ['quiet', 'busy-1', 'busy-2', 'busy-3']), ids);

  // Jobs: exactly those the first daemon had when the backup was taken — every job listed before
  // the backup started, none created after it ended. Jobs that had ended are unchanged; jobs that
  // were queued or running at backup time are recovered by the new daemon (expected: the backup
  // holds them unfinished) and end as the first daemon's did: the hypervisor already has their
  // snapshot, found by its marker, so recovery does not take another.
  const restoredJobs = await allJobs(d2);
  const restoredIds = new Set(restoredJobs.map((j) => j.id));
  const afterIds = new Set(after.map((j) => j.id));
  for (const j of before) t.ok(restoredIds.has(j.id), `job ${j.id} (listed before the backup) is restored`);
  t.ok(restoredJobs.every((j) => afterIds.has(j.id)), 'no job the first daemon had not yet created');
  const byId = new Map(restoredJobs.map((j) => [j.id, j]));
  for (const j of before.filter((j) => FINAL.includes(j.state))) t.same(byId.get(j.id), j, `finished job ${j.id} is unchanged`);

  const recovered = await until('recovered jobs final', async () => {
    const jobs = await allJobs(d2);
    const mine = jobs.filter((j) => runningAtBackup.some((r) => r.id === j.id));
    return mine.every((j) => FINAL.includes(j.state)) ? mine : undefined;
  }, 60_000);
  for (const j of recovered) t.equal(j.state, 'succeeded', `recovered job ${j.id}: ${JSON.stringify(j.error)}`);
  const state = lab.readState();
  for (const j of recovered) {
    const marked = state.vms.flatMap((v) => Object.values(v.snapshots)).filter((s) => s.description.includes(`snapvisor:${j.id}`));
    t.equal(marked.length, 1, `exactly one snapshot for recovered job ${j.id}`);
  }

  t.equal((await d2.kill('SIGTERM')).code, 0);

  // A restore over an existing database keeps the replaced one beside it.
  const over = await cli(['restore', backupFile], env2, dir);
  t.equal(over.code, 0, over.stderr);
  const kept = /the replaced database is kept as (\S+)\n/.exec(over.stdout)?.[1];
  t.ok(kept && existsSync(kept), 'the replaced database is kept');
});

t.test('restore refuses a file that is not a usable backup', async (t) => {
  const dir = t.testdir({ 'junk.db': 'not a database at all, just text that is long enough to have a page'.repeat(80) });
  const res = await cli(['restore', path.join(dir, 'junk.db'), '--db', path.join(dir, 'data', 'x.db')], {}, dir);
  t.equal(res.code, 1);
  t.match(res.stderr, /^error: .*junk\.db: not a readable SQLite database/);
  t.notOk(existsSync(path.join(dir, 'data', 'x.db')));
});
