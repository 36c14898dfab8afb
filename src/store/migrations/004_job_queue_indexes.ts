/**
 * The worker asks, many times per job, whether a VM (or a target) already has a running job. Full
 * indexes on (vm_id, state) and (target_id, state) answered that, but every state change of every
 * job rewrote both; partial indexes hold only the running rows. The due query reads queued jobs in
 * order from jobs_state_created (state, created_at, id), so jobs_state_due only cost writes.
 */
export const sql = `
DROP INDEX jobs_state_due;
DROP INDEX jobs_vm_state;
DROP INDEX jobs_target_state;
CREATE INDEX jobs_running_vm ON jobs(vm_id) WHERE state = 'running';
CREATE INDEX jobs_running_target ON jobs(target_id) WHERE state = 'running';
`;
