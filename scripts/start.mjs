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
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { buildUi } from './build-ui.mjs';
import { pointTo, writeContentAddressed } from './build-output.mjs';

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

const app = writeContentAddressed(
  buildDir,
  'app',
  result.outputFiles.map((file) => ({ name: relative(staging, file.path), contents: file.contents })),
  'snapvisor.mjs',
);

// The web console the daemon serves at /ui (.build/ui-latest names it).
await buildUi({ buildDir });

// Tests and scripts that start many daemons run this build directly (test/e2e/daemon.ts).
pointTo(buildDir, 'latest', join(app, 'snapvisor.mjs'));
await import(pathToFileURL(join(app, 'snapvisor.mjs')).href);
