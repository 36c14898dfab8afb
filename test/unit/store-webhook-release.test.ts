/**
 * The outbox's release on both databases: a row a delivery round claimed (claimDue) and did not
 * attempt goes back to its old next attempt, only while the round's claim is still the row's.
 */
import t from 'tap';
import { forEachDialect, openTestStore } from './store-dialects.ts';

const at = (s: number) => new Date(Date.UTC(2026, 11, 4, 10, 0, s)).toISOString();

t.test('release gives a claimed row back as it was, and only while the claim is the round\'s', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await openTestStore(t, dialect);
  const w = store.webhooks;
  await w.enqueue([{ id: 'r1', webhook: 'a', eventType: 'job.failed', eventKey: null, body: '{}', createdAt: at(1) }]);
  const [claimed] = await w.claimDue(at(2), 10, at(30));
  t.equal(claimed?.nextAttemptAt, at(1));
  t.equal(await w.release('r1', at(31), at(1)), false, 'another claim\'s end: left alone');
  t.match(await w.get('r1'), { nextAttemptAt: at(30) });
  t.equal(await w.release('r1', at(30), at(1)), true);
  t.match(await w.get('r1'), { nextAttemptAt: at(1), attempts: 0, lastError: null }, 'due again as before the claim');
  t.same((await w.due(at(2), 10)).map((r) => r.id), ['r1']);

  await w.claimDue(at(2), 10, at(40));
  await w.delivered('r1', 1, at(3));
  t.equal(await w.release('r1', at(40), at(1)), false, 'a delivered row stays delivered');
  t.match(await w.get('r1'), { deliveredAt: at(3) });
}));
