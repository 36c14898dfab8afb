/**
 * One measurement of the policy-planner benchmark in a fresh process (bundled, no TypeScript
 * loader in memory): builds the fleet, then either plans it (`plan`) or only parses and sorts the
 * same snapshot lists (`sort`, the baseline), and prints one JSON line.
 */
import type { PlannedSnapshot, Policy } from '../src/domain/policy.ts';
import { planPolicyRun, type PlanVm, type PolicyPlan } from '../src/domain/policy-plan.ts';
import { selectorMatcher } from '../src/domain/selector.ts';

export interface ChildResult {
  mode: 'plan' | 'sort';
  snapshots: number;
  visited: number;
  rssInputMb: number;
  /** Live heap (after a full GC) with the fleet built, and what the first pass's result adds to it. */
  heapInputMb: number;
  resultHeapMb: number;
  /** First pass (cold: zone memo and JIT empty), then the warm ones. */
  firstMs: number;
  warmMs: number[];
  peakRssMb: number;
  creates: number;
  deletes: number;
  steps: number;
}

const VMS = Number(process.env.PLANNER_BENCH_VMS ?? 10_000);
const PER_VM = 100;
const WARM = 3;
const NOW = new Date('2026-12-04T02:30:00.000Z');
const HOUR = 3_600_000;
const MB = 2 ** 20;

function policy(i: number, extra: Pick<Policy, 'name' | 'selector' | 'timezone' | 'retention'>): Policy {
  return {
    id: `pol-${i}`, schedule: '0 * * * *', mode: 'crash', maxChainDepth: null, consolidationSchedule: null, enabled: true,
    createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z', ...extra,
  };
}

/** Four policies by target, one by name glob over every second VM: those VMs have two. */
const POLICIES: Policy[] = [
  policy(0, { name: 'daily-eu', selector: { targets: ['t0'] }, timezone: 'Europe/Berlin', retention: { keepLast: 7, keepDaily: 14, keepWeekly: 8, keepMonthly: 12, maxAge: 'P1Y' } }),
  policy(1, { name: 'hourly-us', selector: { targets: ['t1'] }, timezone: 'America/New_York', retention: { keepLast: 24, keepHourly: 48 } }),
  policy(2, { name: 'twice-lhi', selector: { targets: ['t2'] }, timezone: 'Australia/Lord_Howe', retention: { keepLast: 3, keepDaily: 30 } }),
  policy(3, { name: 'weekly-utc', selector: { targets: ['t3'] }, timezone: 'UTC', retention: { keepLast: 10, keepWeekly: 52 } }),
  policy(4, { name: 'even-ktm', selector: { namePattern: 'vm-*[02468]' }, timezone: 'Asia/Kathmandu', retention: { keepLast: 5, keepHourly: 24, keepDaily: 7, keepMonthly: 6, maxAge: 'P6M' } }),
];
/** Snapshot cadence of each policy's runs. */
const CADENCE = [24 * HOUR, HOUR, 12 * HOUR, 24 * HOUR, 6 * HOUR];

interface Fleet {
  vms: PlanVm[];
  snapshots: Map<string, PlannedSnapshot[]>;
  total: number;
}

function buildFleet(): Fleet {
  // Shared strings, as rows read from SQLite would not be, but the input is not what is measured.
  const isoCache = new Map<number, string>();
  const iso = (ms: number) => {
    let s = isoCache.get(ms);
    if (s === undefined) isoCache.set(ms, (s = new Date(ms).toISOString()));
    return s;
  };
  const names = POLICIES.map((p) => Array.from({ length: PER_VM }, (_, k) => `${p.name}-${k}`));
  const vms: PlanVm[] = [];
  const snapshots = new Map<string, PlannedSnapshot[]>();
  let total = 0;
  for (let v = 0; v < VMS; v++) {
    const id = `vm-${String(v).padStart(5, '0')}`;
    const target = v % 4;
    vms.push({ id, name: id, targetName: `t${target}`, chainDepth: 3, consolidationNeeded: false, supportedModes: ['crash', 'memory'], canConsolidate: true, gone: false });
    const two = v % 2 === 0;
    const owned: Array<[number, number]> = two ? [[target, 50], [4, 45]] : [[target, 95]];
    // Runs start within the hour (jitter), 15-minute steps.
    const jitter = (v % 4) * 15 * 60_000;
    const list: PlannedSnapshot[] = [];
    for (const [p, n] of owned) {
      for (let k = 0; k < n; k++) {
        const at = NOW.getTime() - (k + 1) * CADENCE[p]! - jitter;
        list.push({ id: `${id}-${p}-${k}`, vmId: id, parentId: null, name: names[p]![k]!, owner: 'snapvisor', policyId: `pol-${p}`, current: false, createdAt: iso(at) });
      }
    }
    for (let k = list.length; k < PER_VM; k++) {
      const external = k % 2 === 0;
      list.push({ id: `${id}-x-${k}`, vmId: id, parentId: null, name: external ? 'hand-made' : 'manual', owner: external ? 'external' : 'snapvisor', policyId: null, current: false, createdAt: iso(NOW.getTime() - k * 30 * 24 * HOUR) });
    }
    total += list.length;
    snapshots.set(id, list);
  }
  return { vms, snapshots, total };
}

function planAll(fleet: Fleet): PolicyPlan[] {
  return POLICIES.map((policy) => planPolicyRun({ policy, kind: 'snapshot', vms: fleet.vms, snapshots: fleet.snapshots, now: NOW }));
}

/** The floor: each policy's matched VMs, their snapshots sorted newest first. */
function sortAll(fleet: Fleet): number {
  let n = 0;
  for (const policy of POLICIES) {
    const match = selectorMatcher(policy.selector);
    for (const vm of fleet.vms) {
      if (!match(vm)) continue;
      const sorted = fleet.snapshots.get(vm.id)!.map((s) => ({ s, ms: s.createdAt === null ? Number.NaN : Date.parse(s.createdAt) })).sort((a, b) => b.ms - a.ms);
      n += sorted.length;
    }
  }
  return n;
}


function ms(fn: () => void): number {
  const started = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const mode = process.argv[2] === 'sort' ? 'sort' : 'plan';
/** Run with --expose-gc: live heap after a full collection, not V8's growth headroom. */
const liveHeapMb = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / MB;
};
const fleet = buildFleet();
const rssInputMb = process.memoryUsage().rss / MB;
const heapInputMb = liveHeapMb();
let plans: PolicyPlan[] = [];
let visited = 0;
const firstMs = ms(() => (mode === 'plan' ? void (plans = planAll(fleet)) : void (visited = sortAll(fleet))));
const heapWithResultMb = liveHeapMb();
const creates = plans.reduce((n, p) => n + p.steps.filter((s) => s.action === 'create').length, 0);
const deletes = plans.reduce((n, p) => n + p.steps.filter((s) => s.action === 'delete').length, 0);
const steps = plans.reduce((n, p) => n + p.steps.length, 0);
plans = [];
const warmMs: number[] = [];
// Warm passes drop their result at once: one plan alive at a time, as in the daemon.
for (let r = 0; r < WARM; r++) warmMs.push(ms(() => void (mode === 'plan' ? planAll(fleet) : sortAll(fleet))));
const result: ChildResult = {
  mode, snapshots: fleet.total, visited, rssInputMb, heapInputMb, resultHeapMb: heapWithResultMb - heapInputMb, firstMs, warmMs,
  peakRssMb: (process.resourceUsage().maxRSS * 1024) / MB, creates, deletes, steps,
};
process.stdout.write(JSON.stringify(result) + '\n');
