import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, loadConfigFile, resolveConfig, sha256Hex } from '../../src/config/load.ts';
import { demoConfig } from '../../src/config/demo.ts';

const ctx = (env: Record<string, string> = {}) => ({ env, baseDir: '/etc/snapvisor' });
const minimal = { tokens: [{ name: 'ops', sha256: 'a'.repeat(64), scopes: ['read'] }] };

t.test('defaults fill a minimal config', async (t) => {
  const c = resolveConfig(minimal, 'test', ctx());
  t.equal(c.listen.host, '127.0.0.1');
  t.equal(c.listen.port, 7480);
  t.equal(c.database, '/etc/snapvisor/data/snapvisor.db', 'relative paths resolve against the base (working) directory');
  t.equal(c.engine.maxAttempts, 5);
  t.same(c.targets, []);
});

t.test('retention: 90 days for the audit log and finished jobs by default; whole days, at least 1', async (t) => {
  t.same(resolveConfig(minimal, 'test', ctx()).retention, { auditDays: 90, jobsDays: 90 });
  t.same(resolveConfig({ ...minimal, retention: { auditDays: 400 } }, 'test', ctx()).retention, { auditDays: 400, jobsDays: 90 });
  for (const bad of [{ auditDays: 0 }, { jobsDays: 1.5 }, { keepForever: true }]) {
    const err = t.throws(() => resolveConfig({ ...minimal, retention: bad }, 'test', ctx())) as ConfigError;
    t.ok(err.problems.some((p) => p.path.startsWith('/retention')), JSON.stringify(bad));
  }
});

t.test('readiness: all by default, or any; nothing else', async (t) => {
  t.equal(resolveConfig(minimal, 'test', ctx()).readiness, 'all');
  t.equal(resolveConfig({ ...minimal, readiness: 'any' }, 'test', ctx()).readiness, 'any');
  const err = t.throws(() => resolveConfig({ ...minimal, readiness: 'some' }, 'test', ctx())) as ConfigError;
  t.ok(err.problems.some((p) => p.path === '/readiness'));
});

t.test('environment overrides', async (t) => {
  const c = resolveConfig(minimal, 'test', ctx({ SNAPVISOR_PORT: '9999', SNAPVISOR_HOST: '0.0.0.0', SNAPVISOR_DB: '/tmp/x.db' }));
  t.equal(c.listen.port, 9999);
  t.equal(c.listen.host, '0.0.0.0');
  t.equal(c.database, '/tmp/x.db');
  t.throws(() => resolveConfig(minimal, 'test', ctx({ SNAPVISOR_PORT: 'eighty' })), ConfigError);
});

t.test('errors name the key and the reason', async (t) => {
  const err = t.throws(() =>
    resolveConfig({ ...minimal, listen: { port: 'x' }, bogus: 1, targets: [{ name: 'Bad Name', kind: 'kvm' }] }, 'snapvisor.yaml', ctx()),
  ) as ConfigError;
  t.type(err, ConfigError);
  const paths = err.problems.map((p) => p.path);
  t.ok(paths.includes('/listen/port'), 'wrong type');
  t.ok(err.problems.some((p) => p.path === '' && /unknown key\(s\): bogus/.test(p.message)), 'unknown key');
  t.ok(paths.includes('/targets/0/name'), 'bad target name');
  t.match(err.message, /snapvisor\.yaml/);
});

t.test('tokens: exactly one of value or sha256; duplicates refused', async (t) => {
  t.throws(() => resolveConfig({ tokens: [{ name: 'a', scopes: ['read'] }] }, 't', ctx()), /exactly one of value or sha256/);
  t.throws(() => resolveConfig({ tokens: [{ name: 'a', value: 'x', sha256: 'a'.repeat(64), scopes: ['read'] }] }, 't', ctx()), /exactly one/);
  t.throws(
    () => resolveConfig({ tokens: [minimal.tokens[0], minimal.tokens[0]], targets: [] }, 't', ctx()),
    /duplicate token name/,
  );
  t.throws(
    () => resolveConfig({ ...minimal, targets: [{ name: 'a', kind: 'virtualbox' }, { name: 'a', kind: 'virtualbox' }] }, 't', ctx()),
    /duplicate target name 'a'/,
  );
});

