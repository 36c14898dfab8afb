/** What a `database` setting names (kept free of drivers: the config loader and the CLI read it). */

/** A PostgreSQL connection URL (postgres:// or postgresql://), else a SQLite file path. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

/** The URL without its password (for logs, /status and errors). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}
