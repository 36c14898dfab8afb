/**
 * A per-VM revision of its snapshot rows, bumped in the same transaction as every change to them.
 * Readers (the API's tree representation cache, ETags) compare it instead of re-reading the tree;
 * being in the database, it stays right when several replicas share one store.
 */
export const sql = `
ALTER TABLE vms ADD COLUMN snapshot_rev INTEGER NOT NULL DEFAULT 0;
`;
