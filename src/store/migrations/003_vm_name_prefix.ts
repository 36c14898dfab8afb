/**
 * The VM list's name filter is a case-insensitive prefix match (`name LIKE 'web%'`), which SQLite
 * answers from a NOCASE index instead of scanning every VM of the target.
 */
export const sql = `
CREATE INDEX vms_target_name_nocase ON vms(target_id, name COLLATE NOCASE);
CREATE INDEX vms_name_nocase ON vms(name COLLATE NOCASE);
`;

/**
 * PostgreSQL: the prefix match is `lower(name) LIKE lower(prefix) || '%'`, served by expression
 * indexes whose text_pattern_ops answer LIKE prefixes under any collation.
 */
export const postgres = `
CREATE INDEX vms_target_name_nocase ON vms(target_id, lower(name) text_pattern_ops);
CREATE INDEX vms_name_nocase ON vms(lower(name) text_pattern_ops);
`;
