/**
 * Store at scale: 10,000 VMs and 200,000 snapshots written by the real sync path, then, in a fresh
 * process as after a restart: start-up to ready, the tree of one VM and a filtered VM list (p99),
 * and RSS. Targets: p99 < 5 ms, ready < 1 s, RSS < 200 MB. The baseline for each query is the
 * same rows read by hand-written SQL on a read-only connection in the same process, interleaved.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../test/fixtures/fake-provider.ts';
import type { BenchReport } from './run.ts';
import { fmt } from './stats.ts';

export const VMS = 10_000;
export const PER_VM = 20;

export function seedVms() {
  return Array.from({ length: VMS }, (_, i) => {
    const snapshots: Array<{ ref: string; name: string; parentRef: string | null }> = [];
    for (let j = 0; j < PER_VM; j++) {
      // A chain of 15 with a branch of 5 off its 10th snapshot.
      const parentRef = j === 0 ? null : j === 15 ? `s${i}-9` : `s${i}-${j - 1}`;
      snapshots.push({ ref: `s${i}-${j}`, name: `daily ${j}`, parentRef });
    }
    return { id: `vm-${i}`, name: `vm-${String(i).padStart(5, '0')}`, powerState: 'running' as const, snapshots, currentRef: `s${i}-14` };
  });
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-scale-'));
  const db = path.join(dir, 'scale.db');
  const t0 = performance.now();
  const provider = createFakeProvider('scale', { vms: seedVms() });
  const store = openStore(db);
  const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('scale'), provider }]), log: silentLogger(), settings: { syncIntervalMs: 0 } });
  await engine.start();
  const seedSeconds = (performance.now() - t0) / 1000;
  const check = await engine.listVms({ limit: 1, target: 'scale' });
  if (check.items.length === 0) throw new Error('seeding produced no VMs');
  await engine.stop();
  store.close();

  // The restarted daemon runs bundled, as `npm start` runs it (no TypeScript loader in memory).
  // Inside the repo, so its external packages resolve from node_modules.
  const child = fileURLToPath(new URL('../.build/bench-store-scale-child.mjs', import.meta.url));
  await build({ entryPoints: [fileURLToPath(new URL('./store-scale-child.ts', import.meta.url))], outfile: child, bundle: true, platform: 'node', target: 'node20', format: 'esm', packages: 'external', logLevel: 'error' });
  const spawnedAt = performance.now();
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', child, db], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    p.stdout.setEncoding('utf8').on('data', (c: string) => (text += c));
    p.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`child exited ${code}`))));
  });
  const r = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
  rmSync(dir, { recursive: true, force: true });

  const ok = (v: boolean) => (v ? 'met' : 'NOT met');
  const table = [
    '| measure | value | baseline (same process) | target |',
    '|---|---|---|---|',
    `| tree of one VM (20 snapshots), p50 / p99 | ${fmt(r.tree.p50)} / ${fmt(r.tree.p99)} ms | raw SQL p99 ${fmt(r.treeBaseline.p99)} ms | p99 < 5 ms: ${ok(r.tree.p99 < 5)} |`,
    `| VM list, target + name filter, 50 per page, p50 / p99 | ${fmt(r.list.p50)} / ${fmt(r.list.p99)} ms | raw SQL p99 ${fmt(r.listBaseline.p99)} ms | p99 < 5 ms: ${ok(r.list.p99 < 5)} |`,
    `| open store + engine + API listening (in process) | ${fmt(r.readyInProcessMs, 0)} ms | | < 1 s: ${ok(r.readyInProcessMs < 1000)} |`,
    `| process spawn → /readyz 200 (Node start, module loading, the same) | ${fmt(r.readyFromSpawnMs ?? (performance.now() - spawnedAt), 0)} ms | | |`,
    `| RSS after the queries | ${fmt(r.rssMb, 0)} MB | | < 200 MB: ${ok(r.rssMb < 200)} |`,
    `| … after a full GC: RSS / V8 heap used / heap total / external | ${r.memory.rssMb} / ${r.memory.heapUsedMb} / ${r.memory.heapTotalMb} / ${r.memory.externalMb} MB | | |`,
  ].join('\n');
  return {
    title: `Store scale: ${VMS.toLocaleString('en')} VMs, ${(VMS * PER_VM).toLocaleString('en')} snapshots`,
    markdown: `Seeded through the real sync path (fake provider → reconcile → SQLite) in ${fmt(seedSeconds, 1)} s. Queries go through the engine API (what the HTTP routes call) in a fresh process that opened the database as after a restart; ${r.tree.n} tree queries on random VMs, ${r.list.n} filtered lists.\n\n${table}\n\n\`\`\`json bench-summary\n${JSON.stringify({
      bench: 'store-scale',
      treeP99Ms: Number(r.tree.p99.toFixed(2)),
      listP99Ms: Number(r.list.p99.toFixed(2)),
      readyInProcessMs: Math.round(r.readyInProcessMs),
      readyFromSpawnMs: Math.round(r.readyFromSpawnMs ?? performance.now() - spawnedAt),
      rssMb: Math.round(r.rssMb),
      met: { treeP99: r.tree.p99 < 5, listP99: r.list.p99 < 5, ready: r.readyInProcessMs < 1000, rss: r.rssMb < 200 },
    })}\n\`\`\``,
  };
}

export interface ChildResult {
  tree: { p50: number; p99: number; n: number };
  treeBaseline: { p99: number };
  list: { p50: number; p99: number; n: number };
  listBaseline: { p99: number };
  readyInProcessMs: number;
  readyFromSpawnMs?: number;
  rssMb: number;
  memory: { rssMb: number; heapUsedMb: number; heapTotalMb: number; externalMb: number };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stderr.write('run it with: npm run bench -- store-scale\n');
}
