/** The webhook outbox repository on both databases, and its claim shared by two PostgreSQL replicas. */
import t from 'tap';
import type { NewOutboxRow } from '../../src/store/index.ts';
import { forEachDialect, openReplicaStore, openTestStore } from './store-dialects.ts';

const at = (s: number) => new Date(Date.UTC(2026, 11, 4, 10, 0, s)).toISOString();
const row = (id: string, webhook: string, createdAt: string, eventKey: string | null = null): NewOutboxRow => ({
  id, webhook, eventType: 'job.failed', eventKey, body: `{"id":"${id}"}`, createdAt,
});

t.test('outbox: a repeated event key is one row; due in order; claim, retry, deliver, give up', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await openTestStore(t, dialect);
  const w = store.webhooks;
  t.equal(await w.nextDueAt(), null, 'nothing pending');
  // Written in this order with equal timestamps: insertion order breaks the tie (SQLite's rowid, PostgreSQL's column of that name).
  t.equal(await w.enqueue([row('z1', 'a', at(1), 'job.failed:j1'), row('b1', 'b', at(1), 'job.failed:j1'), row('m1', 'a', at(1))]), 3);
  t.equal(await w.enqueue([row('y2', 'a', at(2), 'job.failed:j1'), row('c2', 'a', at(2))]), 1, 'the same key for the same webhook is ignored');
  t.equal(await w.enqueue([row('c2', 'a', at(2))]), 0, 'the same id too');
  t.same((await w.listByWebhook('a')).map((r) => r.id), ['z1', 'm1', 'c2'], 'oldest first, then in the order written');
  t.same((await w.due(at(1), 10)).map((r) => r.id), ['z1', 'b1', 'm1'], 'due at 1 s');
  t.equal(await w.nextDueAt(), at(1));
  t.same([...(await w.pendingByWebhook()).entries()].sort(), [['a', 3], ['b', 1]]);

  const claimed = await w.claimDue(at(2), 2, at(30));
  t.same(claimed.map((r) => [r.id, r.nextAttemptAt]), [['z1', at(1)], ['b1', at(1)]], 'the first two, as they were');
  t.match(await w.get('z1'), { nextAttemptAt: at(30) }, 'leased until then');
  t.same((await w.due(at(2), 10)).map((r) => r.id), ['m1', 'c2'], 'claimed rows are not due meanwhile');
  t.same((await w.claimDue(at(2), 10, at(30))).map((r) => r.id), ['m1', 'c2']);
  t.same(await w.claimDue(at(2), 10, at(30)), [], 'nothing left to claim');

  await w.retryAt('z1', 1, at(5), 'HTTP 500');
  await w.delivered('b1', 1, at(3));
  await w.givenUp('m1', 4, at(3), 'timeout');
  t.match(await w.get('z1'), { attempts: 1, nextAttemptAt: at(5), lastError: 'HTTP 500', deliveredAt: null });
  t.match(await w.get('b1'), { attempts: 1, deliveredAt: at(3), lastError: null });
  t.match(await w.get('m1'), { attempts: 4, givenUpAt: at(3), lastError: 'timeout' });
  t.equal(await w.nextDueAt(), at(5), 'the retry is the earliest pending');
  t.same([...(await w.pendingByWebhook()).entries()].sort(), [['a', 2]]);
  t.equal(await w.get('nope'), null);
}));

t.test('postgres: two replicas claiming at once take every due row exactly once', async (t) => {
  const { store: a, url } = await openTestStore(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  const total = 300;
  await a.webhooks.enqueue(Array.from({ length: total }, (_, i) => row(`r${String(i).padStart(3, '0')}`, i % 2 ? 'a' : 'b', at(i % 50))));
  const taken = new Map<string, string[]>();
  const drain = async (name: string, store: typeof a) => {
    for (;;) {
      const rows = await store.webhooks.claimDue(at(59), 7, '2026-12-04T11:00:00.000Z');
      if (rows.length === 0) return;
      for (const r of rows) taken.set(r.id, [...(taken.get(r.id) ?? []), name]);
    }
  };
  await Promise.all([drain('a', a), drain('b', b), drain('a2', a), drain('b2', b)]);
  t.equal(taken.size, total, 'every row claimed');
  t.same([...taken.entries()].filter(([, by]) => by.length > 1), [], 'none twice');
  t.ok(new Set([...taken.values()].map((by) => by[0]![0])).size === 2, 'both replicas took some');
});
