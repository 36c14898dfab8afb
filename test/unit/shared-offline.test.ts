/**
 * The offline sequence against scripted callbacks and a fake clock: every step is recorded, time
 * only moves when the sequence sleeps, nothing waits on the wall clock.
 */
import t from 'tap';
import type { CallContext, JobCheckpoint } from '../../providers/contract.ts';
import { createGuards } from '../../providers/shared/guards.ts';
import { offlineSnapshot, resumeOffline, type Clock, type OfflineSteps } from '../../providers/shared/offline.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

interface Script {
  /** Power readings in order ('off' / anything else = its raw state); the last one repeats. */
  power: string[];
  unable?: string;
  /** The shutdown request answers the state after it (a reading of its own). */
  shutdownReads?: string;
  startFails?: boolean;
  readFailsWhenCalm?: boolean;
  /** Called on each reading, with its index (e.g. to abort mid-wait). */
  onRead?: (i: number) => void;
  /** Raw states read as between two states. */
  transitioning?: string[];
  /** The start fails with this error instead of a plain one. */
  startError?: Error;
}

function scripted(s: Script) {
  const calls: string[] = [];
  const signals: AbortSignal[] = [];
  let reads = 0;
  let now = 1_000_000;
  const sleeps: number[] = [];
  const clock: Clock = {
    now: () => now,
    async sleep(ms, signal) {
      sleeps.push(ms);
      if (!signal.aborted) now += ms;
    },
  };
  const steps: OfflineSteps = {
    async shutdown() {
      calls.push('shutdown');
      if (s.shutdownReads !== undefined) return { power: { off: s.shutdownReads === 'off', raw: s.shutdownReads } };
      return s.unable ? { unable: s.unable } : undefined;
    },
    async readPower(ctx) {
      calls.push('read');
      signals.push(ctx.signal);
      if (s.readFailsWhenCalm && calls.includes('take')) throw new Error('host gone');
      const raw = s.power[Math.min(reads, s.power.length - 1)] ?? 'off';
      s.onRead?.(reads);
      reads++;
      if (ctx.signal.aborted) throw new Error('runner: aborted');
      return { off: raw === 'off', raw, ...(s.transitioning?.includes(raw) ? { transitioning: true } : {}) };
    },
    async powerOff() {
      calls.push('powerOff');
    },
    async start(ctx) {
      calls.push('start');
      signals.push(ctx.signal);
      if (s.startError) throw s.startError;
      if (s.startFails) throw new Error('start refused');
    },
  };
  return { steps, clock, calls, sleeps, signals, elapsed: () => now - 1_000_000 };
}

const { err } = createGuards('kvm', 'lab');
const ctxOf = (signal = new AbortController().signal): CallContext => ({ signal, log: silentLogger(), progress: () => {} });
const seq = (clock: Clock, forcePowerOff = false, shutdownTimeoutSec = 10) => ({ offline: { shutdownTimeoutSec, forcePowerOff }, err, what: 'offline snapshot of domain d', pollMs: 500, clock });

t.test('the guest shuts down: poll until off, take, start again', async (t) => {
  const f = scripted({ power: ['running', 'running', 'in shutdown', 'off'] });
  const made = await offlineSnapshot(f.steps, seq(f.clock), ctxOf(), async () => {
    f.calls.push('take');
    return 'snap-1';
  });
  t.equal(made, 'snap-1');
  t.same(f.calls, ['shutdown', 'read', 'read', 'read', 'read', 'take', 'start']);
  t.same(f.sleeps, [500, 500, 500], 'polled at the interval');
});

t.test('a shutdown that answers the state after it: that is the first reading (no extra read when off)', async (t) => {
  const off = scripted({ power: ['off'], shutdownReads: 'off' });
  await offlineSnapshot(off.steps, seq(off.clock), ctxOf(), async () => {
    off.calls.push('take');
    return 'snap';
  });
  t.same(off.calls, ['shutdown', 'take', 'start'], 'off already: straight to the snapshot');
  const on = scripted({ power: ['in shutdown', 'off'], shutdownReads: 'running' });
  await offlineSnapshot(on.steps, seq(on.clock), ctxOf(), async () => {
    on.calls.push('take');
    return 'snap';
  });
  t.same(on.calls, ['shutdown', 'read', 'read', 'take', 'start'], 'still on: then polled as usual');
  t.same(on.sleeps, [500, 500], 'the answered reading counts as the first poll');
});

