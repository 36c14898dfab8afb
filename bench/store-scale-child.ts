/**
 * The restarted daemon of the store-scale benchmark: opens the seeded database, starts engine and
 * API, waits for /readyz, runs the queries, prints one JSON line of results.
 */
import Database from 'better-sqlite3';
import { buildApp } from '../src/api/app.ts';
import { sha256Hex } from '../src/config/load.ts';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { VERSION } from '../src/version.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../test/fixtures/fake-provider.ts';
import type { ChildResult } from './store-scale.ts';
import { summarize } from './stats.ts';

const processStart = performance.timeOrigin;
const db = process.argv[2]!;
const t0 = performance.now();
const store = openStore(db);
// The target is configured but unreachable: a restart must not wait for a slow hypervisor.
const provider = createFakeProvider('scale', { vms: [{ id: 'empty', name: 'empty-vm' }], health: { reachable: false, message: 'bench: offline' } });
const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('scale'), provider }]), log: silentLogger(), settings: { syncIntervalMs: 0 } });
await engine.start({ waitForSync: false });
const token = 'scale-token';
const app = await buildApp({ engine, auth: { tokens: [{ name: 'b', sha256: sha256Hex(token), scopes: ['read'] }] }, logger: false, version: VERSION });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
let ready = false;
while (!ready) ready = (await fetch(`${url}/readyz`, { headers: { authorization: `Bearer ${token}` } })).status === 200;
const readyInProcessMs = performance.now() - t0;
const readyFromSpawnMs = Date.now() - processStart;

const ids: string[] = [];
let cursor: string | undefined;
do {
  const page = await engine.listVms({ limit: 500, target: 'scale', ...(cursor ? { cursor } : {}) });
  for (const vm of page.items) ids.push(vm.id);
  cursor = page.next ?? undefined;
} while (cursor && ids.length < 2000);

const time = async (fn: () => Promise<unknown>) => {
  const s = performance.now();
  await fn();
  return performance.now() - s;
};
const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
for (let i = 0; i < 300; i++) await engine.snapshotTree(pick());

const tree: number[] = [];
const list: number[] = [];
const treeBase: number[] = [];
const listBase: number[] = [];
for (let i = 0; i < 5000; i++) {
  tree.push(await time(() => engine.snapshotTree(pick())));
  if (i % 2 === 0) list.push(await time(() => engine.listVms({ limit: 50, target: 'scale', name: `vm-0${String(i % 1000).padStart(3, '0')}` })));
}
// The daemon's memory, before the baseline below opens a second connection of its own.
const rssMb = process.memoryUsage().rss / 2 ** 20;
const memory = memoryAfterGc();

// Baseline: the same rows read by hand-written SQL on a second, read-only connection.
const raw = new Database(db, { readonly: true });
const rawTree = raw.prepare("SELECT * FROM snapshots WHERE vm_id = ? AND state = 'present'");
const targetId = (raw.prepare("SELECT id FROM targets WHERE name = 'scale'").get() as { id: string }).id;
const rawList = raw.prepare('SELECT * FROM vms WHERE target_id = ? AND gone_at IS NULL AND name LIKE ? ORDER BY name, id LIMIT 50');
const sync = (fn: () => unknown) => {
  const s = performance.now();
  fn();
  return performance.now() - s;
};
for (let i = 0; i < 5000; i++) {
  treeBase.push(sync(() => rawTree.all(pick())));
  if (i % 2 === 0) listBase.push(sync(() => rawList.all(targetId, `vm-0${String(i % 1000).padStart(3, '0')}%`)));
}
raw.close();

function memoryAfterGc() {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round(n / 2 ** 20);
  return { rssMb: mb(m.rss), heapUsedMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external) };
}

const result: ChildResult = {
  tree: summarize(tree),
  treeBaseline: summarize(treeBase),
  list: summarize(list),
  listBaseline: summarize(listBase),
  readyInProcessMs,
  readyFromSpawnMs,
  rssMb,
  memory,
};
await app.close();
await engine.stop();
store.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
