/**
 * Wall-clock time in an IANA zone, fast enough for a million snapshots. Pure (a memo, no I/O).
 *
 * luxon's DateTime.fromMillis(ms, { zone }) costs microseconds per call (an Intl formatToParts);
 * the retention planner needs four calendar buckets for every snapshot. So the zone's offset is
 * asked of luxon once per 15-minute UTC slot (every tz transition since the 1970s falls on a
 * quarter hour in UTC; a slot whose two ends disagree is not memoised and is asked per instant),
 * and the calendar fields come from integer arithmetic on the shifted instant.
 */
import { IANAZone } from 'luxon';

const SLOT_MS = 15 * 60_000;
/** Memo bound per zone: about 14 years of quarter hours; past it the memo restarts. */
const MAX_SLOTS = 500_000;
const MIXED = Number.NaN;

interface ZoneMemo {
  zone: IANAZone;
  slots: Map<number, number>;
}

const memos = new Map<string, ZoneMemo>();

function memoFor(timezone: string): ZoneMemo {
  let memo = memos.get(timezone);
  if (memo === undefined) {
    const zone = IANAZone.create(timezone);
    if (!zone.isValid) throw new RangeError(`unknown time zone ${JSON.stringify(timezone)}`);
    memo = { zone, slots: new Map() };
    memos.set(timezone, memo);
  }
  return memo;
}

/** Offset of `timezone` from UTC at instant `ms`, in minutes (east positive). */
export function zoneOffsetMinutes(timezone: string, ms: number): number {
  const memo = memoFor(timezone);
  const slot = Math.floor(ms / SLOT_MS);
  let offset = memo.slots.get(slot);
  if (offset === undefined) {
    const start = memo.zone.offset(slot * SLOT_MS);
    const end = memo.zone.offset(slot * SLOT_MS + SLOT_MS - 1);
    offset = start === end ? start : MIXED;
    if (memo.slots.size >= MAX_SLOTS) memo.slots.clear();
    memo.slots.set(slot, offset);
  }
  return Number.isNaN(offset) ? memo.zone.offset(ms) : offset;
}

/** The instant's wall-clock reading in `timezone`, expressed as a UTC epoch (for the getUTC* fields). */
export function localWallMs(timezone: string, ms: number): number {
  return ms + zoneOffsetMinutes(timezone, ms) * 60_000;
}

/**
 * Calendar bucket keys of a wall-clock instant (from localWallMs). Integers, equal exactly when
 * two instants share the local hour / day / ISO week (Monday first) / month. A local hour that a
 * DST change repeats is one hour bucket, as a wall clock reads it.
 */
export interface BucketKeys {
  hour: number;
  day: number;
  week: number;
  month: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

export function bucketKeys(wallMs: number): BucketKeys {
  const day = Math.floor(wallMs / DAY_MS);
  return { hour: Math.floor(wallMs / HOUR_MS), day, week: weekKey(day), month: monthKey(day) };
}

/** Monday-first week of a day number (days since 1970-01-01, a Thursday: day + 3 counts from Monday 1969-12-29). */
export function weekKey(day: number): number {
  return Math.floor((day + 3) / 7);
}

/**
 * year × 12 + month (0-based) of a day number, without a Date object (Howard Hinnant's
 * civil_from_days, https://howardhinnant.github.io/date_algorithms.html).
 */
export function monthKey(day: number): number {
  const z = day + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 2 : mp - 10; // 0-based, March-first → January-first
  const year = yoe + era * 400 + (month <= 1 ? 1 : 0);
  return year * 12 + month;
}

export const HOUR_KEY_MS = HOUR_MS;
export const DAY_KEY_MS = DAY_MS;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Readable bucket labels for reasons: 2026-12-04T02, 2026-12-04, 2026-W49, 2026-12. */
export function bucketLabel(kind: 'hour' | 'day' | 'week' | 'month', wallMs: number): string {
  const d = new Date(wallMs);
  const ymd = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  switch (kind) {
    case 'hour':
      return `${ymd}T${pad(d.getUTCHours())}`;
    case 'day':
      return ymd;
    case 'month':
      return ymd.slice(0, 7);
    case 'week': {
      // ISO week-year: the year of the week's Thursday.
      const thursday = new Date(wallMs + (3 - ((d.getUTCDay() + 6) % 7)) * DAY_MS);
      const year = thursday.getUTCFullYear();
      const week = Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS)) + 1;
      return `${year}-W${pad(week)}`;
    }
  }
}
