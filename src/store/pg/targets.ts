/** Targets on PostgreSQL (the interface and row mapping: src/store/targets.ts). */
import { randomUUID } from 'node:crypto';
import { int, type Row } from '../rows.ts';
import { TARGET_BY_ID, TARGET_BY_NAME, TARGET_SET_HEALTH, toTarget, type TargetRepo } from '../targets.ts';
import type { PgDb } from './db.ts';

export function createPgTargetRepo(db: PgDb): TargetRepo {
  return {
    async ensure({ name, kind, demo }) {
      // One statement on the unique name: two replicas starting together make one row.
      const r = await db.get<Row>(
        `INSERT INTO targets (id, name, kind, demo) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, demo = excluded.demo RETURNING *`,
        [randomUUID(), name, kind, int(demo)],
      );
      return toTarget(r!);
    },
    async get(name) {
      const r = await db.get<Row>(TARGET_BY_NAME, [name]);
      return r ? toTarget(r) : null;
    },
    async getById(id) {
      const r = await db.get<Row>(TARGET_BY_ID, [id]);
      return r ? toTarget(r) : null;
    },
    async list() {
      // Byte order, as SQLite's BINARY collation, whatever the database's default collation.
      return (await db.all<Row>('SELECT * FROM targets ORDER BY name COLLATE "C"')).map(toTarget);
    },
    async setHealth(id, h) {
      await db.run(TARGET_SET_HEALTH, [int(h.healthy), h.message, h.version, h.checkedAt, id]);
    },
  };
}
