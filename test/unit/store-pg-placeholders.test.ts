import t from 'tap';
import { positional, toPgPlaceholders } from '../../src/store/pg/db.ts';

t.test('? becomes $1…$n outside quoted strings and identifiers', async (t) => {
  t.equal(toPgPlaceholders(`SELECT '?', ?, "a?", ? FROM x WHERE y = 'it''s ?'`), `SELECT '?', $1, "a?", $2 FROM x WHERE y = 'it''s ?'`);
  t.equal(toPgPlaceholders('SELECT 1'), 'SELECT 1');
});

t.test('@name becomes a position per use, its value repeated; quoted @ is text; a missing value throws', async (t) => {
  t.same(positional(`a = @x AND b = '@y' AND c = @x AND d = @z1`, { x: 1, z1: 'z' }), { sql: `a = $1 AND b = '@y' AND c = $2 AND d = $3`, params: [1, 1, 'z'] });
  t.throws(() => positional('a = @nope', {}), /@nope has no value/);
  // Already numbered text passes through the queries' own pass unchanged.
  const { sql } = positional('a = @x', { x: 1 });
  t.equal(toPgPlaceholders(sql), sql);
});
