/** The webhook outbox on PostgreSQL (the interface, row mapping and shared SQL: src/store/webhooks.ts). */
import { str, strOrNull, type Row } from '../rows.ts';
import {
  DUE,
  DUE_ORDER,
  MARK_DELIVERED,
  MARK_GIVEN_UP,
  MARK_RETRY,
  NEXT_DUE_AT,
  OUTBOX_INSERT_COLUMNS,
  OUTBOX_OF_WEBHOOK,
  OUTBOX_ROW,
  outboxInsertValues,
  PENDING,
  PENDING_BY_WEBHOOK,
  RELEASE_OUTBOX_ROW_SQL,
  toOutboxRow,
  type WebhookOutboxRepo,
} from '../webhooks.ts';
import type { PgDb } from './db.ts';

/**
 * One statement: the due rows are locked as they are picked, and a row another replica is
 * claiming (locked) is skipped, not waited for; a row it has just claimed is seen with its new
 * next attempt and no longer matches. `RETURNING p.*` gives the rows as picked (their old next
 * attempt, as the contract says), re-sorted because RETURNING keeps no order.
 */
const CLAIM_DUE = `
  WITH picked AS (
    SELECT * FROM webhook_outbox WHERE ${PENDING} AND next_attempt_at <= ? ${DUE_ORDER} LIMIT ? FOR UPDATE SKIP LOCKED
  ), leased AS (
    UPDATE webhook_outbox o SET next_attempt_at = ? FROM picked p WHERE o.id = p.id RETURNING p.*
  )
  SELECT * FROM leased ${DUE_ORDER}`;

export function createPgWebhookOutboxRepo(db: PgDb): WebhookOutboxRepo {
  return {
    async enqueue(rows) {
      return db.tx(async (q) => {
        // Plain ON CONFLICT DO NOTHING, as SQLite's INSERT OR IGNORE: a repeated (webhook, event_key)
        // — the partial unique index — or id is not a second delivery.
        let n = 0;
        for (const r of rows) n += await q.run(`INSERT INTO webhook_outbox ${OUTBOX_INSERT_COLUMNS} ON CONFLICT DO NOTHING`, outboxInsertValues(r));
        return n;
      });
    },
    async due(now, limit) {
      return (await db.all<Row>(DUE, [now, limit])).map(toOutboxRow);
    },
    async claimDue(now, limit, leaseUntil) {
      return (await db.all<Row>(CLAIM_DUE, [now, limit, leaseUntil])).map(toOutboxRow);
    },
    async release(id, leaseUntil, nextAttemptAt) {
      // One statement, conditional on the claim's end: a row claimed again since is left alone.
      return (await db.run(RELEASE_OUTBOX_ROW_SQL, [nextAttemptAt, id, leaseUntil])) > 0;
    },
    async nextDueAt() {
      return strOrNull((await db.get<Row>(NEXT_DUE_AT))?.at);
    },
    async delivered(id, attempts, at) {
      await db.run(MARK_DELIVERED, [attempts, at, id]);
    },
    async retryAt(id, attempts, nextAttemptAt, error) {
      await db.run(MARK_RETRY, [attempts, nextAttemptAt, error, id]);
    },
    async givenUp(id, attempts, at, error) {
      await db.run(MARK_GIVEN_UP, [attempts, at, error, id]);
    },
    async pendingByWebhook() {
      const out = new Map<string, number>();
      for (const r of await db.all<Row>(PENDING_BY_WEBHOOK)) out.set(str(r.webhook), Number(r.n));
      return out;
    },
    async get(id) {
      const r = await db.get<Row>(OUTBOX_ROW, [id]);
      return r ? toOutboxRow(r) : null;
    },
    async listByWebhook(webhook) {
      return (await db.all<Row>(OUTBOX_OF_WEBHOOK, [webhook])).map(toOutboxRow);
    },
  };
}