t.test('the guest ignores the request: conflict naming the option, no power-off, nothing taken, not restarted (still on)', async (t) => {
  const f = scripted({ power: ['running'] });
  let took = false;
  const e = await rejection(offlineSnapshot(f.steps, seq(f.clock, false, 2), ctxOf(), async () => {
    took = true;
  }));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /target 'lab': offline snapshot of domain d: the guest did not shut down within 2 s \(state running\); set offline\.forcePowerOff to power it off/);
  t.notOk(took);
  t.notOk(f.calls.includes('powerOff'));
  t.notOk(f.calls.includes('start'), 'it is still running: nothing to restart');
  t.equal(f.elapsed(), 2000, 'waited exactly the timeout');
  t.same(f.sleeps, [500, 500, 500, 500]);
});

t.test('with forcePowerOff: powered off after the timeout, then taken and started', async (t) => {
  const f = scripted({ power: ['running'] });
  await offlineSnapshot(f.steps, seq(f.clock, true, 1), ctxOf(), async () => {
    f.calls.push('take');
  });
  t.same(f.calls.slice(-3), ['powerOff', 'take', 'start']);
  t.equal(f.elapsed(), 1000);
});

t.test('a timeout of 0: one reading, then the decision', async (t) => {
  const f = scripted({ power: ['running'] });
  await offlineSnapshot(f.steps, seq(f.clock, true, 0), ctxOf(), async () => {});
  t.same(f.calls, ['shutdown', 'read', 'powerOff', 'start']);
  t.same(f.sleeps, []);
});

t.test('the guest cannot be asked (no agent): straight to the forced power-off, or conflict with the reason', async (t) => {
  const f = scripted({ power: ['running'], unable: 'the guest cannot be shut down without VMware Tools' });
  const e = await rejection(offlineSnapshot(f.steps, seq(f.clock), ctxOf(), async () => {}));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /without VMware Tools; set offline\.forcePowerOff/);
  t.notOk(f.calls.includes('powerOff'));
  const g = scripted({ power: ['running'], unable: 'no tools' });
  await offlineSnapshot(g.steps, seq(g.clock, true), ctxOf(), async () => {});
  t.same(g.calls, ['shutdown', 'powerOff', 'start'], 'no waiting when the guest was never asked');
});

t.test('the snapshot fails: the VM is started again (on its own signal) and the snapshot error is what rejects', async (t) => {
  const f = scripted({ power: ['off'] });
  const e = await rejection(offlineSnapshot(f.steps, seq(f.clock), ctxOf(), async () => {
    f.calls.push('take');
    throw err('internal', 'disk full');
  }));
  t.match(e.message, /disk full/);
  t.same(f.calls, ['shutdown', 'read', 'take', 'read', 'start']);
  t.ok(f.signals.every((s) => !s.aborted));
  const seen: number[] = [];
  const g = scripted({ power: ['off'] });
  g.steps.start = async (ctx) => ctx.progress(95);
  await rejection(offlineSnapshot(g.steps, seq(g.clock), { ...ctxOf(), progress: (p) => seen.push(p) }, async () => {
    throw err('internal', 'disk full');
  }));
  t.same(seen, [], 'a failing job gets no progress from the restart');
});

t.test('the restart after a failure is best effort: its own failure is logged, the original error stands', async (t) => {
  for (const s of [{ startFails: true }, { readFailsWhenCalm: true }]) {
    const f = scripted({ power: ['off'], ...s });
    const errors: string[] = [];
    const log = { ...silentLogger(), error: (o: object, msg?: string) => errors.push(`${msg}: ${JSON.stringify(o)}`) };
    const e = await rejection(offlineSnapshot(f.steps, seq(f.clock), { ...ctxOf(), log }, async () => {
      f.calls.push('take');
      throw err('conflict', 'the snapshot error');
    }));
    t.match(e.message, /the snapshot error/);
    t.equal(errors.length, 1, 'logged once');
    t.match(errors[0], /could not restart/);
  }
});

