/**
 * The API fuzz stage: FUZZ_RUNS (default 10,000) requests generated from the app's own OpenAPI
 * document, valid and mutated (wrong types, extra and missing fields, huge strings, unicode and
 * control characters, `__proto__`, wrong content types, invalid JSON, bad percent-encoding,
 * methods a path does not have, missing or wrong tokens), sent in process to the real app over the
 * real engine, a file-backed store and the real VirtualBox adapter driving the VBoxManage simulator,
 * so snapshot and job routes do real work. Every answer: status < 500; a 4xx is problem+json with
 * type, title, status and code; a 2xx matches the route's response schema in the document. After:
 * PRAGMA integrity_check is ok, no prototype was polluted, and what valid requests made is intact
 * (every succeeded create's snapshot is stored, and the store agrees with the simulator).
 *
 * Fixed seed by default (printed); FUZZ_SEED and FUZZ_RUNS vary it. A failure prints the seed and
 * the run's path, so `FUZZ_SEED=… ` reproduces it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import t from 'tap';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { buildApp } from '../../src/api/app.ts';
import { createEngine } from '../../src/engine/engine.ts';
import { inspectDatabaseFile } from '../../src/store/backup.ts';
import { openStore } from '../../src/store/index.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { createVboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { sha256 } from './api-helper.ts';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 20261204;
const RUNS = process.env.FUZZ_RUNS !== undefined ? Number(process.env.FUZZ_RUNS) : 10_000;
const ADMIN = 'fuzz-admin-token-0123456789abcdef';
const READER = 'fuzz-reader-token-0123456789abcdef';

// ---------------------------------------------------------------- the OpenAPI document, loosely typed

interface Schema {
  type?: string | string[];
  enum?: unknown[];
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  maxProperties?: number;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  default?: unknown;
}
interface Parameter {
  in: 'path' | 'query' | 'header';
  name: string;
  required?: boolean;
  schema: Schema;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
}
interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}
interface Route {
  method: string;
  path: string;
  op: Operation;
}

// ---------------------------------------------------------------- generated requests

/** Ids are chosen when the request is sent, from what earlier answers returned. */
type Pool = 'vm' | 'snapshot' | 'job' | 'target';
type Segment = { real: Pool; pick: number } | { raw: string; encode: boolean };
interface FuzzRequest {
  label: string;
  method: string;
  path: string;
  params: Record<string, Segment>;
  query: Array<[string, string, boolean]>;
  body: { json: unknown } | { text: string } | null;
  contentType: string | null;
  auth: 'admin' | 'reader' | 'none' | 'wrong' | 'malformed';
  idempotencyKey: string | null;
}

const huge = fc.constantFrom(70_000, 5_000, 300).chain((n) => fc.constantFrom('a', 'é', '😀', '\u0000', '%').map((c) => c.repeat(n)));
const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', '..', '../..', '%', '%zz', '%00', '%C0%AF', '%ED%A0%80', '\u202e', '\ud800', '\u0000', ' ', '', 'null', 'true', '-1', '1e309', 'NaN', '0x10', '[]', '{}', '"', "'", '<script>', '${x}', '$(reboot)'),
  huge,
);
const wrongType = fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }), nasty);

/** A value the schema accepts (sizes kept small: the huge ones are a mutation). */
function valid(schema: Schema): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(valid));
  const types = (Array.isArray(schema.type) ? schema.type : [schema.type ?? 'string']).filter((x) => x !== 'null');
  const type = types[0] ?? 'null';
  switch (type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true, noDefaultInfinity: true });
    case 'array':
      return fc.array(valid(schema.items ?? {}), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 3, 3) });
    case 'object': {
      const props = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const fixed = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, s]) => [k, valid(s)])),
        { requiredKeys: [...required] },
      );
      const extra = schema.additionalProperties;
      if (extra === undefined || typeof extra === 'boolean') return fixed;
      return fc
        .tuple(fixed, fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), valid(extra), { maxKeys: Math.min(schema.maxProperties ?? 2, 2) }))
        .map(([a, b]) => ({ ...b, ...a }));
    }
    default: {
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }).map((d) => d.toISOString());
      const max = Math.min(schema.maxLength ?? 40, 40);
      const min = Math.min(schema.minLength ?? 0, max);
      const text = fc.oneof(
        { arbitrary: fc.string({ minLength: min, maxLength: max }), weight: 3 },
        { arbitrary: fc.string({ unit: 'grapheme', minLength: min, maxLength: max }), weight: 1 },
      );
      return schema.pattern ? fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length >= min && s.length <= (schema.maxLength ?? Infinity)) : text;
    }
  }
}

