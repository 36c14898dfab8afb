/**
 * The VM list's name filter is a case-insensitive prefix match (`name LIKE 'web%'`), which SQLite
 * answers from a NOCASE index instead of scanning every VM of the target.
 */
export const sql = `
CREATE INDEX vms_target_name_nocase ON vms(target_id, name COLLATE NOCASE);
CREATE INDEX vms_name_nocase ON vms(name COLLATE NOCASE);
`;
