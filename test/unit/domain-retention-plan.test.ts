/**
 * The retention planner (src/domain/retention-plan.ts): its invariants as fast-check properties
 * (ownership, partition, keepLast floor, idempotence, and agreement with a plain luxon model of
 * restic-style GFS buckets in the policy's zone), then worked examples across DST changes, a leap
 * day and a clock that jumps.
 */
import fc from 'fast-check';
import { DateTime, Duration } from 'luxon';
import t from 'tap';
import { bucketKeys, localWallMs } from '../../src/domain/local-calendar.ts';
import type { PlannedSnapshot, RetentionRule } from '../../src/domain/policy.ts';
import { planRetention, retentionDeletes, retentionProblem, type RetentionPlan } from '../../src/domain/retention-plan.ts';

const POLICY = 'pol-a';
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Chatham'];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function snap(id: string, createdAt: string | null, extra: Partial<PlannedSnapshot> = {}): PlannedSnapshot {
  return { id, vmId: 'vm-1', parentId: null, name: id, owner: 'snapvisor', policyId: POLICY, current: false, createdAt, ...extra };
}

function plan(snapshots: readonly PlannedSnapshot[], retention: RetentionRule, timezone: string, now: string | Date): RetentionPlan {
  return planRetention({ policy: { id: POLICY, retention, timezone }, snapshots, now: typeof now === 'string' ? new Date(now) : now });
}

const keptIds = (p: RetentionPlan) => p.keep.map((k) => k.id).sort();
const deletedIds = (p: RetentionPlan) => p.delete.map((d) => d.id);
const reasonsOf = (p: RetentionPlan, id: string) => p.keep.find((k) => k.id === id)?.reasons ?? [];

// ---- generators ---------------------------------------------------------------------------

const NOW_MS = Date.UTC(2026, 9, 25, 12); // a Sunday of DST changes: Europe moves back that morning
const owners = ['mine', 'mine', 'mine', 'manual', 'external', 'other'] as const;

const snapshotArb = fc.record({
  owner: fc.constantFrom(...owners),
  // Up to ~400 days back and 3 days ahead (a clock that went back); minutes resolution.
  offsetMinutes: fc.integer({ min: -400 * 24 * 60, max: 3 * 24 * 60 }),
  undated: fc.integer({ min: 0, max: 30 }).map((n) => n === 0),
});

const snapshotsArb = fc.array(snapshotArb, { maxLength: 60 }).map((rows) =>
  rows.map((r, i): PlannedSnapshot => {
    const createdAt = r.undated ? null : new Date(NOW_MS + r.offsetMinutes * 60_000).toISOString();
    switch (r.owner) {
      case 'mine':
        return snap(`s${i}`, createdAt);
      case 'manual':
        return snap(`s${i}`, createdAt, { policyId: null });
      case 'external':
        return snap(`s${i}`, createdAt, { owner: 'external', policyId: null });
      case 'other':
        return snap(`s${i}`, createdAt, { policyId: 'pol-b' });
    }
  }),
);

const count = fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined });
const ruleArb: fc.Arbitrary<RetentionRule> = fc
  .record({
    keepLast: fc.integer({ min: 1, max: 8 }),
    keepHourly: count,
    keepDaily: count,
    keepWeekly: count,
    keepMonthly: count,
    maxAge: fc.option(fc.constantFrom('PT6H', 'P1D', 'P7D', 'P1M', 'P3M', 'P1Y'), { nil: undefined }),
  })
  .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as RetentionRule);

const zoneArb = fc.constantFrom(...ZONES);
const nowArb = fc.integer({ min: -2 * 24 * 60, max: 2 * 24 * 60 }).map((m) => new Date(NOW_MS + m * 60_000));

const owned = (s: PlannedSnapshot) => s.owner === 'snapvisor' && s.policyId === POLICY;

// ---- properties ---------------------------------------------------------------------------

