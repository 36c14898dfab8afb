/**
 * The server side of bench/job-overhead.ts, one process per side so its CPU is its own:
 *   snapvisor <db> <log>: the real app (src/api) on the real engine and a SQLite file, a zero-cost
 *     in-memory provider (test/fixtures/fake-provider.ts), pino at info writing to <log> the way the
 *     daemon writes to stdout (synchronously); for the breakdown also with db ':memory:' or log '-' (off);
 *   bare: a bare Fastify route doing the same HTTP exchange (JSON body in, 202 + Location + a
 *     job-shaped JSON body out) with no engine, no store, no log.
 * Talks to the parent over IPC: 'ready' (url, VM ids), then per measured batch 'mark' → 'marked' and,
 * once `expect` units are done (jobs final / requests answered), 'done' with this process's CPU time
 * and wall time since the mark.
 */
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../src/api/app.ts';
import { sha256Hex } from '../src/config/load.ts';
import { FINAL_JOB_STATES } from '../src/domain/types.ts';
import { createEngine } from '../src/engine/engine.ts';
import { REDACT } from '../src/log-redaction.ts';
import { openStore } from '../src/store/index.ts';
import { VERSION } from '../src/version.ts';
import { createFakeProvider, fakeRegistry, fakeSpec } from '../test/fixtures/fake-provider.ts';

const TOKEN = process.env.JOB_BENCH_TOKEN ?? '';
const VMS = 256;

type ToParent =
  | { type: 'ready'; url: string; vmIds: string[] }
  | { type: 'marked' }
  | { type: 'done'; cpuUserMs: number; cpuSystemMs: number; wallMs: number; units: number };
type FromParent = { cmd: 'mark'; expect: number } | { cmd: 'exit' };

const send = (m: ToParent) => process.send!(m);

let units = 0;
let batch: { expect: number; cpu: NodeJS.CpuUsage; at: number; units0: number } | null = null;
function unitDone(): void {
  units++;
  if (batch && units - batch.units0 >= batch.expect) {
    const cpu = process.cpuUsage(batch.cpu);
    const wallMs = performance.now() - batch.at;
    const n = units - batch.units0;
    batch = null;
    send({ type: 'done', cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000, wallMs, units: n });
  }
}

let shutdown: () => Promise<void> = async () => {};
process.on('message', (m: FromParent) => {
  if (m.cmd === 'mark') {
    batch = { expect: m.expect, cpu: process.cpuUsage(), at: performance.now(), units0: units };
    send({ type: 'marked' });
  } else if (m.cmd === 'exit') {
    void shutdown().then(() => process.exit(0));
  }
});

const [mode, dbFile, logFile] = process.argv.slice(2);
if (mode === 'snapvisor') {
  // For the breakdown, the parent also runs this with db ':memory:' (no file I/O) or log '-' (logging off).
  const log = logFile === '-' ? pino({ level: 'silent' }) : pino({ level: 'info', redact: REDACT }, pino.destination({ dest: logFile!, sync: true }));
  const vms = Array.from({ length: VMS }, (_, i) => ({ id: `vm-${i}`, name: `bench-${String(i).padStart(2, '0')}`, powerState: 'running' as const }));
  const provider = createFakeProvider('bench', { vms });
  const store = openStore(dbFile!, { log });
  const engine = createEngine({
    store,
    registry: fakeRegistry([{ spec: fakeSpec('bench', { concurrency: VMS }), provider }]),
    log,
    // The daemon's defaults (config: workerPollMs 250, periodic sync on but not due during a run).
    settings: { syncIntervalMs: 0 },
  });
  await engine.start();
  engine.subscribe((e) => {
    if (e.type === 'job' && FINAL_JOB_STATES.includes(e.job.state)) unitDone();
  });
  const app = await buildApp({ engine, auth: { tokens: [{ name: 'bench', sha256: sha256Hex(TOKEN), scopes: ['read', 'write'] }] }, logger: log, version: VERSION });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const page = await engine.listVms({ limit: VMS });
  shutdown = async () => {
    await app.close();
    await engine.stop({ graceMs: 1_000 });
    store.close();
  };
  send({ type: 'ready', url, vmIds: page.items.map((v) => v.id) });
} else if (mode === 'bare') {
  const app = Fastify({ logger: false });
  app.post<{ Params: { vmId: string }; Body: { name: string; description: string; mode: string } }>('/v1/vms/:vmId/snapshots', async (request, reply) => {
    const now = new Date().toISOString();
    const id = randomUUID();
    reply.header('location', `/v1/jobs/${id}`);
    reply.code(202).send({
      id,
      kind: 'snapshot.create',
      state: 'queued',
      progress: 0,
      progressMessage: null,
      attempts: 0,
      result: null,
      error: null,
      vmId: request.params.vmId,
      snapshotId: null,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      requestedBy: 'bench',
    });
    setImmediate(unitDone);
    return reply;
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  shutdown = () => app.close();
  send({ type: 'ready', url, vmIds: Array.from({ length: VMS }, (_, i) => `vm-${i}`) });
} else {
  process.stderr.write('usage: job-overhead-child snapvisor <db> <log> | bare\n');
  process.exit(2);
}
