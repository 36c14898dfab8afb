/** The webhook outbox (migration 012): rows written per event, then sent, retried, delivered or given up. */
import type { Iso } from '../domain/types.ts';
import type { Db } from './db.ts';
import { str, strOrNull, type Row } from './rows.ts';

export interface OutboxRow {
  id: string;
  webhook: string;
  eventType: string;
  body: string;
  createdAt: Iso;
  attempts: number;
  nextAttemptAt: Iso;
  deliveredAt: Iso | null;
  givenUpAt: Iso | null;
  lastError: string | null;
}

export interface NewOutboxRow {
  id: string;
  webhook: string;
  eventType: string;
  /** Same key for the same webhook twice: the second is ignored (one delivery per event). */
  eventKey: string | null;
  body: string;
  createdAt: Iso;
}

export interface WebhookOutboxRepo {
  /** Inserts the rows in one transaction; returns how many were new. */
  enqueue(rows: readonly NewOutboxRow[]): Promise<number>;
  /** Rows neither delivered nor given up whose next attempt is due at `now`, oldest first. */
  due(now: Iso, limit: number): Promise<OutboxRow[]>;
  /**
   * Takes up to `limit` due rows for one delivery attempt: each one's next attempt moves to
   * `leaseUntil` in the same statement, so no other replica sends it meanwhile (PostgreSQL: the
   * rows are picked with FOR UPDATE SKIP LOCKED). The returned rows keep their old nextAttemptAt.
   * A replica that dies mid-delivery leaves the row due again at `leaseUntil` (sent at least once;
   * receivers dedupe by the row id, Snapvisor-Delivery).
   */
  claimDue(now: Iso, limit: number, leaseUntil: Iso): Promise<OutboxRow[]>;
  /**
   * Gives back a row claimDue took (until `leaseUntil`) and that was not attempted: due again at
   * `nextAttemptAt`. Changes nothing once the claim was renewed or the row settled (false then).
   */
  release(id: string, leaseUntil: Iso, nextAttemptAt: Iso): Promise<boolean>;
  /** The earliest next attempt of a pending row (null: nothing pending). */
  nextDueAt(): Promise<Iso | null>;
  delivered(id: string, attempts: number, at: Iso): Promise<void>;
  retryAt(id: string, attempts: number, nextAttemptAt: Iso, error: string): Promise<void>;
  givenUp(id: string, attempts: number, at: Iso, error: string): Promise<void>;
  /** Pending rows (neither delivered nor given up) per webhook. */
  pendingByWebhook(): Promise<Map<string, number>>;
  get(id: string): Promise<OutboxRow | null>;
  /** Every row of a webhook, oldest first (tests, diagnostics). */
  listByWebhook(webhook: string): Promise<OutboxRow[]>;
}

export const toOutboxRow = (r: Row): OutboxRow => ({
  id: str(r.id),
  webhook: str(r.webhook),
  eventType: str(r.event_type),
  body: str(r.body),
  createdAt: str(r.created_at),
  attempts: Number(r.attempts),
  nextAttemptAt: str(r.next_attempt_at),
  deliveredAt: strOrNull(r.delivered_at),
  givenUpAt: strOrNull(r.given_up_at),
  lastError: strOrNull(r.last_error),
});

export const PENDING = 'delivered_at IS NULL AND given_up_at IS NULL';
// rowid (PostgreSQL: migration 014's identity column) keeps the order events were written in.
export const DUE_ORDER = 'ORDER BY next_attempt_at, created_at, rowid';
export const DUE = `SELECT * FROM webhook_outbox WHERE ${PENDING} AND next_attempt_at <= ? ${DUE_ORDER} LIMIT ?`;
export const NEXT_DUE_AT = `SELECT min(next_attempt_at) AS at FROM webhook_outbox WHERE ${PENDING}`;
export const MARK_DELIVERED = 'UPDATE webhook_outbox SET attempts = ?, delivered_at = ?, last_error = NULL WHERE id = ?';
export const MARK_RETRY = 'UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?';
export const MARK_GIVEN_UP = 'UPDATE webhook_outbox SET attempts = ?, given_up_at = ?, last_error = ? WHERE id = ?';
export const PENDING_BY_WEBHOOK = `SELECT webhook, count(*) AS n FROM webhook_outbox WHERE ${PENDING} GROUP BY webhook`;
export const OUTBOX_ROW = 'SELECT * FROM webhook_outbox WHERE id = ?';
export const OUTBOX_OF_WEBHOOK = 'SELECT * FROM webhook_outbox WHERE webhook = ? ORDER BY created_at, rowid';
/** The columns enqueue writes, and their values (a row is first due when it is created). */
export const OUTBOX_INSERT_COLUMNS = '(id, webhook, event_type, event_key, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)';
export const outboxInsertValues = (r: NewOutboxRow): unknown[] => [r.id, r.webhook, r.eventType, r.eventKey, r.body, r.createdAt, r.createdAt];

/** release(): ?1 the next attempt, ?2 the row, ?3 the claim's end (valid in both dialects). */
export const RELEASE_OUTBOX_ROW_SQL = `UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ? AND next_attempt_at = ? AND ${PENDING}`;

export function createWebhookOutboxRepo(db: Db): WebhookOutboxRepo {
  return {
    async enqueue(rows) {
      return db.tx(() => {
        const insert = db.stmt(`INSERT OR IGNORE INTO webhook_outbox ${OUTBOX_INSERT_COLUMNS}`);
        let n = 0;
        for (const r of rows) n += insert.run(...outboxInsertValues(r)).changes;
        return n;
      });
    },
    async due(now, limit) {
      return (db.stmt(DUE).all(now, limit) as Row[]).map(toOutboxRow);
    },
    async claimDue(now, limit, leaseUntil) {
      return db.tx(() => {
        const rows = (db.stmt(DUE).all(now, limit) as Row[]).map(toOutboxRow);
        const lease = db.stmt('UPDATE webhook_outbox SET next_attempt_at = ? WHERE id = ?');
        for (const r of rows) lease.run(leaseUntil, r.id);
        return rows;
      });
    },
    async release(id, leaseUntil, nextAttemptAt) {
      return db.stmt(RELEASE_OUTBOX_ROW_SQL).run(nextAttemptAt, id, leaseUntil).changes > 0;
    },
    async nextDueAt() {
      const r = db.stmt(NEXT_DUE_AT).get() as Row;
      return strOrNull(r.at);
    },
    async delivered(id, attempts, at) {
      db.stmt(MARK_DELIVERED).run(attempts, at, id);
    },
    async retryAt(id, attempts, nextAttemptAt, error) {
      db.stmt(MARK_RETRY).run(attempts, nextAttemptAt, error, id);
    },
    async givenUp(id, attempts, at, error) {
      db.stmt(MARK_GIVEN_UP).run(attempts, at, error, id);
    },
    async pendingByWebhook() {
      const out = new Map<string, number>();
      for (const r of db.stmt(PENDING_BY_WEBHOOK).all() as Row[]) out.set(str(r.webhook), Number(r.n));
      return out;
    },
    async get(id) {
      const r = db.stmt(OUTBOX_ROW).get(id) as Row | undefined;
      return r ? toOutboxRow(r) : null;
    },
    async listByWebhook(webhook) {
      return (db.stmt(OUTBOX_OF_WEBHOOK).all(webhook) as Row[]).map(toOutboxRow);
    },
  };
}

