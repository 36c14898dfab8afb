// `npm run build:ui` (and every `npm start`): the web console (src/ui) bundled by esbuild into a
// folder named after its content, .build/ui-<hash>/, which .build/ui-latest names. The daemon reads
// ui-latest when it starts and serves that folder: a folder is written once and never changed, so a
// console open in a browser keeps getting the assets its index.html names while a newer build lands.
// Asset names carry their hash, so they can be cached for good; index.html never is.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Builds the console; returns the folder it is in. */
export async function buildUi({ buildDir = join(root, '.build') } = {}) {
  mkdirSync(buildDir, { recursive: true });
  const result = await build({
    entryPoints: [join(root, 'src', 'ui', 'main.tsx'), join(root, 'src', 'ui', 'styles.css')],
    outdir: 'assets',
    entryNames: '[name]-[hash]',
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome109', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(root, 'src', 'ui', 'tsconfig.json'),
    legalComments: 'eof',
    logLevel: 'error',
    write: false,
  });
  const files = result.outputFiles.map((f) => ({ name: `assets/${basename(f.path)}`, contents: f.contents }));
  const script = files.find((f) => /^assets\/main-.*\.js$/.test(f.name));
  const style = files.find((f) => /^assets\/styles-.*\.css$/.test(f.name));
  if (!script || !style) throw new Error('build-ui: esbuild made no main script or stylesheet');
  // No inline script or style anywhere: the daemon's Content-Security-Policy forbids both.
  const html = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Snapvisor</title>',
    // No favicon request: it would reach the API's authentication and log a 401 in the console.
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="/ui/${style.name}">`,
    `<script type="module" src="/ui/${script.name}"></script>`,
    '</head>',
    '<body>',
    '<div id="app"><noscript>The Snapvisor console needs JavaScript; the REST API is at /v1 and documented at /docs.</noscript></div>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
  files.push({ name: 'index.html', contents: Buffer.from(html) });

  const hash = createHash('sha256');
  for (const file of [...files].sort((a, b) => a.name.localeCompare(b.name))) hash.update(file.name).update('\0').update(file.contents);
  const dir = join(buildDir, `ui-${hash.digest('hex').slice(0, 16)}`);
  try {
    statSync(join(dir, 'index.html'));
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    const staging = join(buildDir, `ui-staging-${process.pid}`);
    rmSync(staging, { recursive: true, force: true });
    for (const file of files) {
      mkdirSync(dirname(join(staging, file.name)), { recursive: true });
      writeFileSync(join(staging, file.name), file.contents);
    }
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another build wrote the same content first: theirs is identical.
      if (!['ENOTEMPTY', 'EEXIST'].includes(err.code)) throw err;
    }
    rmSync(staging, { recursive: true, force: true });
  }
  pruneOld(buildDir, dir);
  writeFileSync(join(buildDir, `ui-latest.${process.pid}.tmp`), `${dir}\n`);
  renameSync(join(buildDir, `ui-latest.${process.pid}.tmp`), join(buildDir, 'ui-latest'));
  return dir;
}

/** Builds of other sources, a week untouched, serve no open console any more; the newest 3 stay. */
function pruneOld(buildDir, keep) {
  const week = 7 * 24 * 3600 * 1000;
  const others = readdirSync(buildDir)
    .filter((name) => /^ui-[0-9a-f]{16}$/.test(name) && join(buildDir, name) !== keep)
    .map((name) => ({ path: join(buildDir, name), mtime: statSync(join(buildDir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of others.slice(3)) if (Date.now() - old.mtime > week) rmSync(old.path, { recursive: true, force: true });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = await buildUi();
  process.stdout.write(`web console built into ${dir}\n`);
}
