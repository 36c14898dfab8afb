/**
 * Fair queues (domain/fair-claim.ts). `fair_tag` orders one principal's queued jobs on a target so
 * that its VMs take turns; rows queued before this migration get 0 (they keep their FIFO order).
 * Partial indexes hold only queued rows (a job leaves them when claimed), so a queue of 10,000
 * costs nothing to the rest of the table:
 * - jobs_queued_fair: the distinct principals with queued jobs (a skip-scan), a principal's
 *   queued count (the per-token cap), its current round on a target (min tag) and its claim
 *   candidates there in fair order;
 * - jobs_queued_vm: whether a job is its VM's oldest due one (a VM's jobs start in submit order);
 * - jobs_queued_vm_tag: the newest tag a principal has queued on a VM, for the next one's tag.
 */
export const sql = `
ALTER TABLE jobs ADD COLUMN fair_tag INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_queued_fair ON jobs(requested_by, target_id, fair_tag, created_at, id) WHERE state = 'queued';
CREATE INDEX jobs_queued_vm ON jobs(vm_id, created_at, id) WHERE state = 'queued';
CREATE INDEX jobs_queued_vm_tag ON jobs(vm_id, requested_by, fair_tag) WHERE state = 'queued';
`;
