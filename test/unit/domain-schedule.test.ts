/**
 * Cron in a time zone (src/domain/schedule.ts, croner): fire times across DST changes in
 * Europe/Berlin, America/New_York and Australia/Lord_Howe (30-minute shift), leap days, and the
 * validators the API uses for 400s.
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import t from 'tap';
import { cronProblem, isTimeZone, nextFireAfter } from '../../src/domain/schedule.ts';

const next = (expression: string, zone: string, after: string) => nextFireAfter(expression, zone, new Date(after))?.toISOString() ?? null;

/** The fire times of `expression` after `after`, `n` of them. */
function fires(expression: string, zone: string, after: string, n: number): string[] {
  const out: string[] = [];
  let at = new Date(after);
  for (let i = 0; i < n; i++) {
    const r = nextFireAfter(expression, zone, at);
    if (r === null) break;
    out.push(r.toISOString());
    at = r;
  }
  return out;
}

t.test('Europe/Berlin: a skipped 02:30 fires at 03:00 CEST; a repeated 02:30 fires once', async (t) => {
  // 2026-03-29 02:00 CET → 03:00 CEST (01:00Z).
  t.same(fires('30 2 * * *', 'Europe/Berlin', '2026-03-28T12:00:00Z', 2), ['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
  // 2026-10-25 03:00 CEST → 02:00 CET: 02:30 comes at 00:30Z and again at 01:30Z; only the first fires.
  t.same(fires('30 2 * * *', 'Europe/Berlin', '2026-10-24T12:00:00Z', 2), ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  // Outside the changed hour nothing moves: 04:00 local is 03:00Z on 25 October, 02:00Z before it.
  t.same(fires('0 4 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 2), ['2026-10-24T02:00:00.000Z', '2026-10-25T03:00:00.000Z']);
  // An interval schedule keeps real 30-minute steps through both passes of the repeated hour.
  t.same(fires('*/30 * * * *', 'Europe/Berlin', '2026-10-24T23:50:00Z', 4), ['2026-10-25T00:00:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T01:30:00.000Z']);
});

t.test('America/New_York: skipped 02:30 fires at 03:00 EDT; repeated 01:30 fires once', async (t) => {
  t.equal(next('30 2 * * *', 'America/New_York', '2026-03-07T12:00:00Z'), '2026-03-08T07:00:00.000Z');
  t.same(fires('30 1 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
});

t.test('Australia/Lord_Howe: the 30-minute shift', async (t) => {
  // 2026-10-04 02:00 (+10:30) → 02:30 (+11): 02:15 does not exist and fires at the change, 02:30 (+11) = 15:30Z.
  t.same(fires('15 2 * * *', 'Australia/Lord_Howe', '2026-10-03T00:00:00Z', 2), ['2026-10-03T15:30:00.000Z', '2026-10-04T15:15:00.000Z']);
  // 2026-04-05 02:00 (+11) → 01:30 (+10:30): 01:45 comes at 14:45Z and 15:15Z; it fires once, then 01:45 (+10:30) next day.
  t.same(fires('45 1 * * *', 'Australia/Lord_Howe', '2026-04-04T00:00:00Z', 2), ['2026-04-04T14:45:00.000Z', '2026-04-05T15:15:00.000Z']);
});

t.test('leap days: 29 February fires every four years; 30 February never', async (t) => {
  t.same(fires('0 0 29 2 *', 'Europe/Berlin', '2026-03-01T00:00:00Z', 2), ['2028-02-28T23:00:00.000Z', '2032-02-28T23:00:00.000Z']);
  t.equal(next('0 0 30 2 *', 'UTC', '2026-03-01T00:00:00Z'), null);
  // A monthly last-days schedule on a leap year: the 29th exists in February 2028.
  t.same(fires('0 12 29 * *', 'UTC', '2028-01-30T00:00:00Z', 2), ['2028-02-29T12:00:00.000Z', '2028-03-29T12:00:00.000Z']);
});

t.test('property: a daily h:m fires once per local day, at h:m or (in a DST gap) at the first time after it', async (t) => {
  const zones = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'UTC'];
  const around = ['2026-03-08T07:00:00Z', '2026-03-29T01:00:00Z', '2026-10-25T01:00:00Z', '2026-11-01T06:00:00Z', '2026-04-04T15:00:00Z', '2026-10-03T15:30:00Z'].map(Date.parse);
  fc.assert(
    fc.property(
      fc.constantFrom(...zones),
      fc.integer({ min: 0, max: 23 }),
      fc.constantFrom(0, 15, 30, 45, 59),
      fc.constantFrom(...around),
      fc.integer({ min: -36 * 60, max: 12 * 60 }),
      (zone, hour, minute, at, shift) => {
        const after = new Date(at + shift * 60_000);
        const first = nextFireAfter(`${minute} ${hour} * * *`, zone, after);
        if (first === null || first <= after) return false;
        const second = nextFireAfter(`${minute} ${hour} * * *`, zone, first)!;
        const a = DateTime.fromJSDate(first, { zone });
        const b = DateTime.fromJSDate(second, { zone });
        if (a.hasSame(b, 'day')) return false; // fired twice on one local date
        for (const fire of [a, b]) {
          if (fire.hour === hour && fire.minute === minute) continue;
          // Only allowed when h:m did not exist that day: a minute earlier the clock read before h:m.
          const before = fire.minus({ minutes: 1 });
          const wanted = hour * 60 + minute;
          if (!(before.hour * 60 + before.minute < wanted && fire.hour * 60 + fire.minute > wanted)) return false;
        }
        return true;
      },
    ),
    { numRuns: 500 },
  );
});

t.test('cronProblem: 5 fields, each valid', async (t) => {
  t.equal(cronProblem('30 2 * * *'), null);
  t.equal(cronProblem('*/15 0-6 1,15 * 1-5'), null);
  t.equal(cronProblem('0 0 29 2 *'), null);
  t.match(cronProblem(''), /must have 5 fields.*found 0/);
  t.match(cronProblem('* * *'), /found 3/);
  t.match(cronProblem('0 0 * * * *'), /found 6/);
  t.match(cronProblem('61 * * * *'), /minute/);
  t.match(cronProblem('0 24 * * *'), /hour/);
  t.match(cronProblem('0 0 32 * *'), /day/);
  t.match(cronProblem('0 0 * 13 *'), /month/);
  t.not(cronProblem('a b c d e'), null);
});

t.test('isTimeZone: IANA names and UTC; no offsets, no made-up places', async (t) => {
  for (const zone of ['UTC', 'Etc/UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu']) t.ok(isTimeZone(zone), zone);
  for (const zone of ['', 'Mars/Olympus_Mons', '+02:00', 'Europe/Berlin; rm -rf', ' Europe/Berlin']) t.notOk(isTimeZone(zone), JSON.stringify(zone));
});
