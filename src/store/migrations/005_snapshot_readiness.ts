/**
 * A snapshot can exist before it is usable (a cloud disk snapshot still copying): `ready` is false
 * until the provider says it is, with the copy's `progress` (0..100) when known. Every snapshot
 * recorded before this migration came from a hypervisor whose snapshots are usable when they exist.
 */
export const sql = `
ALTER TABLE snapshots ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
ALTER TABLE snapshots ADD COLUMN progress INTEGER;
`;
