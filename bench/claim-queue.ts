/**
 * What a claim round's reads cost with 10,000 queued jobs (a SQLite file in WAL mode, as the daemon
 * runs it): the FIFO read the worker made before fair queues (`due`, the 50 oldest due jobs whose
 * VM is idle) against the fair one (the principals with queued jobs, then each one's candidates on
 * the target, domain/fair-claim.ts), alternating, per queue shape; and what a submission costs
 * with its fair tag and the per-token count. Ratios, not a timed test: `npm run bench -- claim-queue`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Vm } from '../src/domain/types.ts';
import { openStore, type NewJob, type Store } from '../src/store/index.ts';
import type { BenchReport } from './run.ts';
import { fmt, median } from './stats.ts';

const QUEUED = Number(process.env.CLAIM_BENCH_JOBS ?? 10_000);
const ROUNDS = 7;
const REPS = 200;
const AT = '2026-01-01T00:00:00.000Z';
const NOW = '2027-01-01T00:00:00.000Z';

interface Shape {
  name: string;
  vms: number;
  principals: number;
  /** A job runs on VM 0 (its queue cannot start). */
  vm0Busy: boolean;
}

const SHAPES: Shape[] = [
  { name: '1 token, 100 VMs × 100 jobs', vms: 100, principals: 1, vm0Busy: false },
  { name: '3 tokens, 1,000 VMs × 10 jobs', vms: 1000, principals: 3, vm0Busy: false },
  { name: '1 token, 1 VM × 10,000 jobs, that VM busy', vms: 1, principals: 1, vm0Busy: true },
];

async function fill(store: Store, shape: Shape): Promise<{ targetId: string; submitUs: number }> {
  const target = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
  const vms: Vm[] = Array.from({ length: shape.vms }, (_, i) => ({
    id: `vm-${i}`, targetId: target.id, providerVmId: `p-${i}`, name: `vm-${i}`, powerState: 'running', rawPowerState: 'running',
    consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
  }));
  await store.vms.apply({ inserts: vms, updates: [], gone: [] });
  const job = (i: number, vm: number): NewJob => ({
    id: `job-${String(i).padStart(6, '0')}`, kind: 'snapshot.create', targetId: target.id, vmId: `vm-${vm}`, snapshotId: null,
    params: { name: `s${i}`, description: '', mode: 'memory' }, maxAttempts: 3, requestedBy: `token-${i % shape.principals}`,
    createdAt: new Date(Date.parse(AT) + i).toISOString(),
  });
  const started = process.hrtime.bigint();
  for (let i = 0; i < QUEUED; i++) await store.jobs.submit(job(i, i % shape.vms), undefined, { maxQueued: QUEUED });
  const submitUs = Number(process.hrtime.bigint() - started) / 1000 / QUEUED;
  if (shape.vm0Busy) {
    await store.jobs.submit(job(QUEUED, 0));
    await store.jobs.tryClaim(`job-${String(QUEUED).padStart(6, '0')}`, 'busy', AT, 64);
  }
  return { targetId: target.id, submitUs };
}

async function timeUs(reps: number, fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await fn();
  return Number(process.hrtime.bigint() - started) / 1000 / reps;
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-claim-bench-'));
  try {
    const lines = [`${QUEUED} queued jobs; a claim round's reads, µs (median of ${ROUNDS} alternating rounds of ${REPS})`, ''];
    lines.push('| queue | FIFO `due(now, 50)` | fair (principals + candidates, 1 free slot) | fair / FIFO | submit, µs/job |', '|---|---|---|---|---|');
    for (const [i, shape] of SHAPES.entries()) {
      const store = openStore(path.join(dir, `q${i}.db`));
      const { targetId, submitUs } = await fill(store, shape);
      const fifo: number[] = [];
      const fair: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        fifo.push(await timeUs(REPS, () => store.jobs.due(NOW, 50)));
        fair.push(
          await timeUs(REPS, async () => {
            for (const p of await store.jobs.queuedPrincipals()) await store.jobs.fairCandidates(targetId, p, NOW, 1 + 8);
          }),
        );
      }
      const f = median(fifo);
      const g = median(fair);
      lines.push(`| ${shape.name} | ${fmt(f)} | ${fmt(g)} | ${fmt(g / f)}× | ${fmt(submitUs)} |`);
      store.close();
    }
    lines.push(
      '',
      'The fair read is one seek for each principal with queued jobs plus, per principal, the candidates of the target that has a free slot; both reads walk the whole queue of a busy VM (third row), as the FIFO one did. Submit includes the fair tag (two index seeks), the per-token count (walks that token\'s queued rows: at most `limits.queuedPerToken`, here 10,000) and three partial indexes of queued rows.',
    );
    return { title: 'Claim-round reads with 10,000 queued jobs: fair vs FIFO (`claim-queue`)', markdown: lines.join('\n') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
