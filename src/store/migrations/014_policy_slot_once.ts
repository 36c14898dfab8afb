/**
 * A scheduled slot runs at most once: when two replicas fire the same cron slot (an old leader that
 * has not noticed it lost the lock, and the new one), the second insert of that (policy, kind,
 * slot) is refused by this index and PolicyRepo.startRun answers with the run already made.
 * Manual runs have no slot and are not concerned.
 */
export const sql = `
CREATE UNIQUE INDEX policy_runs_slot_once ON policy_runs(policy_id, kind, scheduled_for) WHERE scheduled_for IS NOT NULL AND trigger <> 'manual';
`;
