// The labs' cross-process locks (lab-lock.ts), with real processes: mutual exclusion, hold until
// exit, and take-over of a lock whose holder was killed.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { holdLabLock, holdLabLockShared, labLockPath, withLabLockSync } from './lab-lock.ts';

const LOCK_MODULE = pathToFileURL(fileURLToPath(new URL('./lab-lock.ts', import.meta.url))).href;
const name = (what: string) => `test-${process.pid}-${what}`;

/** Runs `body` (an ES module body with `lock` = lab-lock.ts imported) in a child node process. */
function child(dir: string, body: string): { done: Promise<number | null>; pid: number } {
  const file = join(dir, `child-${Math.random().toString(16).slice(2)}.mjs`);
  writeFileSync(file, `const lock = await import(${JSON.stringify(LOCK_MODULE)});\n${body}\n`);
  const proc = spawn(process.execPath, ['--import=tsx', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  return { done: new Promise((resolve) => proc.once('exit', (code) => resolve(code))), pid: proc.pid! };
}

t.test('withLabLockSync: two processes never inside at once', async (t) => {
  const dir = t.testdir({});
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const body = (id: string) => `
    import('node:fs').then(({ appendFileSync }) => {
      for (let i = 0; i < 5; i++) lock.withLabLockSync(${JSON.stringify(name('sync'))}, () => {
        appendFileSync(${JSON.stringify(log)}, '${id}<');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 40);
        appendFileSync(${JSON.stringify(log)}, '${id}>');
      });
    });`;
  const a = child(dir, body('a'));
  const b = child(dir, body('b'));
  t.same(await Promise.all([a.done, b.done]), [0, 0]);
  const text = readFileSync(log, 'utf8');
  t.equal(text.length, 40, 'every section ran');
  t.match(text, /^((a<a>)|(b<b>))+$/, `no interleaving: ${text}`);
  t.notOk(existsSync(labLockPath(name('sync'))), 'released');
});

t.test('holdLabLock: held until the holder exits, then the waiter gets it', async (t) => {
  const dir = t.testdir({});
  const path = labLockPath(name('hold'));
  const holder = child(dir, `await lock.holdLabLock(${JSON.stringify(name('hold'))}); setTimeout(() => {}, 600);`);
  const deadline = Date.now() + 20_000;
  while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(readFileSync(path, 'utf8'), String(holder.pid), 'the lock file holds the holder pid');
  const waited = Date.now();
  await holdLabLock(name('hold'), 20_000);
  t.equal(await holder.done, 0);
  t.ok(Date.now() - waited >= 300, 'waited for the holder to exit');
  t.equal(readFileSync(path, 'utf8'), String(process.pid), 'now ours');
  await holdLabLock(name('hold'), 1); // a second call in the same process returns at once
  t.pass('re-entrant within the process');
});

t.test('a lock whose holder was killed is taken over; a live one times out naming its holder', async (t) => {
  const dir = t.testdir({});
  const killed = child(dir, `await lock.holdLabLock(${JSON.stringify(name('stale'))}); setInterval(() => {}, 1000);`);
  const path = labLockPath(name('stale'));
  const deadline = Date.now() + 20_000;
  while (!existsSync(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.throws(() => withLabLockSync(name('stale'), () => 0, 500), /waited \d+ s for the .* lab lock .*held by pid \d+ \(/, 'a live holder: timeout names it');
  process.kill(killed.pid, 'SIGKILL');
  await killed.done;
  t.ok(existsSync(path), 'SIGKILL left the lock file behind');
  t.equal(
    withLabLockSync(name('stale'), () => readFileSync(path, 'utf8'), 5_000),
    String(process.pid),
    'taken over from the dead pid',
  );
  t.notOk(existsSync(path), 'released after the section');
  t.equal(spawnSync('sh', ['-c', `ls ${JSON.stringify(path)}.* 2>/dev/null | wc -l`], { encoding: 'utf8' }).stdout.trim(), '0', 'no stale file left behind');
});

t.test('shared holds: sharers run together, an exclusive holder alone (it waits for them, they wait for it)', async (t) => {
  const dir = t.testdir({});
  const lockName = name('rw');
  const log = join(dir, 'log');
  writeFileSync(log, '');
  // Each child marks its start and end in the log and holds for `ms`.
  const body = (id: string, how: 'holdLabLock' | 'holdLabLockShared', ms: number) => `
    const { appendFileSync } = await import('node:fs');
    await lock.${how}(${JSON.stringify(lockName)}, 30_000);
    appendFileSync(${JSON.stringify(log)}, '${id}<');
    await new Promise((r) => setTimeout(r, ${ms}));
    appendFileSync(${JSON.stringify(log)}, '${id}>');`;
  const a = child(dir, body('a', 'holdLabLockShared', 1500));
  const b = child(dir, body('b', 'holdLabLockShared', 1500));
  // The writer starts once both sharers are in, then a third sharer arrives while it waits.
  const deadline = Date.now() + 20_000;
  while (!/a<.*b<|b<.*a</.test(readFileSync(log, 'utf8')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const w = child(dir, body('w', 'holdLabLock', 300));
  await new Promise((r) => setTimeout(r, 400));
  const c = child(dir, body('c', 'holdLabLockShared', 100));
  t.same(await Promise.all([a.done, b.done, w.done, c.done]), [0, 0, 0, 0]);
  const text = readFileSync(log, 'utf8');
  t.match(text, /^(a<b<|b<a<)/, `the sharers were inside together: ${text}`);
  t.match(text, /(a>b>|b>a>)w<w>/, `the exclusive holder went in after both sharers left: ${text}`);
  t.match(text, /w>c<c>$/, `the late sharer waited for the exclusive holder: ${text}`);
});

t.test('a process holding a lock shared cannot turn it exclusive (two would wait for each other)', async (t) => {
  const lockName = name('upgrade');
  await holdLabLockShared(lockName, 5_000);
  await t.rejects(holdLabLock(lockName, 1_000), /holds .* shared; take it exclusively/);
});
