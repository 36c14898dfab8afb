/**
 * Drift of one large target, as the engine computes it after every inventory pass and for GET
 * /v1/drift: 10,000 VMs × 20 snapshots (200,000 rows in an SQLite file; 10 % made outside Snapvisor,
 * 2 % gone) read from the store and through computeDrift. Target (ours): < 1 s per pass, so the check
 * adds little to a pass that lists 10,000 VMs anyway. Median of 5 runs after one warm-up; RSS growth
 * reported beside it. Baseline, same process, alternating: the same rows (the target's VMs, its
 * snapshots, its jobs) read with bare better-sqlite3 statements on a second connection, nothing
 * built from them: what reading the data alone costs.
 */
import Database from 'better-sqlite3';
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
  const file = path.join(dir, 'snapvisor.db');
  const store = openStore(file);
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
    const bare = new Database(file, { readonly: true });
    const reads = [
      bare.prepare('SELECT * FROM vms WHERE target_id = ?'),
      bare.prepare(`SELECT s.id, s.vm_id, s.parent_id, s.name, s.owner, s.state, s.is_current, s.created_at, s.deleted_at
                      FROM vms v JOIN snapshots s ON s.vm_id = v.id WHERE v.target_id = ? AND (s.state = 'present' OR s.deleted_at >= '')`),
      bare.prepare(`SELECT id, kind, state, vm_id, snapshot_id, params, started_at FROM jobs WHERE target_id = ? AND started_at IS NOT NULL`),
    ];
    let rowsRead = 0;
    const readAll = () => {
      rowsRead = 0;
      for (const st of reads) rowsRead += (st.raw().all(target.id) as unknown[]).length;
    };
    readAll(); // warm-up
    const times: number[] = [];
    const baseline: number[] = [];
    let report = (await engine.drift({ target: 'lab' }))[0]!;
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      report = (await engine.drift({ target: 'lab' }))[0]!;
      times.push(performance.now() - t0);
      const t1 = performance.now();
      readAll();
      baseline.push(performance.now() - t1);
    }
    bare.close();
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
        timingRow(`baseline: the same ${rowsRead.toLocaleString('en')} rows read with bare statements`, baseline),
        `| **ratio** drift / baseline | | ${fmt(p50 / median(baseline))}× | |`,
        '',
        `RSS growth over the runs: ${fmt(rssGrowthMb, 0)} MB. Counts as seeded: ${ok ? 'yes' : '**no**'}. Target < 1 s: **${met ? 'met' : 'NOT met'}** (${fmt(p50 / 1000, 3)} s).`,
        '',
        '```json bench-summary',
        JSON.stringify({ bench: 'drift', medianMs: p50, baselineMs: median(baseline), ratio: p50 / median(baseline), rows: VMS * PER_VM, met }),
        '```',
      ].join('\n'),
    };
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
