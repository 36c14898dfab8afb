/**
 * Cron schedules in a time zone, through croner (no hand-written cron parser). Pure: no timers;
 * the scheduler asks for the next fire time and arms its own timer.
 */
import { Cron } from 'croner';

/** Why a 5-field cron expression is refused, or null when it is fine. */
export function cronProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 || expression.trim() === '') {
    return `must have 5 fields (minute hour day-of-month month day-of-week), found ${expression.trim() === '' ? 0 : fields.length}`;
  }
  try {
    new Cron(expression, { paused: true });
    return null;
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern:\s*/, '');
  }
}

/** True for an IANA time zone name this runtime knows (Intl's list, plus UTC). */
export function isTimeZone(name: string): boolean {
  if (name === 'UTC' || name === 'Etc/UTC') return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return /^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name);
  } catch {
    return false;
  }
}

/**
 * The first fire time strictly after `after`, in UTC, or null when the expression never fires
 * again (e.g. 30 February). A local time skipped by a DST change fires at the first valid time
 * after it (croner's rule); one repeated fires once.
 */
export function nextFireAfter(expression: string, timezone: string, after: Date): Date | null {
  return new Cron(expression, { paused: true, timezone }).nextRun(after);
}
