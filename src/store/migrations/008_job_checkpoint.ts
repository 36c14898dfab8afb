/**
 * What a job's attempts record before a step a crash must not leave half done (CallContext.checkpoint:
 * an offline create's power state before the shutdown), as JSON; NULL when nothing was recorded.
 */
export const sql = `
ALTER TABLE jobs ADD COLUMN checkpoint TEXT;
`;