t.test('never keeps or deletes a snapshot the policy does not own; lists each as untouched with why', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      const p = plan(snaps, rule, zone, now);
      const notOwned = new Map(snaps.filter((s) => !owned(s)).map((s) => [s.id, s]));
      for (const d of p.delete) if (notOwned.has(d.id)) return false;
      for (const k of p.keep) if (notOwned.has(k.id)) return false;
      if (p.untouched.length !== notOwned.size) return false;
      for (const u of p.untouched) {
        const s = notOwned.get(u.id);
        if (s === undefined) return false;
        const want = s.owner === 'external' ? 'external' : s.policyId === null ? 'manual (not made by a policy)' : 'another policy';
        if (u.reason !== want) return false;
      }
      return true;
    }),
    { numRuns: 400 },
  );
});

t.test('keep and delete partition the owned snapshots; deletions are oldest first', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      const p = plan(snaps, rule, zone, now);
      const ownedIds = snaps.filter(owned).map((s) => s.id).sort();
      const all = [...p.keep.map((k) => k.id), ...p.delete.map((d) => d.id)];
      if (new Set(all).size !== all.length) return false;
      if (JSON.stringify([...all].sort()) !== JSON.stringify(ownedIds)) return false;
      const at = new Map(snaps.map((s) => [s.id, s.createdAt === null ? Number.NaN : Date.parse(s.createdAt)]));
      const times = p.delete.map((d) => at.get(d.id)!);
      return times.every((ms, i) => !Number.isNaN(ms) && (i === 0 || times[i - 1]! <= ms));
    }),
    { numRuns: 400 },
  );
});

t.test('always keeps the min(keepLast, owned) newest, and every undated one', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      const p = plan(snaps, rule, zone, now);
      const kept = new Set(p.keep.map((k) => k.id));
      const mine = snaps.filter(owned);
      if (!mine.filter((s) => s.createdAt === null).every((s) => kept.has(s.id))) return false;
      const dated = mine.filter((s) => s.createdAt !== null).sort((a, b) => Date.parse(b.createdAt!) - Date.parse(a.createdAt!));
      const floor = Math.min(rule.keepLast, dated.length);
      // Ties in time may pick either of two equal instants: compare instants, not ids.
      const keptTimes = dated.filter((s) => kept.has(s.id)).map((s) => Date.parse(s.createdAt!));
      return dated.slice(0, floor).every((s, i) => keptTimes[i] === Date.parse(s.createdAt!));
    }),
    { numRuns: 400 },
  );
});

t.test('idempotent: the plan applied and planned again at the same now deletes nothing', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      const first = plan(snaps, rule, zone, now);
      const gone = new Set(deletedIds(first));
      const second = plan(snaps.filter((s) => !gone.has(s.id)), rule, zone, now);
      return second.delete.length === 0 && JSON.stringify(keptIds(second)) === JSON.stringify(keptIds(first));
    }),
    { numRuns: 400 },
  );
});

t.test('retentionDeletes (what a run uses) deletes exactly what planRetention lists', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      const input = { policy: { id: POLICY, retention: rule, timezone: zone }, snapshots: snaps, now };
      return JSON.stringify(retentionDeletes(input)) === JSON.stringify(planRetention(input).delete);
    }),
    { numRuns: 400 },
  );
});

/**
 * A model written straight from the rule's words with luxon's own calendar (slow and obvious):
 * the newest snapshot of each of the newest N local hours/days/ISO weeks/months that have one.
 */
function modelKeep(snaps: readonly PlannedSnapshot[], rule: RetentionRule, zone: string, now: Date): string[] {
  const dated = snaps
    .filter(owned)
    .filter((s) => s.createdAt !== null)
    .map((s) => ({ id: s.id, ms: Date.parse(s.createdAt!) }))
    .sort((a, b) => b.ms - a.ms || (a.id < b.id ? -1 : 1));
  const keep = new Set(snaps.filter((s) => owned(s) && s.createdAt === null).map((s) => s.id));
  dated.slice(0, rule.keepLast).forEach((s) => keep.add(s.id));
  const cutoff = rule.maxAge === undefined ? -Infinity : DateTime.fromMillis(now.getTime(), { zone }).minus(Duration.fromISO(rule.maxAge)).toMillis();
  const formats: Array<[number | undefined, (d: DateTime) => string]> = [
    [rule.keepHourly, (d) => d.toFormat('yyyy-LL-dd HH')],
    [rule.keepDaily, (d) => d.toFormat('yyyy-LL-dd')],
    [rule.keepWeekly, (d) => `${d.weekYear}-${d.weekNumber}`],
    [rule.keepMonthly, (d) => d.toFormat('yyyy-LL')],
  ];
  for (const [n, bucketOf] of formats) {
    if (!n) continue;
    const seen: string[] = [];
    for (const s of dated) {
      const b = bucketOf(DateTime.fromMillis(s.ms, { zone }));
      if (seen.includes(b)) continue;
      if (seen.length === n) break;
      seen.push(b);
      if (s.ms >= cutoff) keep.add(s.id);
    }
  }
  return [...keep].sort();
}

