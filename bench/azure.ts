/**
 * Azure against the ARM fake (test/labs/arm-fake: HTTPS on loopback, the real @azure/arm-compute
 * and @azure/identity clients), in one script:
 * (a) Sets for 200 VMs × 2 disks under the 7-snapshots-per-disk rule (the fake in a child process, so
 *     its CPU is not counted as the daemon's), its window scaled down
 *     (AZ_BENCH_WINDOW_SEC, default 20 s instead of 300 s) in the fake and in the target's
 *     `snapshotRate` alike: 21 creates per VM submitted at once to the engine (in process, real
 *     adapter, SQLite file). The fake answers 429 to any create over the rule and counts them:
 *     the target is 0 self-caused 429s. Throughput vs what the limits allow: the rule allows 7 sets
 *     per VM per window, so a full window after the first can start at most 200 × 7 = 1,400 sets;
 *     the figure is the sets started in the second window divided by that (target ≥ 0.95).
 * (b) One VM with 3 disks (Premium SSD v2, so each disk snapshot copies in the background and is
 *     usable only at completionPercent 100): request → every disk snapshot ready, through the
 *     engine (submit a create job, wait for it to succeed: the job waits for readiness itself) vs
 *     the same three PUTs done directly with the SDK (concurrent beginCreateOrUpdateAndWait, then
 *     GETs until each is at 100 %), both polling every POLL_MS, the fake adding LATENCY_MS to every
 *     answer. Sides alternate; target ratio ≤ 1.2.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { ComputeManagementClient } from '@azure/arm-compute';
import { createRegistry, type TargetSpec } from '../providers/index.ts';
import { createEngine, type Engine } from '../src/engine/engine.ts';
import type { Job } from '../src/domain/types.ts';
import { openStore } from '../src/store/index.ts';
import { pino } from 'pino';
import type { Logger } from '../providers/contract.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';
import { startArmFake, type ArmFakeOptions, type FakeVmSeed } from '../test/labs/arm-fake/index.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, timingRow } from './stats.ts';

const WINDOW_SEC = Number(process.env.AZ_BENCH_WINDOW_SEC ?? 20);
const VMS = Number(process.env.AZ_BENCH_VMS ?? 200);
const PER_VM = 21;
const MAX_PER_WINDOW = 7;
const CONCURRENCY = Number(process.env.AZ_BENCH_CONCURRENCY ?? 64);
const ROUNDS_B = Number(process.env.AZ_BENCH_ROUNDS_B ?? 7);
const POLL_MS = 50;
const LATENCY_MS = 20;
const TARGET_A = 0.95;
const TARGET_B = 1.2;
const RG = 'rg-bench';
const meta = { principal: 'bench', requestHash: 'bench' };
/** AZ_BENCH_DEBUG=1: the engine's and adapter's warnings and errors on stderr. */
const log = (): Logger => (process.env.AZ_BENCH_DEBUG ? pino({ level: 'warn' }, pino.destination(2)) : silentLogger());

/** What the benchmark needs of a fake, in this process or another. */
interface FakeEndpoint {
  endpoint: string;
  authorityHost: string;
  ca: string;
  location: string;
  subscriptionId: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/** The ARM fake in a child process (bench/arm-fake-child.ts), so its CPU is not the daemon's. */
async function childFake(options: ArmFakeOptions) {
  const proc = fork(new URL('./arm-fake-child.ts', import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: { type: string }) => {
        if (m.type !== type) return;
        proc.off('message', onMessage);
        resolve(m as T);
      };
      proc.on('message', onMessage);
      proc.once('exit', (code) => reject(new Error(`arm-fake child exited (${code}) while waiting for '${type}'`)));
    });
  const started = next<FakeEndpoint>('started');
  proc.send({ cmd: 'start', options });
  const endpoint = await started;
  return {
    ...endpoint,
    async addVms(seeds: FakeVmSeed[]) {
      const answer = next<{ vms: unknown[] }>('vms');
      proc.send({ cmd: 'addVms', seeds });
      return (await answer).vms;
    },
    async counters() {
      const answer = next<{ counters: { throttled429: number; selfCaused429: number } }>('counters');
      proc.send({ cmd: 'counters' });
      return (await answer).counters;
    },
    async close() {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.send({ cmd: 'close' });
      await exited;
    },
  };
}

function azureSpec(fake: FakeEndpoint, options: Record<string, unknown>): TargetSpec {
  return {
    name: 'azure',
    kind: 'azure',
    demo: false,
    concurrency: CONCURRENCY,
    options: {
      subscriptionId: fake.subscriptionId,
      resourceGroups: [RG],
      credential: { tenantId: fake.tenantId, clientId: fake.clientId, clientSecret: fake.clientSecret, authorityHost: fake.authorityHost },
      endpoint: fake.endpoint,
      ca: fake.ca,
      ...options,
    },
  };
}

