/** Migrations 010 and 014 and the policies repository, on SQLite and on PostgreSQL (and two PostgreSQL replicas). */
import t, { type Test } from 'tap';
import type { Policy } from '../../src/domain/policy.ts';
import { SCHEMA_VERSION } from '../../src/store/migrations/index.ts';
import { forEachDialect, openReplicaStore, openTestStore } from './store-dialects.ts';

const AT = '2026-12-04T10:00:00.000Z';
const policy = (id: string, name: string, over: Partial<Policy> = {}): Policy => ({
  id,
  name,
  selector: { targets: ['lab'], namePattern: 'web*' },
  schedule: '30 2 * * *',
  timezone: 'Europe/Berlin',
  mode: 'memory',
  retention: { keepLast: 3, keepDaily: 7, maxAge: 'P30D' },
  maxChainDepth: null,
  consolidationSchedule: null,
  enabled: true,
  createdAt: AT,
  updatedAt: AT,
  ...over,
});

t.test('policies round-trip; names are unique; delete keeps the runs', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await openTestStore(t, dialect);
  t.ok(SCHEMA_VERSION >= 10, 'migration 010 is applied');
  const p = policy('p1', 'nightly', { maxChainDepth: 4, consolidationSchedule: '0 4 * * 0' });
  t.same(await store.policies.insert(p), { outcome: 'ok', policy: p });
  t.same(await store.policies.insert(policy('p2', 'nightly')), { outcome: 'name-taken' });
  t.same(await store.policies.insert(policy('p2', 'hourly', { enabled: false })), { outcome: 'ok', policy: policy('p2', 'hourly', { enabled: false }) });
  t.same((await store.policies.list()).map((x) => x.name), ['hourly', 'nightly'], 'by name');
  t.same(await store.policies.update({ ...p, name: 'hourly' }), { outcome: 'name-taken' });
  t.same(await store.policies.update(policy('nope', 'x')), { outcome: 'not-found' });
  const changed = await store.policies.update({ ...p, schedule: '0 * * * *', updatedAt: '2026-12-04T11:00:00.000Z' });
  t.match(changed, { outcome: 'ok', policy: { schedule: '0 * * * *', updatedAt: '2026-12-04T11:00:00.000Z', createdAt: AT } });

  const { run } = await store.policies.startRun({ id: 'r1', policyId: 'p1', kind: 'snapshot', trigger: 'schedule', scheduledFor: '2026-12-04T01:30:00.000Z', startedAt: AT });
  t.match(run, { state: 'running', finishedAt: null, jobIds: [] });
  t.ok(await store.policies.delete('p1'));
  t.notOk(await store.policies.delete('p1'));
  t.equal(await store.policies.get('p1'), null);
  t.match(await store.policies.getRun('r1'), { id: 'r1', policyId: 'p1' }, 'the run outlives its policy');
}));

t.test('one running run per (policy, kind): the next is skipped; jobs in order; slots; pages', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await openTestStore(t, dialect);
  await store.policies.insert(policy('p1', 'nightly'));
  const start = async (id: string, kind: 'snapshot' | 'consolidate', scheduledFor: string | null, startedAt: string) =>
    (await store.policies.startRun({ id, policyId: 'p1', kind, trigger: scheduledFor ? 'schedule' : 'manual', scheduledFor, startedAt })).run;
  t.same(await store.policies.lastScheduledFor('p1'), { snapshot: null, consolidate: null });
  t.match(await start('r1', 'snapshot', '2026-12-04T01:00:00.000Z', '2026-12-04T01:00:01.000Z'), { state: 'running' });
  t.match(await start('r2', 'snapshot', '2026-12-04T02:00:00.000Z', '2026-12-04T02:00:01.000Z'), { state: 'skipped', finishedAt: '2026-12-04T02:00:01.000Z', message: /r1/ });
  t.match(await start('r3', 'consolidate', null, '2026-12-04T02:00:02.000Z'), { state: 'running' }, 'another kind runs');
  t.same(await store.policies.lastScheduledFor('p1'), { snapshot: '2026-12-04T02:00:00.000Z', consolidate: null }, 'a skipped slot counts as taken');
  t.same((await store.policies.runningRuns()).map((r) => r.id), ['r1', 'r3']);

  await store.policies.addRunJob('r1', 'j2');
  await store.policies.addRunJob('r1', 'j1');
  await store.policies.addRunJob('r1', 'j2');
  t.same((await store.policies.getRun('r1'))!.jobIds, ['j2', 'j1'], 'submit order, once each');
  t.match(await store.policies.finishRun('r1', 'partial', 'one failed', '2026-12-04T03:00:00.000Z'), { state: 'partial', message: 'one failed' });
  t.equal(await store.policies.finishRun('r1', 'succeeded', null, '2026-12-04T03:00:00.000Z'), null, 'a finished run stays finished');
  t.match(await start('r4', 'snapshot', null, '2026-12-04T04:00:00.000Z'), { state: 'running' }, 'free again once it ended');

  const first = await store.policies.listRuns('p1', { limit: 2 });
  t.same(first.items.map((r) => r.id), ['r4', 'r3']);
  const second = await store.policies.listRuns('p1', { limit: 2, cursor: first.next! });
  t.same(second.items.map((r) => r.id), ['r2', 'r1']);
  t.equal(second.next, null);
}));

