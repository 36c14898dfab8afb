/**
 * Cross-process locks for the parts of the labs that are machine-wide, so that test files can run
 * side by side (.taprc `jobs`). A lock is a file under the temp dir (file-lock.mjs: created with
 * O_EXCL, holding the owner's pid; the lock of a dead owner, a test killed by tap's timeout or a
 * crash, is taken over without ever letting two processes in).
 *
 * Two ways to hold one:
 * - `withLabLockSync(name, fn)`: for a short, synchronous set-up step (user creation).
 * - `holdLabLock(name)`: from the first call until this process exits, for a resource a test uses
 *   from start to end (the one system libvirtd, which some tests stop and restart).
 * - `holdLabLockShared(name)`: the same, but any number of processes may hold it together; an
 *   exclusive holder waits for them and keeps new ones out (KVM files that only add their own
 *   domains share libvirtd; the ones that stop it or count its sessions take it alone).
 *
 * Used by tests and by hand (`npm run lab`), so it must not import tap.
 */
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { breakStale, lockOwner as ownerOf, processAlive, tryLock, unlock } from './file-lock.mjs';

const POLL_MS = 150;
/**
 * Waiting longer than this means a holder that is not a test (e.g. `npm run lab -- kvm up` left
 * running): fail with its pid rather than run into tap's per-file timeout (600 s) with no reason.
 */
const DEFAULT_WAIT_MS = 500_000;

export function labLockPath(name: string): string {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`lab lock: invalid name ${JSON.stringify(name)}`);
  return join(tmpdir(), `snapvisor-lab-${name}.lock`);
}

function describe(pid: number | undefined): string {
  if (pid === undefined) return 'an unknown process';
  let cmd = '';
  try {
    cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    // gone or not Linux
  }
  return cmd ? `pid ${pid} (${cmd.slice(0, 200)})` : `pid ${pid}`;
}

/** One attempt: true when this process now holds the lock. */
function tryAcquire(path: string): boolean {
  if (ownerOf(path) === process.pid) throw new Error(`lab lock: ${path} is already held by this process`);
  return tryLock(path);
}

function timeoutError(name: string, path: string, waitMs: number): Error {
  return new Error(
    `lab lock: waited ${Math.round(waitMs / 1000)} s for the ${name} lab lock (${path}), held by ${describe(ownerOf(path))}. ` +
      'If that is not a test run, stop it (or remove the file when that pid is not a Snapvisor lab).',
  );
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const heldSync = new Set<string>();

/**
 * Runs `fn` holding lock `name`; blocks the thread while waiting (set-up steps of a few ms only).
 * Re-entrant: a nested call for the same name just runs `fn`.
 */
export function withLabLockSync<T>(name: string, fn: () => T, waitMs = 60_000): T {
  if (heldSync.has(name)) return fn();
  const path = labLockPath(name);
  const deadline = Date.now() + waitMs;
  while (!tryAcquire(path)) {
    if (Date.now() > deadline) throw timeoutError(name, path, waitMs);
    Atomics.wait(sleepCell, 0, 0, POLL_MS);
  }
  heldSync.add(name);
  try {
    return fn();
  } finally {
    heldSync.delete(name);
    unlock(path);
  }
}

const held = new Map<string, Promise<void>>();

/**
 * Takes lock `name` and keeps it until this process exits (released in an 'exit' hook; if the
 * process is killed, the next waiter finds its pid dead). Later calls in the same process return at
 * once. Rejects, naming the holder, after `waitMs`.
 */
export function holdLabLock(name: string, waitMs = DEFAULT_WAIT_MS): Promise<void> {
  let promise = held.get(name);
  if (promise === undefined) {
    promise = acquireForLife(name, waitMs).catch((e: unknown) => {
      held.delete(name);
      throw e;
    });
    held.set(name, promise);
  }
  return promise;
}

async function acquireForLife(name: string, waitMs: number): Promise<void> {
  if (sharedHeld.has(name)) {
    // Two sharers both upgrading would wait for each other for ever: exclusivity is declared first.
    throw new Error(`lab lock: this process holds ${name} shared; take it exclusively (holdLabLock) before its first use`);
  }
  const path = labLockPath(name);
  const deadline = Date.now() + waitMs;
  while (!tryAcquire(path)) {
    if (Date.now() > deadline) throw timeoutError(name, path, waitMs);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  process.once('exit', () => unlock(path));
  // New sharers now stay out (they check the lock file after announcing themselves); wait for the
  // ones already in.
  for (;;) {
    const sharers = liveSharers(name);
    if (sharers.length === 0) return;
    if (Date.now() > deadline) {
      unlock(path);
      throw new Error(`lab lock: waited ${Math.round(waitMs / 1000)} s for the sharers of ${name} to finish: ${sharers.map(describe).join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

const sharedPrefix = (name: string) => `${labLockPath(name)}.shared.`;

/** Pids of other live processes holding `name` shared; files of dead ones are removed. */
function liveSharers(name: string): number[] {
  const prefix = sharedPrefix(name);
  const dir = dirname(prefix);
  const base = basename(prefix);
  const pids: number[] = [];
  for (const file of readdirSync(dir)) {
    if (!file.startsWith(base)) continue;
    const pid = Number(file.slice(base.length));
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    if (processAlive(pid)) pids.push(pid);
    else {
      try {
        unlinkSync(join(dir, file));
      } catch {
        // another waiter removed it
      }
    }
  }
  return pids;
}

const sharedHeld = new Map<string, Promise<void>>();

/**
 * Holds `name` shared until this process exits: with other sharers, never with an exclusive holder
 * (`holdLabLock`). A process that holds it exclusively already has it. Rejects after `waitMs`.
 */
export function holdLabLockShared(name: string, waitMs = DEFAULT_WAIT_MS): Promise<void> {
  const exclusive = held.get(name);
  if (exclusive !== undefined) return exclusive;
  let promise = sharedHeld.get(name);
  if (promise === undefined) {
    promise = acquireShared(name, waitMs).catch((e: unknown) => {
      sharedHeld.delete(name);
      throw e;
    });
    sharedHeld.set(name, promise);
  }
  return promise;
}

async function acquireShared(name: string, waitMs: number): Promise<void> {
  const path = labLockPath(name);
  const mine = `${sharedPrefix(name)}${process.pid}`;
  const deadline = Date.now() + waitMs;
  process.once('exit', () => {
    try {
      unlinkSync(mine);
    } catch {
      // not held
    }
  });
  for (;;) {
    const owner = ownerOf(path);
    if (owner === undefined || !processAlive(owner)) {
      if (owner !== undefined) breakStale(path, owner);
      // Announce first, then look again: an exclusive taker that got in between sees this file and
      // waits for it, or this sharer sees its lock and steps back. Never both inside.
      writeFileSync(mine, String(process.pid));
      const after = ownerOf(path);
      if (after === undefined || after === process.pid || !processAlive(after)) return;
      unlinkSync(mine);
    }
    if (Date.now() > deadline) throw timeoutError(name, path, waitMs);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
