/**
 * The fair choice of which queued jobs a target's free slots go to. Two levels:
 * - across principals (tokens): the principal with the fewest jobs running on the target goes
 *   first, then the one whose last claim there is the oldest (never claimed: first of all), so one
 *   token's 1,000 queued jobs take turns with another's single job instead of going before it;
 * - across one principal's VMs: the store hands each principal's candidates in its own fair order
 *   (the job's `fairTag`, see {@link fairTag}), which interleaves its VMs round-robin.
 * One job per VM at a time holds throughout: a VM already running, or already chosen, is skipped.
 */

export interface FairCandidate {
  vmId: string;
  principal: string;
}

export interface FairInput<T extends FairCandidate> {
  /** Each principal's claimable jobs on the target, in that principal's own fair order. */
  queues: ReadonlyMap<string, readonly T[]>;
  /** Jobs running on the target now, per principal. */
  running: ReadonlyMap<string, number>;
  /** VMs with a running job: none of their jobs may start. */
  busyVms: ReadonlySet<string>;
  /** When each principal last had a job claimed on the target (larger = later); absent = never. */
  lastClaimed: ReadonlyMap<string, number>;
}

/**
 * Every candidate that may start, in the order the target's free slots should be offered to them
 * (the caller claims down the list until the target is full). Assumes each one it places is
 * claimed: the next pick already counts it as running and as the principal's latest claim.
 */
export function fairClaimOrder<T extends FairCandidate>(input: FairInput<T>): T[] {
  const running = new Map(input.running);
  const last = new Map(input.lastClaimed);
  const usedVms = new Set(input.busyVms);
  const next = new Map<string, number>();
  let clock = Math.max(0, ...last.values());
  const out: T[] = [];
  for (;;) {
    let best: { principal: string; candidate: T; index: number } | null = null;
    for (const [principal, queue] of input.queues) {
      let index = next.get(principal) ?? 0;
      while (index < queue.length && usedVms.has(queue[index]!.vmId)) index++;
      next.set(principal, index);
      const candidate = queue[index];
      if (candidate === undefined) continue;
      if (best === null || before(principal, best.principal, running, last)) best = { principal, candidate, index };
    }
    if (best === null) return out;
    out.push(best.candidate);
    usedVms.add(best.candidate.vmId);
    next.set(best.principal, best.index + 1);
    running.set(best.principal, (running.get(best.principal) ?? 0) + 1);
    last.set(best.principal, ++clock);
  }
}

/** Whether principal `a` is served before `b`: fewer running, then the older last claim, then by name. */
function before(a: string, b: string, running: ReadonlyMap<string, number>, last: ReadonlyMap<string, number>): boolean {
  const ra = running.get(a) ?? 0;
  const rb = running.get(b) ?? 0;
  if (ra !== rb) return ra < rb;
  const la = last.get(a) ?? -Infinity;
  const lb = last.get(b) ?? -Infinity;
  if (la !== lb) return la < lb;
  return a < b;
}

/**
 * The fair tag of a new queued job (start-time fair queuing over one principal's VMs on one
 * target): never below the principal's current round there — the smallest tag among its queued
 * jobs on the target, `round` (null when it has none) — and one past its newest queued job on the
 * same VM, `vmLast` (null when none). A principal's jobs start in tag order, so 1,000 jobs queued
 * for VM A take tags 0…999 while a later job for VM B takes the current round and starts next to
 * A's, not after all of them; per VM, tags only grow, so a VM's jobs keep their submit order.
 */
export function fairTag(round: number | null, vmLast: number | null): number {
  return Math.max(round ?? 0, vmLast === null ? 0 : vmLast + 1);
}
