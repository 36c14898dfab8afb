/**
 * Scale-out (issue 16): what several replicas on one PostgreSQL database do with a zero-cost
 * provider, against one daemon on SQLite measured in the same run.
 *
 * 1. Throughput: a batch of creates submitted over CONNECTIONS kept-alive connections spread over
 *    the replicas (round robin), from the first 202 to the last job final (every replica counts the
 *    jobs it finished; the batch ends when the sum is the batch). Configurations: SQLite × 1
 *    (baseline), PostgreSQL × 1, 2, 3 — each replica a child process (bench/scale-out-child.ts: the
 *    real app and engine, the daemon's store for the URL, the fake provider), fresh database per
 *    configuration and round, rounds alternating the order. CPU: every replica's own
 *    process.cpuUsage(), and PostgreSQL's (its private cluster's processes, from /proc): per job, it
 *    gives the throughput one core would sustain ("per core").
 * 2. Claim latency: each replica times its store's tryClaim (call → answer, won or lost); p50/p99
 *    per configuration over the rounds' measured batches.
 * 3. Failover: three replicas; the leader (snapvisor_cluster_leader = 1) is SIGKILLed and the time
 *    until another replica reports the lead is taken, TAKEOVERS times. Then an every-minute policy
 *    (jitter 0): its run's start minus its slot with no failure (baseline), and with the leader
 *    SIGKILLed one second before a slot: kill → that slot's run started, on another replica.
 * Not a timed test: `npm run bench -- scale-out` (BENCH_SECTION_FILE=<file> to write the section there).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import pg from 'pg';
import { createDatabase, postgresBinDir, startPostgresCluster, type PrivateCluster } from '../test/labs/postgres/lab.ts';
import { keepAliveClient } from './keepalive-client.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, summarize } from './stats.ts';

const ROUNDS = Number(process.env.SCALE_BENCH_ROUNDS ?? 3);
const JOBS = Number(process.env.SCALE_BENCH_JOBS ?? 1500);
const WARMUP = 300;
const CONNECTIONS = 8;
const TAKEOVERS = Number(process.env.SCALE_BENCH_TAKEOVERS ?? 5);
const POLICY_TRIALS = Number(process.env.SCALE_BENCH_POLICY_TRIALS ?? 2);
const TOKEN = 'scale-out-bench-token-5e8d0b6a9f3c';

interface Config { name: string; database: 'sqlite' | 'postgres'; replicas: number }
const ALL_CONFIGS: Config[] = [
  { name: 'SQLite, 1 daemon (baseline)', database: 'sqlite', replicas: 1 },
  { name: 'PostgreSQL, 1 replica', database: 'postgres', replicas: 1 },
  { name: 'PostgreSQL, 2 replicas', database: 'postgres', replicas: 2 },
  { name: 'PostgreSQL, 3 replicas', database: 'postgres', replicas: 3 },
];
/** SCALE_BENCH_MAX_REPLICAS=1: the SQLite baseline and one PostgreSQL replica only (trying the bench out). */
const CONFIGS = ALL_CONFIGS.filter((c) => c.replicas <= Number(process.env.SCALE_BENCH_MAX_REPLICAS ?? 3));
/** Matches the child's fleet (bench/scale-out-child.ts). */
const VMS = 256;
const CONCURRENCY = 64;

interface Replica {
  proc: ChildProcess;
  url: string;
  vmIds: string[];
  next<T>(type: string): Promise<T>;
  ask<T>(cmd: string, reply: string): Promise<T>;
}

async function startReplica(bundle: string, database: string): Promise<Replica> {
  const proc = fork(bundle, [database], { env: { ...process.env, SCALE_BENCH_TOKEN: TOKEN }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Array<{ type: string }> = [];
  const waiters: Array<{ type: string; resolve: (m: never) => void; reject: (e: Error) => void }> = [];
  proc.on('message', (m: { type: string }) => {
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m as never);
    else queue.push(m);
  });
  proc.on('exit', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`replica exited (${code ?? signal}) while waiting for '${w.type}'`));
  });
  const next = <T>(type: string) =>
    new Promise<T>((resolve, reject) => {
      const i = queue.findIndex((m) => m.type === type);
      if (i >= 0) return resolve(queue.splice(i, 1)[0] as T);
      waiters.push({ type, resolve: resolve as (m: never) => void, reject });
    });
  const ready = await next<{ url: string; vmIds: string[] }>('ready');
  return {
    proc,
    url: ready.url,
    vmIds: ready.vmIds,
    next,
    ask: <T>(cmd: string, reply: string) => {
      const answer = next<T>(reply);
      proc.send({ cmd });
      return answer;
    },
  };
}

