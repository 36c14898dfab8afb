import type { VmFields, VmPlan } from '../domain/inventory.ts';
import type { DiskInfo, PowerState, Vm } from '../domain/types.ts';
import type { Db } from './db.ts';
import { bool, decodeCursor, encodeCursor, int, json, str, strOrNull, type Row } from './rows.ts';

export interface VmStats {
  targetName: string;
  /** Present snapshots. */
  snapshotCount: number;
  /** Depth from the root to the current snapshot, counting present snapshots only. */
  chainDepth: number;
  currentSnapshotId: string | null;
}

export type VmWithStats = Vm & VmStats;

export interface VmListQuery {
  targetId?: string;
  /** Case-insensitive (ASCII) prefix of the name; `%` and `_` match literally. */
  name?: string;
  includeGone: boolean;
  limit: number;
  cursor?: string;
}

export interface VmRepo {
  get(id: string): Promise<Vm | null>;
  getWithStats(id: string): Promise<VmWithStats | null>;
  /** Keyset pagination ordered by (name, id). */
  list(query: VmListQuery): Promise<{ items: VmWithStats[]; next: string | null }>;
  /** Every row of a target, gone ones included (the inventory reconcile's input). */
  listByTarget(targetId: string): Promise<Vm[]>;
  countPresentByTarget(targetId: string): Promise<number>;
  /** Applies an inventory plan in one transaction. */
  apply(plan: VmPlan): Promise<void>;
  countConsolidationNeeded(): Promise<number>;
  /** The stored disks of these VMs (one query): null for a VM whose disks were never reported; unknown ids are absent. */
  disksOf(ids: readonly string[]): Promise<Map<string, DiskInfo[] | null>>;
}

export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}

export const toVm = (r: Row): Vm => ({
  id: str(r.id),
  targetId: str(r.target_id),
  providerVmId: str(r.provider_vm_id),
  name: str(r.name),
  powerState: str(r.power_state) as PowerState,
  rawPowerState: str(r.raw_power_state),
  consolidationNeeded: bool(r.consolidation_needed),
  disks: json<DiskInfo[]>(r.disks),
  firstSeenAt: str(r.first_seen_at),
  lastSeenAt: str(r.last_seen_at),
  goneAt: strOrNull(r.gone_at),
});

const COLUMNS: Record<keyof VmFields, string> = {
  name: 'name',
  powerState: 'power_state',
  rawPowerState: 'raw_power_state',
  consolidationNeeded: 'consolidation_needed',
  disks: 'disks',
  lastSeenAt: 'last_seen_at',
  goneAt: 'gone_at',
};

export const STATS_SELECT = `
  SELECT v.*, t.name AS target_name,
    (SELECT count(*) FROM snapshots s WHERE s.vm_id = v.id AND s.state = 'present') AS snapshot_count,
    (SELECT s.id FROM snapshots s WHERE s.vm_id = v.id AND s.state = 'present' AND s.is_current = 1 LIMIT 1) AS current_snapshot_id
  FROM vms v JOIN targets t ON t.id = v.target_id`;

// Walks from the current snapshot to its root; the depth guard stops a corrupt cycle.
export const CHAIN_DEPTH = `
  WITH RECURSIVE chain(id, parent_id, depth) AS (
    SELECT id, parent_id, 1 FROM snapshots WHERE id = ?
    UNION ALL
    SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
    WHERE s.state = 'present' AND c.depth < 100000
  ) SELECT max(depth) AS depth FROM chain`;

/** `UPDATE vms SET <sql> WHERE id = ?` for a plan's change, with its values (both dialects). */
export function vmSetters(set: Partial<VmFields>): { sql: string; values: unknown[] } {
  const keys = Object.keys(set) as Array<keyof VmFields>;
  const values = keys.map((k) => {
    const v = set[k];
    return typeof v === 'boolean' ? int(v) : Array.isArray(v) ? JSON.stringify(v) : (v ?? null);
  });
  return { sql: keys.map((k) => `${COLUMNS[k]} = ?`).join(', '), values };
}

