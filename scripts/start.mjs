// `npm start`: bundle the TypeScript daemon into one plain-JavaScript file with esbuild (a few
// hundred milliseconds, every start, so it is never stale) and run it. The daemon then carries no
// TypeScript loader in memory: about 50 MB less RSS than running the sources through tsx.
// Dependencies stay external (resolved from node_modules); only our own code is bundled.
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, '.build', 'snapvisor.mjs');
const tmp = `${out}.${process.pid}.tmp`;
await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'error',
});
// Atomic: two daemons starting at once never run a half-written bundle.
renameSync(tmp, out);
renameSync(`${tmp}.map`, `${out}.map`);
await import(pathToFileURL(out).href);
