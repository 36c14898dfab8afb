// The database lock (src/store/lock.ts): one holder at a time, across processes; a holder killed
// without releasing leaves a stale row that the next taker takes over; restore refuses while a
// live process holds it.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { openStore } from '../../src/store/index.ts';
import { backupFile, restoreFile } from '../../src/store/backup.ts';
import { acquireDatabaseLock, DatabaseLockedError, isMemoryDatabase, lockFileOf, lockHolder } from '../../src/store/lock.ts';

const LOCK_TS = fileURLToPath(new URL('../../src/store/lock.ts', import.meta.url));

const tmp = (t: { teardown(fn: () => void): void }) => {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-lock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'test.db');
};

/** Another process that takes the lock, says so, then holds it (or dies at once with `die`). */
async function otherHolder(db: string, die: boolean) {
  const code = `import { acquireDatabaseLock } from ${JSON.stringify(LOCK_TS)};
acquireDatabaseLock(${JSON.stringify(db)}, { command: 'daemon' });
process.stdout.write('held\\n');
${die ? "process.kill(process.pid, 'SIGKILL');" : 'setInterval(() => {}, 1000);'}`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => c.toString().includes('held') && resolve());
    child.on('exit', () => (die ? resolve() : reject(new Error('holder exited early'))));
  });
  return { pid: child.pid!, exited, kill: () => child.kill('SIGKILL') };
}

t.test('one holder at a time; release lets the next one in without a stale report', async (t) => {
  const db = tmp(t);
  const first = acquireDatabaseLock(db, { command: 'daemon' });
  t.equal(first.file, lockFileOf(db));
  t.equal(first.staleHolder, null);
  const err = t.throws(() => acquireDatabaseLock(db, { command: 'daemon' })) as DatabaseLockedError;
  t.type(err, DatabaseLockedError);
  t.match(err.holder, { pid: process.pid, hostname: hostname(), command: 'daemon' });
  t.match(err.message, new RegExp(`is in use by another Snapvisor daemon \\(pid ${process.pid} on `));
  t.match(lockHolder(db), { held: true, holder: { pid: process.pid } });
  first.release();
  first.release();
  t.same(lockHolder(db), { held: false, holder: null });
  const second = acquireDatabaseLock(db, { command: 'daemon' });
  t.equal(second.staleHolder, null, 'a released lock is not stale');
  second.release();
});

t.test('another live process holds it: refused naming that pid; killed: taken over, the stale holder reported', async (t) => {
  const db = tmp(t);
  const other = await otherHolder(db, false);
  t.teardown(() => other.kill());
  const err = t.throws(() => acquireDatabaseLock(db, { command: 'daemon' })) as DatabaseLockedError;
  t.match(err.holder, { pid: other.pid, command: 'daemon' });
  t.match(lockHolder(db), { held: true, holder: { pid: other.pid } });
  other.kill();
  await other.exited;
  t.match(lockHolder(db), { held: false, holder: { pid: other.pid } }, 'a row with no live lock behind it');
  const mine = acquireDatabaseLock(db, { command: 'daemon' });
  t.match(mine.staleHolder, { pid: other.pid, hostname: hostname(), command: 'daemon' });
  mine.release();
});

t.test('a holder killed right after taking it (SIGKILL): the next taker gets it', async (t) => {
  const db = tmp(t);
  const gone = await otherHolder(db, true);
  await gone.exited;
  const mine = acquireDatabaseLock(db, { command: 'daemon' });
  t.match(mine.staleHolder, { pid: gone.pid });
  mine.release();
});

t.test('restore refuses while the lock is held, and takes it while it swaps', async (t) => {
  const db = tmp(t);
  openStore(db).close();
  const backup = `${db}.bak`;
  await backupFile(db, backup);
  const daemon = acquireDatabaseLock(db, { command: 'daemon' });
  await t.rejects(restoreFile(backup, db), new RegExp(`is in use by another Snapvisor daemon \\(pid ${process.pid} on .*\\): stop it first`));
  daemon.release();
  const report = await restoreFile(backup, db);
  t.equal(report.database, db);
  t.same(lockHolder(db), { held: false, holder: null }, 'the restore released it');
});

t.test('an in-memory database has no lock', async (t) => {
  t.equal(isMemoryDatabase(':memory:'), true);
  t.equal(isMemoryDatabase(''), true);
  t.equal(isMemoryDatabase('/var/lib/snapvisor/snapvisor.db'), false);
});
