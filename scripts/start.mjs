// `npm start`: bundle the TypeScript daemon into plain JavaScript with esbuild (a few hundred
// milliseconds, every start, so it is never stale) and run it. The daemon then carries no
// TypeScript loader in memory: about 50 MB less RSS than running the sources through tsx.
// Dependencies stay external (resolved from node_modules); only our own code is bundled.
//
// Code splitting keeps each provider adapter in its own chunk, so an SDK (Azure's, node-soap,
// node-ssh) is loaded only when a target of its kind is configured: one flat bundle hoists every
// external import to its top and loaded them all at every start (about 2.5 s and 40 MB more).
// The output goes to a folder named after its content (.build/app-<hash>/), written once and never
// changed, because a running daemon loads chunks later (a target added by a reload): rebuilding in
// place would hand it chunks of another build.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { buildUi } from './build-ui.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const buildDir = join(root, '.build');
const staging = join(buildDir, `staging-${process.pid}`);
const result = await build({
  entryPoints: { snapvisor: join(root, 'src', 'main.ts') },
  outdir: staging,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'error',
  write: false,
});

const hash = createHash('sha256');
for (const file of [...result.outputFiles].sort((a, b) => a.path.localeCompare(b.path))) {
  hash.update(relative(staging, file.path)).update('\0').update(file.contents);
}
const app = join(buildDir, `app-${hash.digest('hex').slice(0, 16)}`);
try {
  statSync(join(app, 'snapvisor.mjs'));
  // Marks it as in use, for the pruning below.
  const now = new Date();
  utimesSync(app, now, now);
} catch {
  for (const file of result.outputFiles) {
    mkdirSync(dirname(file.path), { recursive: true });
    writeFileSync(file.path, file.contents);
  }
  try {
    renameSync(staging, app);
  } catch (err) {
    // Another start wrote the same content first: theirs is identical.
    if (!['ENOTEMPTY', 'EEXIST'].includes(err.code)) throw err;
  }
  rmSync(staging, { recursive: true, force: true });
}

// Builds of other sources, untouched for a week, are no longer run by anything that may still need
// their chunks; the newest few stay whatever their age.
const week = 7 * 24 * 3600 * 1000;
const others = readdirSync(buildDir)
  .filter((name) => name.startsWith('app-') && join(buildDir, name) !== app)
  .map((name) => ({ path: join(buildDir, name), mtime: statSync(join(buildDir, name)).mtimeMs }))
  .sort((a, b) => b.mtime - a.mtime);
for (const old of others.slice(3)) if (Date.now() - old.mtime > week) rmSync(old.path, { recursive: true, force: true });

// The web console the daemon serves at /ui (.build/ui-latest names it).
await buildUi({ buildDir });

// Tests and scripts that start many daemons run this build directly (test/e2e/daemon.ts).
writeFileSync(join(buildDir, `latest.${process.pid}.tmp`), `${join(app, 'snapvisor.mjs')}\n`);
renameSync(join(buildDir, `latest.${process.pid}.tmp`), join(buildDir, 'latest'));
await import(pathToFileURL(join(app, 'snapvisor.mjs')).href);
