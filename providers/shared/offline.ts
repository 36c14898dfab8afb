/**
 * The offline snapshot of a running VM, the same on every hypervisor: ask the guest to shut down,
 * poll the power state until it is off or offline.shutdownTimeoutSec has passed, then power it off
 * only when offline.forcePowerOff is set (else `conflict` naming the option), take the snapshot, and
 * start the VM again — also when anything after the shutdown request failed (best effort, logged;
 * the original error is what the caller sees).
 *
 * One cancellation behaviour: an abort while waiting for the guest rejects `transient` with retry
 * `uncertain` (the guest was asked to shut down: the VM is not as it was), and the restart is still
 * attempted, on a signal of its own — a cancel never leaves a VM off that was running. The restart
 * after a failure happens only when the VM reads as off (a guest still shutting down cannot be
 * started yet; one that ignored the request is still running).
 *
 * The hypervisor-specific steps are small callbacks; the clock and the sleep are injectable so the
 * sequence is unit-tested without waiting.
 */
import type { CallContext } from '../contract.ts';
import type { ErrorFactory } from './guards.ts';
import type { OfflineOptions } from './options.ts';
import { sleep as abortableSleep } from './sleep.ts';

export interface PowerReading {
  off: boolean;
  /** The hypervisor's own word for the state, for messages. */
  raw: string;
}

export interface OfflineSteps {
  /**
   * Asks the guest to shut down. Resolves `{ unable }` when it cannot be asked (no guest agent): then
   * only a forced power-off helps; `{ power }` when the request itself waited and read the state
   * after it (Hyper-V's Stop-VM): that reading is the first one, saving a call.
   */
  shutdown(ctx: CallContext): Promise<void | { unable: string } | { power: PowerReading }>;
  readPower(ctx: CallContext): Promise<PowerReading>;
  powerOff(ctx: CallContext): Promise<void>;
  start(ctx: CallContext): Promise<void>;
}

export interface Clock {
  now(): number;
  /** Resolves after `ms`, or early when the signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export const realClock: Clock = { now: () => Date.now(), sleep: (ms, signal) => abortableSleep(ms, signal) };

export interface OfflineSequence {
  offline: OfflineOptions;
  err: ErrorFactory;
  /** Starts every message, e.g. "offline snapshot of VM x". */
  what: string;
  /** How often to read the power state while waiting. */
  pollMs: number;
  clock?: Clock;
}

/** Shuts the running VM down, runs `take` on the powered-off VM, starts it again; returns what `take` returned. */
export async function offlineSnapshot<T>(steps: OfflineSteps, seq: OfflineSequence, ctx: CallContext, take: (ctx: CallContext) => Promise<T>): Promise<T> {
  const asked = await steps.shutdown(ctx);
  const calm: CallContext = { ...ctx, signal: new AbortController().signal };
  let made: T;
  try {
    await untilOff(steps, seq, ctx, asked && 'unable' in asked ? asked.unable : null, asked && 'power' in asked ? asked.power : undefined);
    made = await take(ctx);
  } catch (e) {
    // The job is failing: the restart reports no progress of its own.
    await restartIfOff(steps, seq, { ...calm, progress: () => {} });
    throw e;
  }
  await steps.start(calm);
  return made;
}

async function untilOff(steps: OfflineSteps, seq: OfflineSequence, ctx: CallContext, unable: string | null, read?: PowerReading): Promise<void> {
  const { offline, err, what } = seq;
  const clock = seq.clock ?? realClock;
  const force = async (why: string): Promise<void> => {
    if (!offline.forcePowerOff) throw err('conflict', `${what}: ${why}; set offline.forcePowerOff to power it off`);
    ctx.log.warn({ what }, `${why}; powering off`);
    await steps.powerOff(ctx);
  };
  if (unable !== null) return force(unable);
  const cancelled = (cause?: unknown) => err('transient', `${what}: cancelled while waiting for the guest to shut down`, { retry: 'uncertain', ...(cause === undefined ? {} : { cause }) });
  const deadline = clock.now() + offline.shutdownTimeoutSec * 1000;
  for (;;) {
    let power: PowerReading;
    try {
      if (ctx.signal.aborted) throw cancelled();
      power = read ?? (await steps.readPower(ctx));
      read = undefined;
    } catch (e) {
      throw ctx.signal.aborted ? cancelled(e) : e;
    }
    if (power.off) return;
    const now = clock.now();
    if (now >= deadline) return force(`the guest did not shut down within ${offline.shutdownTimeoutSec} s (state ${power.raw})`);
    await clock.sleep(Math.min(seq.pollMs, Math.max(1, deadline - now)), ctx.signal);
  }
}

async function restartIfOff(steps: OfflineSteps, seq: OfflineSequence, calm: CallContext): Promise<void> {
  const log = (e: unknown, msg: string) => calm.log.error({ what: seq.what, err: e instanceof Error ? e.message : String(e) }, msg);
  try {
    const power = await steps.readPower(calm);
    if (!power.off) {
      calm.log.warn({ what: seq.what, state: power.raw }, 'the VM is not off after a failed offline snapshot; not restarted');
      return;
    }
    await steps.start(calm);
  } catch (e) {
    log(e, 'could not restart the VM after a failed offline snapshot');
  }
}
