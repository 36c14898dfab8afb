// Where `npm start` and `npm run build:ui` put what they build: a folder named after its content
// (.build/<prefix>-<hash>/), written once and never changed, because something already running may
// still load files from it (a daemon's late chunks, an open console's assets). A small pointer file
// names the newest; builds untouched for a week are pruned, the newest few kept whatever their age.
import { createHash } from 'node:crypto';
import { existsSync as exists, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * Writes `files` ({ name: relative path, contents }) into .build/<prefix>-<hash>/ unless that folder
 * exists already (then it is only marked as used); returns the folder. `derive(files)` adds files
 * made from them (compressed variants): called only for a new folder, since the hash of `files`
 * already names them.
 */
export function writeContentAddressed(buildDir, prefix, files, marker, derive = () => []) {
  mkdirSync(buildDir, { recursive: true });
  const hash = createHash('sha256');
  for (const file of [...files].sort((a, b) => a.name.localeCompare(b.name))) hash.update(file.name).update('\0').update(file.contents);
  const dir = join(buildDir, `${prefix}-${hash.digest('hex').slice(0, 16)}`);
  if (exists(join(dir, marker))) {
    // Marks it as in use, for pruneBuilds.
    const now = new Date();
    utimesSync(dir, now, now);
  } else {
    const staging = join(buildDir, `${prefix}-staging-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    for (const file of [...files, ...derive(files)]) {
      mkdirSync(dirname(join(staging, file.name)), { recursive: true });
      writeFileSync(join(staging, file.name), file.contents);
    }
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another start wrote the same content first: theirs is identical.
      if (!['ENOTEMPTY', 'EEXIST'].includes(err.code)) throw err;
    }
    rmSync(staging, { recursive: true, force: true });
  }
  pruneBuilds(buildDir, prefix, dir);
  return dir;
}

function pruneBuilds(buildDir, prefix, keep) {
  const week = 7 * 24 * 3600 * 1000;
  const pattern = new RegExp(`^${prefix}-[0-9a-f]{16}$`);
  const others = readdirSync(buildDir)
    .filter((name) => pattern.test(name) && join(buildDir, name) !== keep)
    .map((name) => ({ path: join(buildDir, name), mtime: statSync(join(buildDir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of others.slice(3)) if (Date.now() - old.mtime > week) rmSync(old.path, { recursive: true, force: true });
}

/** Points .build/<pointer> at `target` atomically (tests and the daemon read it). */
export function pointTo(buildDir, pointer, target) {
  const tmp = join(buildDir, `${pointer}.${process.pid}.tmp`);
  writeFileSync(tmp, `${target}\n`);
  renameSync(tmp, join(buildDir, pointer));
}
