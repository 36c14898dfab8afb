/**
 * A snapshot group's state and start spread, derived from its members' create jobs. Pure.
 */
import type { GroupState } from './group.ts';
import type { Iso, JobState } from './types.ts';

/**
 * The group's state from its members' job states. `deleted` wins (the user asked); then any member
 * still queued or running keeps the group running; then all made → succeeded, some made →
 * partial, none made → cancelled when every member was cancelled, else failed. A group has at
 * least one member; an empty list reads as failed (nothing was made).
 */
export function groupState(members: ReadonlyArray<{ state: JobState }>, deleted = false): GroupState {
  if (deleted) return 'deleted';
  if (members.some((m) => m.state === 'queued' || m.state === 'running')) return 'running';
  const made = members.filter((m) => m.state === 'succeeded').length;
  if (made > 0) return made === members.length ? 'succeeded' : 'partial';
  return members.length > 0 && members.every((m) => m.state === 'cancelled') ? 'cancelled' : 'failed';
}

/** Last start − first start in milliseconds over the members that started; null when none has. */
export function startSpreadMs(starts: ReadonlyArray<Iso | null>): number | null {
  let first = Infinity;
  let last = -Infinity;
  for (const s of starts) {
    if (s === null) continue;
    const t = Date.parse(s);
    if (Number.isNaN(t)) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
  }
  return first === Infinity ? null : last - first;
}

/** Members a retry makes a new create job for: those whose job ended without a snapshot. */
export function retryable<T extends { state: JobState }>(members: readonly T[]): T[] {
  return members.filter((m) => m.state === 'failed' || m.state === 'cancelled');
}