/** The schema's value, or one bent out of it. */
function mutated(schema: Schema): fc.Arbitrary<unknown> {
  const options: Array<fc.Arbitrary<unknown>> = [wrongType];
  if (schema.type === 'object' || schema.properties) {
    const props = Object.keys(schema.properties ?? {});
    options.push(
      // a required field missing
      valid(schema).map((v) => {
        const o = { ...(v as Record<string, unknown>) };
        delete o[(schema.required ?? props)[0] ?? ''];
        return o;
      }),
      // an extra field
      fc.tuple(valid(schema), fc.string({ maxLength: 12 }), wrongType).map(([v, k, x]) => ({ ...(v as Record<string, unknown>), [k]: x })),
      // one known field of the wrong shape
      ...props.map((k) => fc.tuple(valid(schema), mutated(schema.properties![k]!)).map(([v, x]) => ({ ...(v as Record<string, unknown>), [k]: x }))),
    );
  }
  return fc.oneof(...options);
}

/** Raw JSON texts JSON.stringify cannot write: prototype keys, duplicates, broken syntax, deep nesting. */
const badJsonText = fc.oneof(
  fc.constantFrom(
    '{"name":"p","mode":"crash","__proto__":{"polluted":true}}',
    '{"__proto__":{"polluted":true}}',
    '{"constructor":{"prototype":{"polluted":true}}}',
    '{"name":"a","name":"b","mode":"crash"}',
    '{"name":"x","mode":"crash",}',
    '{"name":"x"',
    "{'name':'x'}",
    '',
    'null',
    '[]',
    '"string"',
    '1e999',
    '{"name":"\\ud800","mode":"crash"}',
    '{"name":"\\u0000","mode":"crash"}',
    '\ufeff{"name":"bom","mode":"crash"}',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    `{"a":${'{"a":'.repeat(2000)}1${'}'.repeat(2001)}`,
  ),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

const contentTypes = fc.constantFrom(
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'application/problem+json',
  'application/json;;;',
  'Application/JSON',
  'application/octet-stream',
  '*/*',
  'garbage',
  '',
);

function segment(pool: Pool | null, schema: Schema): fc.Arbitrary<Segment> {
  const real = pool ? [{ arbitrary: fc.nat(1000).map((pick): Segment => ({ real: pool, pick })), weight: 6 }] : [];
  return fc.oneof(
    ...real,
    { arbitrary: fc.uuid().map((raw): Segment => ({ raw, encode: true })), weight: 2 },
    { arbitrary: valid(schema).map((v): Segment => ({ raw: String(v), encode: true })), weight: 1 },
    { arbitrary: nasty.map((raw): Segment => ({ raw, encode: true })), weight: 1 },
    { arbitrary: nasty.map((raw): Segment => ({ raw, encode: false })), weight: 1 },
  );
}

const POOL_OF: Record<string, Pool> = { vmId: 'vm', snapshotId: 'snapshot', jobId: 'job', target: 'target' };
/**
 * `wait` makes a request hold until its job ends (up to 300 s): valid values are kept to 0 and 1 so
 * 10,000 requests stay within a minute; out-of-range ones are among the mutations.
 */
const SHORT: Record<string, Schema> = { wait: { type: 'integer', minimum: 0, maximum: 1 } };

function requestFor(route: Route, allMethods: string[]): fc.Arbitrary<FuzzRequest> {
  const params = route.op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const bodySchema = route.op.requestBody?.content['application/json']?.schema ?? null;

  const paramsArb = fc.record(Object.fromEntries(pathParams.map((p) => [p.name, segment(POOL_OF[p.name] ?? null, p.schema)])) as Record<string, fc.Arbitrary<Segment>>);
  const queryPairs = fc
    .tuple(
      fc.tuple(
        ...queryParams.map((p) =>
          fc.oneof(
            { arbitrary: fc.constant<[string, string, boolean] | null>(null), weight: 3 },
            { arbitrary: valid(SHORT[p.name] ?? p.schema).map((v): [string, string, boolean] => [p.name, String(v), true]), weight: 4 },
            { arbitrary: mutated(p.schema).map((v): [string, string, boolean] => [p.name, typeof v === 'string' ? v : (JSON.stringify(v) ?? ''), true]), weight: 1 },
            { arbitrary: nasty.map((v): [string, string, boolean] => [p.name, v, false]), weight: 1 },
          ),
        ),
      ),
      // One request in eight carries a parameter the route does not declare (or a repeated one).
      fc.oneof(
        { arbitrary: fc.constant(null), weight: 7 },
        { arbitrary: fc.tuple(fc.constantFrom('unknown', '__proto__', 'constructor', 'limit', 'wait'), nasty, fc.boolean()), weight: 1 },
      ),
    )
    .map(([known, extra]) => [...(known as Array<[string, string, boolean] | null>), extra].filter((e): e is [string, string, boolean] => e !== null));

  type Body = Pick<FuzzRequest, 'body' | 'contentType'>;
  const bodyArb: fc.Arbitrary<Body> = bodySchema
    ? fc.oneof(
        { arbitrary: valid(bodySchema).map((json): Body => ({ body: { json }, contentType: 'application/json' })), weight: 6 },
        { arbitrary: mutated(bodySchema).map((json): Body => ({ body: { json }, contentType: 'application/json' })), weight: 3 },
        { arbitrary: badJsonText.map((text): Body => ({ body: { text }, contentType: 'application/json' })), weight: 1 },
        { arbitrary: fc.tuple(valid(bodySchema), contentTypes).map(([json, contentType]): Body => ({ body: { text: JSON.stringify(json) }, contentType })), weight: 1 },
        { arbitrary: fc.constant<Body>({ body: null, contentType: null }), weight: 1 },
      )
    : fc.oneof(
        { arbitrary: fc.constant<Body>({ body: null, contentType: null }), weight: 8 },
        { arbitrary: fc.tuple(badJsonText, fc.oneof(fc.constant('application/json'), contentTypes)).map(([text, contentType]): Body => ({ body: { text }, contentType })), weight: 1 },
      );

  const otherMethods = allMethods.filter((m) => m !== route.method);
  return fc.record({
    label: fc.constant(`${route.method} ${route.path}`),
    method: fc.oneof({ arbitrary: fc.constant(route.method), weight: 19 }, { arbitrary: fc.constantFrom(...otherMethods), weight: 1 }),
    path: fc.constant(route.path),
    params: paramsArb,
    query: queryPairs,
    bodyAndType: bodyArb,
    auth: fc.constantFrom<FuzzRequest['auth']>('admin', 'admin', 'admin', 'admin', 'admin', 'admin', 'admin', 'admin', 'reader', 'none', 'wrong', 'malformed'),
    idempotencyKey: fc.oneof(
      { arbitrary: fc.constant(null), weight: 6 },
      { arbitrary: fc.uuid(), weight: 3 },
      { arbitrary: fc.constantFrom('replayed-key-1', 'replayed-key-2'), weight: 1 },
      { arbitrary: nasty, weight: 1 },
    ),
  }).map(({ bodyAndType, ...r }) => ({ ...r, ...bodyAndType }));
}

// ---------------------------------------------------------------- the test

t.test(`API fuzz: ${RUNS} generated requests (seed ${SEED})`, async (t) => {
  t.comment(`FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}`);
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-fuzz-'));
  const lab = createVboxLab({
    dir,
    stepMs: 1,
    vms: [
      { name: 'web01', state: 'running' },
      { name: 'db01', state: 'poweroff' },
      { name: 'app01', state: 'running' },
    ],
  });
  const log = silentLogger();
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 30 }, { log });
  const dbFile = join(dir, 'snapvisor.db');
  const store = openStore(dbFile);
  const registry = registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 4, options: {} }, provider }]);
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 10, syncIntervalMs: 0, maxAttempts: 2, backoff: { initialMs: 20, maxMs: 50 } } });
  await engine.start();
  const app = await buildApp({
    engine,
    auth: {
      tokens: [
        { name: 'fuzz-admin', sha256: sha256(ADMIN), scopes: ['read', 'write', 'admin'] },
        { name: 'fuzz-reader', sha256: sha256(READER), scopes: ['read'] },
      ],
    },
    version: '0.0.0-fuzz',
  });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
    await engine.stop({ graceMs: 2000 });
    await registry.close();
    store.close();
  };
  t.teardown(async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  });

  const docRes = await app.inject({ url: '/openapi.json', headers: { authorization: `Bearer ${READER}` } });
  t.equal(docRes.statusCode, 200, 'the OpenAPI document is served');
  const doc = docRes.json<OpenApi>();
  // /v1/events is a stream that never ends: not a request/answer route.
  const routes: Route[] = Object.entries(doc.paths)
    .filter(([p]) => p !== '/v1/events')
    .flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })));
  t.ok(routes.length >= 15, `${routes.length} routes from the document`);

  const ajv = new Ajv2020.default({ strict: false, allErrors: false });
  addFormats.default(ajv);
  const validators = new Map<string, ReturnType<typeof ajv.compile>>();
  const validatorFor = (route: Route, status: number) => {
    const key = `${route.method} ${route.path} ${status}`;
    if (!validators.has(key)) {
      const schema = route.op.responses[String(status)]?.content?.['application/json']?.schema;
      // The document's own components travel with each schema so its #/components refs resolve.
      if (schema) validators.set(key, ajv.compile({ ...schema, components: doc.components }));
    }
    return validators.get(key);
  };

  const pools: Record<Pool, string[]> = {
    vm: (await engine.listVms({ limit: 100 })).items.map((v) => v.id),
    snapshot: [],
    job: [],
    target: ['lab'],
  };
  const remember = (pool: Pool, id: unknown) => {
    if (typeof id === 'string' && !pools[pool].includes(id)) pools[pool].push(id);
  };
  const allMethods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
  // A sync lists every VM and snapshot through the simulator (a process per call, about a second
  // in all): kept rare. Snapshot and job routes carry most of the real work: weighted up.
  const weight = (r: Route) => (r.path.endsWith('/sync') ? 1 : /snapshots|revert|consolidate|jobs/.test(r.path) ? 60 : 30);
  const arbitrary = fc.oneof(...routes.map((r) => ({ arbitrary: requestFor(r, allMethods), weight: weight(r) })));

  const histogram = new Map<number, number>();
  const failures: string[] = [];
  const collect = process.env.FUZZ_COLLECT === '1';
  const started = Date.now();

  // A lone surrogate cannot be percent-encoded; it goes as U+FFFD (the raw mutations send it as is).
  const enc = (s: string) => encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));
  const timeBy = new Map<string, [number, number]>();
  const send = async (req: FuzzRequest): Promise<{ res: LightMyRequestResponse; url: string }> => {
    let url = req.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      const seg = req.params[name];
      if (!seg) return '';
      if ('real' in seg) {
        const list = pools[seg.real];
        return enc(list.length ? list[seg.pick % list.length]! : '00000000-0000-4000-8000-000000000000');
      }
      return seg.encode ? enc(seg.raw) : seg.raw;
    });
    if (req.query.length) url += `?${req.query.map(([k, v, e]) => (e ? `${enc(k)}=${enc(v)}` : `${k}=${v}`)).join('&')}`;
    const headers: Record<string, string> = {};
    if (req.auth === 'admin') headers.authorization = `Bearer ${ADMIN}`;
    if (req.auth === 'reader') headers.authorization = `Bearer ${READER}`;
    if (req.auth === 'wrong') headers.authorization = 'Bearer wrong-token-0123456789abcdef';
    if (req.auth === 'malformed') headers.authorization = 'Token x y z';
    if (req.contentType !== null) headers['content-type'] = req.contentType;
    if (req.idempotencyKey !== null) headers['idempotency-key'] = req.idempotencyKey;
    const payload = req.body === null ? undefined : 'json' in req.body ? JSON.stringify(req.body.json) : req.body.text;
    return { res: await app.inject({ method: req.method as 'GET', url, headers, ...(payload !== undefined ? { payload } : {}) }), url };
  };

  /**
   * The route a URL really reaches: an empty or slash-bearing id changes the URL's shape (an empty
   * target makes `/v1/targets/` — the list), so the answer is judged against that route's schema.
   */
  const templates = routes.map((r) => ({ ...r, parts: r.path.split('/').slice(1) }));
  const reached = (url: string, method: string): Route | undefined => {
    // Parsed as light-my-request does (WHATWG URL: surrounding spaces and control characters dropped).
    let pathname: string;
    try {
      pathname = new URL(url, 'http://localhost').pathname;
    } catch {
      pathname = url.split(/[?#]/)[0]!;
    }
    const parts = pathname.replace(/\/+$/, '').split('/').slice(1);
    const fits = templates.filter((r) => r.method === method && r.parts.length === parts.length && r.parts.every((p, i) => p.startsWith('{') ? parts[i] !== '' : p === parts[i]));
    // A literal segment wins over a parameter (find-my-way's rule).
    return fits.sort((a, b) => b.parts.filter((p) => !p.startsWith('{')).length - a.parts.filter((p) => !p.startsWith('{')).length)[0];
  };

  /** What is wrong with an answer (null: nothing). */
  const check = (req: FuzzRequest, res: LightMyRequestResponse, url: string): string | null => {
    const status = res.statusCode;
    if (status >= 500) return `status ${status}: ${res.body.slice(0, 300)}`;
    const type = String(res.headers['content-type'] ?? '');
    if (status >= 400) {
      if (!type.startsWith('application/problem+json')) return `${status} with content-type '${type}'`;
      if (req.method === 'HEAD') return null; // no body on a HEAD answer
      let p: Record<string, unknown>;
      try {
        p = JSON.parse(res.body) as Record<string, unknown>;
      } catch {
        return `${status} body is not JSON`;
      }
      for (const key of ['type', 'title', 'code']) if (typeof p[key] !== 'string') return `${status} problem without ${key}: ${res.body.slice(0, 200)}`;
      if (p.status !== status) return `problem status ${String(p.status)} on a ${status}`;
      return null;
    }
    if (req.method === 'HEAD') return null;
    const route = reached(url, req.method);
    if (!route) return `${status} for ${req.method} ${url.slice(0, 100)}, which no route of the document takes`;
    if (status === 304 || status === 204) return null;
    const declared = route.op.responses[String(status)];
    if (!declared) return `undeclared status ${status}`;
    if (!declared.content?.['application/json']) {
      const wanted = Object.keys(declared.content ?? {})[0];
      return wanted && !type.startsWith(wanted) ? `content-type '${type}', document says '${wanted}'` : null;
    }
    if (!type.startsWith('application/json')) return `2xx content-type '${type}'`;
    const body = JSON.parse(res.body) as Record<string, unknown>;
    const validate = validatorFor(route, status);
    if (validate && !validate(body)) return `body does not match the ${status} schema: ${ajv.errorsText(validate.errors)} — ${res.body.slice(0, 200)}`;
    // Ids the next requests may aim at.
    const isJob = (o: Record<string, unknown>) => typeof o.kind === 'string' && typeof o.state === 'string' && 'attempts' in o;
    for (const o of [body, ...((body.items as Array<Record<string, unknown>> | undefined) ?? [])]) {
      if (isJob(o)) {
        remember('job', o.id);
        remember('snapshot', (o.result as { snapshotId?: unknown } | null)?.snapshotId);
      } else if (route.path.includes('snapshots')) remember('snapshot', o.id);
    }
    return null;
  };

  await fc.assert(
    fc.asyncProperty(arbitrary, async (req) => {
      const t0 = Date.now();
      const { res, url } = await send(req);
      const spent = timeBy.get(req.label) ?? [0, 0];
      timeBy.set(req.label, [spent[0] + 1, spent[1] + Date.now() - t0]);
      histogram.set(res.statusCode, (histogram.get(res.statusCode) ?? 0) + 1);
      const problem = check(req, res, url);
      if (problem === null) return true;
      const line = `${req.label} as ${req.method} ${url.slice(0, 120)}: ${problem}\n  request: ${JSON.stringify(req).slice(0, 600)}`;
      if (collect) {
        failures.push(line);
        return true;
      }
      throw new Error(line);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  const elapsed = Date.now() - started;
  const statuses = [...histogram].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`).join(' ');
  t.comment(`${RUNS} requests in ${(elapsed / 1000).toFixed(1)} s (seed ${SEED}); statuses ${statuses}`);
  if (collect) {
    t.comment([...timeBy].sort((a, b) => b[1][1] - a[1][1]).map(([l, [n, ms]]) => `${l}: ${n} requests, ${ms} ms`).join('\n'));
    const distinct = [...new Set(failures.map((f) => f.split('\n')[0]!.slice(0, 160)))];
    t.comment(`${failures.length} failures, ${distinct.length} distinct:\n${distinct.slice(0, 60).join('\n')}`);
    t.equal(failures.length, 0, 'no failing answer');
  }
  t.ok((histogram.get(200) ?? 0) + (histogram.get(202) ?? 0) > RUNS / 20, 'a fair share of valid requests were served');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');

  // What valid requests made is intact: let the engine finish its jobs (bounded), sync, compare.
  const quiet = Date.now() + 60_000;
  while (Date.now() < quiet && (await engine.listJobs({ limit: 1, state: 'running' })).items.length + (await engine.listJobs({ limit: 1, state: 'queued' })).items.length > 0) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const jobs = (await engine.listJobs({ limit: 100_000 })).items;
  const created = jobs.filter((j) => j.kind === 'snapshot.create' && j.state === 'succeeded');
  t.comment(`jobs: ${jobs.length} (${created.length} snapshots created); pools: ${pools.snapshot.length} snapshot ids, ${pools.job.length} job ids`);
  for (const job of created) {
    const id = (job.result as { snapshotId?: string } | null)?.snapshotId;
    const res = await app.inject({ url: `/v1/snapshots/${id}`, headers: { authorization: `Bearer ${READER}` } });
    if (res.statusCode !== 200) t.fail(`the snapshot of succeeded job ${job.id} is stored (${res.statusCode})`);
  }
  const synced = await app.inject({ method: 'POST', url: '/v1/targets/lab/sync?wait=30', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, payload: '{}' });
  t.ok(synced.statusCode < 300, 'a final sync');
  for (const vm of lab.readState().vms) {
    const vmId = (await engine.listVms({ limit: 10, name: vm.name })).items[0]!.id;
    const stored = (await engine.listSnapshots(vmId, { includeGone: false })).filter((s) => s.deletedAt === null).map((s) => s.providerRef).sort();
    const onHost = Object.keys(vm.snapshots).sort();
    t.same(stored, onHost, `${vm.name}: the store agrees with the hypervisor (${onHost.length} snapshots)`);
  }
  await close();
  const report = inspectDatabaseFile(dbFile);
  t.same(report.integrity, ['ok'], 'PRAGMA integrity_check');
});
