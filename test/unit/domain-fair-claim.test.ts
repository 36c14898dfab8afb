/**
 * The fair claim (src/domain/fair-claim.ts): the order a target's free slots go to principals and
 * their VMs, and the fair tag that interleaves one principal's VMs. A small model of the queue
 * (what store/jobs.ts answers: each principal's VM heads in tag order) drives both, so the
 * properties hold of the choice the worker makes.
 */
import fc from 'fast-check';
import t from 'tap';
import { fairClaimOrder, fairTag, type FairCandidate } from '../../src/domain/fair-claim.ts';

interface Cand extends FairCandidate {
  id: string;
}

const cand = (id: string, principal: string, vmId: string): Cand => ({ id, principal, vmId });

t.test('a principal that has nothing running goes before one that has; ties go to the oldest last claim', async (t) => {
  const queues = new Map([
    ['x', [cand('x1', 'x', 'a1'), cand('x2', 'x', 'a2'), cand('x3', 'x', 'a3')]],
    ['y', [cand('y1', 'y', 'b1')]],
  ]);
  const order = fairClaimOrder({ queues, running: new Map([['x', 1]]), busyVms: new Set(['a0']), lastClaimed: new Map([['x', 5]]) });
  t.same(order.map((c) => c.id), ['y1', 'x1', 'x2', 'x3']);
  // Same running count: the one claimed longer ago first, then they alternate.
  const two = new Map([
    ['x', [cand('x1', 'x', 'a1'), cand('x2', 'x', 'a2')]],
    ['y', [cand('y1', 'y', 'b1'), cand('y2', 'y', 'b2')]],
  ]);
  t.same(fairClaimOrder({ queues: two, running: new Map(), busyVms: new Set(), lastClaimed: new Map([['x', 1], ['y', 2]]) }).map((c) => c.id), ['x1', 'y1', 'x2', 'y2']);
  t.same(fairClaimOrder({ queues: two, running: new Map(), busyVms: new Set(), lastClaimed: new Map([['x', 3], ['y', 2]]) }).map((c) => c.id), ['y1', 'x1', 'y2', 'x2']);
});

t.test('a busy VM, or one already chosen, is skipped: one job per VM', async (t) => {
  const queues = new Map([
    ['x', [cand('x1', 'x', 'shared'), cand('x2', 'x', 'busy'), cand('x3', 'x', 'a')]],
    ['y', [cand('y1', 'y', 'shared'), cand('y2', 'y', 'b')]],
  ]);
  const order = fairClaimOrder({ queues, running: new Map(), busyVms: new Set(['busy']), lastClaimed: new Map() });
  t.same(order.map((c) => c.id), ['x1', 'y2', 'x3']);
});

t.test('fair tags: one principal\'s later VM takes the current round, not a place after the busy VM\'s queue', async (t) => {
  t.equal(fairTag(null, null), 0, 'nothing queued: round 0');
  t.equal(fairTag(0, 0), 1, 'a second job for the same VM: next round');
  t.equal(fairTag(4, null), 4, 'a new VM joins the current round');
  t.equal(fairTag(4, 9), 10, 'a VM with a queue goes on after its own last job');
  t.equal(fairTag(4, 2), 4, 'never below the current round');
});

// ---- a model of the queue and the worker's claim round ----

interface Job {
  id: number;
  principal: string;
  vmId: string;
  tag: number;
}

class Model {
  queued: Job[] = [];
  running = new Map<number, Job>();
  started: Job[] = [];
  lastClaimed = new Map<string, number>();
  clock = 0;
  private nextId = 0;
  constructor(readonly concurrency: number) {}

  /** What store.jobs.submit does: the tag from the principal's round and its newest job on the VM. */
  submit(principal: string, vmId: string): Job {
    const mine = this.queued.filter((j) => j.principal === principal);
    const round = mine.length === 0 ? null : Math.min(...mine.map((j) => j.tag));
    const onVm = mine.filter((j) => j.vmId === vmId);
    const vmLast = onVm.length === 0 ? null : Math.max(...onVm.map((j) => j.tag));
    const job = { id: this.nextId++, principal, vmId, tag: fairTag(round, vmLast) };
    this.queued.push(job);
    return job;
  }

