/**
 * The web console's first meaningful paint in real headless Chromium (Debian's, through
 * playwright-core), against the real daemon in process (store, engine, API, the built console at
 * /ui) holding 10,000 VMs, one of them with a 200-snapshot tree:
 *   - #/vms: from navigation start until the first page of VM rows is in the DOM and painted;
 *   - #/vms/<id>: until all 200 treeitems are.
 * Baseline, same process and browser, alternating with the console's runs: a bare Fastify route
 * serving the same rows / tree items already in the HTML (server-rendered, no script), measured to
 * the same condition. Each load gets a new browser context, so no run finds the previous one's cache.
 * Plus the size of what the browser downloads for the console (raw, and gzip -9 as a server sends it).
 * Targets (issue 14): each paint < 1 s on this machine; the console's assets < 150 kB gzipped.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import Fastify from 'fastify';
import type { Browser } from 'playwright-core';
import { buildApp } from '../src/api/app.ts';
import { sha256Hex } from '../src/config/load.ts';
import type { SnapshotTreeNode, VmView } from '../src/engine/api.ts';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { VERSION } from '../src/version.ts';
import { launchChromium } from '../test/e2e/browser.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger, type FakeVmSeed } from '../test/fixtures/fake-provider.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, percentile } from './stats.ts';
import { seedSnapshots } from './tree-api.ts';

const VMS = 10_000;
const SNAPSHOTS_PER_VM = 2;
const RUNS = Number(process.env.CONSOLE_PAINT_RUNS ?? 15);
const WARMUP = 1;
const TARGET_MS = 1000;
const TARGET_GZIP_BYTES = 150_000;
const LOAD_TIMEOUT_MS = 30_000;
const TOKEN = 'bench-console-token';
const TOKEN_KEY = 'snapvisor.token';

/** What counts as "the first page of rows" and "the tree": rows that link to a VM, tree items. */
const ROW_SELECTOR = 'table tbody tr a[href^="#/vms/"]';
const TREEITEM_SELECTOR = '[role="tree"] [role="treeitem"]';

interface Probe {
  /** performance.now() (ms since navigation start) when the condition first held. */
  domMs: number;
  /** … after the frame holding it: a requestAnimationFrame, then the task after it. */
  paintMs: number;
  /** Matching elements at that moment. */
  count: number;
  /** Elements in the whole document at that moment (what layout and style had to go through). */
  elements: number;
  /** Where the page's time went: each fetched resource's path and responseEnd (ms). */
  resources: Array<{ path: string; end: number }>;
}

/**
 * Installed before any page script: puts the token where the console restores it from, and watches
 * the DOM for the condition. The moment is taken in the page, from its own navigation start, so
 * nothing on the Node side (IPC, polling) is in the figure.
 */
function probeScript(selector: string, count: number): string {
  return `(() => {
  sessionStorage.setItem(${JSON.stringify(TOKEN_KEY)}, ${JSON.stringify(TOKEN)});
  const selector = ${JSON.stringify(selector)};
  const want = ${count};
  const check = () => {
    const n = document.querySelectorAll(selector).length;
    if (n < want) return;
    observer.disconnect();
    const domMs = performance.now();
    requestAnimationFrame(() => setTimeout(() => {
      const resources = performance.getEntriesByType('resource').map((e) => ({ path: new URL(e.name).pathname + new URL(e.name).search, end: e.responseEnd }));
      window.snapvisorBenchPainted({ domMs, paintMs: performance.now(), count: n, elements: document.getElementsByTagName('*').length, resources });
    }, 0));
  };
  const observer = new MutationObserver(check);
  observer.observe(document, { childList: true, subtree: true, attributes: true });
})();`;
}

interface Load extends Probe {
  /** API paths the page requested before the condition held (what the console fetched to paint). */
  apiRequests: string[];
}

