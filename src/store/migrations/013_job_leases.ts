/**
 * Job leases (several replicas on one PostgreSQL database): the replica running a job holds it
 * until `lease_until` and renews it while it runs; a running job whose lease has expired belongs to
 * a dead replica and is recovered by a live one (asking the hypervisor through the marker).
 * SQLite has one daemon per file (src/store/lock.ts) but keeps the same columns: one schema.
 */
export const sql = `
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until TEXT;
CREATE INDEX jobs_running_lease ON jobs(lease_until) WHERE state = 'running';
`;