t.test('GFS buckets follow the policy time zone: the planner agrees with a luxon model', async (t) => {
  fc.assert(
    fc.property(snapshotsArb, ruleArb, zoneArb, nowArb, (snaps, rule, zone, now) => {
      return JSON.stringify(keptIds(plan(snaps, rule, zone, now))) === JSON.stringify(modelKeep(snaps, rule, zone, now));
    }),
    { numRuns: 400 },
  );
});

t.test('bucket keys equal luxon calendar fields in the zone, around DST changes too', async (t) => {
  // Instants within a day of the 2026 transitions of each zone, and anywhere in 2000–2040.
  const transitions = ['2026-03-08T07:00Z', '2026-11-01T06:00Z', '2026-03-29T01:00Z', '2026-10-25T01:00Z', '2026-04-04T15:00Z', '2026-10-03T15:30Z', '2026-04-04T14:00Z', '2026-09-26T14:00Z'].map(Date.parse);
  const near = fc.tuple(fc.constantFrom(...transitions), fc.integer({ min: -DAY, max: DAY })).map(([at, d]) => at + d);
  const anywhere = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2040, 0, 1) });
  fc.assert(
    fc.property(zoneArb, fc.oneof(near, anywhere), fc.oneof(near, anywhere), (zone, a, b) => {
      const ka = bucketKeys(localWallMs(zone, a));
      const kb = bucketKeys(localWallMs(zone, b));
      const la = DateTime.fromMillis(a, { zone });
      const lb = DateTime.fromMillis(b, { zone });
      return (
        (ka.hour === kb.hour) === (la.toFormat('yyyy-LL-dd HH') === lb.toFormat('yyyy-LL-dd HH')) &&
        (ka.day === kb.day) === la.hasSame(lb, 'day') &&
        (ka.week === kb.week) === (la.weekYear === lb.weekYear && la.weekNumber === lb.weekNumber) &&
        (ka.month === kb.month) === la.hasSame(lb, 'month') &&
        // And the values themselves: day number, hour, Monday of the ISO week, year × 12 + month.
        ka.day === Date.UTC(la.year, la.month - 1, la.day) / DAY &&
        ka.hour === ka.day * 24 + la.hour &&
        ka.week * 7 - 3 === Date.UTC(la.startOf('week').year, la.startOf('week').month - 1, la.startOf('week').day) / DAY &&
        ka.month === la.year * 12 + la.month - 1 &&
        localWallMs(zone, a) - a === la.offset * 60_000
      );
    }),
    { numRuns: 3000 },
  );
});

// ---- examples -----------------------------------------------------------------------------

t.test('ownership: external, manual and another policy untouched; undated kept as unknown age', async (t) => {
  const p = plan(
    [
      snap('ext', '2026-01-01T00:00:00Z', { owner: 'external', policyId: null }),
      snap('man', '2026-01-01T00:00:00Z', { policyId: null }),
      snap('oth', '2026-01-01T00:00:00Z', { policyId: 'pol-b' }),
      snap('old', '2026-01-01T00:00:00Z'),
      snap('new', '2026-01-02T00:00:00Z'),
      snap('undated', null),
    ],
    { keepLast: 1 },
    'UTC',
    '2026-01-03T00:00:00Z',
  );
  t.same(p.untouched, [
    { id: 'ext', reason: 'external' },
    { id: 'man', reason: 'manual (not made by a policy)' },
    { id: 'oth', reason: 'another policy' },
  ]);
  t.same(keptIds(p), ['new', 'undated']);
  t.same(reasonsOf(p, 'undated'), ['unknown age']);
  t.same(p.delete, [{ id: 'old', reason: 'not kept by any rule' }]);
});

