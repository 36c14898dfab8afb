/**
 * Create budgets: whether a snapshot create may start now under the budgets its target declares
 * (`capabilities.limits.createRate`, e.g. Azure's 7 incremental snapshots per disk every 5 minutes),
 * or when it may. Pure: the caller passes the limits, the VM's disks, the recent create events per
 * key and the time. Sliding window: an event at `at` counts against its key while `now < at + windowMs`.
 *
 * Keys: `vm:<vmId>` for `per: 'vm'`; for `per: 'disk'`, `disk:<path>` per disk (the path is the disk's
 * identity, so two VMs sharing a disk share its budget), `disk:<vmId>/<slot>` for a disk without a path
 * (a slot name like "vda" is only unique within one VM), and `vm:<vmId>` for a VM with no known disks.
 */
import type { CreateRateLimit, DiskInfo } from '../../providers/contract.ts';

/** The keys one create of this VM counts against under `limit`. */
export function budgetKeys(limit: CreateRateLimit, vm: { id: string; disks: readonly DiskInfo[] | null }): string[] {
  if (limit.per === 'vm' || vm.disks === null || vm.disks.length === 0) return [`vm:${vm.id}`];
  return unique(vm.disks.map((d) => (d.path !== undefined && d.path !== '' ? `disk:${d.path}` : `disk:${vm.id}/${d.slot}`)));
}

/** At most `max` create events of `key` may be later than `since` (ISO time: a sliding window's start). */
export interface BudgetGuard {
  key: string;
  max: number;
  since: string;
}

/**
 * What a claim re-checks where claims are serialised (JobRepo.tryClaim's budgetGuards): one guard
 * per key a create counts against under each limit — fewer than `max` events later than the
 * window's start. The same rule as freeAt, as data the store can count.
 */
export function budgetGuards(limits: readonly CreateRateLimit[], vm: { id: string; disks: readonly DiskInfo[] | null }, now: number): BudgetGuard[] {
  const since = (limit: CreateRateLimit) => new Date(now - limit.windowMs).toISOString();
  return limits.flatMap((limit) => budgetKeys(limit, vm).map((key) => ({ key, max: limit.max, since: since(limit) })));
}

export interface BudgetInput {
  limits: readonly CreateRateLimit[];
  vm: { id: string; disks: readonly DiskInfo[] | null };
  /** Times (epoch ms) of earlier creates, by key; any order; older ones are ignored. */
  events: ReadonlyMap<string, readonly number[]>;
  /** Epoch ms. */
  now: number;
}

export type BudgetDecision =
  /** Within every budget: the keys to record one event each for, when the create is claimed. */
  | { go: true; keys: string[] }
  /** Over a budget: wait until `until` (epoch ms, > now); `key` under `limit` is the one that frees last. */
  | { go: false; until: number; key: string; limit: CreateRateLimit };

export function decideCreateBudget(input: BudgetInput): BudgetDecision {
  const { limits, vm, events, now } = input;
  const keys: string[] = [];
  let blocked: { until: number; key: string; limit: CreateRateLimit } | null = null;
  for (const limit of limits) {
    for (const key of budgetKeys(limit, vm)) {
      keys.push(key);
      const until = freeAt(limit, events.get(key) ?? [], now);
      if (until !== null && (blocked === null || until > blocked.until)) blocked = { until, key, limit };
    }
  }
  return blocked === null ? { go: true, keys: unique(keys) } : { go: false, ...blocked };
}

/**
 * When one more create fits under `limit` given these events of one key: null when it fits now.
 * An event later than `now` (the clock went backwards) counts as made now: it really was recent, and
 * counting it for a full window from now over-counts (safe) and never yields a wait longer than the window.
 */
export function freeAt(limit: CreateRateLimit, times: readonly number[], now: number): number | null {
  const inWindow = times
    .map((at) => Math.min(at, now))
    .filter((at) => at + limit.windowMs > now)
    .sort((a, b) => a - b);
  const excess = inWindow.length - limit.max;
  if (excess < 0) return null;
  // Fits again once all but max - 1 of them have left the window: the excess-th oldest leaves last.
  return inWindow[excess]! + limit.windowMs;
}

/** What a job waiting for the budget shows as its progress message. */
export function budgetWaitMessage(decision: Extract<BudgetDecision, { go: false }>): string {
  return `waiting for the create budget: ${decision.limit.reason}; ${describeKey(decision.key)} is free again at ${new Date(decision.until).toISOString()}`;
}

function describeKey(key: string): string {
  if (key.startsWith('disk:')) return `disk ${key.slice('disk:'.length)}`;
  if (key.startsWith('vm:')) return `VM ${key.slice('vm:'.length)}`;
  return key;
}

/** The longest window among the limits (0 without any): events older than that can be pruned. */
export function longestWindowMs(limits: readonly CreateRateLimit[]): number {
  return limits.reduce((m, l) => Math.max(m, l.windowMs), 0);
}

function unique(keys: string[]): string[] {
  return [...new Set(keys)];
}
