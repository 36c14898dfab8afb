/**
 * The VM list's name filter is a case-insensitive prefix match (`name LIKE 'web%'`), which SQLite
 * answers from a NOCASE index instead of scanning every VM of the target.
 */
export const sql = `
CREATE INDEX vms_target_name_nocase ON vms(target_id, name COLLATE NOCASE);
CREATE INDEX vms_name_nocase ON vms(name COLLATE NOCASE);
`;

/**
 * PostgreSQL: the prefix match is `lower(name COLLATE "C") LIKE lower(prefix COLLATE "C") || '%'`:
 * the "C" collation folds ASCII only, as SQLite's LIKE does (under C.UTF-8 or en_US, lower() also
 * folds É to é), and text_pattern_ops lets the index answer a LIKE prefix.
 */
export const postgres = `
CREATE INDEX vms_target_name_nocase ON vms(target_id, lower(name COLLATE "C") text_pattern_ops);
CREATE INDEX vms_name_nocase ON vms(lower(name COLLATE "C") text_pattern_ops);
`;