t.test('Europe/Berlin autumn: the repeated 02:xx is one hourly bucket', async (t) => {
  // 2026-10-25 03:00 CEST → 02:00 CET. 00:30Z = 02:30 CEST, 01:30Z = 02:30 CET; 23:30Z = 01:30 CEST.
  const snaps = [snap('a', '2026-10-24T23:30:00Z'), snap('b', '2026-10-25T00:30:00Z'), snap('c', '2026-10-25T01:30:00Z')];
  const berlin = plan(snaps, { keepLast: 1, keepHourly: 2 }, 'Europe/Berlin', '2026-10-25T02:00:00Z');
  t.same(keptIds(berlin), ['a', 'c']);
  t.same(reasonsOf(berlin, 'c'), ['last 1 of 1', 'hourly 2026-10-25T02']);
  t.same(reasonsOf(berlin, 'a'), ['hourly 2026-10-25T01']);
  t.same(berlin.delete, [{ id: 'b', reason: 'not kept by any rule' }]);
  // In UTC they are three hours: the zone is what makes b go.
  t.same(keptIds(plan(snaps, { keepLast: 1, keepHourly: 2 }, 'UTC', '2026-10-25T02:00:00Z')), ['b', 'c']);
});

t.test('Europe/Berlin spring: around the skipped 02:xx, buckets are the hours that exist', async (t) => {
  // 2026-03-29 02:00 CET → 03:00 CEST. 00:30Z = 01:30 CET, 01:30Z = 03:30 CEST, 00:50Z = 01:50 CET.
  const snaps = [snap('a', '2026-03-29T00:30:00Z'), snap('a2', '2026-03-29T00:50:00Z'), snap('b', '2026-03-29T01:30:00Z')];
  const p = plan(snaps, { keepLast: 1, keepHourly: 3 }, 'Europe/Berlin', '2026-03-29T02:00:00Z');
  t.same(reasonsOf(p, 'b'), ['last 1 of 1', 'hourly 2026-03-29T03']);
  t.same(reasonsOf(p, 'a2'), ['hourly 2026-03-29T01']);
  t.same(deletedIds(p), ['a']);
});

t.test('America/New_York: repeated 01:xx is one hour, and days are New York days', async (t) => {
  // 2026-11-01 02:00 EDT → 01:00 EST. 05:30Z = 01:30 EDT, 06:30Z = 01:30 EST.
  const hourly = plan([snap('edt', '2026-11-01T05:30:00Z'), snap('est', '2026-11-01T06:30:00Z')], { keepLast: 1, keepHourly: 5 }, 'America/New_York', '2026-11-01T07:00:00Z');
  t.same(deletedIds(hourly), ['edt']);
  // 2026-11-02T03:00Z is 22:00 on 1 November in New York: one day there, two in UTC.
  const snaps = [snap('eve', '2026-11-01T20:00:00Z'), snap('late', '2026-11-02T03:00:00Z')];
  const daily = plan(snaps, { keepLast: 1, keepDaily: 2 }, 'America/New_York', '2026-11-02T04:00:00Z');
  t.same(deletedIds(daily), ['eve']);
  t.same(reasonsOf(daily, 'late'), ['last 1 of 1', 'daily 2026-11-01']);
  t.same(deletedIds(plan(snaps, { keepLast: 1, keepDaily: 2 }, 'UTC', '2026-11-02T04:00:00Z')), []);
  // Spring: 2026-03-08 02:00 EST → 03:00 EDT; 06:30Z = 01:30 EST and 07:30Z = 03:30 EDT are two hours.
  const spring = plan([snap('x', '2026-03-08T06:30:00Z'), snap('y', '2026-03-08T07:30:00Z')], { keepLast: 1, keepHourly: 2 }, 'America/New_York', '2026-03-08T08:00:00Z');
  t.same(reasonsOf(spring, 'x'), ['hourly 2026-03-08T01']);
  t.same(reasonsOf(spring, 'y'), ['last 1 of 1', 'hourly 2026-03-08T03']);
});

