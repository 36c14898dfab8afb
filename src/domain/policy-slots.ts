/**
 * When a policy's cron slots fall, for the scheduler (src/engine/scheduler.ts): pure, no timers.
 * Slots come from croner (through src/domain/schedule.ts); nothing here parses cron by hand.
 */
import { createHash } from 'node:crypto';
import { Cron } from 'croner';

/**
 * Two slots of a 5-field cron are at least this far apart in UTC (minute resolution, and every
 * zone's offset is a whole number of minutes): a fire less late than this cannot have passed a
 * later slot, so the scheduler needs no cron lookup to know it is not a catch-up.
 */
export const MIN_SLOT_GAP_MS = 60_000;

/** The latest slot at or before `at`, or null when the expression never fired before it. */
export function latestSlotAtOrBefore(expression: string, timezone: string, at: Date): Date | null {
  const cron = new Cron(expression, { paused: true, timezone });
  // previousRuns is strictly before its reference and works in whole seconds: start one second
  // later and step back over a slot that is after `at`.
  let slot: Date | null = cron.previousRuns(1, new Date(at.getTime() + 1000))[0] ?? null;
  while (slot !== null && slot.getTime() > at.getTime()) slot = cron.previousRuns(1, slot)[0] ?? null;
  return slot;
}

/**
 * A stable delay in [0, maxMs) for one policy, from a hash of its id: the same policy always
 * fires at the same offset after its slots (predictable for its owner), and many policies on the
 * same schedule spread over the window instead of starting together.
 */
export function policyJitterMs(policyId: string, maxMs: number): number {
  if (!(maxMs > 0)) return 0;
  const word = createHash('sha256').update(policyId, 'utf8').digest().readUInt32BE(0);
  return Math.floor((word / 2 ** 32) * maxMs);
}
