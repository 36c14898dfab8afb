import { randomUUID } from 'node:crypto';
import type { ProviderKind, Target } from '../domain/types.ts';
import type { Db } from './db.ts';
import { bool, int, str, strOrNull, type Row } from './rows.ts';

export interface TargetHealthUpdate {
  healthy: boolean;
  message: string | null;
  version: string | null;
  checkedAt: string;
}

export interface TargetRepo {
  /** Creates the row for a configured target, or refreshes kind/demo of the existing one (keyed by name). */
  ensure(input: { name: string; kind: ProviderKind; demo: boolean }): Promise<Target>;
  get(name: string): Promise<Target | null>;
  getById(id: string): Promise<Target | null>;
  list(): Promise<Target[]>;
  setHealth(id: string, health: TargetHealthUpdate): Promise<void>;
}

export const toTarget = (r: Row): Target => ({
  id: str(r.id),
  name: str(r.name),
  kind: str(r.kind) as ProviderKind,
  demo: bool(r.demo),
  healthy: r.healthy === null ? null : bool(r.healthy),
  healthMessage: strOrNull(r.health_message),
  version: strOrNull(r.version),
  checkedAt: strOrNull(r.checked_at),
});

export const TARGET_BY_NAME = 'SELECT * FROM targets WHERE name = ?';
export const TARGET_BY_ID = 'SELECT * FROM targets WHERE id = ?';
export const TARGET_SET_HEALTH = 'UPDATE targets SET healthy = ?, health_message = ?, version = ?, checked_at = ? WHERE id = ?';

export function createTargetRepo(db: Db): TargetRepo {
  const byName = (name: string) => db.stmt(TARGET_BY_NAME).get(name) as Row | undefined;
  return {
    async ensure({ name, kind, demo }) {
      return db.tx(() => {
        const existing = byName(name);
        if (existing) {
          db.stmt('UPDATE targets SET kind = ?, demo = ? WHERE id = ?').run(kind, int(demo), existing.id);
        } else {
          db.stmt('INSERT INTO targets (id, name, kind, demo) VALUES (?, ?, ?, ?)').run(randomUUID(), name, kind, int(demo));
        }
        return toTarget(byName(name)!);
      });
    },
    async get(name) {
      const r = byName(name);
      return r ? toTarget(r) : null;
    },
    async getById(id) {
      const r = db.stmt(TARGET_BY_ID).get(id) as Row | undefined;
      return r ? toTarget(r) : null;
    },
    async list() {
      return (db.stmt('SELECT * FROM targets ORDER BY name').all() as Row[]).map(toTarget);
    },
    async setHealth(id, h) {
      db.stmt(TARGET_SET_HEALTH).run(
        int(h.healthy),
        h.message,
        h.version,
        h.checkedAt,
        id,
      );
    },
  };
}
