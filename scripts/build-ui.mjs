// `npm run build:ui` (and every `npm start`): the web console (src/ui) bundled by esbuild into a
// folder named after its content, .build/ui-<hash>/, which .build/ui-latest names. The daemon reads
// ui-latest when it starts and serves that folder: a folder is written once and never changed, so a
// console open in a browser keeps getting the assets its index.html names while a newer build lands.
// Asset names carry their hash, so they can be cached for good; index.html never is.
import { basename, join } from 'node:path';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { pointTo, writeContentAddressed } from './build-output.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Builds the console; returns the folder it is in. */
export async function buildUi({ buildDir = join(root, '.build') } = {}) {
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

  // Compressed once, when the build is new, rather than on every request: the daemon sends the
  // variant a browser accepts (@fastify/static preCompressed), about a third of the bytes. An
  // unchanged build skips it (brotli at quality 11 is most of a start's build time).
  const compressed = (sources) =>
    sources.flatMap((file) => [
      { name: `${file.name}.gz`, contents: gzipSync(file.contents, { level: 9 }) },
      { name: `${file.name}.br`, contents: brotliCompressSync(file.contents, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }) },
    ]);
  const dir = writeContentAddressed(buildDir, 'ui', files, 'index.html', compressed);
  pointTo(buildDir, 'ui-latest', dir);
  return dir;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = await buildUi();
  process.stdout.write(`web console built into ${dir}\n`);
}
