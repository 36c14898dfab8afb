/** Many rows in few statements: a sync of 10,000 VMs is 20 round trips to the server, not 10,000. */
import type { PgQueryable } from './db.ts';

/** `(?, ?, …)` for a row of `columns` values. */
export const tuple = (columns: number): string => `(${Array.from({ length: columns }, () => '?').join(', ')})`;

/**
 * Runs `<head> VALUES (…), (…) <tail>` for `rows` (all of the same width) in statements of up to
 * `perStatement` rows (PostgreSQL takes at most 65,535 parameters per statement); returns the rows
 * written.
 */
export async function insertRows(q: PgQueryable, head: string, rows: readonly (readonly unknown[])[], tail = '', perStatement = 500): Promise<number> {
  let written = 0;
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement);
    const values = tuple(chunk[0]!.length);
    written += await q.run(`${head} VALUES ${chunk.map(() => values).join(', ')}${tail ? ` ${tail}` : ''}`, chunk.flat());
  }
  return written;
}
