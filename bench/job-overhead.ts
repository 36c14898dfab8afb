/**
 * Per-job daemon overhead: what one job costs the daemon itself when the hypervisor costs nothing.
 * The server runs in a child process (bundled, as `npm start` runs the daemon) so its CPU time is
 * its own; this process is only the client: CONNECTIONS kept-alive node:http connections, each
 * POSTing `/v1/vms/{id}/snapshots` (round-robin over the VMs) and taking the 202, until the batch
 * is submitted. The child reports over IPC its process.cpuUsage() and wall time from the batch's
 * start until the last of its jobs is final (submitted, claimed, run on the zero-cost provider,
 * recorded, finished — every one persisted in the SQLite file before its 202).
 * Baseline, same script, alternating: a bare Fastify route in a child process doing the same HTTP
 * exchange (JSON in, 202 + Location + a job-shaped body out) with no engine, no store and no log.
 * Targets: ≤ 0.5 ms of daemon CPU per job; ≥ 1,500 jobs/s on this 2-core machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { keepAliveClient } from './keepalive-client.ts';
import type { BenchReport } from './run.ts';
import { fmt, median } from './stats.ts';

const ROUNDS = Number(process.env.JOB_BENCH_ROUNDS ?? 5);
const JOBS = Number(process.env.JOB_BENCH_JOBS ?? 2000);
const WARMUP = 500;
const CONNECTIONS = 8;
const TOKEN = 'job-overhead-token-5e8d0b6a9f3c';
const TARGET_CPU_MS = 0.5;
const TARGET_JOBS_PER_S = 1500;

interface Done { cpuUserMs: number; cpuSystemMs: number; wallMs: number; units: number }
interface Server { kind: 'snapvisor' | 'memory' | 'nolog' | 'bare'; proc: ChildProcess; url: string; vmIds: string[]; next<T>(type: string): Promise<T> }

async function startServer(bundle: string, kind: Server['kind'], dir: string): Promise<Server> {
  const args =
    kind === 'bare'
      ? [kind]
      : ['snapvisor', kind === 'memory' ? ':memory:' : path.join(dir, `${kind}.db`), kind === 'nolog' ? '-' : path.join(dir, `${kind}.log`)];
  const proc = fork(bundle, args, { env: { ...process.env, JOB_BENCH_TOKEN: TOKEN }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: process.env.JOB_BENCH_PROF && kind === 'snapvisor' ? ['--cpu-prof', `--cpu-prof-dir=${process.env.JOB_BENCH_PROF}`] : [] });
  const queue: Array<{ type: string; [k: string]: unknown }> = [];
  const waiters: Array<{ type: string; resolve: (m: never) => void }> = [];
  proc.on('message', (m: { type: string }) => {
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m as never);
    else queue.push(m);
  });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const i = queue.findIndex((m) => m.type === type);
      if (i >= 0) return resolve(queue.splice(i, 1)[0] as T);
      waiters.push({ type, resolve: resolve as (m: never) => void });
      proc.once('exit', (code) => reject(new Error(`${kind} server exited (${code}) while waiting for '${type}'`)));
    });
  const ready = await next<{ url: string; vmIds: string[] }>('ready');
  return { kind, proc, url: ready.url, vmIds: ready.vmIds, next };
}

/** One batch: mark, submit `jobs` creates over CONNECTIONS connections, wait for the child's 'done'. */
async function batch(server: Server, jobs: number, tag: string): Promise<Done & { clientMs: number }> {
  server.proc.send({ cmd: 'mark', expect: jobs });
  await server.next('marked');
  const done = server.next<Done>('done');
  done.catch(() => {}); // awaited below; a client error must surface, not this rejection at exit
  const started = performance.now();
  let issued = 0;
  const clients = Array.from({ length: CONNECTIONS }, () => keepAliveClient(server.url, TOKEN));
  await Promise.all(
    clients.map(async (client) => {
      while (issued < jobs) {
        const i = issued++;
        const vmId = server.vmIds[i % server.vmIds.length]!;
        const res = await client.call<{ id: string; state: string }>('POST', `/v1/vms/${vmId}/snapshots`, { name: `${tag}-${i}`, description: '', mode: 'memory' });
        if (res.status !== 202) throw new Error(`${server.kind}: POST answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
    }),
  );
  const clientMs = performance.now() - started;
  for (const c of clients) c.close();
  const d = await done;
  if (process.env.JOB_BENCH_DEBUG) process.stderr.write(`${server.kind} ${tag}: client ${clientMs.toFixed(0)} ms, server ${d.wallMs.toFixed(0)} ms, cpu ${(d.cpuUserMs + d.cpuSystemMs).toFixed(0)} ms\n`);
  return { ...d, clientMs };
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-job-bench-'));
  // Bundled, as `npm start` runs the daemon (no TypeScript loader); inside the repo so packages resolve.
  const bundle = fileURLToPath(new URL('../.build/bench-job-overhead-child.mjs', import.meta.url));
  await build({ entryPoints: [fileURLToPath(new URL('./job-overhead-child.ts', import.meta.url))], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'esm', packages: 'external', logLevel: 'error' });
  const sv = await startServer(bundle, 'snapvisor', dir);
  const bare = await startServer(bundle, 'bare', dir);
  // The breakdown: the same daemon with SQLite in memory (what the file's I/O costs), and with
  // logging off (what pino costs at info).
  const mem = await startServer(bundle, 'memory', dir);
  const nolog = await startServer(bundle, 'nolog', dir);
  const servers = [sv, bare, mem, nolog];
  try {
    for (const s of servers) await batch(s, WARMUP, 'warm');
    type Batch = Done & { clientMs: number };
    const rows: Array<{ round: number; sv: Batch; bare: Batch; mem: Batch; nolog: Batch }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate which side goes first, so drift on this shared machine does not favour one.
      const got = new Map<Server, Batch>();
      for (let i = 0; i < servers.length; i++) {
        const s = servers[(i + round) % servers.length]!;
        got.set(s, await batch(s, JOBS, `r${round}`));
      }
      rows.push({ round, sv: got.get(sv)!, bare: got.get(bare)!, mem: got.get(mem)!, nolog: got.get(nolog)! });
    }
    const cpuPerJob = (d: Done) => (d.cpuUserMs + d.cpuSystemMs) / d.units;
    const perS = (d: Done) => (d.units / d.wallMs) * 1000;
    const svCpu = median(rows.map((r) => cpuPerJob(r.sv)));
    const bareCpu = median(rows.map((r) => cpuPerJob(r.bare)));
    const svRate = median(rows.map((r) => perS(r.sv)));
    const bareRate = median(rows.map((r) => perS(r.bare)));
    const cpuRatio = median(rows.map((r) => cpuPerJob(r.sv) / cpuPerJob(r.bare)));
    const rateRatio = median(rows.map((r) => perS(r.sv) / perS(r.bare)));
    const range = (xs: number[], d = 2) => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}`;
    const table = [
      '| round | Snapvisor daemon CPU per job, ms (user + sys) | jobs/s (202 answered → last job final) | bare Fastify CPU per request, ms | requests/s | CPU ratio | rate ratio |',
      '|---|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.round} | ${fmt(cpuPerJob(r.sv), 3)} (${fmt(r.sv.cpuUserMs / r.sv.units, 3)} + ${fmt(r.sv.cpuSystemMs / r.sv.units, 3)}) | ${fmt(perS(r.sv), 0)} | ${fmt(cpuPerJob(r.bare), 3)} | ${fmt(perS(r.bare), 0)} | ${fmt(cpuPerJob(r.sv) / cpuPerJob(r.bare))} | ${fmt(perS(r.sv) / perS(r.bare))} |`,
      ),
      `| **median** | **${fmt(svCpu, 3)}** | **${fmt(svRate, 0)}** | ${fmt(bareCpu, 3)} | ${fmt(bareRate, 0)} | ${fmt(cpuRatio)} | ${fmt(rateRatio)} |`,
    ].join('\n');
    const memCpu = median(rows.map((r) => cpuPerJob(r.mem)));
    const nologCpu = median(rows.map((r) => cpuPerJob(r.nolog)));
    const breakdown = [
      '| per job (medians over the rounds) | daemon CPU, ms |',
      '|---|---|',
      `| as shipped: SQLite file (WAL), pino at info | ${fmt(svCpu, 3)} |`,
      `| the same, SQLite in memory (\`:memory:\`) | ${fmt(memCpu, 3)} — the file's I/O (WAL writes, locks, checkpoints): ${fmt(svCpu - memCpu, 3)} |`,
      `| the same, logging off | ${fmt(nologCpu, 3)} — pino at info (the request line, the job's line): ${fmt(svCpu - nologCpu, 3)} |`,
      `| bare Fastify route, same HTTP exchange, no engine | ${fmt(bareCpu, 3)} — HTTP parsing, routing, the answer |`,
    ].join('\n');
    const cpuOk = svCpu <= TARGET_CPU_MS;
    const rateOk = svRate >= TARGET_JOBS_PER_S;
    const verdict = (ok: boolean) => (ok ? 'met' : '**NOT met**');
    const summary = {
      bench: 'job-overhead',
      cpuMsPerJob: Number(svCpu.toFixed(3)),
      cpuMsPerJobRange: [Number(Math.min(...rows.map((r) => cpuPerJob(r.sv))).toFixed(3)), Number(Math.max(...rows.map((r) => cpuPerJob(r.sv))).toFixed(3))],
      jobsPerSecond: Math.round(svRate),
      jobsPerSecondRange: [Math.round(Math.min(...rows.map((r) => perS(r.sv)))), Math.round(Math.max(...rows.map((r) => perS(r.sv))))],
      cpuRatioVsBare: Number(cpuRatio.toFixed(2)),
      cpuMsPerJobSqliteInMemory: Number(memCpu.toFixed(3)),
      cpuMsPerJobLoggingOff: Number(nologCpu.toFixed(3)),
      cpuMsPerBareExchange: Number(bareCpu.toFixed(3)),
      rateRatioVsBare: Number(rateRatio.toFixed(2)),
      targets: { cpuMsPerJob: `<= ${TARGET_CPU_MS}`, jobsPerSecond: `>= ${TARGET_JOBS_PER_S}` },
      met: { cpuMsPerJob: cpuOk, jobsPerSecond: rateOk },
    };
    return {
      title: 'Per-job daemon overhead: zero-cost provider, real HTTP, real SQLite file',
      markdown: [
        `The real app (src/api) on the real engine, a SQLite file in WAL mode (not \`:memory:\`), pino at info writing synchronously to a file, and a zero-cost in-memory provider (test/fixtures/fake-provider.ts, ${sv.vmIds.length} VMs, target concurrency ${sv.vmIds.length}), in a child process run bundled as \`npm start\` runs the daemon; its CPU is that process's own \`process.cpuUsage()\`, reported over IPC. The client (this process) submits \`POST /v1/vms/{id}/snapshots\` \`{"mode":"memory"}\` over ${CONNECTIONS} kept-alive connections (bench/keepalive-client.ts), round-robin over the VMs, and takes each 202; a batch ends when the daemon has seen its last job final (submit, claim, provider call, record, finish, audit row — each job persisted before its 202). Baseline: a bare Fastify route in its own child process doing the same exchange (JSON body in, 202 + Location + a job-shaped JSON body out) with no engine, store or log. ${ROUNDS} alternating rounds of ${JOBS} jobs after a ${WARMUP}-job warm-up each; the VMs accumulate snapshots over the run (up to ${Math.ceil(((ROUNDS * JOBS) + WARMUP) / sv.vmIds.length)} each).`,
        table,
        `Where a job's daemon CPU goes, measured in the same rounds (each variant its own child process, the same client and load):`,
        breakdown,
        `**Daemon CPU per job: median ${fmt(svCpu, 3)} ms** (rounds ${range(rows.map((r) => cpuPerJob(r.sv)), 3)}; target ≤ ${TARGET_CPU_MS} ms: ${verdict(cpuOk)}); **${fmt(svRate, 0)} jobs/s** (rounds ${range(rows.map((r) => perS(r.sv)), 0)}; target ≥ ${TARGET_JOBS_PER_S.toLocaleString('en')}: ${verdict(rateOk)}). Against the bare route: ${fmt(cpuRatio)}× its CPU per exchange (${fmt(bareCpu, 3)} ms), ${fmt(rateRatio)}× its rate (${fmt(bareRate, 0)}/s; the bare side's rate is bounded by this client).`,
        '```json bench-summary\n' + JSON.stringify(summary) + '\n```',
      ].join('\n\n'),
    };
  } finally {
    for (const s of servers) {
      s.proc.send({ cmd: 'exit' });
      await new Promise((r) => s.proc.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
