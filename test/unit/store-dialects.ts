/**
 * The store suite runs on both databases: `forEachDialect` runs a test body once on SQLite
 * (in memory) and once on PostgreSQL (a fresh database on the lab's cluster, test/labs/postgres),
 * as subtests named by dialect. A PostgreSQL lab that cannot start fails the test, never skips it.
 */
import type { Test } from 'tap';
import type { Store } from '../../src/store/index.ts';
import { openStore } from '../../src/store/index.ts';
import { openPgStore } from '../../src/store/pg/index.ts';
import { freshDatabase } from '../labs/postgres/lab.ts';

export type Dialect = Store['dialect'];
export const DIALECTS: readonly Dialect[] = ['sqlite', 'postgres'];

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/**
 * A new, empty store of the dialect, closed (and its PostgreSQL database dropped) at the test's
 * teardown. `url` is the PostgreSQL database (null for SQLite): open a second store on it to play
 * a second replica.
 */
export async function openTestStore(t: Teardown, dialect: Dialect): Promise<{ store: Store; url: string | null }> {
  if (dialect === 'sqlite') {
    const store = openStore(':memory:');
    t.teardown(() => store.close());
    return { store, url: null };
  }
  const db = await freshDatabase('store');
  const store = await openPgStore(db.url);
  t.teardown(async () => {
    await store.close();
    await db.drop();
  });
  return { store, url: db.url };
}

/** Opens another store (another replica's pool) on a PostgreSQL test database, closed at teardown. */
export async function openReplicaStore(t: Teardown, url: string): Promise<Store> {
  const store = await openPgStore(url);
  t.teardown(() => store.close());
  return store;
}

/** Runs `fn` as one subtest per dialect. */
export async function forEachDialect(t: Test, fn: (t: Test, dialect: Dialect) => Promise<void>): Promise<void> {
  for (const dialect of DIALECTS) {
    await t.test(dialect, (st) => fn(st, dialect));
  }
}
