// @ts-check
/**
 * The one cross-process file lock of the labs: the VirtualBox simulator's state lock (every
 * VBoxManage call, and lab.ts changing the state) and the machine-wide lab locks (lab-lock.ts).
 * Plain JavaScript, because the simulator runs under bare `node` without a TypeScript loader.
 *
 * A lock is a file created with O_EXCL that holds its owner's pid. Taking over the lock of an owner
 * that died inside it (killed at a timeout) is where such locks usually break, so it goes like this:
 * - A waiter reads the pid and finds the process gone. That read may already be old: the owner may
 *   have released the lock and exited, and a live process taken it since. Removing the file now
 *   would let two processes in at once (the simulator lost state changes that way).
 * - So the waiter first takes a breaker file named after the dead pid (O_EXCL: one breaker per
 *   stale lock at a time), then reads the lock file again and removes it only if it still names
 *   that dead pid. Nobody else can remove or replace that file meanwhile: its owner is dead, and
 *   every other breaker of it waits for the breaker file.
 * - A breaker file left by a breaker that died in those few microseconds is removed once it is
 *   BREAKER_STALE_MS old.
 * An empty lock file is an owner between its open and its write: never stale.
 */
import fs from 'node:fs';

/** A breaker holds its file for microseconds; one this old was left by a breaker that died. */
export const BREAKER_STALE_MS = 10_000;

/**
 * Whether a process with this pid exists (EPERM: it does, owned by another user).
 * @param {number} pid
 */
export function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return /** @type {NodeJS.ErrnoException} */ (e).code === 'EPERM';
  }
}

/**
 * The pid in lock file `path` (undefined: no file, or no pid written yet).
 * @param {string} path
 */
export function lockOwner(path) {
  try {
    const pid = Number.parseInt(fs.readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One attempt at lock `path`: true when this process holds it now. When its owner is dead, the
 * stale lock is removed (breakStale) and false returned: the caller's next attempt can take it.
 * @param {string} path
 */
export function tryLock(path) {
  let fd;
  try {
    fd = fs.openSync(path, 'wx', 0o644);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'EEXIST') throw e;
    const owner = lockOwner(path);
    if (owner !== undefined && owner !== process.pid && !processAlive(owner)) breakStale(path, owner);
    return false;
  }
  try {
    fs.writeSync(fd, String(process.pid));
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/**
 * Removes lock `path` if it still names `deadOwner`, a pid found dead (possibly some time ago).
 * @param {string} path @param {number} deadOwner
 */
export function breakStale(path, deadOwner) {
  const breaker = `${path}.break.${deadOwner}`;
  let fd;
  try {
    fd = fs.openSync(breaker, 'wx', 0o644);
  } catch (e) {
    if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'EEXIST') throw e;
    clearAbandonedBreaker(breaker);
    return;
  }
  fs.closeSync(fd);
  try {
    if (lockOwner(path) === deadOwner && !processAlive(deadOwner)) fs.unlinkSync(path);
  } catch {
    // gone already
  } finally {
    fs.rmSync(breaker, { force: true });
  }
}

/** @param {string} breaker */
function clearAbandonedBreaker(breaker) {
  try {
    if (Date.now() - fs.statSync(breaker).mtimeMs > BREAKER_STALE_MS) fs.rmSync(breaker, { force: true });
  } catch {
    // its breaker finished meanwhile
  }
}

/**
 * Releases lock `path` if this process holds it. Nobody breaks the lock of a live owner, so the
 * file found here is this process's own.
 * @param {string} path
 */
export function unlock(path) {
  if (lockOwner(path) !== process.pid) return;
  fs.rmSync(path, { force: true });
}