t.test('cancel while waiting (in the sleep or in a reading): transient/uncertain, the restart is still attempted', async (t) => {
  // 1. aborted during a reading: the reading fails with the runner's abort
  const ac = new AbortController();
  const f = scripted({ power: ['running', 'running', 'off'], onRead: (i) => i === 1 && ac.abort() });
  let took = false;
  const e = await rejection(offlineSnapshot(f.steps, seq(f.clock), ctxOf(ac.signal), async () => {
    took = true;
  }));
  t.same([e.kind, e.retry], ['transient', 'uncertain']);
  t.match(e.message, /offline snapshot of domain d: cancelled while waiting for the guest to shut down/);
  t.notOk(took);
  t.equal(f.calls.at(-1), 'start', 'off by now: started again');
  t.notOk(f.signals.at(-1)?.aborted, 'the restart does not carry the cancelled signal');

  // 2. aborted while sleeping: the fake sleep returns early, the next turn sees the abort
  const ac2 = new AbortController();
  const g = scripted({ power: ['running'] });
  const sleepy: Clock = { now: g.clock.now, sleep: async (ms, signal) => { ac2.abort(); return g.clock.sleep(ms, signal); } };
  const e2 = await rejection(offlineSnapshot(g.steps, seq(sleepy), ctxOf(ac2.signal), async () => {}));
  t.same([e2.kind, e2.retry], ['transient', 'uncertain']);
  t.same(g.calls, ['shutdown', 'read', 'read'], 'still running when cancelled: read (calm), not started');
});

t.test('the restart after success uses its own signal: a cancel right after the snapshot does not leave the VM off', async (t) => {
  const ac = new AbortController();
  const f = scripted({ power: ['off'] });
  await offlineSnapshot(f.steps, seq(f.clock), ctxOf(ac.signal), async () => {
    ac.abort();
  });
  t.equal(f.calls.at(-1), 'start');
  t.notOk(f.signals.at(-1)?.aborted);
});

// Crash safety: the record before the shutdown, and what a later attempt does with it.

const RAN: JobCheckpoint = { offline: { powerBefore: 'running' } };
const resumed = (): CallContext => ({ ...ctxOf(), resume: RAN });

t.test('the VM was running: recorded on the job before the shutdown request; a refused record stops the sequence', async (t) => {
  const f = scripted({ power: ['off'] });
  const records: JobCheckpoint[] = [];
  await offlineSnapshot(f.steps, seq(f.clock), { ...ctxOf(), checkpoint: async (r) => { f.calls.push('checkpoint'); records.push(r); } }, async () => {
    f.calls.push('take');
  });
  t.same(f.calls, ['checkpoint', 'shutdown', 'read', 'take', 'start']);
  t.same(records, [RAN]);
  const g = scripted({ power: ['off'] });
  const e = await rejection(offlineSnapshot(g.steps, seq(g.clock), { ...ctxOf(), checkpoint: async () => { throw err('transient', 'claim lost'); } }, async () => {}));
  t.match(e.message, /claim lost/);
  t.same(g.calls, [], 'not shut down without the record');
});

t.test('the start after the snapshot fails: an error saying the snapshot exists, retried by the job (final when the VM is gone)', async (t) => {
  const f = scripted({ power: ['off'], startError: err('conflict', 'restart VM x: the machine is locked', { nativeCode: 'VBOX_E_INVALID_OBJECT_STATE' }) });
  const e = await rejection(offlineSnapshot(f.steps, seq(f.clock), ctxOf(), async () => 'snap'));
  t.same([e.kind, e.retry, e.nativeCode], ['conflict', 'transient', 'VBOX_E_INVALID_OBJECT_STATE']);
  t.equal(e.message, "[snapvisor] [kvm] target 'lab': offline snapshot of domain d: the snapshot was taken, but the VM could not be started again: restart VM x: the machine is locked");
  const g = scripted({ power: ['off'], startError: err('not_found', 'no domain x') });
  const e2 = await rejection(resumeOffline(g.steps, seq(g.clock), resumed(), async () => 'snap'));
  t.same([e2.kind, e2.retry], ['not_found', 'final']);
});

