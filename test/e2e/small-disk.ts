/**
 * A real small filesystem (tmpfs) for the full-disk tests: the daemon's database goes there and a
 * ballast file fills it. Needs root (the tests and CI run as root); a mount that fails fails the
 * test loudly, never skips it. Not a test file.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statfsSync, statSync, truncateSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

export interface SmallDisk {
  dir: string;
  /** Writes the ballast until the filesystem refuses (ENOSPC): not one page is left. */
  fill(): void;
  /** Shrinks the ballast to leave `bytes` free (after fill). */
  leaveFree(bytes: number): void;
  /** Deletes the ballast. */
  free(): void;
  freeBytes(): number;
}

export function smallDisk(t: Test, sizeMb: number): SmallDisk {
  // Its own temp folder, not the test's fixture folder: tap removes that before the unmount runs.
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-small-disk-'));
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    throw new Error(`cannot mount a ${sizeMb} MB tmpfs on ${dir} (the full-disk tests need root): ${mounted.stderr || mounted.error?.message || `exit ${mounted.status}`}`);
  }
  t.teardown(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const ballast = path.join(dir, 'ballast');
  const freeBytes = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  return {
    dir,
    freeBytes,
    fill() {
      const fd = openSync(ballast, 'a');
      try {
        for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
          const chunk = Buffer.alloc(size, 0xa5);
          try {
            for (;;) writeSync(fd, chunk);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
          }
        }
      } finally {
        closeSync(fd);
      }
      if (freeBytes() !== 0) throw new Error(`the small disk still has ${freeBytes()} bytes free after filling`);
    },
    leaveFree(bytes) {
      truncateSync(ballast, Math.max(0, statSync(ballast).size - bytes));
    },
    free() {
      if (existsSync(ballast)) unlinkSync(ballast);
    },
  };
}