t.test('Australia/Lord_Howe: the 30-minute shift, repeated 01:30–02:00 and skipped 02:00–02:30', async (t) => {
  // 2026-04-05 02:00 (+11) → 01:30 (+10:30). 14:20Z = 01:20, 14:40Z = 01:40 (+11), 15:10Z = 01:40 (+10:30), 15:35Z = 02:05.
  const autumn = [snap('a', '2026-04-04T14:20:00Z'), snap('b', '2026-04-04T14:40:00Z'), snap('c', '2026-04-04T15:10:00Z'), snap('d', '2026-04-04T15:35:00Z')];
  const p = plan(autumn, { keepLast: 1, keepHourly: 2 }, 'Australia/Lord_Howe', '2026-04-04T16:00:00Z');
  t.same(reasonsOf(p, 'd'), ['last 1 of 1', 'hourly 2026-04-05T02']);
  t.same(reasonsOf(p, 'c'), ['hourly 2026-04-05T01']);
  t.same(deletedIds(p), ['a', 'b']);
  // 2026-10-04 02:00 (+10:30) → 02:30 (+11). 15:20Z = 01:50, 15:40Z = 02:40: two hours, one day.
  const spring = [snap('x', '2026-10-03T15:20:00Z'), snap('y', '2026-10-03T15:40:00Z')];
  const q = plan(spring, { keepLast: 1, keepHourly: 2, keepDaily: 1 }, 'Australia/Lord_Howe', '2026-10-03T16:00:00Z');
  t.same(reasonsOf(q, 'x'), ['hourly 2026-10-04T01']);
  t.same(reasonsOf(q, 'y'), ['last 1 of 1', 'hourly 2026-10-04T02', 'daily 2026-10-04']);
  // 13:20Z is 23:50 on 3 October there, 13:40Z is 00:10 on 4 October (+10:30): the half-hour offset splits a UTC day.
  const midnight = plan([snap('m1', '2026-10-03T13:20:00Z'), snap('m2', '2026-10-03T13:40:00Z')], { keepLast: 1, keepDaily: 2 }, 'Australia/Lord_Howe', '2026-10-03T16:00:00Z');
  t.same(reasonsOf(midnight, 'm1'), ['daily 2026-10-03']);
  t.same(reasonsOf(midnight, 'm2'), ['last 1 of 1', 'daily 2026-10-04']);
});

t.test('leap day: 29 February is its own daily bucket and the newest of February', async (t) => {
  const snaps = [snap('feb28', '2028-02-28T12:00:00Z'), snap('feb29', '2028-02-29T12:00:00Z'), snap('feb29-early', '2028-02-29T01:00:00Z'), snap('mar1', '2028-03-01T12:00:00Z')];
  const p = plan(snaps, { keepLast: 1, keepDaily: 3, keepMonthly: 2 }, 'Europe/Berlin', '2028-03-01T13:00:00Z');
  t.same(reasonsOf(p, 'feb29'), ['daily 2028-02-29', 'monthly 2028-02']);
  t.same(reasonsOf(p, 'feb28'), ['daily 2028-02-28']);
  t.same(deletedIds(p), ['feb29-early']);
  // maxAge P1M from 31 March reaches back to the last day of February (luxon clamps to 29 Feb).
  const q = plan([snap('f28', '2028-02-28T22:00:00Z'), snap('f29', '2028-02-29T23:30:00Z'), snap('m31', '2028-03-31T10:00:00Z')], { keepLast: 1, keepDaily: 5, maxAge: 'P1M' }, 'UTC', '2028-03-31T12:00:00Z');
  t.same(q.delete, [{ id: 'f28', reason: 'older than maxAge P1M' }]);
  t.same(reasonsOf(q, 'f29'), ['daily 2028-02-29']);
});

