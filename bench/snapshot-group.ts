/**
 * A snapshot group of 100 VMs across 3 targets (VBoxManage simulators with concurrency limits 2,
 * 4 and 8), through the real engine and VirtualBox adapter: the spread of the members' start times
 * against what the limits allow — a target with n members and limit L starts them in
 * ceil(n / L) waves, so its last start comes about (ceil(n / L) − 1) × the job time after its
 * first — against a baseline of the same 100 creates submitted one by one (engine.submit, one
 * awaited call each, as a client loop would). Alternating rounds on fresh labs. Not a timed test:
 * `npm run bench -- snapshot-group`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { registryOf } from '../providers/index.ts';
import { createVirtualBoxProvider } from '../providers/virtualbox/index.ts';
import type { Job } from '../src/domain/types.ts';
import { createEngine } from '../src/engine/engine.ts';
import { openStore } from '../src/store/index.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';
import { createVboxLab } from '../test/labs/vboxmanage-sim/lab.ts';
import type { BenchReport } from './run.ts';
import { fmt, median } from './stats.ts';

const VMS = Number(process.env.GROUP_BENCH_VMS ?? 100);
const ROUNDS = Number(process.env.GROUP_BENCH_ROUNDS ?? 2);
const TARGETS = [
  { name: 'vbox-a', limit: 2 },
  { name: 'vbox-b', limit: 4 },
  { name: 'vbox-c', limit: 8 },
];

interface TargetFigures {
  n: number;
  limit: number;
  waves: number;
  /** Median create job duration on the target (started → finished), ms. */
  jobMs: number;
  /** Last start − first start on the target, ms. */
  spreadMs: number;
  /** (waves − 1) × jobMs: the least spread the limit allows with this job time. */
  expectedMs: number;
}

interface RunFigures {
  /** From the first submit call to the last job stored, ms. */
  submitMs: number;
  /** First start − the first submit call, ms. */
  firstStartMs: number;
  /** Last start − first start over all members, ms. */
  spreadMs: number;
  /** Last finish − first submit call, ms. */
  totalMs: number;
  targets: Record<string, TargetFigures>;
}

