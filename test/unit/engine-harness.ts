/**
 * Shared set-up for the engine table tests: a ':memory:' store, fake providers, an injected clock
 * and a tiny worker poll interval. Not a test file itself.
 */
import type { Test } from 'tap';
import type { TargetSpec } from '../../providers/index.ts';
import type { EngineEvent } from '../../src/engine/api.ts';
import { createEngine, type Engine, type EngineSettings } from '../../src/engine/engine.ts';
import type { Job } from '../../src/domain/types.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import {
  createFakeProvider,
  fakeRegistry,
  fakeSpec,
  silentLogger,
  type FakeProvider,
  type FakeProviderOptions,
} from '../fixtures/fake-provider.ts';

export interface Clock {
  now(): Date;
  advance(ms: number): void;
}

export function fakeClock(start = '2025-01-01T00:00:00.000Z'): Clock {
  let t = Date.parse(start);
  return { now: () => new Date(t), advance: (ms) => void (t += ms) };
}

export interface HarnessOptions {
  targets?: Array<{ spec?: Partial<TargetSpec>; name?: string; provider?: Omit<FakeProviderOptions, 'now'> }>;
  settings?: Partial<EngineSettings>;
  store?: Store;
  start?: boolean;
}

export interface Harness {
  clock: Clock;
  store: Store;
  engine: Engine;
  providers: Map<string, FakeProvider>;
  provider: FakeProvider;
  /** Snapvisor id of a VM by name (after the first sync). */
  vmId(name: string): Promise<string>;
  /** Snapvisor id of a snapshot by VM and name. */
  snapshotId(vmName: string, snapshotName: string): Promise<string>;
  events: EngineEvent[];
  /** Resolves when the job is final (or throws after timeoutMs of wall time). */
  settle(jobId: string, timeoutMs?: number): Promise<Job>;
}

export const TEST_SETTINGS: Partial<EngineSettings> = { workerPollMs: 2, syncIntervalMs: 0, jobTimeoutMs: 5_000 };

export async function harness(t: Test, options: HarnessOptions = {}): Promise<Harness> {
  const clock = fakeClock();
  const store = options.store ?? openStore(':memory:');
  const providers = new Map<string, FakeProvider>();
  const entries = (options.targets ?? [{}]).map((tgt, i) => {
    const name = tgt.name ?? (i === 0 ? 'lab' : `lab${i}`);
    const provider = createFakeProvider(name, { ...tgt.provider, now: clock.now });
    providers.set(name, provider);
    return { spec: fakeSpec(name, tgt.spec), provider };
  });
  const engine = createEngine({
    store,
    registry: fakeRegistry(entries),
    log: silentLogger(),
    now: clock.now,
    settings: { ...TEST_SETTINGS, ...options.settings },
  });
  const events: EngineEvent[] = [];
  engine.subscribe((e) => events.push(e));
  t.teardown(async () => {
    await engine.stop({ graceMs: 0 });
    if (!options.store) store.close();
  });
  if (options.start ?? true) await engine.start();
  const h: Harness = {
    clock,
    store,
    engine,
    providers,
    provider: entries[0]?.provider as FakeProvider,
    events,
    async vmId(name) {
      const page = await engine.listVms({ limit: 1000, includeGone: true });
      const vm = page.items.find((v) => v.name === name);
      if (!vm) throw new Error(`no VM named ${name}`);
      return vm.id;
    },
    async snapshotId(vmName, snapshotName) {
      const list = await engine.listSnapshots(await h.vmId(vmName), { includeGone: true });
      const s = list.find((x) => x.name === snapshotName);
      if (!s) throw new Error(`no snapshot ${snapshotName} on ${vmName}`);
      return s.id;
    },
    async settle(jobId, timeoutMs = 3_000) {
      const job = await engine.waitForJob(jobId, timeoutMs);
      if (job.state === 'queued' || job.state === 'running') throw new Error(`job ${jobId} still ${job.state} after ${timeoutMs} ms`);
      return job;
    },
  };
  return h;
}

/** Polls (tiny real-time steps) until fn returns a value other than undefined/false. */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 3_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const meta = (principal = 'tester', idempotencyKey?: string, requestHash = 'h1') => ({
  principal,
  requestHash,
  ...(idempotencyKey !== undefined ? { idempotencyKey } : {}),
});