t.test('a clock that jumped back: snapshots dated after now are the newest and never aged out', async (t) => {
  const snaps = [snap('future-day', '2026-06-02T12:00:00Z'), snap('future-hour', '2026-06-01T14:00:00Z'), snap('recent', '2026-06-01T11:30:00Z'), snap('old', '2026-06-01T07:00:00Z')];
  const p = plan(snaps, { keepLast: 1, keepHourly: 10, maxAge: 'PT1H' }, 'UTC', '2026-06-01T12:00:00Z');
  t.same(keptIds(p), ['future-day', 'future-hour', 'recent']);
  t.same(p.delete, [{ id: 'old', reason: 'older than maxAge PT1H' }]);
  t.same(reasonsOf(p, 'future-day'), ['last 1 of 1', 'hourly 2026-06-02T12']);
});

t.test('a clock that jumped forward: maxAge drops everything but keepLast, never fewer', async (t) => {
  const snaps = Array.from({ length: 10 }, (_, i) => snap(`d${i}`, new Date(Date.UTC(2026, 0, 1 + i, 3)).toISOString()));
  const rule = { keepLast: 2, keepDaily: 7, keepMonthly: 3, maxAge: 'P7D' };
  // Before the jump, the same rule keeps seven days.
  t.same(keptIds(plan(snaps, rule, 'Europe/Berlin', '2026-01-10T12:00:00Z')), ['d3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9']);
  const p = plan(snaps, rule, 'Europe/Berlin', '2027-01-01T00:00:00Z');
  t.same(keptIds(p), ['d8', 'd9']);
  t.same(deletedIds(p), ['d0', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']);
  t.ok(p.delete.every((d) => d.reason === 'older than maxAge P7D'));
});

t.test('weekly buckets are ISO weeks starting Monday in the zone', async (t) => {
  // Sunday 2026-12-06 23:30 in Berlin is 22:30Z; Monday 2026-12-07 00:30 Berlin is 23:30Z on Sunday in UTC.
  const snaps = [snap('sun', '2026-12-06T22:30:00Z'), snap('mon', '2026-12-06T23:30:00Z')];
  const berlin = plan(snaps, { keepLast: 1, keepWeekly: 2 }, 'Europe/Berlin', '2026-12-07T12:00:00Z');
  t.same(reasonsOf(berlin, 'sun'), ['weekly 2026-W49']);
  t.same(reasonsOf(berlin, 'mon'), ['last 1 of 1', 'weekly 2026-W50']);
  t.same(deletedIds(plan(snaps, { keepLast: 1, keepWeekly: 2 }, 'UTC', '2026-12-07T12:00:00Z')), ['sun']);
  // ISO week-year: 2027-01-01 (a Friday) is in 2026-W53.
  const ny = plan([snap('ny', '2027-01-01T12:00:00Z')], { keepLast: 1, keepWeekly: 1 }, 'UTC', '2027-01-02T00:00:00Z');
  t.same(reasonsOf(ny, 'ny'), ['last 1 of 1', 'weekly 2026-W53']);
});

t.test('retentionProblem names the field', async (t) => {
  t.equal(retentionProblem({ keepLast: 1 }), null);
  t.equal(retentionProblem({ keepLast: 3, keepHourly: 0, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, maxAge: 'P1Y2M' }), null);
  t.equal(retentionProblem({ keepLast: 1, maxAge: 'PT36H' }), null);
  t.match(retentionProblem({ keepLast: 0 }), /^keepLast: /);
  t.match(retentionProblem({ keepLast: 1.5 }), /^keepLast: /);
  t.match(retentionProblem({ keepLast: 1, keepDaily: -1 }), /^keepDaily: /);
  t.match(retentionProblem({ keepLast: 1, keepWeekly: 2.5 }), /^keepWeekly: /);
  t.match(retentionProblem({ keepLast: 1, keepHourly: Number.NaN }), /^keepHourly: /);
  t.match(retentionProblem({ keepLast: 1, keepMonthly: Infinity }), /^keepMonthly: /);
  t.match(retentionProblem({ keepLast: 1, maxAge: '30 days' }), /^maxAge: /);
  t.match(retentionProblem({ keepLast: 1, maxAge: 'P0D' }), /^maxAge: must be a positive duration/);
  t.match(retentionProblem({ keepLast: 1, maxAge: 'P-1D' }), /^maxAge: /);
  t.match(retentionProblem({ keepLast: 1, maxAge: '' }), /^maxAge: /);
});
