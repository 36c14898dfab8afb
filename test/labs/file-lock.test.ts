// The labs' one file lock (file-lock.mjs): a free lock is taken, a live owner's never, a dead
// owner's is taken over, and a waiter whose reading of the owner is out of date never removes the
// lock a live process took meanwhile (the simulator lost state changes that way: two callers inside).
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BREAKER_STALE_MS, breakStale, lockOwner, tryLock, unlock } from './file-lock.mjs';

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** A live process other than this one, until the test ends. */
function livePid(t: Test): number {
  const proc = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.teardown(() => void proc.kill('SIGKILL'));
  return proc.pid!;
}

t.test('a free lock is taken and released; a held one is not taken', async (t) => {
  const lock = join(t.testdir({}), 'state.lock');
  t.ok(tryLock(lock), 'taken');
  t.equal(lockOwner(lock), process.pid, 'it names this process');
  unlock(lock);
  t.notOk(existsSync(lock), 'released');

  writeFileSync(lock, String(livePid(t)));
  t.notOk(tryLock(lock), 'a live owner keeps it');
  t.ok(existsSync(lock), 'and its file');
  unlock(lock);
  t.ok(existsSync(lock), 'unlock leaves a lock this process does not hold');

  writeFileSync(lock, '');
  t.notOk(tryLock(lock), 'an owner that has not written its pid yet keeps it');
  t.ok(existsSync(lock));
});

t.test("a dead owner's lock is taken over", async (t) => {
  const lock = join(t.testdir({}), 'state.lock');
  const gone = deadPid();
  writeFileSync(lock, String(gone));
  t.notOk(tryLock(lock), 'the attempt that finds it stale removes it');
  t.notOk(existsSync(lock));
  t.ok(tryLock(lock), 'the next one takes it');
  t.equal(lockOwner(lock), process.pid);
  t.notOk(existsSync(`${lock}.break.${gone}`), 'no breaker file left behind');
});

t.test('a waiter that read a dead owner never removes the lock a live process has taken since', async (t) => {
  const lock = join(t.testdir({}), 'state.lock');
  // The waiter read pid `gone` from the file; before it acted, `gone` released the lock and exited,
  // and a live process took the lock.
  const gone = deadPid();
  const taker = livePid(t);
  writeFileSync(lock, String(taker));
  breakStale(lock, gone);
  t.equal(lockOwner(lock), taker, "the live taker's lock is still there");
  t.notOk(existsSync(`${lock}.break.${gone}`), 'the breaker file is gone');
  t.notOk(tryLock(lock), 'and nobody else gets in');
});

t.test('one breaker per stale lock; a breaker file left by a dead breaker is cleared after a while', async (t) => {
  const lock = join(t.testdir({}), 'state.lock');
  const gone = deadPid();
  writeFileSync(lock, String(gone));
  const breaker = `${lock}.break.${gone}`;
  writeFileSync(breaker, '');
  t.notOk(tryLock(lock));
  t.equal(readFileSync(lock, 'utf8'), String(gone), 'another breaker is at work: the stale lock is left to it');
  t.ok(existsSync(breaker));

  const old = (Date.now() - BREAKER_STALE_MS - 1000) / 1000;
  utimesSync(breaker, old, old);
  t.notOk(tryLock(lock), 'a breaker file this old is cleared');
  t.notOk(existsSync(breaker));
  t.notOk(tryLock(lock), 'then the stale lock is removed');
  t.ok(tryLock(lock), 'and taken');
});