t.test('migration 014: a scheduled slot gets one run; a second start of it is answered with that run', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await openTestStore(t, dialect);
  t.ok(SCHEMA_VERSION >= 14, 'migration 014 is applied');
  await store.policies.insert(policy('p1', 'nightly'));
  const slot = '2026-12-04T01:00:00.000Z';
  const first = await store.policies.startRun({ id: 'r1', policyId: 'p1', kind: 'snapshot', trigger: 'schedule', scheduledFor: slot, startedAt: AT });
  t.match(first, { duplicate: false, run: { id: 'r1', state: 'running' } });
  await store.policies.finishRun('r1', 'succeeded', null, AT);
  const again = await store.policies.startRun({ id: 'r2', policyId: 'p1', kind: 'snapshot', trigger: 'catch-up', scheduledFor: slot, startedAt: AT });
  t.match(again, { duplicate: true, run: { id: 'r1', state: 'succeeded', scheduledFor: slot } }, 'the slot’s run, not a new one');
  t.equal(await store.policies.getRun('r2'), null, 'nothing inserted');
  t.match(await store.policies.startRun({ id: 'r3', policyId: 'p1', kind: 'consolidate', trigger: 'schedule', scheduledFor: slot, startedAt: AT }), { duplicate: false }, 'the slot is per kind');
  t.match(await store.policies.startRun({ id: 'r4', policyId: 'p1', kind: 'snapshot', trigger: 'manual', scheduledFor: null, startedAt: AT }), { duplicate: false, run: { state: 'running' } }, 'manual runs have no slot');
  t.same((await store.policies.listRuns('p1', { limit: 10 })).items.map((r) => r.id).sort(), ['r1', 'r3', 'r4']);
}));

/** Two replicas (two pools on one database) start runs at the same moment, `rounds` times. */
async function raceStarts(t: Test, rounds: number, slotted: boolean) {
  const { store: a, url } = await openTestStore(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  await a.policies.insert(policy('p1', 'nightly'));
  const outcomes: Array<Array<{ state: string; duplicate: boolean; id: string }>> = [];
  for (let i = 0; i < rounds; i++) {
    const slot = slotted ? new Date(Date.UTC(2026, 11, 4, 0, i)).toISOString() : null;
    const start = (store: typeof a, id: string) =>
      store.policies.startRun({ id, policyId: 'p1', kind: 'snapshot', trigger: slotted ? 'schedule' : 'manual', scheduledFor: slot, startedAt: AT });
    const both = await Promise.all([start(a, `a${i}`), start(b, `b${i}`)]);
    outcomes.push(both.map((s) => ({ state: s.run.state, duplicate: s.duplicate, id: s.run.id })));
    for (const s of both) if (s.run.state === 'running') await a.policies.finishRun(s.run.id, 'succeeded', null, AT);
  }
  return { store: a, outcomes };
}

t.test('postgres: two replicas starting one (policy, kind) at once: one runs, the other is skipped', async (t) => {
  const { outcomes } = await raceStarts(t, 20, false);
  for (const [i, both] of outcomes.entries()) {
    t.same(both.map((o) => o.state).sort(), ['running', 'skipped'], `round ${i}`);
  }
});

t.test('postgres: two replicas firing one scheduled slot at once: one run, the other start answered as a duplicate of it', async (t) => {
  const { store, outcomes } = await raceStarts(t, 20, true);
  for (const [i, both] of outcomes.entries()) {
    t.same(both.map((o) => o.duplicate).sort(), [false, true], `round ${i}: one start made the run`);
    t.equal(both[0]!.id, both[1]!.id, `round ${i}: both answer with the same run`);
  }
  t.equal((await store.policies.listRuns('p1', { limit: 100 })).items.length, 20, 'one run per slot');
});
