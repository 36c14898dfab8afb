/**
 * `npm run test:conformance -- <kind>`: the provider conformance suite for one kind against its lab
 * (the test provisions the lab itself and fails loudly when it cannot).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const kind = process.argv[2];
if (!kind) {
  process.stderr.write('usage: npm run test:conformance -- <kind>\n');
  process.exit(2);
}
const file = fileURLToPath(new URL(`./integration/conformance-${kind}.test.ts`, import.meta.url));
if (!existsSync(file)) {
  process.stderr.write(`no conformance test for provider kind '${kind}' (${file})\n`);
  process.exit(2);
}
const tap = fileURLToPath(new URL('../node_modules/.bin/tap', import.meta.url));
const result = spawnSync(tap, [file], { stdio: 'inherit' });
process.exit(result.status ?? 1);
