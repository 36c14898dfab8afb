/** Meta-test: every provider folder has a conformance run against its lab (STYLE §2). */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NOT_PROVIDERS = new Set(['shared', 'conformance']);

const kinds = readdirSync(join(root, 'providers'), { withFileTypes: true })
  .filter((d) => d.isDirectory() && !NOT_PROVIDERS.has(d.name))
  .map((d) => d.name);

t.ok(kinds.length > 0, 'at least one provider folder exists');
for (const kind of kinds) {
  const file = join(root, 'test', 'integration', `conformance-${kind}.test.ts`);
  t.ok(existsSync(file), `providers/${kind} has test/integration/conformance-${kind}.test.ts`);
  if (existsSync(file)) {
    t.match(readFileSync(file, 'utf8'), /describeProviderConformance\(/, `conformance-${kind} runs the shared suite`);
  }
}