async function startEngine(dir: string, fake: FakeEndpoint, options: Record<string, unknown>, settings: Record<string, number>) {
  const store = openStore(path.join(dir, `bench-${Date.now()}.db`));
  const registry = await createRegistry([azureSpec(fake, options)], { log: log() });
  const engine = createEngine({ store, registry, log: log(), settings: { syncIntervalMs: 0, ...settings } });
  await engine.start();
  const stop = async () => {
    await engine.stop({ graceMs: 0 });
    await registry.close();
    store.close();
  };
  return { engine, stop };
}

async function vmIdsByName(engine: Engine): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let cursor: string | undefined;
  do {
    const page = await engine.listVms({ limit: 500, ...(cursor ? { cursor } : {}) });
    for (const vm of page.items) out.set(vm.name, vm.id);
    cursor = page.next ?? undefined;
  } while (cursor);
  return out;
}

/**
 * Watches jobs from now on: `done(ids)` resolves once every job in `ids` is final (events seen since
 * the watch began, so a job finishing before it is asked about is not missed), and rejects on one
 * that did not succeed. `onRunning` sees each job start.
 */
function watchJobs(engine: Engine, onRunning?: (job: Job, at: number) => void) {
  const final = new Map<string, Job>();
  let check: () => void = () => {};
  const unsubscribe = engine.subscribe((e) => {
    if (e.type !== 'job') return;
    if (e.job.state === 'running') onRunning?.(e.job, performance.now());
    if (e.job.state === 'queued' || e.job.state === 'running') return;
    final.set(e.job.id, e.job);
    check();
  });
  return {
    done(ids: ReadonlySet<string>): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        check = () => {
          for (const id of ids) {
            const job = final.get(id);
            if (!job) return;
            if (job.state !== 'succeeded') return reject(new Error(`job ${id} ended ${job.state}: ${JSON.stringify(job.error)}`));
          }
          resolve();
        };
        check();
      }).finally(() => {
        check = () => {};
      });
    },
    stop: unsubscribe,
  };
}

async function rateLimited(dir: string): Promise<{ markdown: string; summary: Record<string, unknown> }> {
  const windowMs = WINDOW_SEC * 1000;
  const fake = await childFake({ snapshotRate: { max: MAX_PER_WINDOW, windowMs }, lroPolls: 1 });
  await fake.addVms(Array.from({ length: VMS }, (_, i) => ({ resourceGroup: RG, name: `vm${String(i).padStart(3, '0')}`, power: 'running' as const, dataDisks: 1 })));
  const { engine, stop } = await startEngine(dir, fake, { pollIntervalMs: 10, snapshotRate: { max: MAX_PER_WINDOW, windowSec: WINDOW_SEC } }, { workerPollMs: 50, readinessPollMs: 50 });
  try {
    const ids = await vmIdsByName(engine);
    if (ids.size !== VMS) throw new Error(`engine sees ${ids.size} VMs, expected ${VMS}`);
    const starts: number[] = [];
    const jobIds = new Set<string>();
    const t0 = performance.now();
    // A running job emits an event per progress update too: its first one is its start.
    const started = new Set<string>();
    const watch = watchJobs(engine, (job, at) => {
      if (job.attempts !== 1 || started.has(job.id)) return;
      started.add(job.id);
      starts.push(at);
    });
    for (let k = 0; k < PER_VM; k++) {
      for (const vmId of ids.values()) {
        const { job } = await engine.submit({ kind: 'snapshot.create', vmId, name: `set-${k}`, description: '', mode: 'crash' }, meta);
        jobIds.add(job.id);
      }
    }
    await watch.done(jobIds);
    watch.stop();
    const wallMs = performance.now() - t0;
    starts.sort((a, b) => a - b);
    const first = starts[0]!;
    const inWindow = (i: number) => starts.filter((s) => s >= first + i * windowMs && s < first + (i + 1) * windowMs).length;
    const allowed = VMS * MAX_PER_WINDOW;
    const second = inWindow(1);
    const ratio = second / allowed;
    const counters = await fake.counters();
    const summary = {
      sets: jobIds.size,
      windowSec: WINDOW_SEC,
      selfCaused429: counters.selfCaused429,
      throttled429: counters.throttled429,
      secondWindowStarts: second,
      allowedPerWindow: allowed,
      throughputRatio: ratio,
      wallMs,
      met: ratio >= TARGET_A && counters.selfCaused429 === 0,
    };
    const markdown = [
      `### (a) ${VMS} VMs × 2 disks, ${PER_VM} sets each, under ${MAX_PER_WINDOW} snapshots per disk per ${WINDOW_SEC} s (Azure's 5 minutes scaled down)`,
      '',
      '| figure | value |',
      '|---|---|',
      `| sets (jobs), all succeeded | ${jobIds.size} |`,
      `| 429s the fake sent for the per-disk rule (self-caused) / in all | ${counters.selfCaused429} / ${counters.throttled429} |`,
      `| sets started in window 1 / 2 / 3 | ${inWindow(0)} / ${second} / ${inWindow(2)} |`,
      `| allowed per window (${VMS} × ${MAX_PER_WINDOW}) | ${allowed} |`,
      `| throughput in the first full window after the burst vs allowed | **${fmt(ratio)}** (target ≥ ${TARGET_A}) |`,
      `| wall time, first submit → last set ready | ${fmt(wallMs / 1000, 1)} s (the rule alone needs ≥ ${2 * WINDOW_SEC} s) |`,
    ].join('\n');
    return { markdown, summary };
  } finally {
    await stop();
    await fake.close();
  }
}