/** One load in a new context (empty cache, empty sessionStorage), until the probe reports. */
async function load(browser: Browser, url: string, selector: string, count: number): Promise<Load> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const api: string[] = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname.startsWith('/v1/')) api.push(u.pathname + u.search);
    });
    let reported: (p: Probe) => void = () => {};
    const painted = new Promise<Probe>((resolve) => (reported = resolve));
    await page.exposeFunction('snapvisorBenchPainted', (p: Probe) => reported(p));
    await page.addInitScript({ content: probeScript(selector, count) });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${url}: fewer than ${count} of "${selector}" after ${LOAD_TIMEOUT_MS} ms`)), LOAD_TIMEOUT_MS);
    });
    try {
      await page.goto(url, { waitUntil: 'commit' });
      const probe = await Promise.race([painted, timeout]);
      return { ...probe, apiRequests: api.slice() };
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await context.close();
  }
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The VM list as a server would render it: the same columns, the same first page of rows. */
function vmsHtml(vms: VmView[]): string {
  const rows = vms.map((v) => `<tr><td><a href="#/vms/${encodeURIComponent(v.id)}">${escapeHtml(v.name)}</a></td><td>${escapeHtml(v.targetName)}</td><td>${v.powerState}</td><td>${v.snapshotCount}</td><td>${v.chainDepth}</td><td>${v.consolidationNeeded ? 'needed' : 'no'}</td></tr>`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>VMs</title></head><body><main><h1>VMs</h1><table><caption>VMs</caption><thead><tr><th>Name</th><th>Target</th><th>Power</th><th>Snapshots</th><th>Chain depth</th><th>Consolidation</th></tr></thead><tbody>${rows.join('')}</tbody></table></main></body></html>`;
}