async function stopReplica(r: Replica): Promise<void> {
  if (r.proc.exitCode !== null || r.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => r.proc.once('exit', resolve));
  r.proc.send({ cmd: 'exit' });
  await exited;
}

/** CPU seconds of a PostgreSQL cluster: the postmaster (with its reaped children's) and its live children. */
function postgresCpuSec(cluster: PrivateCluster): number {
  const pidFile = path.join(cluster.dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return NaN;
  const pm = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state is field 3.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    const ppid = Number(f[1]);
    if (pid === pm) total += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    else if (ppid === pm) total += Number(f[11]) + Number(f[12]);
  }
  return total / ticks;
}

interface Batch { wallMs: number; replicaCpuMs: number; postgresCpuMs: number; claimMs: number[] }

/** Submits `jobs` creates spread over the replicas; resolves once the replicas have finished them all. */
async function batch(replicas: Replica[], jobs: number, tag: string, cluster: PrivateCluster | null): Promise<Batch> {
  await Promise.all(replicas.map((r) => r.ask('mark', 'marked')));
  const pgBefore = cluster ? postgresCpuSec(cluster) : 0;
  const started = performance.now();
  let issued = 0;
  const clients = Array.from({ length: CONNECTIONS }, (_, i) => ({ client: keepAliveClient(replicas[i % replicas.length]!.url, TOKEN), replica: replicas[i % replicas.length]! }));
  await Promise.all(
    clients.map(async ({ client, replica }) => {
      while (issued < jobs) {
        const i = issued++;
        const vmId = replica.vmIds[i % replica.vmIds.length]!;
        const res = await client.call('POST', `/v1/vms/${vmId}/snapshots`, { name: `${tag}-${i}`, description: '', mode: 'memory' });
        if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${JSON.stringify(res.body)}`);
      }
    }),
  );
  for (const c of clients) c.client.close();
  let stats: Array<{ finished: number; cpuMs: number }> = [];
  for (;;) {
    stats = await Promise.all(replicas.map((r) => r.ask<{ finished: number; cpuMs: number }>('stats', 'stats')));
    if (stats.reduce((a, s) => a + s.finished, 0) >= jobs) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const wallMs = performance.now() - started;
  const claims = await Promise.all(replicas.map((r) => r.ask<{ claimMs: number[] }>('claims', 'claims')));
  return {
    wallMs,
    replicaCpuMs: stats.reduce((a, s) => a + s.cpuMs, 0),
    postgresCpuMs: cluster ? (postgresCpuSec(cluster) - pgBefore) * 1000 : 0,
    claimMs: claims.flatMap((c) => c.claimMs),
  };
}

async function leaderGauge(r: Replica): Promise<number | null> {
  try {
    const res = await fetch(`${r.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const m = /^snapvisor_cluster_leader (\S+)$/m.exec(await res.text());
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function leaderOf(replicas: Replica[], timeoutMs = 30_000): Promise<Replica> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leaders: Replica[] = [];
    for (const r of replicas) if ((await leaderGauge(r)) === 1) leaders.push(r);
    if (leaders.length === 1) return leaders[0]!;
    if (Date.now() > deadline) throw new Error(`no single leader after ${timeoutMs} ms (${leaders.length})`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-scale-bench-'));
  const bundle = fileURLToPath(new URL('../.build/bench-scale-out-child.mjs', import.meta.url));
  await build({ entryPoints: [fileURLToPath(new URL('./scale-out-child.ts', import.meta.url))], outfile: bundle, bundle: true, platform: 'node', target: 'node20', format: 'esm', packages: 'external', logLevel: 'error' });
  const cluster = await startPostgresCluster();
  const live: Replica[] = [];
  try {
    // ---- 1 and 2: throughput and claim latency
    const results = new Map<Config, Batch[]>(CONFIGS.map((c) => [c, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (let i = 0; i < CONFIGS.length; i++) {
        const config = CONFIGS[(i + round) % CONFIGS.length]!;
        const database = config.database === 'sqlite' ? path.join(dir, `r${round}-${i}.db`) : (await createDatabase(cluster.port, 'scale')).url;
        const replicas: Replica[] = [];
        // One after another: the first migrates the schema.
        for (let n = 0; n < config.replicas; n++) replicas.push(await startReplica(bundle, database));
        live.push(...replicas);
        await batch(replicas, WARMUP, `warm${round}`, null);
        const b = await batch(replicas, JOBS, `r${round}`, config.database === 'postgres' ? cluster : null);
        results.get(config)!.push(b);
        if (process.env.SCALE_BENCH_DEBUG) process.stderr.write(`${config.name} r${round}: ${fmt((JOBS / b.wallMs) * 1000, 0)} jobs/s, cpu ${fmt(b.replicaCpuMs, 0)} + pg ${fmt(b.postgresCpuMs, 0)} ms\n`);
        for (const r of replicas) await stopReplica(r);
        live.splice(0, live.length);
      }
    }
    const perS = (b: Batch) => (JOBS / b.wallMs) * 1000;
    const cpuPerJob = (b: Batch) => (b.replicaCpuMs + b.postgresCpuMs) / JOBS;
    const baseline = CONFIGS[0]!;
    const baseRate = median(results.get(baseline)!.map(perS));
    const rows = CONFIGS.map((c) => {
      const bs = results.get(c)!;
      const rate = median(bs.map(perS));
      const cpu = median(bs.map(cpuPerJob));
      const claims = summarize(bs.flatMap((b) => b.claimMs));
      return { c, rate, rates: bs.map(perS), ratio: rate / baseRate, cpu, replicaCpu: median(bs.map((b) => b.replicaCpuMs / JOBS)), pgCpu: median(bs.map((b) => b.postgresCpuMs / JOBS)), perCore: 1000 / cpu, claims };
    });
    const table = [
      '| configuration | jobs/s (median; rounds) | vs SQLite | CPU per job, ms: replicas + PostgreSQL | jobs/s per core (1000 / CPU per job) | claim p50 / p99, ms (claims) |',
      '|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.c.name} | **${fmt(r.rate, 0)}** (${r.rates.map((x) => fmt(x, 0)).join(', ')}) | ${fmt(r.ratio)}× | ${fmt(r.cpu, 3)} = ${fmt(r.replicaCpu, 3)} + ${fmt(r.pgCpu, 3)} | ${fmt(r.perCore, 0)} | ${fmt(r.claims.p50, 2)} / ${fmt(r.claims.p99, 2)} (${r.claims.n}) |`),
    ].join('\n');

    // ---- 3: failover
    const database = (await createDatabase(cluster.port, 'failover')).url;
    const pgVersion = path.basename(path.dirname(postgresBinDir()));
    for (let n = 0; n < 3; n++) live.push(await startReplica(bundle, database));
    const takeovers: number[] = [];
    for (let i = 0; i < TAKEOVERS; i++) {
      const leader = await leaderOf(live);
      const killedAt = Date.now();
      leader.proc.kill('SIGKILL');
      live.splice(live.indexOf(leader), 1);
      await leaderOf(live);
      takeovers.push(Date.now() - killedAt);
      live.push(await startReplica(bundle, database));
    }
    const db = new pg.Client({ connectionString: database });
    await db.connect();
    const policy = await keepAliveClient(live[0]!.url, TOKEN).call<{ id: string }>('POST', '/v1/policies', {
      name: 'every-minute', selector: { vms: [live[0]!.vmIds[0]!] }, schedule: '* * * * *', mode: 'memory', retention: { keepLast: 1000 },
    });
    if (policy.status !== 201) throw new Error(`policy: ${policy.status} ${JSON.stringify(policy.body)}`);
    const runStart = async (slot: number): Promise<number> => {
      for (;;) {
        const rows = (await db.query(`SELECT started_at FROM policy_runs WHERE policy_id = $1 AND scheduled_for = $2`, [policy.body.id, new Date(slot).toISOString()])).rows as Array<{ started_at: string }>;
        if (rows[0]) return Date.parse(rows[0].started_at);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const nextSlot = () => Math.ceil((Date.now() + 1500) / 60_000) * 60_000;
    const lateness: number[] = [];
    const failovers: Array<{ killToRun: number; slotToRun: number }> = [];
    for (let i = 0; i < POLICY_TRIALS; i++) {
      // A slot with nobody killed: the baseline lateness.
      const calm = nextSlot();
      lateness.push((await runStart(calm)) - calm);
      // The next one: the leader dies one second before it.
      const slot = nextSlot();
      const leader = await leaderOf(live);
      await new Promise((r) => setTimeout(r, Math.max(0, slot - 1000 - Date.now())));
      const killedAt = Date.now();
      leader.proc.kill('SIGKILL');
      live.splice(live.indexOf(leader), 1);
      const started = await runStart(slot);
      failovers.push({ killToRun: started - killedAt, slotToRun: started - slot });
      live.push(await startReplica(bundle, database));
    }
    await db.end();
    const t = summarize(takeovers);
    const failoverMs = median(failovers.map((f) => f.killToRun));
    const summary = {
      bench: 'scale-out',
      jobsPerSecond: Object.fromEntries(rows.map((r) => [r.c.name, Math.round(r.rate)])),
      ratioVsSqlite: Object.fromEntries(rows.map((r) => [r.c.name, Number(r.ratio.toFixed(2))])),
      jobsPerSecondPerCore: Object.fromEntries(rows.map((r) => [r.c.name, Math.round(r.perCore)])),
      claimP99Ms: Object.fromEntries(rows.map((r) => [r.c.name, Number(r.claims.p99.toFixed(2))])),
      takeoverMs: { median: Math.round(median(takeovers)), max: Math.round(t.max) },
      policyFailoverMs: { killToRun: Math.round(failoverMs), baselineLatenessMs: Math.round(median(lateness)) },
    };
    const cpu = os.cpus().length;
    return {
      title: 'Scale-out: replicas on PostgreSQL vs one daemon on SQLite, zero-cost provider (`scale-out`)',
      markdown: [
        `Each replica is a child process running the real app and engine on the store the daemon opens for its database (bench/scale-out-child.ts), with a zero-cost in-memory provider (${VMS} VMs, target concurrency ${CONCURRENCY} over all replicas), worker poll 50 ms, logging off. The client submits ${JOBS} creates (after a ${WARMUP}-job warm-up) over ${CONNECTIONS} kept-alive connections spread over the replicas, round robin over the VMs; a batch ends when the replicas together have finished every job (each counts its own \`finish\`). Fresh database per configuration and round; ${ROUNDS} rounds, the configurations' order rotating. PostgreSQL ${pgVersion} is a private cluster of the test lab on loopback (fsync off, as in the tests). This machine has ${cpu} cores shared with other work: the replicas, PostgreSQL and the client compete for them, so more replicas cannot add cores here — the "per core" column (jobs per CPU-second of replicas + PostgreSQL) is what each added core would carry.`,
        table,
        `Claim latency is the store's \`tryClaim\` from call to answer (won or lost), in the replicas that made it: with several replicas the claims of one target serialise on the database (a lost race answers null).`,
        `**Failover.** Three replicas on one database. Leader SIGKILLed → another replica reports \`snapvisor_cluster_leader 1\` (polled every 25 ms), ${TAKEOVERS} times: median **${fmt(median(takeovers), 0)} ms**, ${takeovers.map((x) => fmt(x, 0)).join(', ')} ms. An every-minute policy (jitter 0): a run's start after its slot with nobody killed (baseline) ${lateness.map((x) => fmt(x, 0)).join(', ')} ms; with the leader SIGKILLed 1 s before the slot, kill → the slot's run started on another replica: ${failovers.map((f) => `${fmt(f.killToRun, 0)} ms (slot → run ${fmt(f.slotToRun, 0)} ms)`).join('; ')}.`,
        '```json bench-summary\n' + JSON.stringify(summary) + '\n```',
      ].join('\n\n'),
    };
  } finally {
    for (const r of live) r.proc.kill('SIGKILL');
    await cluster.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