  /** What the worker's claim round does with store.jobs.fairCandidates. */
  round(): void {
    const busy = new Set([...this.running.values()].map((j) => j.vmId));
    const free = this.concurrency - this.running.size;
    if (free <= 0) return;
    const heads = new Set<number>();
    const seenVm = new Set<string>();
    for (const j of this.queued) {
      if (seenVm.has(j.vmId)) continue;
      seenVm.add(j.vmId);
      heads.add(j.id);
    }
    const queues = new Map<string, Array<Job & FairCandidate>>();
    for (const j of this.queued) {
      if (!heads.has(j.id) || busy.has(j.vmId)) continue;
      queues.set(j.principal, [...(queues.get(j.principal) ?? []), j]);
    }
    for (const q of queues.values()) q.sort((a, b) => a.tag - b.tag || a.id - b.id);
    const runningBy = new Map<string, number>();
    for (const j of this.running.values()) runningBy.set(j.principal, (runningBy.get(j.principal) ?? 0) + 1);
    for (const c of fairClaimOrder({ queues, running: runningBy, busyVms: busy, lastClaimed: this.lastClaimed })) {
      if (this.running.size >= this.concurrency) break;
      this.queued = this.queued.filter((j) => j.id !== c.id);
      this.running.set(c.id, c);
      this.started.push(c);
      this.lastClaimed.set(c.principal, ++this.clock);
    }
  }

  finish(id: number): void {
    this.running.delete(id);
    this.round();
  }

  /** Finishes the oldest running job, one at a time, until nothing is left. */
  drain(): void {
    this.round();
    while (this.running.size > 0) this.finish(this.running.keys().next().value!);
  }
}

t.test('property: one job per VM, at most `concurrency` running, each VM\'s jobs start in submit order, and everything starts', async (t) => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('submit' as const), principal: fc.constantFrom('x', 'y', 'z'), vm: fc.constantFrom('a', 'b', 'c', 'd', 'e') }),
    fc.record({ kind: fc.constant('finish' as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 80 }), (concurrency, ops) => {
      const m = new Model(concurrency);
      const submitted: Job[] = [];
      const check = () => {
        const vms = [...m.running.values()].map((j) => j.vmId);
        if (new Set(vms).size !== vms.length) throw new Error('two jobs running on one VM');
        if (m.running.size > concurrency) throw new Error('over the target concurrency');
      };
      for (const o of ops) {
        if (o.kind === 'submit') {
          submitted.push(m.submit(o.principal, o.vm));
          m.round();
        } else if (m.running.size > 0) {
          const ids = [...m.running.keys()];
          m.finish(ids[o.pick % ids.length]!);
        }
        check();
      }
      m.drain();
      if (m.started.length !== submitted.length) throw new Error('a job never started');
      for (const vm of new Set(submitted.map((j) => j.vmId))) {
        const order = m.started.filter((j) => j.vmId === vm).map((j) => j.id);
        const want = submitted.filter((j) => j.vmId === vm).map((j) => j.id);
        if (order.join() !== want.join()) throw new Error(`VM ${vm} ran out of submit order`);
      }
    }),
    { numRuns: 300 },
  );
  t.pass('held for 300 random histories');
});

t.test('property: another token\'s job takes the next free slot, however many jobs the first token queued', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 6 }), (concurrency, n, vms) => {
      const m = new Model(concurrency);
      for (let i = 0; i < n; i++) m.submit('x', `a${i % vms}`);
      m.round();
      const runningBefore = m.started.length;
      const mine = m.submit('y', 'b');
      m.drain();
      const at = m.started.findIndex((j) => j.id === mine.id);
      // Either it started at once (a slot was free) or with the first slot that freed.
      if (at !== runningBefore) throw new Error(`y's job started ${at}th, after ${runningBefore} already running`);
    }),
    { numRuns: 300 },
  );
  t.pass('held for 300 random queues');
});

t.test('property: the same token\'s job for another VM is not behind that token\'s queue for the busy VM', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 2, max: 200 }), (concurrency, n) => {
      const m = new Model(concurrency);
      for (let i = 0; i < n; i++) m.submit('x', 'a');
      m.round();
      const other = m.submit('x', 'b');
      m.drain();
      const aBefore = m.started.slice(0, m.started.findIndex((j) => j.id === other.id)).filter((j) => j.vmId === 'a').length;
      // A's running job, and at most the one A job of the same round submitted before B's.
      if (aBefore > 2) throw new Error(`${aBefore} of A's ${n} jobs started before B's`);
    }),
    { numRuns: 300 },
  );
  t.pass('held for 300 random queues');
});

t.test('property: one token\'s jobs queued at once: every VM starts its first job before any VM starts its second', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 1, maxLength: 120 }), (concurrency, vmOrder) => {
      const m = new Model(concurrency);
      const jobs = vmOrder.map((vm) => ({ vm }));
      for (const j of jobs) m.submit('x', j.vm);
      m.drain();
      const count = new Map<string, number>();
      const vms = new Set(jobs.map((j) => j.vm));
      const firstSeen = new Set<string>();
      for (const s of m.started) {
        const k = (count.get(s.vmId) ?? 0) + 1;
        count.set(s.vmId, k);
        firstSeen.add(s.vmId);
        if (k >= 2 && firstSeen.size < vms.size) throw new Error(`VM ${s.vmId} started its second job while another VM had not started`);
      }
    }),
    { numRuns: 300 },
  );
  t.pass('held for 300 random queues');
});