t.test('secrets: env and file references resolve, are hashed, and never appear in errors', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'svcfg-'));
  writeFileSync(path.join(dir, 'tok'), 's3cret-from-file-0123456789\n');
  const c = resolveConfig(
    {
      tokens: [
        { name: 'env', value: 'env:MY_TOKEN', scopes: ['read'] },
        { name: 'file', value: `file:${path.join(dir, 'tok')}`, scopes: ['write'] },
      ],
      targets: [{ name: 'hv1', kind: 'virtualbox', ssh: { password: 'env:HV_PASSWORD' } }],
    },
    't',
    { env: { MY_TOKEN: 'tok-from-env-0123456789abcdef', HV_PASSWORD: 'hunter2' }, baseDir: dir },
  );
  t.equal(c.tokens[0]!.sha256, sha256Hex('tok-from-env-0123456789abcdef'));
  t.equal(c.tokens[1]!.sha256, sha256Hex('s3cret-from-file-0123456789'), 'trailing newline dropped');
  t.same(c.targets[0]!.options, { ssh: { password: 'hunter2' } }, 'nested secret resolved for the adapter');
  const missing = t.throws(() => resolveConfig({ tokens: [{ name: 'x', value: 'env:NOPE', scopes: ['read'] }] }, 't', ctx())) as Error;
  t.match(missing.message, /NOPE is not set/);
  const badFile = t.throws(() => resolveConfig({ tokens: [{ name: 'x', value: 'file:/nonexistent/secret', scopes: ['read'] }] }, 't', ctx())) as Error;
  t.match(badFile.message, /cannot read secret file/);
});

t.test('a token shorter than 24 characters is refused, by its name, never showing it', async (t) => {
  const short = 'S'.repeat(23);
  const err = t.throws(() =>
    resolveConfig({ tokens: [{ name: 'ops', value: 'env:OPS_TOKEN', scopes: ['read'] }, { name: 'lit', value: short, scopes: ['read'] }] }, 't', ctx({ OPS_TOKEN: short })),
  ) as ConfigError;
  t.type(err, ConfigError);
  t.same(
    err.problems.map((p) => p.path),
    ['/tokens/0/value', '/tokens/1/value'],
    'every short token is reported at once',
  );
  t.match(err.message, /token 'ops' is 23 characters long; at least 24/);
  t.notOk(err.message.includes(short), 'the value is never shown');
  const ok = resolveConfig({ tokens: [{ name: 'ops', value: 'env:OPS_TOKEN', scopes: ['read'] }] }, 't', ctx({ OPS_TOKEN: 'S'.repeat(24) }));
  t.equal(ok.tokens[0]!.sha256, sha256Hex('S'.repeat(24)), '24 characters are enough');
  t.equal(resolveConfig(minimal, 't', ctx()).tokens[0]!.name, 'ops', 'a sha256 token cannot be measured and is taken as given');
});

t.test('YAML syntax errors give the line', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'svcfg-'));
  const file = path.join(dir, 'snapvisor.yaml');
  writeFileSync(file, 'tokens:\n  - name: a\n    scopes: [read\n');
  const err = t.throws(() => loadConfigFile(file, {})) as ConfigError;
  t.match(err.problems[0]!.path, /line \d+/);
  writeFileSync(file, 'tokens:\n  - { name: a, value: env:T, scopes: [read, write] }\ntargets: []\n');
  t.equal(loadConfigFile(file, { T: 'x'.repeat(24) }).tokens[0]!.name, 'a');
  t.throws(() => loadConfigFile(path.join(dir, 'absent.yaml'), {}), /cannot read/);
});

t.test('demo config validates and marks its targets demo', async (t) => {
  const d = demoConfig({ vboxmanage: '/x/VBoxManage', database: '/tmp/d.db' });
  t.ok(d.generated);
  t.match(d.token, /^svd_/);
  const c = resolveConfig(d.raw, 'demo', ctx(), true);
  t.equal(c.demo, true);
  t.equal(c.targets[0]!.demo, true);
  t.equal(c.tokens[0]!.sha256, sha256Hex(d.token));
  const fixed = demoConfig({ vboxmanage: '/x', database: '/tmp/d.db', token: 'given-token-0123456789abcdef' });
  t.equal(fixed.token, 'given-token-0123456789abcdef');
  t.notOk(fixed.generated);
});

t.test('committed JSON schema matches the TypeBox schema, and the example validates', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { configJsonSchema } = await import('../../src/config/json-schema.ts');
  const committed = readFileSync(new URL('../../config/snapvisor.schema.json', import.meta.url), 'utf8');
  t.equal(committed, configJsonSchema(), 'run `npm run config:schema` after changing src/config/schema.ts');
  const schema = JSON.parse(committed) as { required?: string[] };
  t.same(schema.required, ['tokens'], 'only keys without defaults are required');
  const example = new URL('../../config/snapvisor.example.yaml', import.meta.url).pathname;
  const c = loadConfigFile(example, { SNAPVISOR_OPS_TOKEN: 'x'.repeat(24) });
  t.equal(c.targets[0]!.name, 'desk');
  t.same(c.targets[0]!.options, { vboxmanage: 'VBoxManage', commandTimeoutSec: 600, offline: { shutdownTimeoutSec: 120, forcePowerOff: false } });
});