/** The tree as a server would render it: nested lists of treeitems, the current one badged. */
function treeHtml(name: string, roots: SnapshotTreeNode[]): string {
  const item = (n: SnapshotTreeNode): string =>
    `<li role="treeitem" aria-expanded="true"${n.current ? ' data-current="true"' : ''}><span>${escapeHtml(n.name)}</span>${n.current ? ' <span>current</span>' : ''}${n.children.length > 0 ? `<ul role="group">${n.children.map(item).join('')}</ul>` : ''}</li>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(name)}</title></head><body><main><h1>${escapeHtml(name)}</h1><ul role="tree" aria-label="Snapshot tree">${roots.map(item).join('')}</ul></main></body></html>`;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function bundleSizes(dir: string) {
  const files = filesUnder(dir)
    .filter((f) => /\.(js|css|html)$/.test(f))
    .map((f) => {
      const body = readFileSync(f);
      return { file: path.relative(dir, f), raw: body.length, gzip: gzipSync(body, { level: 9 }).length };
    })
    .sort((a, b) => a.file.localeCompare(b.file));
  return { files, raw: files.reduce((s, f) => s + f.raw, 0), gzip: files.reduce((s, f) => s + f.gzip, 0) };
}

const TREE_VM = 'tree-200';

/** 9,999 VMs with a short chain each, and one with the 200-snapshot tree of the tree-api bench. */
function seedVms(): FakeVmSeed[] {
  const seeds: FakeVmSeed[] = [];
  for (let i = 0; i < VMS - 1; i++) {
    const snapshots = Array.from({ length: SNAPSHOTS_PER_VM }, (_, j) => ({ ref: `s${i}-${j}`, name: `daily ${j}`, parentRef: j === 0 ? null : `s${i}-${j - 1}` }));
    seeds.push({ id: `vm-${i}`, name: `vm-${String(i).padStart(5, '0')}`, powerState: i % 7 === 0 ? 'off' : 'running', snapshots });
  }
  const { snaps, current } = seedSnapshots();
  seeds.push({ id: 'vm-tree', name: TREE_VM, powerState: 'running', snapshots: snaps, currentRef: current });
  return seeds;
}

type Kind = 'consoleVms' | 'baseVms' | 'consoleTree' | 'baseTree' | 'candidateVms' | 'candidateTree';
/**
 * CONSOLE_PAINT_CANDIDATE=<folder of a console build>: a changed console, served by a second app
 * on the same engine, measured in the same rotation and reported against the current one.
 */
const CANDIDATE = process.env.CONSOLE_PAINT_CANDIDATE;

export async function run(): Promise<BenchReport> {
  const loadBefore = os.loadavg();
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-console-paint-'));
  const uiDir = await buildConsole();

  const t0 = performance.now();
  const provider = createFakeProvider('bench', { vms: seedVms() });
  const store = openStore(path.join(dir, 'bench.db'));
  const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('bench'), provider }]), log: silentLogger(), settings: { syncIntervalMs: 0 } });
  await engine.start();
  const seedSeconds = (performance.now() - t0) / 1000;
  const auth = { tokens: [{ name: 'bench', sha256: sha256Hex(TOKEN), scopes: ['read' as const, 'write' as const] }] };
  const app = await buildApp({ console: { dir: uiDir }, engine, auth, logger: false, version: VERSION });
  const appUrl = await app.listen({ host: '127.0.0.1', port: 0 });
  const candidate = CANDIDATE === undefined ? null : await buildApp({ console: { dir: CANDIDATE }, engine, auth, logger: false, version: VERSION });
  const candidateUrl = candidate === null ? null : await candidate.listen({ host: '127.0.0.1', port: 0 });

  // The store really holds them: counted through the API's own paging.
  let stored = 0;
  let treeVm: VmView | undefined;
  for (let cursor: string | null = ''; cursor !== null;) {
    const q = new URLSearchParams({ limit: '1000', ...(cursor === '' ? {} : { cursor }) });
    const res = await fetch(`${appUrl}/v1/vms?${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    if (!res.ok) throw new Error(`GET /v1/vms: ${res.status}`);
    const page = (await res.json()) as { items: VmView[]; next: string | null };
    stored += page.items.length;
    treeVm ??= page.items.find((v) => v.name === TREE_VM);
    cursor = page.next;
  }
  if (stored !== VMS) throw new Error(`the store holds ${stored} VMs, not ${VMS}`);
  if (!treeVm) throw new Error(`no VM named ${TREE_VM}`);
  const tree = await engine.snapshotTree(treeVm.id);
  const treeCount = (function count(ns: SnapshotTreeNode[]): number {
    return ns.reduce((s, n) => s + 1 + count(n.children), 0);
  })(tree.roots);
  if (treeCount !== 200) throw new Error(`the tree VM has ${treeCount} snapshots, not 200`);

  // What the daemon actually sends for the console's script to a browser that accepts compression.
  const index = await (await fetch(`${appUrl}/ui/`)).text();
  const scriptPath = /src="([^"]+\.js)"/.exec(index)?.[1];
  if (scriptPath === undefined) throw new Error('the console\'s index.html names no script');
  const scriptRes = await fetch(new URL(scriptPath, `${appUrl}/ui/`), { headers: { 'accept-encoding': 'gzip, deflate, br' } });
  await scriptRes.arrayBuffer();
  const servedEncoding = scriptRes.headers.get('content-encoding') ?? 'identity';

  const browser = await launchChromium();
  const consoleVmsUrl = `${appUrl}/ui/#/vms`;
  const consoleTreeUrl = `${appUrl}/ui/#/vms/${encodeURIComponent(treeVm.id)}`;
  // The console decides its page size; the baseline serves as many rows as it showed.
  const first = await load(browser, consoleVmsUrl, ROW_SELECTOR, 1);
  const firstPage = (await engine.listVms({ limit: first.count })).items;
  const bare = Fastify({ logger: false });
  const vmsPage = vmsHtml(firstPage);
  const treePage = treeHtml(treeVm.name, tree.roots);
  bare.get('/vms', async (_req, reply) => reply.type('text/html; charset=utf-8').send(vmsPage));
  bare.get('/tree', async (_req, reply) => reply.type('text/html; charset=utf-8').send(treePage));
  const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

  const runners: Partial<Record<Kind, () => Promise<Load>>> = {
    consoleVms: () => load(browser, consoleVmsUrl, ROW_SELECTOR, 1),
    baseVms: () => load(browser, `${bareUrl}/vms`, ROW_SELECTOR, 1),
    consoleTree: () => load(browser, consoleTreeUrl, TREEITEM_SELECTOR, treeCount),
    baseTree: () => load(browser, `${bareUrl}/tree`, TREEITEM_SELECTOR, treeCount),
  };
  if (candidateUrl !== null) {
    runners.candidateVms = () => load(browser, consoleVmsUrl.replace(appUrl, candidateUrl), ROW_SELECTOR, 1);
    runners.candidateTree = () => load(browser, consoleTreeUrl.replace(appUrl, candidateUrl), TREEITEM_SELECTOR, treeCount);
  }
  const KINDS = Object.keys(runners) as Kind[];
  const samples: Record<Kind, Load[]> = { consoleVms: [], baseVms: [], consoleTree: [], baseTree: [], candidateVms: [], candidateTree: [] };
  const started = performance.now();
  for (let round = 0; round < WARMUP + RUNS; round++) {
    // Rotate which goes first, so warm-up and drift favour none of them.
    for (let i = 0; i < KINDS.length; i++) {
      const kind = KINDS[(i + round) % KINDS.length]!;
      const result = await runners[kind]!();
      if (round >= WARMUP) samples[kind].push(result);
    }
  }
  const loopSeconds = (performance.now() - started) / 1000;
  const loadAfter = os.loadavg();
  await browser.close();
  await bare.close();
  await app.close();
  await candidate?.close();
  await engine.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });

  const bundle = bundleSizes(uiDir);
  return report({ samples, first, bundle, uiDir, servedEncoding, seedSeconds, loopSeconds, loadBefore, loadAfter, treeCount, maxDepth: tree.maxDepth });
}

