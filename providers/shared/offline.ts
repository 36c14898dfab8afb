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
 * A crash (the daemon killed) between the shutdown request and the restart must not leave the VM
 * off either: before the request the sequence records on the job that the VM was running
 * (`ctx.checkpoint`), and a later attempt of the job that gets the record back (`ctx.resume`) goes
 * through {@link resumeOffline}: the snapshot made once (found by its marker, or taken), and the VM
 * started again before the job succeeds. A start that fails after the snapshot was taken is an error
 * saying so, retried by the job (each retry finds the snapshot and tries the start again).
 *
 * The hypervisor-specific steps are small callbacks; the clock and the sleep are injectable so the
 * sequence is unit-tested without waiting.
 */
import { ProviderError, type CallContext } from '../contract.ts';
import type { ErrorFactory } from './guards.ts';
import type { OfflineOptions } from './options.ts';
import { sleep as abortableSleep } from './sleep.ts';

export interface PowerReading {
  off: boolean;
  /** The hypervisor's own word for the state, for messages. */
  raw: string;
  /**
   * Between two states (a guest shutting down, a VM starting): a resumed job waits for it to settle
   * before it acts. Absent: settled (a provider that cannot tell).
   */
  transitioning?: boolean;
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
  // Before the request, durably: a crash after it leaves the job saying the VM must be started again.
  await ctx.checkpoint?.({ offline: { powerBefore: 'running' } });
  const asked = await steps.shutdown(ctx);
  let made: T;
  try {
    await untilOff(steps, seq, ctx, asked && 'unable' in asked ? asked.unable : null, asked && 'power' in asked ? asked.power : undefined);
    made = await take(ctx);
  } catch (e) {
    await restartIfOff(steps, seq, failingCalm(ctx));
    throw e;
  }
  await startAgain(steps, seq, calmOf(ctx));
  return made;
}

/**
 * An offline create of a job that has a record (`ctx.resume`). When it says an earlier attempt shut
 * the running VM down, that attempt may have died anywhere after the request: the VM may still be
 * going down, be off with or without the snapshot, or be up again. Waits while the VM is between
 * states (up to offline.shutdownTimeoutSec), runs `again` — the adapter's own create, given the
 * context without the record: it finds the snapshot by its marker, takes it on the VM that is off,
 * or runs the whole sequence on one that is running — then starts the VM when it is off. Without
 * such a record it is `again` alone: a VM that was off before the job stays off.
 */
export async function resumeOffline<T>(steps: OfflineSteps, seq: OfflineSequence, ctx: CallContext, again: (ctx: CallContext) => Promise<T>): Promise<T> {
  const { resume, ...plain } = ctx;
  if (resume?.offline?.powerBefore !== 'running') return again(plain);
  ctx.log.info({ what: seq.what }, 'an earlier attempt shut the running VM down: making sure of the snapshot, then starting the VM again');
  await settled(steps, seq, ctx);
  let made: T;
  try {
    made = await again(plain);
  } catch (e) {
    await restartIfOff(steps, seq, failingCalm(ctx));
    throw e;
  }
  // `again` restarted the VM itself when it ran the whole sequence; otherwise it is still off.
  if ((await settled(steps, seq, calmOf(ctx))).off) await startAgain(steps, seq, calmOf(ctx));
  return made;
}

/** A cancel never leaves a VM off that was running: the restart runs on a signal of its own. */
const calmOf = (ctx: CallContext): CallContext => ({ ...ctx, signal: new AbortController().signal });
/** The job is failing: the restart reports no progress of its own. */
const failingCalm = (ctx: CallContext): CallContext => ({ ...calmOf(ctx), progress: () => {} });

/** The snapshot exists: a start that fails is the job's error, retried (the retry finds the snapshot and starts the VM). */
async function startAgain(steps: OfflineSteps, seq: OfflineSequence, calm: CallContext): Promise<void> {
  try {
    await steps.start(calm);
  } catch (e) {
    const why = e instanceof ProviderError ? e.message.replace(/^\[snapvisor\] \[[^\]]*\] (target '[^']*': )?/, '') : e instanceof Error ? e.message : String(e);
    throw seq.err(e instanceof ProviderError ? e.kind : 'internal', `${seq.what}: the snapshot was taken, but the VM could not be started again: ${why}`, {
      // A VM that is gone stays gone; anything else may start on the next try.
      retry: e instanceof ProviderError && e.kind === 'not_found' ? 'final' : 'transient',
      cause: e,
      ...(e instanceof ProviderError && e.nativeCode !== undefined ? { nativeCode: e.nativeCode } : {}),
    });
  }
}

/** Reads the power state until it is not between states, or offline.shutdownTimeoutSec has passed. */
async function settled(steps: OfflineSteps, seq: OfflineSequence, ctx: CallContext): Promise<PowerReading> {
  const clock = seq.clock ?? realClock;
  const deadline = clock.now() + seq.offline.shutdownTimeoutSec * 1000;
  const cancelled = (cause?: unknown) => seq.err('transient', `${seq.what}: cancelled while waiting for the VM to settle`, { retry: 'uncertain', ...(cause === undefined ? {} : { cause }) });
  for (;;) {
    if (ctx.signal.aborted) throw cancelled();
    let power: PowerReading;
    try {
      power = await steps.readPower(ctx);
    } catch (e) {
      throw ctx.signal.aborted ? cancelled(e) : e;
    }
    const now = clock.now();
    if (!power.transitioning || now >= deadline) return power;
    await clock.sleep(Math.min(seq.pollMs, Math.max(1, deadline - now)), ctx.signal);
  }
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
