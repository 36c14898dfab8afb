/**
 * VMware over vim25 SOAP against vcsim (test/labs/vcsim), with govmomi itself as the peer: the Go
 * program bench/govmomi/main.go on the same Debian library, built by the same script, doing the same
 * work in process. In one script:
 * (a) 50 create + remove snapshot cycles (memory=false, quiesce=false; remove with consolidate=true)
 *     on one VM: the adapter called directly (target ≤ 1.2 × govmomi) and through Snapvisor's REST API
 *     with ?wait= (target ≤ 1.6 ×), from a node:http client on one kept-alive connection
 *     (keepalive-client.ts; fetch's own CPU would be taken from the daemon on this 2-core machine).
 * (b) one inventory pass with snapshot trees of a vcsim with 1,000 VMs (200 of them with snapshots):
 *     the adapter's listVms, which carries every tree (one PropertyCollector pass), vs govmomi's
 *     ContainerView + RetrieveProperties; target ≤ 1.2 ×.
 * (c) client start-up with the shipped WSDL in a fresh process (WSDL load, client, RetrieveServiceContent,
 *     Login) vs govmomi's NewClient + Login; and RSS of each side.
 * Sides alternate within every round so drift on this shared machine does not favour one of them.
 * Rounds: VMWARE_BENCH_ROUNDS (default 7; (a) and (c)), VMWARE_BENCH_INVENTORY_ROUNDS (default 7; (b)),
 * cycles per round: VMWARE_BENCH_CYCLES (default 50). Every ratio is reported as the median of the
 * per-round ratios with its spread (min–max), and as a machine-readable bench-summary line.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { markerForJob, type CallContext, type SnapshotProvider } from '../providers/contract.ts';
import vmwareFactory from '../providers/vmware/index.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';
import { api, startDaemon, until, type Daemon } from '../test/e2e/daemon.ts';
import { ensureVcsimBuilt, startVcsim, type VcsimLab } from '../test/labs/vcsim/lab.ts';
import { keepAliveClient, type KeepAliveClient } from './keepalive-client.ts';
import { ms, verdict, type JobBody } from './api-jobs.ts';
import type { BenchReport } from './run.ts';
import { fmt, median } from './stats.ts';

const ROUNDS = Number(process.env.VMWARE_BENCH_ROUNDS ?? 7);
const CYCLES = Number(process.env.VMWARE_BENCH_CYCLES ?? 50);
const INVENTORY_ROUNDS = Number(process.env.VMWARE_BENCH_INVENTORY_ROUNDS ?? 7);
const SEEDED_SNAPSHOTS = 200;
const VM = 'DC0_H0_VM0';
const TOKEN = 'vmware-bench-token-5e8d0b6a9f3c';
const TARGET = 'vc';

interface PeerOut { cyclesMs?: number; inventoryMs?: number; inventoryVms?: number; inventorySnapshots?: number; startupMs?: number; rssKb?: number; peakRssKb?: number }

const spread = (xs: readonly number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
const range = (xs: readonly number[]) => [Number(Math.min(...xs).toFixed(2)), Number(Math.max(...xs).toFixed(2))];
// Each direct cycle is a new job's first attempt (a fresh marker), as the daemon's worker tells the adapter.
const ctx = (): CallContext => ({ signal: new AbortController().signal, progress: () => {}, log: silentLogger(), firstAttempt: true });

function execJson<T>(file: string, args: string[], env: Record<string, string> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${path.basename(file)} failed: ${err.message}\n${stderr}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`${path.basename(file)}: no JSON line in ${JSON.stringify(stdout)}`));
      }
    });
  });
}

function labOptions(lab: VcsimLab): Record<string, unknown> {
  return { url: lab.sdkUrl, username: lab.username, password: lab.password, ca: lab.caPem };
}

async function peer(bin: string, lab: VcsimLab, caFile: string, args: string[]): Promise<PeerOut> {
  return execJson<PeerOut>(bin, ['-url', lab.sdkUrl, '-user', lab.username, '-ca', caFile, ...args], { VCSIM_PASSWORD: lab.password });
}

async function daemonMetrics(d: Daemon): Promise<string> {
  const res = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (!res.ok) throw new Error(`/metrics: HTTP ${res.status}`);
  return res.text();
}

/** Sum of `<metric>_sum` over the series whose labels include `labels`. */
function seriesSum(text: string, metric: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}_sum{`)) continue;
    const close = line.lastIndexOf('}');
    const set = line.slice(line.indexOf('{') + 1, close);
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) total += Number(line.slice(close + 1).trim());
  }
  return total;
}

/** Mean milliseconds per create + remove cycle spent in the daemon's HTTP handling and in its provider calls, between two /metrics reads. */
function breakdown(before: string, after: string, cycles: number): { httpMs: number; providerMs: number } {
  const delta = (metric: string, labels: Record<string, string>) => seriesSum(after, metric, labels) - seriesSum(before, metric, labels);
  const http = 'snapvisor_http_request_duration_seconds';
  const provider = 'snapvisor_provider_call_duration_seconds';
  const httpS = delta(http, { method: 'POST', route: '/v1/vms/:vmId/snapshots' }) + delta(http, { method: 'DELETE', route: '/v1/snapshots/:snapshotId' });
  const providerS = delta(provider, { operation: 'createSnapshot' }) + delta(provider, { operation: 'deleteSnapshot' });
  return { httpMs: (httpS * 1000) / cycles, providerMs: (providerS * 1000) / cycles };
}

function rssMbOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-vmware-bench-'));
  const labs: VcsimLab[] = [];
  const providers: SnapshotProvider[] = [];
  const clients: KeepAliveClient[] = [];
  let daemon: Daemon | undefined;
  try {
    const { govmomiBench } = await ensureVcsimBuilt();
    const small = await startVcsim({ dir: path.join(dir, 'small') });
    labs.push(small);
    const smallCa = path.join(dir, 'small-ca.pem');
    writeFileSync(smallCa, small.caPem);

    // (a) ---------------------------------------------------------------------------------------
    const direct = vmwareFactory('bench', labOptions(small), { log: silentLogger() });
    providers.push(direct);
    const vm = (await direct.listVms(ctx())).find((v) => v.name === VM);
    if (!vm) throw new Error(`vcsim has no VM ${VM}`);
    let seq = 0;
    const adapterCycles = async (n: number) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const s = await direct.createSnapshot(vm.providerVmId, { name: `direct-${++seq}`, description: '', mode: 'crash', marker: markerForJob(`bench-${seq}`) }, ctx());
        await direct.deleteSnapshot(vm.providerVmId, s.providerRef, { children: false }, ctx());
      }
      return ms(t0);
    };

    daemon = await startBenchDaemon(dir, small);
    const d = daemon;
    const vmId = await until(
      'first inventory sync',
      async () => (await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', `/v1/vms?target=${TARGET}&limit=50`)).body.items.find((v) => v.name === VM)?.id,
      60_000,
      100,
    );
    const rest = keepAliveClient(d.url, TOKEN);
    clients.push(rest);
    const restCycles = async (n: number) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const created = await rest.call<JobBody>('POST', `/v1/vms/${vmId}/snapshots?wait=60`, { name: `rest-${++seq}`, mode: 'crash' });
        if (created.status !== 200 || created.body.state !== 'succeeded' || !created.body.result?.snapshotId) throw new Error(`create: ${JSON.stringify(created)}`);
        const deleted = await rest.call<JobBody>('DELETE', `/v1/snapshots/${created.body.result.snapshotId}?wait=60`);
        if (deleted.status !== 200 || deleted.body.state !== 'succeeded') throw new Error(`delete: ${JSON.stringify(deleted)}`);
      }
      return ms(t0);
    };
    const govmomiCycles = async (n: number) => {
      const out = await peer(govmomiBench, small, smallCa, ['-what', 'a', '-cycles', String(n), '-vm', VM]);
      if (out.cyclesMs === undefined) throw new Error('govmomi peer printed no cyclesMs');
      return out;
    };
    // Warm-up: sessions, WSDL, the daemon's first jobs, Go's first run.
    // node-soap's code paths are still being compiled for the first few hundred calls.
    await adapterCycles(20);
    await restCycles(10);
    await govmomiCycles(10);

    const metricsBefore = await daemonMetrics(d);
    const rowsA: Array<{ round: number; govmomi: number; adapter: number; rest: number }> = [];
    let peerRssKb = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const order = [0, 1, 2].map((i) => (i + round) % 3);
      const r = { round, govmomi: NaN, adapter: NaN, rest: NaN };
      for (const side of order) {
        if (side === 0) {
          const out = await govmomiCycles(CYCLES);
          r.govmomi = out.cyclesMs!;
          peerRssKb = Math.max(peerRssKb, out.peakRssKb ?? 0);
        } else if (side === 1) r.adapter = await adapterCycles(CYCLES);
        else r.rest = await restCycles(CYCLES);
      }
      rowsA.push(r);
    }
    const inside = breakdown(metricsBefore, await daemonMetrics(d), ROUNDS * CYCLES);
    const daemonRssMb = rssMbOf(d.proc.pid!);
    const adapterRatios = rowsA.map((r) => r.adapter / r.govmomi);
    const restRatios = rowsA.map((r) => r.rest / r.govmomi);
    const ratioAdapter = median(adapterRatios);
    const ratioRest = median(restRatios);

    // (c) --------------------------------------------------------------------------------------
    const startup: Array<{ snapvisor: { coldMs: number; warmMs: number; rssMb: number }; govmomi: number }> = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const sv = await execJson<{ coldMs: number; warmMs: number; rssMb: number }>(
        process.execPath,
        ['--import', 'tsx', path.join(import.meta.dirname, 'vmware-startup-child.ts')],
        { VMWARE_BENCH_LAB: JSON.stringify(labOptions(small)) },
      );
      const go = await peer(govmomiBench, small, smallCa, ['-what', 'c']);
      startup.push({ snapvisor: sv, govmomi: go.startupMs ?? NaN });
    }

    // (b) --------------------------------------------------------------------------------------
    const big = await startVcsim({ dir: path.join(dir, 'big'), vms: 500 });
    labs.push(big);
    const bigCa = path.join(dir, 'big-ca.pem');
    writeFileSync(bigCa, big.caPem);
    // Seed (untimed) through the peer: SEEDED_SNAPSHOTS VMs get a snapshot, so trees are carried.
    const seeded = await peer(govmomiBench, big, bigCa, ['-what', 'b', '-seed-snapshots', String(SEEDED_SNAPSHOTS)]);
    const inv = vmwareFactory('bench-big', labOptions(big), { log: silentLogger() });
    providers.push(inv);
    const adapterInventory = async () => {
      const t0 = performance.now();
      const vms = await inv.listVms(ctx());
      const took = ms(t0);
      const snapshots = vms.reduce((n, v) => n + (v.snapshots?.length ?? 0), 0);
      if (vms.length !== big.vmCount) throw new Error(`adapter listed ${vms.length} VMs, vcsim has ${big.vmCount}`);
      if (vms.some((v) => v.snapshots === undefined)) throw new Error('the inventory pass did not carry snapshot lists');
      return { ms: took, vms: vms.length, snapshots };
    };
    await adapterInventory();
    await peer(govmomiBench, big, bigCa, ['-what', 'b']);
    const rowsB: Array<{ round: number; govmomi: number; adapter: number; vms: number; snapshots: number; goSnapshots: number }> = [];
    for (let round = 1; round <= INVENTORY_ROUNDS; round++) {
      let go: PeerOut;
      let ad: Awaited<ReturnType<typeof adapterInventory>>;
      if (round % 2) {
        go = await peer(govmomiBench, big, bigCa, ['-what', 'b']);
        ad = await adapterInventory();
      } else {
        ad = await adapterInventory();
        go = await peer(govmomiBench, big, bigCa, ['-what', 'b']);
      }
      rowsB.push({ round, govmomi: go.inventoryMs ?? NaN, adapter: ad.ms, vms: ad.vms, snapshots: ad.snapshots, goSnapshots: go.inventorySnapshots ?? NaN });
    }
    const inventoryRatios = rowsB.map((r) => r.adapter / r.govmomi);
    const ratioB = median(inventoryRatios);
    const summary = {
      bench: 'vmware',
      rounds: { a: ROUNDS, b: INVENTORY_ROUNDS },
      adapterRatio: Number(ratioAdapter.toFixed(2)),
      adapterRange: range(adapterRatios),
      adapterMet: ratioAdapter <= 1.2,
      restRatio: Number(ratioRest.toFixed(2)),
      restRange: range(restRatios),
      restMet: ratioRest <= 1.6,
      inventoryRatio: Number(ratioB.toFixed(2)),
      inventoryRange: range(inventoryRatios),
      inventoryMet: ratioB <= 1.2,
      startupColdMs: 0,
      startupWarmMs: 0,
      govmomiStartupMs: 0,
    };
    const benchRssMb = process.memoryUsage().rss / 2 ** 20;

    const tableA = [
      `| round | govmomi ${CYCLES} cycles (ms) | adapter direct (ms) | ratio | REST API with ?wait= (ms) | ratio |`,
      '|---|---|---|---|---|---|',
      ...rowsA.map((r) => `| ${r.round} | ${fmt(r.govmomi, 0)} | ${fmt(r.adapter, 0)} | ${fmt(r.adapter / r.govmomi)} | ${fmt(r.rest, 0)} | ${fmt(r.rest / r.govmomi)} |`),
    ].join('\n');
    const tableB = [
      '| round | govmomi inventory (ms) | adapter listVms with trees (ms) | ratio | VMs | snapshots (adapter / govmomi) |',
      '|---|---|---|---|---|---|',
      ...rowsB.map((r) => `| ${r.round} | ${fmt(r.govmomi, 0)} | ${fmt(r.adapter, 0)} | ${fmt(r.adapter / r.govmomi)} | ${r.vms} | ${r.snapshots} / ${r.goSnapshots} |`),
    ].join('\n');
    const tableC = [
      '| round | Snapvisor first client in a fresh process: WSDL + client + login (ms) | second client, WSDL cached (ms) | govmomi NewClient + login (ms) |',
      '|---|---|---|---|',
      ...startup.map((s, i) => `| ${i + 1} | ${fmt(s.snapvisor.coldMs, 0)} | ${fmt(s.snapvisor.warmMs, 0)} | ${fmt(s.govmomi, 0)} |`),
    ].join('\n');

    return {
      title: 'VMware vim25 SOAP against vcsim: Snapvisor vs govmomi',
      markdown: [
        `Lab: test/labs/vcsim (vcsim from Debian's govmomi 0.24.2, TLS with a pinned per-lab certificate). Peer: bench/govmomi/main.go on the same library, built by test/labs/vcsim/build.sh, timing in process (its process start and login excluded from (a) and (b)). Snapvisor's daemon is the real one (\`scripts/start.mjs\`), one \`kind: vmware\` target, periodic sync off, worker poll 50 ms.`,
        `### (a) ${CYCLES} create + remove snapshot cycles on ${VM} (${ROUNDS} rounds, sides rotated, after a warm-up)`,
        tableA,
        `**Median ratio adapter/govmomi ${fmt(ratioAdapter)}** (rounds ${spread(adapterRatios)}; target ≤ 1.2: ${verdict(ratioAdapter <= 1.2)}); **REST API/govmomi ${fmt(ratioRest)}** (rounds ${spread(restRatios)}; target ≤ 1.6: ${verdict(ratioRest <= 1.6)}).`,
        `Where a REST cycle's time goes, from the daemon's own /metrics over the measured rounds (${ROUNDS * CYCLES} cycles; mean per cycle of two jobs): client-observed ${fmt(median(rowsA.map((r) => r.rest)) / CYCLES)} ms; inside the daemon's HTTP handling ${fmt(inside.httpMs)} ms, of which the adapter's vim25 calls ${fmt(inside.providerMs)} ms and the rest — request parsing and validation, the job's persistence (submit, claim, record, finish), the worker's hand-off, the answer — ${fmt(inside.httpMs - inside.providerMs)} ms; outside it (the client, loopback HTTP, the audit write after each answer, scheduling three processes on two cores) ${fmt(median(rowsA.map((r) => r.rest)) / CYCLES - inside.httpMs)} ms. The adapter called directly takes ${fmt(median(rowsA.map((r) => r.adapter)) / CYCLES)} ms per cycle.`,
        `### (b) Inventory with snapshot trees: ${big.vmCount} VMs, ${seeded.inventorySnapshots ?? '?'} snapshots (${INVENTORY_ROUNDS} rounds, alternating)`,
        tableB,
        `**Median ratio adapter/govmomi ${fmt(ratioB)}** (rounds ${spread(inventoryRatios)}; target ≤ 1.2: ${verdict(ratioB <= 1.2)}). One PropertyCollector pass for every VM and its tree; the engine's sync records the carried trees instead of one listSnapshots per VM.`,
        '### (c) Client start-up with the shipped WSDL',
        tableC,
        `Median: Snapvisor cold ${fmt(median(startup.map((s) => s.snapvisor.coldMs)), 0)} ms, warm ${fmt(median(startup.map((s) => s.snapvisor.warmMs)), 0)} ms; govmomi ${fmt(median(startup.map((s) => s.govmomi)), 0)} ms.`,
        `RSS: the daemon after (a) ${fmt(daemonRssMb, 0)} MB; the startup child ${fmt(median(startup.map((s) => s.snapvisor.rssMb)), 0)} MB (Node + tsx + the adapter); this bench process after (b) ${fmt(benchRssMb, 0)} MB; the govmomi peer at most ${fmt(peerRssKb / 1024, 0)} MB.`,
        '```json bench-summary\n' +
          JSON.stringify({
            ...summary,
            startupColdMs: Math.round(median(startup.map((s) => s.snapvisor.coldMs))),
            startupWarmMs: Math.round(median(startup.map((s) => s.snapvisor.warmMs))),
            govmomiStartupMs: Math.round(median(startup.map((s) => s.govmomi))),
          }) +
          '\n```',
      ].join('\n\n'),
    };
  } finally {
    for (const c of clients) c.close();
    await Promise.allSettled(providers.map((p) => p.close()));
    if (daemon) await daemon.kill('SIGTERM');
    await Promise.allSettled(labs.map((l) => l.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startBenchDaemon(dir: string, lab: VcsimLab): Promise<Daemon> {
  const caFile = path.join(dir, 'daemon-ca.pem');
  writeFileSync(caFile, lab.caPem);
  const config = path.join(dir, 'snapvisor.yaml');
  writeFileSync(
    config,
    [
      'tokens:',
      '  - { name: bench, value: env:VMWARE_BENCH_TOKEN, scopes: [read, write, admin] }',
      `database: ${JSON.stringify(path.join(dir, 'snapvisor.db'))}`,
      'logLevel: info',
      'engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: 10 }',
      'targets:',
      `  - { name: ${TARGET}, kind: vmware, url: ${JSON.stringify(lab.sdkUrl)}, username: ${JSON.stringify(lab.username)}, password: env:VMWARE_BENCH_PASSWORD, ca: ${JSON.stringify(`file:${caFile}`)} }`,
      '',
    ].join('\n'),
  );
  return startDaemon({ cwd: dir, env: { SNAPVISOR_CONFIG: config, VMWARE_BENCH_TOKEN: TOKEN, VMWARE_BENCH_PASSWORD: lab.password }, timeoutMs: 120_000 });
}
