/**
 * One replica of bench/scale-out.ts, in a process of its own so its CPU time is its own:
 *   scale-out-child <database> — the real app (src/api) on the real engine and the store the
 *   daemon would open for <database> (a SQLite file, or postgres://…, several of these on one
 *   database being replicas), with a zero-cost in-memory provider (test/fixtures/fake-provider.ts)
 *   whose VMs have the same ids in every replica, and logging off.
 * The store's tryClaim is timed (from the call to its answer, won or lost) and its finish counted
 * (a job this replica ended): the parent sums the replicas' counts to know when a batch is done.
 * IPC: 'ready' (url, VM ids) · 'mark' → 'marked' (counters and CPU zeroed) · 'stats' → 'stats'
 * (jobs finished and CPU since the mark) · 'claims' → 'claims' (claim latencies since the mark) · 'exit'.
 */
import { pino } from 'pino';
import { buildApp } from '../src/api/app.ts';
import { sha256Hex } from '../src/config/load.ts';
import { createEngine } from '../src/engine/engine.ts';
import { connectStore } from '../src/store/index.ts';
import { VERSION } from '../src/version.ts';
import { createFakeProvider, fakeRegistry, fakeSpec } from '../test/fixtures/fake-provider.ts';

const TOKEN = process.env.SCALE_BENCH_TOKEN ?? '';
export const SCALE_VMS = 256;
/** Jobs running at once on the target, over every replica (the per-target limit the claim enforces). */
export const SCALE_CONCURRENCY = 64;

type ToParent =
  | { type: 'ready'; url: string; vmIds: string[] }
  | { type: 'marked' }
  | { type: 'stats'; finished: number; cpuMs: number; wallMs: number }
  | { type: 'claims'; claimMs: number[] };
type FromParent = { cmd: 'mark' } | { cmd: 'stats' } | { cmd: 'claims' } | { cmd: 'exit' };

const send = (m: ToParent) => process.send!(m);

let finished = 0;
let claimMs: number[] = [];
let mark = { cpu: process.cpuUsage(), at: performance.now() };

const database = process.argv[2]!;
const log = pino({ level: 'silent' });
const vms = Array.from({ length: SCALE_VMS }, (_, i) => ({ id: `vm-${i}`, name: `bench-${String(i).padStart(3, '0')}`, powerState: 'running' as const }));
const provider = createFakeProvider('bench', { vms });
const store = await connectStore(database, { log });

// Instrumentation, not a stand-in: the real repository answers, we only time and count it.
const jobs = store.jobs;
const tryClaim = jobs.tryClaim.bind(jobs);
const finish = jobs.finish.bind(jobs);
jobs.tryClaim = async (...args) => {
  const started = performance.now();
  try {
    return await tryClaim(...args);
  } finally {
    claimMs.push(performance.now() - started);
  }
};
jobs.finish = async (...args) => {
  const done = await finish(...args);
  if (done) finished++;
  return done;
};

const engine = createEngine({
  store,
  registry: fakeRegistry([{ spec: fakeSpec('bench', { concurrency: SCALE_CONCURRENCY }), provider }]),
  log,
  // A replica learns of jobs submitted on another one by polling: 50 ms, as the e2e replicas run.
  settings: { syncIntervalMs: 0, workerPollMs: 50, scheduler: { enabled: true, jitterMs: 0 } },
});
await engine.start();
const app = await buildApp({ engine, auth: { tokens: [{ name: 'bench', sha256: sha256Hex(TOKEN), scopes: ['read', 'write', 'admin'] }] }, logger: log, version: VERSION });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const page = await engine.listVms({ limit: SCALE_VMS });

process.on('message', (m: FromParent) => {
  if (m.cmd === 'mark') {
    finished = 0;
    claimMs = [];
    mark = { cpu: process.cpuUsage(), at: performance.now() };
    send({ type: 'marked' });
  } else if (m.cmd === 'stats') {
    const cpu = process.cpuUsage(mark.cpu);
    send({ type: 'stats', finished, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - mark.at });
  } else if (m.cmd === 'claims') {
    send({ type: 'claims', claimMs });
  } else if (m.cmd === 'exit') {
    void (async () => {
      await app.close();
      await engine.stop({ graceMs: 1_000 });
      await store.close();
      process.exit(0);
    })();
  }
});
send({ type: 'ready', url, vmIds: page.items.map((v) => v.id) });