async function once(kind: 'group' | 'one-by-one'): Promise<RunFigures> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-group-bench-'));
  const log = silentLogger();
  const store = openStore(path.join(dir, 'snapvisor.db'));
  const perTarget = TARGETS.map((t, i) => ({ ...t, vms: Array.from({ length: Math.floor(VMS / TARGETS.length) + (i < VMS % TARGETS.length ? 1 : 0) }, (_, k) => `${t.name}-vm${String(k).padStart(3, '0')}`) }));
  const labs = perTarget.map((t) => createVboxLab({ dir: path.join(dir, t.name), stepMs: 20, vms: t.vms.map((name) => ({ name, state: 'poweroff' as const })) }));
  const registry = registryOf(
    perTarget.map((t, i) => ({
      spec: { name: t.name, kind: 'virtualbox' as const, demo: false, concurrency: t.limit, options: {} },
      provider: createVirtualBoxProvider(t.name, { vboxmanage: labs[i]!.vboxmanage, commandTimeoutSec: 120 }, { log }),
    })),
  );
  const engine = createEngine({ store, registry, log, settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 3, backoff: { initialMs: 50, maxMs: 200 } } });
  try {
    await engine.start();
    const vms: Array<{ id: string; targetName: string }> = [];
    for (let cursor: string | undefined; ; ) {
      const page = await engine.listVms({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      vms.push(...page.items.map((v) => ({ id: v.id, targetName: v.targetName })));
      if (page.next === null) break;
      cursor = page.next;
    }
    const meta = { principal: 'bench', requestHash: '' };
    const t0 = Date.now();
    let jobIds: string[];
    if (kind === 'group') {
      const { group } = await engine.createSnapshotGroup({ name: 'bench', description: '', mode: 'offline', vms: vms.map((v) => v.id) }, meta);
      jobIds = group.members.map((m) => m.jobId);
    } else {
      jobIds = [];
      for (const vm of vms) jobIds.push((await engine.submit({ kind: 'snapshot.create', vmId: vm.id, name: 'bench', description: '', mode: 'offline' }, meta)).job.id);
    }
    const submitMs = Date.now() - t0;
    const jobs: Job[] = [];
    for (const id of jobIds) {
      for (;;) {
        const job = await engine.waitForJob(id, 600_000);
        if (['succeeded', 'failed', 'cancelled'].includes(job.state)) {
          jobs.push(job);
          break;
        }
      }
    }
    const failed = jobs.filter((j) => j.state !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} creates did not succeed: ${JSON.stringify(failed[0]!.error)}`);
    const at = (iso: string | null) => Date.parse(iso!);
    const starts = jobs.map((j) => at(j.startedAt));
    const targetOf = new Map(vms.map((v) => [v.id, v.targetName]));
    const targets: Record<string, TargetFigures> = {};
    for (const t of perTarget) {
      const mine = jobs.filter((j) => targetOf.get(j.vmId) === t.name);
      const s = mine.map((j) => at(j.startedAt));
      const jobMs = median(mine.map((j) => at(j.finishedAt) - at(j.startedAt)));
      const waves = Math.ceil(mine.length / t.limit);
      targets[t.name] = { n: mine.length, limit: t.limit, waves, jobMs, spreadMs: Math.max(...s) - Math.min(...s), expectedMs: (waves - 1) * jobMs };
    }
    return {
      submitMs,
      firstStartMs: Math.min(...starts) - t0,
      spreadMs: Math.max(...starts) - Math.min(...starts),
      totalMs: Math.max(...jobs.map((j) => at(j.finishedAt))) - t0,
      targets,
    };
  } finally {
    await engine.stop({ graceMs: 1000 });
    await registry.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchReport> {
  const group: RunFigures[] = [];
  const single: RunFigures[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    group.push(await once('group'));
    single.push(await once('one-by-one'));
  }
  const med = (runs: RunFigures[], f: (x: RunFigures) => number) => median(runs.map(f));
  const s = (ms: number) => fmt(ms / 1000, 2);
  const lines = [
    `${VMS} VMs on 3 VirtualBox simulators (limits ${TARGETS.map((t) => t.limit).join(', ')}; 20 ms per 10 % progress step), offline creates; median of ${ROUNDS} alternating rounds, fresh labs each.`,
    '',
    '| submitted as | all jobs stored, s | first start after the request, s | start spread (first → last), s | all done, s |',
    '|---|---|---|---|---|',
    `| one group (\`POST /v1/snapshot-groups\`, one transaction) | ${s(med(group, (x) => x.submitMs))} | ${s(med(group, (x) => x.firstStartMs))} | ${s(med(group, (x) => x.spreadMs))} | ${s(med(group, (x) => x.totalMs))} |`,
    `| ${VMS} creates one by one (baseline) | ${s(med(single, (x) => x.submitMs))} | ${s(med(single, (x) => x.firstStartMs))} | ${s(med(single, (x) => x.spreadMs))} | ${s(med(single, (x) => x.totalMs))} |`,
    '',
    'Per target, against its limit (group runs): waves = ceil(n / limit); the least spread the limit allows is (waves − 1) × the median job time.',
    '',
    '| target | members | limit | waves | median job, s | expected spread, s | measured spread (group), s | measured / expected | measured spread (one by one), s |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const perTarget: Record<string, unknown> = {};
  for (const t of TARGETS) {
    const g = (f: (x: TargetFigures) => number) => median(group.map((r) => f(r.targets[t.name]!)));
    const b = median(single.map((r) => r.targets[t.name]!.spreadMs));
    const ratio = g((x) => x.spreadMs) / g((x) => x.expectedMs);
    lines.push(`| ${t.name} | ${g((x) => x.n)} | ${t.limit} | ${g((x) => x.waves)} | ${s(g((x) => x.jobMs))} | ${s(g((x) => x.expectedMs))} | ${s(g((x) => x.spreadMs))} | ${fmt(ratio)} | ${s(b)} |`);
    perTarget[t.name] = { limit: t.limit, waves: g((x) => x.waves), expectedS: g((x) => x.expectedMs) / 1000, groupSpreadS: g((x) => x.spreadMs) / 1000, ratio };
  }
  lines.push(
    '',
    "The group's spread is set by the limits: the members of each target start in waves as slots free (the claim round starts the first wave on every target at once), so the overall spread is the slowest target's. Submitted one by one the jobs also start as they arrive, so the first starts come earlier but the requests themselves take time; with limits this tight the spread is about the same — what a group adds is one request, one record, one transaction and one state.",
    '',
    '```json bench-summary',
    JSON.stringify({
      bench: 'snapshot-group',
      vms: VMS,
      groupSpreadS: med(group, (x) => x.spreadMs) / 1000,
      oneByOneSpreadS: med(single, (x) => x.spreadMs) / 1000,
      groupSubmitS: med(group, (x) => x.submitMs) / 1000,
      oneByOneSubmitS: med(single, (x) => x.submitMs) / 1000,
      perTarget,
    }),
    '```',
  );
  return { title: 'Snapshot group of 100 VMs across 3 targets: start spread against the limits (`snapshot-group`)', markdown: lines.join('\n') };
}
