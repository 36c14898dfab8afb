/**
 * Drift of one large target, as the engine computes it after every inventory pass and for GET
 * /v1/drift: 10,000 VMs × 20 snapshots (200,000 rows in an SQLite file; 10 % made outside Snapvisor,
 * 2 % gone) read from the store and through computeDrift. Target (ours): < 1 s per pass, so the check
 * adds little to a pass that lists 10,000 VMs anyway. Median of 5 runs after one warm-up; RSS growth
 * reported beside it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Snapshot, Vm } from '../src/domain/types.ts';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../test/fixtures/fake-provider.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, timingRow } from './stats.ts';

const VMS = 10_000;
const PER_VM = 20;
const RUNS = 5;

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-bench-drift-'));
  const store = openStore(path.join(dir, 'snapvisor.db'));
  try {
    const target = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
    const now = new Date().toISOString();
    const vms: Vm[] = [];
    for (let i = 0; i < VMS; i++) {
      vms.push({ id: `vm-${i}`, targetId: target.id, providerVmId: `p-${i}`, name: `vm-${String(i).padStart(5, '0')}`, powerState: 'running', rawPowerState: 'running', consolidationNeeded: i % 100 === 0, disks: null, firstSeenAt: now, lastSeenAt: now, goneAt: null });
    }
    await store.vms.apply({ inserts: vms, updates: [], gone: [] });
    let external = 0;
    let gone = 0;
    for (const vm of vms) {
      const snaps: Snapshot[] = [];
      for (let j = 0; j < PER_VM; j++) {
        const isExternal = j % 10 === 3;
        const isGone = j % 50 === 7 || (j === 17 && Number(vm.id.slice(3)) % 2 === 0);
        if (isExternal && !isGone) external++;
        if (isGone) gone++;
        snaps.push({
          id: `${vm.id}-s${j}`, vmId: vm.id, providerRef: `r${j}`, parentId: j === 0 ? null : `${vm.id}-s${j - 1}`, name: `nightly ${j}`, description: '',
          mode: 'memory', owner: isExternal ? 'external' : 'snapvisor', jobId: null, state: isGone ? 'gone' : 'present', current: j === PER_VM - 1, ready: true,
          progress: null, details: null, createdAt: now, firstSeenAt: now, deletedAt: isGone ? now : null, policyId: null,
        });
      }
      await store.snapshots.apply({ inserts: snaps, updates: [], gone: [] });
    }
    const engine = createEngine({ store, registry: fakeRegistry([{ spec: fakeSpec('lab'), provider: createFakeProvider('lab', { vms: [] }) }]), log: silentLogger(), settings: { syncIntervalMs: 0 } });
    const rssBefore = process.memoryUsage().rss;
    await engine.drift({ target: 'lab' }); // warm-up (statements prepared)
    const times: number[] = [];
    let report = (await engine.drift({ target: 'lab' }))[0]!;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      report = (await engine.drift({ target: 'lab' }))[0]!;
      times.push(performance.now() - t0);
    }
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    const ok = report.summary.createdOutside === external && report.summary.deletedOutside === gone && report.summary.consolidationNeeded === VMS / 100;
    const p50 = median(times);
    const met = p50 < 1000 && ok;
    return {
      title: 'Drift of one target (10,000 VMs × 20 snapshots)',
      markdown: [
        `Store-backed drift (engine.drift → SQLite reads → computeDrift) for one target of ${VMS.toLocaleString('en')} VMs × ${PER_VM} snapshots (${(VMS * PER_VM).toLocaleString('en')} rows): ${external.toLocaleString('en')} made outside, ${gone.toLocaleString('en')} gone without a job, ${VMS / 100} VMs flagged for consolidation. The engine does this once per target after each inventory pass.`,
        '',
        '| what | runs | median ms | min / max ms |',
        '|---|---|---|---|',
        timingRow('drift of the target', times),
        '',
        `RSS growth over the runs: ${fmt(rssGrowthMb, 0)} MB. Counts as seeded: ${ok ? 'yes' : '**no**'}. Target < 1 s: **${met ? 'met' : 'NOT met'}** (${fmt(p50 / 1000, 3)} s).`,
        '',
        '```json bench-summary',
        JSON.stringify({ bench: 'drift', medianMs: p50, rows: VMS * PER_VM, met }),
        '```',
      ].join('\n'),
    };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
