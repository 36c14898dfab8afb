/**
 * GET /v1/vms/{id}/snapshots?view=tree for a VM with 200 snapshots, through the whole daemon stack
 * (auth, engine, SQLite store, tree building, schema serialisation), against a bare Fastify route
 * returning the same JSON, in the same process, alternating, with autocannon. Target ratio ≥ 0.7.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { buildApp } from '../src/api/app.ts';
import { sha256Hex } from '../src/config/load.ts';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { VERSION } from '../src/version.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../test/fixtures/fake-provider.ts';
import type { BenchReport } from './run.ts';
import { fmt, median } from './stats.ts';

const SNAPSHOTS = 200;
const ROUNDS = 3;
const SECONDS = 5;
const CONNECTIONS = 10;

/** A realistic tree: a main chain with a side branch every 10 snapshots. */
function seedSnapshots() {
  const snaps: Array<{ ref: string; name: string; parentRef: string | null; description: string }> = [];
  let chainTip: string | null = null;
  for (let i = 0; i < SNAPSHOTS; i++) {
    const ref = `snap-${i}`;
    const branch = i % 10 === 9 && snaps.length > 2;
    const parentRef = branch ? snaps[snaps.length - 3]!.ref : chainTip;
    snaps.push({ ref, name: `nightly ${i}`, parentRef, description: `automated snapshot number ${i}` });
    if (!branch) chainTip = ref;
  }
  return { snaps, current: chainTip };
}

async function cannon(url: string, token?: string) {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.average, p99: result.latency.p99 };
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-bench-'));
  const { snaps, current } = seedSnapshots();
  const provider = createFakeProvider('bench', { vms: [{ id: 'vm-1', name: 'bench-vm', powerState: 'running', snapshots: snaps, currentRef: current }] });
  const store = openStore(path.join(dir, 'bench.db'));
  const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('bench'), provider }]), log: silentLogger(), settings: { syncIntervalMs: 0 } });
  await engine.start();
  const token = 'bench-token';
  const app = await buildApp({ engine, auth: { tokens: [{ name: 'bench', sha256: sha256Hex(token), scopes: ['read'] }] }, logger: false, version: VERSION });
  const appUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  // The same daemon with its listing cache off: every request queries, builds and serialises.
  const coldApp = await buildApp({ engine, auth: { tokens: [{ name: 'bench', sha256: sha256Hex(token), scopes: ['read'] }] }, logger: false, version: VERSION, listingCacheBytes: 0 });
  const coldUrl = await coldApp.listen({ host: '127.0.0.1', port: 0 });
  const vm = (await engine.listVms({ limit: 1 })).items[0]!;
  const route = `${appUrl}/v1/vms/${vm.id}/snapshots?view=tree`;
  const body = (await (await fetch(route, { headers: { authorization: `Bearer ${token}` } })).json()) as { roots: unknown[]; maxDepth: number };
  if (!Array.isArray(body.roots) || body.roots.length === 0) throw new Error('tree endpoint returned no tree');

  const bare = Fastify({ logger: false });
  bare.get('/tree', async () => body);
  const bareUrl = `${await bare.listen({ host: '127.0.0.1', port: 0 })}/tree`;
  const bytes = (await (await fetch(bareUrl)).text()).length;

  const coldRoute = route.replace(appUrl, coldUrl);
  const rows: Array<{ round: number; base: number; snap: number; cold: number; baseP99: number; snapP99: number; coldP99: number; ratio: number; coldRatio: number }> = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Rotate which goes first, so warm-up and drift do not favour one side.
    const order = [() => cannon(bareUrl), () => cannon(route, token), () => cannon(coldRoute, token)];
    const results: Array<{ rps: number; p99: number }> = [];
    for (let i = 0; i < order.length; i++) {
      const k = (i + round) % order.length;
      results[k] = await order[k]!();
    }
    const [base, snap, cold] = results as [{ rps: number; p99: number }, { rps: number; p99: number }, { rps: number; p99: number }];
    rows.push({ round, base: base.rps, snap: snap.rps, cold: cold.rps, baseP99: base.p99, snapP99: snap.p99, coldP99: cold.p99, ratio: snap.rps / base.rps, coldRatio: cold.rps / base.rps });
  }
  await app.close();
  await coldApp.close();
  await bare.close();
  await engine.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });

  const ratio = median(rows.map((r) => r.ratio));
  const coldRatio = median(rows.map((r) => r.coldRatio));
  const table = [
    '| round | bare Fastify req/s (p99 ms) | Snapvisor req/s (p99 ms) | ratio | Snapvisor, listing cache off, req/s (p99 ms) | ratio |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.round} | ${fmt(r.base, 0)} (${r.baseP99}) | ${fmt(r.snap, 0)} (${r.snapP99}) | ${fmt(r.ratio)} | ${fmt(r.cold, 0)} (${r.coldP99}) | ${fmt(r.coldRatio)} |`),
  ].join('\n');
  return {
    title: 'Snapshot tree over HTTP (200 snapshots) vs a bare Fastify route',
    markdown: `Tree of ${SNAPSHOTS} snapshots (max depth ${body.maxDepth}), ${bytes} bytes of JSON; autocannon ${CONNECTIONS} connections × ${SECONDS} s, ${ROUNDS} alternating rounds, both servers in one process. The bare route returns the same JSON object with no auth, no store and no schema (it runs JSON.stringify per request). Snapvisor authenticates, reads the VM's snapshot revision from SQLite and, while the tree is unchanged, sends the body cached under that revision (ETag); with the cache off it queries the store, builds the tree and serialises it with the route's schema on every request.\n\n${table}\n\n**Median ratio ${fmt(ratio)}** (target ≥ 0.7: ${ratio >= 0.7 ? 'met' : 'NOT met'}); with the listing cache off ${fmt(coldRatio)} — the cost of the first read after every change.`,
  };
}
