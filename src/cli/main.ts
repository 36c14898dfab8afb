/** Entry point of the `snapvisor` CLI (bin/snapvisor.js, `npm run cli`). */
import { run } from './run.ts';

process.exitCode = await run(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  fetch: globalThis.fetch,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});