async function oneVmThreeDisks(dir: string): Promise<{ markdown: string; summary: Record<string, unknown> }> {
  // This part measures overhead, not the budget: both sides take more sets than 7 per 5 minutes.
  const rate = { max: 10_000, windowMs: 300_000 };
  const fake = await startArmFake({ latencyMs: LATENCY_MS, lroPolls: 1, completionSteps: 3, snapshotRate: rate });
  const vm = fake.addVm({ resourceGroup: RG, name: 'db3', power: 'running', dataDisks: 2, sku: 'PremiumV2_LRS' });
  const { engine, stop } = await startEngine(dir, fake, { pollIntervalMs: POLL_MS, snapshotRate: { max: rate.max, windowSec: rate.windowMs / 1000 } }, { workerPollMs: 250, readinessPollMs: POLL_MS });
  const credential = new ClientSecretCredential(fake.tenantId, fake.clientId, fake.clientSecret, {
    authorityHost: fake.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: fake.ca },
  });
  const sdk = new ComputeManagementClient(credential, fake.subscriptionId, {
    endpoint: fake.endpoint,
    credentials: { scopes: [`${fake.endpoint}/.default`] },
    tlsOptions: { ca: fake.ca },
    retryOptions: { maxRetries: 0 },
  });
  const disks = [vm.osDiskId, ...vm.dataDiskIds];
  try {
    const vmId = (await vmIdsByName(engine)).get('db3')!;
    const viaEngine = async (i: number) => {
      const started = performance.now();
      const watch = watchJobs(engine);
      const { job } = await engine.submit({ kind: 'snapshot.create', vmId, name: `bench-${i}`, description: '', mode: 'crash' }, meta);
      await watch.done(new Set([job.id]));
      watch.stop();
      return performance.now() - started;
    };
    const direct = async (i: number) => {
      const started = performance.now();
      await Promise.all(
        disks.map(async (diskId, d) => {
          const name = `direct-${i}-${d}`;
          let snap = await sdk.snapshots.beginCreateOrUpdateAndWait(
            RG,
            name,
            { location: fake.location, tags: { bench: 'direct' }, creationData: { createOption: 'Copy', sourceResourceId: diskId }, incremental: true },
            { updateIntervalInMs: POLL_MS },
          );
          while (snap.provisioningState !== 'Succeeded' || (snap.completionPercent !== undefined && snap.completionPercent < 100)) {
            await new Promise((r) => setTimeout(r, POLL_MS));
            snap = await sdk.snapshots.get(RG, name);
          }
        }),
      );
      return performance.now() - started;
    };
    await viaEngine(-1);
    await direct(-1);
    const engineMs: number[] = [];
    const directMs: number[] = [];
    const ratios: number[] = [];
    for (let i = 0; i < ROUNDS_B; i++) {
      const order = i % 2 === 0 ? (['engine', 'direct'] as const) : (['direct', 'engine'] as const);
      const r: Record<string, number> = {};
      for (const side of order) r[side] = side === 'engine' ? await viaEngine(i) : await direct(i);
      engineMs.push(r.engine!);
      directMs.push(r.direct!);
      ratios.push(r.engine! / r.direct!);
    }
    const ratio = median(ratios);
    const summary = {
      ratio,
      ratioRange: [Math.min(...ratios), Math.max(...ratios)],
      engineMs: median(engineMs),
      directMs: median(directMs),
      met: ratio <= TARGET_B,
    };
    const markdown = [
      `### (b) One VM with 3 Premium SSD v2 disks: request → all disk snapshots ready (${ROUNDS_B} alternating rounds after a warm-up; ${LATENCY_MS} ms added to every ARM answer, polls every ${POLL_MS} ms on both sides)`,
      '',
      '| side | n | median ms | min / max ms |',
      '|---|---|---|---|',
      timingRow('Snapvisor engine: create job (three PUTs, LROs, readiness wait), until succeeded', engineMs),
      timingRow('SDK directly: three concurrent beginCreateOrUpdateAndWait, then GET until 100 %', directMs),
      '',
      `Ratio (median of per-round ratios): **${fmt(ratio)}** (rounds ${fmt(Math.min(...ratios))}–${fmt(Math.max(...ratios))}); target ≤ ${TARGET_B}.`,
    ].join('\n');
    return { markdown, summary };
  } finally {
    await stop();
    await fake.close();
  }
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-az-bench-'));
  try {
    const b = await oneVmThreeDisks(dir);
    const a = await rateLimited(dir);
    const summary = { bench: 'azure', a: a.summary, b: b.summary };
    return {
      title: 'Azure against the ARM fake: create budgets and one multi-disk set vs the SDK',
      markdown: [a.markdown, '', b.markdown, '', '```json bench-summary', JSON.stringify(summary), '```'].join('\n'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
