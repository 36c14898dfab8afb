import type { SnapshotFields, SnapshotPlan } from '../domain/reconcile.ts';
import type { Snapshot, SnapshotMode, SnapshotOwner, SnapshotState } from '../domain/types.ts';
import type { Db } from './db.ts';
import { bool, int, intOrNull, json, str, strOrNull, type Row } from './rows.ts';

export interface SnapshotRepo {
  get(id: string): Promise<Snapshot | null>;
  getByRef(vmId: string, providerRef: string): Promise<Snapshot | null>;
  /** Present snapshots of a VM (and gone ones when asked), oldest first. */
  listByVm(vmId: string, options: { includeGone: boolean }): Promise<Snapshot[]>;
  /** The snapshot a create job made, if the store knows it. */
  findByJob(jobId: string): Promise<Snapshot | null>;
  /**
   * Applies a reconcile plan for one VM in one transaction, bumping the VM's snapshot revision.
   * With `expectedRevision` (the revision read before the rows the plan was made from), nothing is
   * written and the answer is false when the revision has moved since: another replica recorded a
   * change of this VM in between, and the plan, made from older rows, could undo it. The caller
   * reads again and plans again. True when applied.
   */
  apply(plan: SnapshotPlan, options?: { vmId: string; expectedRevision: number | null }): Promise<boolean>;
  /** The VM's snapshot revision (changes whenever any of its snapshot rows does); null for an unknown VM. */
  revision(vmId: string): Promise<number | null>;
}

export const toSnapshot = (r: Row): Snapshot => ({
  id: str(r.id),
  vmId: str(r.vm_id),
  providerRef: str(r.provider_ref),
  parentId: strOrNull(r.parent_id),
  name: str(r.name),
  description: str(r.description),
  mode: strOrNull(r.mode) as SnapshotMode | null,
  owner: str(r.owner) as SnapshotOwner,
  jobId: strOrNull(r.job_id),
  policyId: strOrNull(r.policy_id),
  state: str(r.state) as SnapshotState,
  current: bool(r.is_current),
  ready: bool(r.ready),
  progress: intOrNull(r.progress),
  details: json<Record<string, unknown>>(r.details),
  createdAt: strOrNull(r.created_at),
  firstSeenAt: str(r.first_seen_at),
  deletedAt: strOrNull(r.deleted_at),
});

const COLUMNS: Record<keyof SnapshotFields, string> = {
  parentId: 'parent_id',
  name: 'name',
  description: 'description',
  mode: 'mode',
  owner: 'owner',
  jobId: 'job_id',
  policyId: 'policy_id',
  state: 'state',
  current: 'is_current',
  ready: 'ready',
  progress: 'progress',
  details: 'details',
  createdAt: 'created_at',
  deletedAt: 'deleted_at',
};

const enc = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

// first_seen_at then rowid keeps the provider's order for snapshots found in one sync (PostgreSQL
// has no rowid: migration 014 gives its snapshots an identity column of that name).
const ORDER = 'ORDER BY first_seen_at, rowid';

export const SNAPSHOT_BY_ID = 'SELECT * FROM snapshots WHERE id = ?';
export const SNAPSHOT_BY_REF = 'SELECT * FROM snapshots WHERE vm_id = ? AND provider_ref = ?';
export const SNAPSHOTS_OF_VM = `SELECT * FROM snapshots WHERE vm_id = ? AND state = 'present' ${ORDER}`;
export const SNAPSHOTS_OF_VM_WITH_GONE = `SELECT * FROM snapshots WHERE vm_id = ? ${ORDER}`;
export const SNAPSHOT_OF_JOB = 'SELECT * FROM snapshots WHERE job_id = ? ORDER BY first_seen_at LIMIT 1';
export const SNAPSHOT_REVISION = 'SELECT snapshot_rev FROM vms WHERE id = ?';
/** One statement: two writers (two replicas) each add their bump. */
export const BUMP_SNAPSHOT_REVISION = 'UPDATE vms SET snapshot_rev = snapshot_rev + 1 WHERE id = ?';
/** INSERT_SNAPSHOT without its VALUES (PostgreSQL writes many rows per statement). */
export const INSERT_SNAPSHOT_HEAD =
  'INSERT INTO snapshots (id, vm_id, provider_ref, parent_id, name, description, mode, owner, job_id, policy_id, state, is_current, ready, progress, details, created_at, first_seen_at, deleted_at)';
export const INSERT_SNAPSHOT = `${INSERT_SNAPSHOT_HEAD} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

/** INSERT_SNAPSHOT's values for a new snapshot. */
export const snapshotInsertValues = (s: Snapshot): unknown[] => [
  s.id, s.vmId, s.providerRef, s.parentId, s.name, s.description, s.mode, s.owner, s.jobId, s.policyId, s.state,
  int(s.current), int(s.ready), s.progress, enc(s.details), s.createdAt, s.firstSeenAt, s.deletedAt,
];

/** `UPDATE snapshots SET <sql> WHERE id = ?` for a plan's change, with its values; null when it sets nothing. */
export function snapshotSetters(set: Partial<SnapshotFields>): { sql: string; values: unknown[] } | null {
  const keys = Object.keys(set) as Array<keyof SnapshotFields>;
  if (keys.length === 0) return null;
  const values = keys.map((k) => {
    const v = set[k];
    return typeof v === 'boolean' ? int(v) : k === 'details' ? enc(v) : (v ?? null);
  });
  return { sql: keys.map((k) => `${COLUMNS[k]} = ?`).join(', '), values };
}

export function createSnapshotRepo(db: Db): SnapshotRepo {
  return {
    async get(id) {
      const r = db.stmt(SNAPSHOT_BY_ID).get(id) as Row | undefined;
      return r ? toSnapshot(r) : null;
    },
    async getByRef(vmId, providerRef) {
      const r = db.stmt(SNAPSHOT_BY_REF).get(vmId, providerRef) as Row | undefined;
      return r ? toSnapshot(r) : null;
    },
    async listByVm(vmId, { includeGone }) {
      return (db.stmt(includeGone ? SNAPSHOTS_OF_VM_WITH_GONE : SNAPSHOTS_OF_VM).all(vmId) as Row[]).map(toSnapshot);
    },
    async findByJob(jobId) {
      const r = db.stmt(SNAPSHOT_OF_JOB).get(jobId) as Row | undefined;
      return r ? toSnapshot(r) : null;
    },
    async apply(plan, options) {
      return db.tx(() => {
        if (options) {
          const row = db.stmt(SNAPSHOT_REVISION).get(options.vmId) as { snapshot_rev: number } | undefined;
          if ((row?.snapshot_rev ?? null) !== options.expectedRevision) return false;
        }
        const insert = db.stmt(INSERT_SNAPSHOT);
        const touched = new Set<string>();
        for (const s of plan.inserts) {
          touched.add(s.vmId);
          insert.run(...snapshotInsertValues(s));
        }
        for (const change of [...plan.updates, ...plan.gone]) {
          const set = snapshotSetters(change.set);
          if (set === null) continue;
          db.stmt(`UPDATE snapshots SET ${set.sql} WHERE id = ?`).run(...set.values, change.before.id);
          touched.add(change.before.vmId);
        }
        for (const vmId of touched) db.stmt(BUMP_SNAPSHOT_REVISION).run(vmId);
        return true;
      });
    },
    async revision(vmId) {
      const r = db.stmt(SNAPSHOT_REVISION).get(vmId) as { snapshot_rev: number } | undefined;
      return r ? r.snapshot_rev : null;
    },
  };
}
