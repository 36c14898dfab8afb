/** VMs on PostgreSQL (the interface, row mapping and shared SQL: src/store/vms.ts). */
import type { DiskInfo } from '../../domain/types.ts';
import { encodeCursor, json, str, strOrNull, type Row } from '../rows.ts';
import {
  CHAIN_DEPTH,
  COUNT_CONSOLIDATION_NEEDED,
  COUNT_PRESENT_OF_TARGET,
  INSERT_VM_HEAD,
  STATS_SELECT,
  toVm,
  toVmWithStats,
  VM_BY_ID,
  vmInsertValues,
  VMS_OF_TARGET,
  vmListStatement,
  vmSetters,
  type VmListDialect,
  type VmRepo,
  type VmWithStats,
} from '../vms.ts';
import { insertRows } from './batch.ts';
import type { PgDb, PgQueryable } from './db.ts';

async function withStats(q: PgQueryable, r: Row): Promise<VmWithStats> {
  const current = strOrNull(r.current_snapshot_id);
  const depth = current === null ? 0 : Number((await q.get<Row>(CHAIN_DEPTH, [current]))?.depth ?? 0);
  return toVmWithStats(r, depth);
}

/**
 * PostgreSQL: SQLite's LIKE (a prefix, ASCII case folded only: lower() under the "C" collation,
 * served by the lower(name COLLATE "C") indexes) and byte order (SQLite's BINARY) whatever the
 * database's default collation — the same pages, and cursors that mean the same, on both databases.
 */
const PG_VM_LIST: VmListDialect = {
  namePrefix: `lower(v.name COLLATE "C") LIKE lower(?::text COLLATE "C") ESCAPE '\\'`,
  ordered: (column) => `${column} COLLATE "C"`,
};

export function createPgVmRepo(db: PgDb): VmRepo {
  return {
    async get(id) {
      const r = await db.get<Row>(VM_BY_ID, [id]);
      return r ? toVm(r) : null;
    },
    async getWithStats(id) {
      const r = await db.get<Row>(`${STATS_SELECT} WHERE v.id = ?`, [id]);
      return r ? withStats(db, r) : null;
    },
    async list(q) {
      const { sql, params } = vmListStatement(q, PG_VM_LIST);
      const rows = await db.all<Row>(sql, params);
      const page = await Promise.all(rows.slice(0, q.limit).map((r) => withStats(db, r)));
      const last = page[page.length - 1];
      return { items: page, next: rows.length > q.limit && last ? encodeCursor([last.name, last.id]) : null };
    },
    async listByTarget(targetId) {
      return (await db.all<Row>(VMS_OF_TARGET, [targetId])).map(toVm);
    },
    async countPresentByTarget(targetId) {
      return Number((await db.get<Row>(COUNT_PRESENT_OF_TARGET, [targetId]))!.n);
    },
    async apply(plan) {
      await db.tx(async (q) => {
        await insertRows(q, INSERT_VM_HEAD, plan.inserts.map(vmInsertValues));
        for (const change of [...plan.updates, ...plan.gone]) {
          const { sql, values } = vmSetters(change.set);
          await q.run(`UPDATE vms SET ${sql} WHERE id = ?`, [...values, change.before.id]);
        }
      });
    },
    async countConsolidationNeeded() {
      return Number((await db.get<Row>(COUNT_CONSOLIDATION_NEEDED))!.n);
    },
    async disksOf(ids) {
      const out = new Map<string, DiskInfo[] | null>();
      if (ids.length === 0) return out;
      const rows = await db.all<Row>('SELECT id, disks FROM vms WHERE id = ANY(?::text[])', [ids]);
      for (const r of rows) out.set(str(r.id), json<DiskInfo[]>(r.disks));
      return out;
    },
  };
}