t.test('no record of a running VM: the adapter create alone, without the record, nothing read or started', async (t) => {
  for (const resume of [undefined, {} as JobCheckpoint]) {
    const f = scripted({ power: ['off'] });
    let seen: CallContext | undefined;
    const made = await resumeOffline(f.steps, seq(f.clock), { ...ctxOf(), ...(resume ? { resume } : {}) }, async (c) => {
      seen = c;
      return 'snap';
    });
    t.equal(made, 'snap');
    t.same(f.calls, [], 'a VM that was off before the job stays off');
    t.notOk(seen && 'resume' in seen, 'the create runs its ordinary path');
  }
});

t.test('the VM was running, is off now (snapshot found or taken off): the create, then the VM is started', async (t) => {
  const f = scripted({ power: ['off'] });
  let seen: CallContext | undefined;
  const made = await resumeOffline(f.steps, seq(f.clock), resumed(), async (c) => {
    seen = c;
    f.calls.push('create');
    return 'snap';
  });
  t.equal(made, 'snap');
  t.same(f.calls, ['read', 'create', 'read', 'start']);
  t.notOk(seen && 'resume' in seen, 'the create does not resume again');
  t.notOk(f.signals.at(-1)?.aborted);
});

t.test('the guest is still going down: waited for (no second request), then the create and the start', async (t) => {
  const f = scripted({ power: ['stopping', 'stopping', 'off'], transitioning: ['stopping'] });
  await resumeOffline(f.steps, seq(f.clock), resumed(), async () => {
    f.calls.push('create');
  });
  t.same(f.calls, ['read', 'read', 'read', 'create', 'read', 'start']);
  t.same(f.sleeps, [500, 500]);
});

t.test('between states for longer than the shutdown timeout: the wait ends there and the create decides', async (t) => {
  const f = scripted({ power: ['stopping'], transitioning: ['stopping'] });
  const e = await rejection(resumeOffline(f.steps, seq(f.clock, false, 2), resumed(), async () => {
    f.calls.push('create');
    throw err('conflict', 'VM is stopping');
  }));
  t.match(e.message, /VM is stopping/);
  t.equal(f.elapsed(), 2000, 'bounded by the timeout');
  t.notOk(f.calls.includes('start'), 'not off: not started');
});

t.test('the VM is up when the create returns (it ran the whole sequence, or the earlier attempt had started it): no second start', async (t) => {
  const f = scripted({ power: ['running', 'starting', 'running'], transitioning: ['starting'] });
  await resumeOffline(f.steps, seq(f.clock), resumed(), async () => {
    f.calls.push('create');
  });
  t.same(f.calls, ['read', 'create', 'read', 'read']);
  t.notOk(f.calls.includes('start'));
});

t.test('the create fails on the VM left off: started again (best effort), the create error stands', async (t) => {
  const f = scripted({ power: ['off'] });
  const e = await rejection(resumeOffline(f.steps, seq(f.clock), resumed(), async () => {
    throw err('internal', 'disk full');
  }));
  t.match(e.message, /disk full/);
  t.same(f.calls, ['read', 'read', 'start']);
});

t.test('cancelled while waiting for the VM to settle: transient/uncertain, nothing taken', async (t) => {
  const ac = new AbortController();
  const f = scripted({ power: ['stopping'], transitioning: ['stopping'], onRead: () => ac.abort() });
  let created = false;
  const e = await rejection(resumeOffline(f.steps, seq(f.clock), { ...ctxOf(ac.signal), resume: RAN }, async () => {
    created = true;
  }));
  t.same([e.kind, e.retry], ['transient', 'uncertain']);
  t.notOk(created);
});
