/**
 * build(t): the real API over the real engine and an in-memory SQLite store, with the in-memory
 * fake *provider* as the only stand-in (no mocking of our own modules). Everything is closed in
 * t.teardown.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyBaseLogger, FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../../src/api/app.ts';
import { run as runCli } from '../../src/cli/run.ts';
import type { Scope } from '../../src/api/plugins/auth.ts';
import type { Job, Snapshot } from '../../src/domain/types.ts';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import {
  createFakeProvider,
  fakeRegistry,
  fakeSpec,
  silentLogger,
  type FakeProvider,
  type FakeProviderOptions,
} from '../fixtures/fake-provider.ts';

export const TOKENS = {
  admin: 'adm1n-t0ken-value-7c1f-5e8d0b6a9f3c',
  writer: 'wr1ter-t0ken-value-2b9e-5e8d0b6a9f3c',
  other: 'other-wr1ter-t0ken-5d3a-5e8d0b6a9f3c',
  reader: 're4der-t0ken-value-8e0c-5e8d0b6a9f3c',
} as const;
export type TokenName = keyof typeof TOKENS;

const SCOPES: Record<TokenName, Scope[]> = { admin: ['admin'], writer: ['write'], other: ['write'], reader: ['read'] };

export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

export interface TestTeardown {
  teardown(fn: () => unknown): void;
}

export interface BuildOptions {
  provider?: FakeProviderOptions;
  logger?: FastifyBaseLogger;
  bodyLimit?: number;
  requestTimeoutMs?: number;
  demo?: boolean;
  sseHeartbeatMs?: number;
  /** More fake targets beside 'lab' (in this order after it). */
  extraTargets?: Array<{ name: string; provider?: FakeProviderOptions }>;
  /** Engine setting readiness (default: the engine's, all). */
  readiness?: 'all' | 'any';
  /** Called with the providers before the engine starts (to hold or fail the first sync). */
  beforeStart?: (providers: Map<string, FakeProvider>) => void;
  /** false: start as the daemon does, with the first sync in the background. Default true. */
  waitForSync?: boolean;
  /** Serve a web console build (see AppOptions.console). */
  console?: { dir: string | null };
}

export const DEFAULT_VMS: NonNullable<FakeProviderOptions['vms']> = [
  { name: 'web-1', powerState: 'running' },
  { name: 'db-1', powerState: 'off', snapshots: [{ name: 'base', mode: 'offline' }, { name: 'patched', mode: 'memory' }] },
  { name: 'build', powerState: 'running' },
];

export interface Harness {
  app: FastifyInstance;
  engine: Engine;
  store: Store;
  provider: FakeProvider;
  /** Authorization header for one of the test tokens. */
  auth(name?: TokenName): Record<string, string>;
  /** app.inject with the writer's token unless headers say otherwise. */
  call(options: InjectOptions & { as?: TokenName | null }): Promise<LightMyRequestResponse>;
  vmId(name: string): Promise<string>;
  /** Everything stored that a refused request must not change. */
  snapshotOfStore(): Promise<{ jobs: Job[]; snapshots: Snapshot[]; providerCalls: number }>;
}

export async function build(t: TestTeardown, options: BuildOptions = {}): Promise<Harness> {
  const store = openStore(':memory:');
  const provider = createFakeProvider('lab', { vms: DEFAULT_VMS, ...options.provider });
  const providers = new Map<string, FakeProvider>([['lab', provider]]);
  for (const extra of options.extraTargets ?? []) providers.set(extra.name, createFakeProvider(extra.name, { vms: [], ...extra.provider }));
  const registry = fakeRegistry([...providers].map(([name, p]) => ({ spec: fakeSpec(name), provider: p })));
  const engine = createEngine({
    store,
    registry,
    log: silentLogger(),
    settings: {
      workerPollMs: 10,
      syncIntervalMs: 0,
      maxAttempts: 2,
      backoff: { initialMs: 10, maxMs: 20 },
      ...(options.readiness ? { readiness: options.readiness } : {}),
    },
  });
  options.beforeStart?.(providers);
  await engine.start({ waitForSync: options.waitForSync ?? true });
  const app = await buildApp({
    engine,
    auth: { tokens: (Object.keys(TOKENS) as TokenName[]).map((name) => ({ name, sha256: sha256(TOKENS[name]), scopes: SCOPES[name] })) },
    version: '0.0.0-test',
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.bodyLimit !== undefined ? { bodyLimit: options.bodyLimit } : {}),
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    ...(options.demo !== undefined ? { demo: options.demo } : {}),
    ...(options.sseHeartbeatMs !== undefined ? { sseHeartbeatMs: options.sseHeartbeatMs } : {}),
    ...(options.console ? { console: options.console } : {}),
  });
  t.teardown(async () => {
    await app.close();
    await engine.stop({ graceMs: 200 });
    await registry.close();
    store.close();
  });

  const auth = (name: TokenName = 'writer') => ({ authorization: `Bearer ${TOKENS[name]}` });
  const vmIds = new Map<string, string>();
  return {
    app,
    engine,
    store,
    provider,
    auth,
    call({ as = 'writer', headers, ...rest }) {
      return app.inject({ ...rest, headers: { ...(as === null ? {} : auth(as)), ...headers } });
    },
    async vmId(name) {
      if (!vmIds.size) for (const vm of (await engine.listVms({ limit: 1000 })).items) vmIds.set(vm.name, vm.id);
      const id = vmIds.get(name);
      if (!id) throw new Error(`no VM named ${name}`);
      return id;
    },
    async snapshotOfStore() {
      const jobs = (await engine.listJobs({ limit: 1000 })).items;
      const snapshots: Snapshot[] = [];
      for (const vm of (await engine.listVms({ limit: 1000, includeGone: true })).items) {
        snapshots.push(...(await engine.listSnapshots(vm.id, { includeGone: true })));
      }
      const providerCalls = (['createSnapshot', 'revertSnapshot', 'deleteSnapshot', 'consolidate'] as const).reduce(
        (n, op) => n + provider.callsOf(op).length,
        0,
      );
      return { jobs, snapshots, providerCalls };
    },
  };
}

/** Retries an assertion-free probe until it returns a value (onResponse hooks run after inject resolves). */
export async function eventually<T>(probe: () => Promise<T | undefined>, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error('condition not met');
}

export const problemType = (res: { headers: Record<string, unknown> }) => String(res.headers['content-type']);

/**
 * The CLI against an app listening on a free loopback port: `cli(args, opts)` gives its exit code
 * and output. The CLI only needs to yield between polls (the jobs move on their own).
 */
export async function cliFor(app: FastifyInstance, defaultToken: string) {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return async (args: string[], opts: { tty?: boolean; token?: string } = {}) => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(args, {
      env: { SNAPVISOR_URL: `http://127.0.0.1:${port}`, SNAPVISOR_TOKEN: opts.token ?? defaultToken },
      stdout: { write: (s: string) => (stdout += s), isTTY: opts.tty ?? false },
      stderr: { write: (s: string) => (stderr += s) },
      fetch: globalThis.fetch,
      sleep: () => new Promise((resolve) => setTimeout(resolve, 5)),
    });
    return { code, stdout, stderr };
  };
}
