/** A statement refused by a unique index, told apart per database (both twins here, in one place). */

/** SQLite: better-sqlite3's extended result code for a UNIQUE constraint. */
export const isUniqueViolation = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === 'SQLITE_CONSTRAINT_UNIQUE';

/** PostgreSQL: SQLSTATE 23505 unique_violation (a unique index or constraint, the primary key included). */
export const isPgUniqueViolation = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === '23505';
