/**
 * SQLite's named parameters (`@name`) for PostgreSQL: a statement shared between the dialects may
 * name its parameters (one value used several times); PostgreSQL's driver only takes positions.
 */
const cache = new Map<string, { sql: string; names: string[] }>();

/** `sql` with every `@name` turned into `?` (outside quotes), and the values in that order. */
export function positional(sql: string, values: Readonly<Record<string, unknown>>): { sql: string; params: unknown[] } {
  let parsed = cache.get(sql);
  if (parsed === undefined) {
    const names: string[] = [];
    let out = '';
    let quote: string | null = null;
    for (let i = 0; i < sql.length; i++) {
      const ch = sql[i]!;
      if (quote) {
        if (ch === quote) quote = null;
        out += ch;
      } else if (ch === "'" || ch === '"') {
        quote = ch;
        out += ch;
      } else if (ch === '@' && /[A-Za-z_]/.test(sql[i + 1] ?? '')) {
        const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i + 1))![0];
        names.push(name);
        out += '?';
        i += name.length;
      } else {
        out += ch;
      }
    }
    parsed = { sql: out, names };
    if (cache.size < 1000) cache.set(sql, parsed);
  }
  const params = parsed.names.map((n) => {
    if (!(n in values)) throw new Error(`SQL parameter @${n} has no value`);
    return values[n];
  });
  return { sql: parsed.sql, params };
}
