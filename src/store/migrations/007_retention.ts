/**
 * Retention (engine/retention.ts) deletes finished jobs in batches, each with its idempotency keys.
 * Without an index on idempotency_keys(job_id), that delete — and the foreign-key check SQLite
 * makes for every deleted job — scanned the whole key table once per job.
 */
export const sql = `
CREATE INDEX idempotency_keys_job ON idempotency_keys(job_id);
`;