interface Figures {
  samples: Record<Kind, Load[]>;
  first: Load;
  bundle: ReturnType<typeof bundleSizes>;
  uiDir: string;
  /** Content-Encoding of the console's script as the daemon serves it (identity: uncompressed). */
  servedEncoding: string;
  seedSeconds: number;
  loopSeconds: number;
  loadBefore: number[];
  loadAfter: number[];
  treeCount: number;
  maxDepth: number;
}

/** Paths as the report shows them: ids and cursors are noise. */
const readable = (p: string) => p.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>').replace(/cursor=[^&]+/, 'cursor=…');

function report(f: Figures): BenchReport {
  const paint = (k: Kind) => f.samples[k].map((s) => s.paintMs).sort((a, b) => a - b);
  const stat = (k: Kind) => ({ p50: percentile(paint(k), 50), p95: percentile(paint(k), 95), min: Math.min(...paint(k)), max: Math.max(...paint(k)) });
  const dom = (k: Kind) => median(f.samples[k].map((s) => s.domMs));
  const s = Object.fromEntries(Object.keys(f.samples).map((k) => [k, stat(k as Kind)])) as Record<Kind, ReturnType<typeof stat>>;
  const met = { vms: s.consoleVms.p95 < TARGET_MS, tree: s.consoleTree.p95 < TARGET_MS, bundle: f.bundle.gzip < TARGET_GZIP_BYTES };
  const verdict = (ok: boolean) => (ok ? 'met' : '**NOT met**');
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const row = (what: string, k: Kind, base: Kind | null) =>
    `| ${what} | ${f.samples[k].length} | ${fmt(median(f.samples[k].map((x) => x.elements)), 0)} | ${fmt(dom(k), 0)} | **${fmt(s[k].p50, 0)}** | ${fmt(s[k].p95, 0)} | ${fmt(s[k].min, 0)} / ${fmt(s[k].max, 0)} | ${base ? `${fmt(s[k].p50 / s[base].p50)} / ${fmt(s[k].p95 / s[base].p95)}` : ''} |`;
  const table = [
    '| page, condition | runs | elements in the page | DOM, median ms | painted p50 ms | p95 ms | min / max ms | × baseline p50 / p95 |',
    '|---|---|---|---|---|---|---|---|',
    row(`console \`/ui/#/vms\`, first row of ${f.first.count} in the DOM`, 'consoleVms', 'baseVms'),
    row(`baseline: the same ${f.first.count} rows server-rendered, no script`, 'baseVms', null),
    row(`console \`/ui/#/vms/<id>\`, all ${f.treeCount} treeitems in the DOM`, 'consoleTree', 'baseTree'),
    row(`baseline: the same ${f.treeCount} treeitems server-rendered, no script`, 'baseTree', null),
    ...(f.samples.candidateVms.length === 0 ? [] : [
      row('candidate console, VM list (× column: against the baseline)', 'candidateVms', 'baseVms'),
      row('candidate console, tree (× column: against the baseline)', 'candidateTree', 'baseTree'),
    ]),
  ].join('\n');
  const candidateNote = f.samples.candidateVms.length === 0 ? '' :
    `\n\nCandidate build \`${CANDIDATE}\` against the current console, p50 / p95: VM list ${fmt(s.candidateVms.p50 / s.consoleVms.p50)} / ${fmt(s.candidateVms.p95 / s.consoleVms.p95)}, tree ${fmt(s.candidateTree.p50 / s.consoleTree.p50)} / ${fmt(s.candidateTree.p95 / s.consoleTree.p95)} (below 1: the candidate paints sooner).`;

  // Where the console's time goes (medians over its runs): the page's fetches, by responseEnd.
  const phases = (k: Kind) => {
    const byPath = new Map<string, number[]>();
    for (const load of f.samples[k]) {
      for (const r of load.resources) {
        const key = readable(r.path.replace(/-[A-Za-z0-9]{8,}\.(js|css)$/, '-<hash>.$1'));
        byPath.set(key, [...(byPath.get(key) ?? []), r.end]);
      }
    }
    return [...byPath.entries()].map(([p, ends]) => `\`${p}\` ${fmt(median(ends), 0)} ms${ends.length === f.samples[k].length ? '' : ` (in ${ends.length} of ${f.samples[k].length} runs)`}`).join(', ');
  };
  const apiCalls = (k: Kind) => {
    const counts = new Map<string, number>();
    for (const load of f.samples[k]) for (const p of new Set(load.apiRequests.map(readable))) counts.set(p, (counts.get(p) ?? 0) + 1);
    return [...counts.entries()].map(([p, n]) => `\`${p}\`${n === f.samples[k].length ? '' : ` (${n} of ${f.samples[k].length} runs)`}`).join(', ');
  };
  const vmListCalls = Math.max(...f.samples.consoleVms.map((l) => l.apiRequests.filter((p) => /^\/v1\/vms(\?|$)/.test(p)).length));

  const kb = (n: number) => `${(n / 1000).toFixed(1)} kB`;
  const bundleTable = [
    '| file | raw | gzip -9 |',
    '|---|---|---|',
    ...f.bundle.files.map((x) => `| \`${x.file}\` | ${kb(x.raw)} | ${kb(x.gzip)} |`),
    `| **total** | ${kb(f.bundle.raw)} | **${kb(f.bundle.gzip)}** |`,
  ].join('\n');

  const summary = {
    bench: 'console-paint',
    vmsP50Ms: Math.round(s.consoleVms.p50),
    vmsP95Ms: Math.round(s.consoleVms.p95),
    vmsBaselineP50Ms: Math.round(s.baseVms.p50),
    vmsRatio: Number((s.consoleVms.p50 / s.baseVms.p50).toFixed(2)),
    treeP50Ms: Math.round(s.consoleTree.p50),
    treeP95Ms: Math.round(s.consoleTree.p95),
    treeBaselineP50Ms: Math.round(s.baseTree.p50),
    treeRatio: Number((s.consoleTree.p50 / s.baseTree.p50).toFixed(2)),
    gzipBytes: f.bundle.gzip,
    rawBytes: f.bundle.raw,
    loadAvg1m: Number(f.loadBefore[0]!.toFixed(2)),
    met,
  };
  return {
    title: 'Web console first paint in headless Chromium (10,000 VMs; a 200-snapshot tree) and bundle size',
    markdown: `Real daemon in process (SQLite store, engine, API, the built console served at \`/ui\`), ${VMS.toLocaleString('en')} VMs seeded through the fake provider's inventory and the engine's sync in ${fmt(f.seedSeconds, 1)} s and counted through \`GET /v1/vms\` paging; one of them (\`${TREE_VM}\`) has a ${f.treeCount}-snapshot tree (a chain with a branch every 10, max depth ${f.maxDepth}). Debian's Chromium, headless, through playwright-core; every load is a new browser context (empty cache), the token put in sessionStorage by an init script before the console's own script runs. The time is taken in the page from its navigation start: a MutationObserver installed before any page script notes when the condition first holds (**DOM**), then a requestAnimationFrame and the task after it (**painted**: the frame holding the rows has been produced). Baseline: a bare Fastify instance in the same process serving the same rows / tree items already in the HTML (no script, no stylesheet), to the same condition, alternating with the console's loads (order rotated each round; ${WARMUP} warm-up round discarded), ${RUNS} runs each, ${fmt(f.loopSeconds, 0)} s in all.

${table}

${candidateNote.trimStart()}${candidateNote === '' ? '' : '\n\n'}**VM list:** ${verdict(met.vms)} (target < ${TARGET_MS} ms, judged on p95: ${fmt(s.consoleVms.p95, 0)} ms; ${fmt(s.consoleVms.p50 / s.baseVms.p50)}× the server-rendered page at p50). **Tree:** ${verdict(met.tree)} (p95 ${fmt(s.consoleTree.p95, 0)} ms; ${fmt(s.consoleTree.p50 / s.baseTree.p50)}× at p50).

What the console fetched before the list was painted: ${apiCalls('consoleVms')} (${vmListCalls} request${vmListCalls === 1 ? '' : 's'} of \`/v1/vms\`); for the tree: ${apiCalls('consoleTree')}. Responses ended (median, ms from navigation start) — list: ${phases('consoleVms')}; tree: ${phases('consoleTree')}.

Bundle (\`${path.basename(f.uiDir)}\`: what a browser downloads for the console; gzip level 9 as a server would send it; kB = 1,000 bytes):

${bundleTable}

**Bundle:** ${verdict(met.bundle)} (target < ${kb(TARGET_GZIP_BYTES)} gzipped: ${kb(f.bundle.gzip)}). The daemon serves the script with \`Content-Encoding: ${f.servedEncoding}\` to a client that accepts gzip and br${f.servedEncoding === 'identity' ? ' (uncompressed: a browser downloads the raw size)' : ''}.

Machine load (1 / 5 / 15 min): ${la(f.loadBefore)} before, ${la(f.loadAfter)} after the loads; ${os.cpus().length} cores shared with other sessions.

\`\`\`json bench-summary
${JSON.stringify(summary)}
\`\`\``,
  };
}

/** The console as `npm run build:ui` builds it (scripts/build-ui.mjs); returns its folder. */
async function buildConsole(): Promise<string> {
  // A plain .mjs script, no declarations: imported by URL and typed here.
  const script = new URL('../scripts/build-ui.mjs', import.meta.url).href;
  const { buildUi } = (await import(script)) as { buildUi: () => Promise<string> };
  return buildUi();
}