/** INSERT_VM without its VALUES (PostgreSQL writes many rows per statement). */
export const INSERT_VM_HEAD = 'INSERT INTO vms (id, target_id, provider_vm_id, name, power_state, raw_power_state, consolidation_needed, disks, first_seen_at, last_seen_at, gone_at)';
export const INSERT_VM = `${INSERT_VM_HEAD} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** INSERT_VM's values for a new VM. */
export const vmInsertValues = (v: Vm): unknown[] => [
  v.id, v.targetId, v.providerVmId, v.name, v.powerState, v.rawPowerState, int(v.consolidationNeeded),
  v.disks === null ? null : JSON.stringify(v.disks), v.firstSeenAt, v.lastSeenAt, v.goneAt,
];

/** The name filter's LIKE pattern (escape character: backslash): the prefix with `\`, `%` and `_` escaped, then `%`. */
export const namePrefixPattern = (prefix: string): string => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Maps a VM list row (STATS_SELECT) given the depth of its current snapshot's chain. */
export function toVmWithStats(r: Row, chainDepth: number): VmWithStats {
  return {
    ...toVm(r),
    targetName: str(r.target_name),
    snapshotCount: Number(r.snapshot_count),
    chainDepth,
    currentSnapshotId: strOrNull(r.current_snapshot_id),
  };
}

export const VM_BY_ID = 'SELECT * FROM vms WHERE id = ?';
export const VMS_OF_TARGET = 'SELECT * FROM vms WHERE target_id = ?';
export const COUNT_PRESENT_OF_TARGET = 'SELECT count(*) AS n FROM vms WHERE target_id = ? AND gone_at IS NULL';
export const COUNT_CONSOLIDATION_NEEDED = 'SELECT count(*) AS n FROM vms WHERE consolidation_needed = 1 AND gone_at IS NULL';

/** How a database matches the VM list's name prefix and orders names (the rest of the statement is shared). */
export interface VmListDialect {
  /** A WHERE clause with one `?`: the LIKE pattern (namePrefixPattern), ESCAPE '\\'. */
  namePrefix: string;
  /** A column as the list orders and compares it. */
  ordered(column: string): string;
}

/** SQLite: LIKE is ASCII-case-insensitive (served by the NOCASE indexes), BINARY order. */
export const SQLITE_VM_LIST: VmListDialect = { namePrefix: "v.name LIKE ? ESCAPE '\\'", ordered: (column) => column };

/** The VM list's statement: filters, keyset cursor on (name, id), one row more than a page (next cursor). */
export function vmListStatement(q: VmListQuery, dialect: VmListDialect): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  if (q.targetId !== undefined) {
    where.push('v.target_id = ?');
    params.push(q.targetId);
  }
  if (!q.includeGone) where.push('v.gone_at IS NULL');
  if (q.name !== undefined && q.name !== '') {
    where.push(dialect.namePrefix);
    params.push(namePrefixPattern(q.name));
  }
  if (q.cursor !== undefined) {
    const after = decodeCursor(q.cursor, 2);
    if (!after) throw new InvalidCursorError('invalid cursor');
    where.push(`(${dialect.ordered('v.name')}, ${dialect.ordered('v.id')}) > (?, ?)`);
    params.push(after[0], after[1]);
  }
  const order = `${dialect.ordered('v.name')}, ${dialect.ordered('v.id')}`;
  return { sql: `${STATS_SELECT}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} LIMIT ?`, params: [...params, q.limit + 1] };
}

export function createVmRepo(db: Db): VmRepo {
  const withStats = (r: Row): VmWithStats => {
    const currentSnapshotId = strOrNull(r.current_snapshot_id);
    return toVmWithStats(r, currentSnapshotId === null ? 0 : Number((db.stmt(CHAIN_DEPTH).get(currentSnapshotId) as Row).depth ?? 0));
  };

  return {
    async get(id) {
      const r = db.stmt(VM_BY_ID).get(id) as Row | undefined;
      return r ? toVm(r) : null;
    },
    async getWithStats(id) {
      const r = db.stmt(`${STATS_SELECT} WHERE v.id = ?`).get(id) as Row | undefined;
      return r ? withStats(r) : null;
    },
    async list(q) {
      const { sql, params } = vmListStatement(q, SQLITE_VM_LIST);
      const rows = db.stmt(sql).all(...params) as Row[];
      const page = rows.slice(0, q.limit).map(withStats);
      const last = page[page.length - 1];
      return { items: page, next: rows.length > q.limit && last ? encodeCursor([last.name, last.id]) : null };
    },
    async listByTarget(targetId) {
      return (db.stmt(VMS_OF_TARGET).all(targetId) as Row[]).map(toVm);
    },
    async countPresentByTarget(targetId) {
      return Number((db.stmt(COUNT_PRESENT_OF_TARGET).get(targetId) as Row).n);
    },
    async apply(plan) {
      db.tx(() => {
        const insert = db.stmt(INSERT_VM);
        for (const v of plan.inserts) insert.run(...vmInsertValues(v));
        for (const change of [...plan.updates, ...plan.gone]) {
          const { sql, values } = vmSetters(change.set);
          db.stmt(`UPDATE vms SET ${sql} WHERE id = ?`).run(...values, change.before.id);
        }
      });
    },
    async countConsolidationNeeded() {
      return Number((db.stmt(COUNT_CONSOLIDATION_NEEDED).get() as Row).n);
    },
    async disksOf(ids) {
      const out = new Map<string, DiskInfo[] | null>();
      if (ids.length === 0) return out;
      // One statement for any number of ids (a claim round asks for all its candidates at once).
      const rows = db.stmt('SELECT id, disks FROM vms WHERE id IN (SELECT value FROM json_each(?))').all(JSON.stringify(ids)) as Row[];
      for (const r of rows) out.set(str(r.id), json<DiskInfo[]>(r.disks));
      return out;
    },
  };
}
