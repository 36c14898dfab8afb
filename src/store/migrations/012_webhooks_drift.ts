/**
 * Webhooks: an outbox row per (webhook, event), written by the engine's subscriber in its own
 * transaction and sent by the delivery loop; rows are kept after delivery or giving up (history,
 * dedup by `id`, which receivers get as Snapvisor-Delivery). `event_key` (e.g. job.failed:<jobId>)
 * makes a repeated engine event (recovery re-emitting a final job) one delivery, not two.
 *
 * Drift: the last drift fingerprint per target, so a `drift` event (and its webhook) fires when a
 * target's drift changes, not once per start.
 */
export const sql = `
CREATE TABLE webhook_outbox (
  id               TEXT PRIMARY KEY,
  webhook          TEXT NOT NULL,
  event_type       TEXT NOT NULL,
  event_key        TEXT,
  body             TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  TEXT NOT NULL,
  delivered_at     TEXT,
  given_up_at      TEXT,
  last_error       TEXT
) STRICT;
CREATE UNIQUE INDEX webhook_outbox_event ON webhook_outbox(webhook, event_key) WHERE event_key IS NOT NULL;
CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE delivered_at IS NULL AND given_up_at IS NULL;

CREATE TABLE drift_state (
  target_name  TEXT PRIMARY KEY,
  fingerprint  TEXT NOT NULL,
  summary      TEXT NOT NULL,
  checked_at   TEXT NOT NULL
) STRICT;
`;

/** PostgreSQL: the outbox also gets a `rowid` identity column (insertion order, as SQLite's rowid: see 001). */
export const postgres = sql.replace('  last_error       TEXT\n) STRICT;', '  last_error       TEXT,\n  rowid            BIGINT GENERATED ALWAYS AS IDENTITY\n) STRICT;');
