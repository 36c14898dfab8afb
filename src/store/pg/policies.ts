/** Policies and their runs on PostgreSQL (the interface, row mapping and shared SQL: src/store/policies.ts). */
import type { PolicyRunKind } from '../../domain/policy.ts';
import { isPgUniqueViolation } from '../constraints.ts';
import {
  DELETE_POLICY,
  FINISH_RUN,
  hasSlot,
  INSERT_POLICY,
  UPDATE_POLICY,
  INSERT_RUN,
  LAST_SLOT,
  POLICY_BY_ID,
  POLICY_RUN_JOBS,
  policyValues,
  RUN_BY_ID,
  RUN_OF_SLOT,
  runInsertValues,
  RUNNING_RUN,
  toPolicy,
  toPolicyRun,
  type PolicyRepo,
  type PolicyWrite,
} from '../policies.ts';
import { decodeCursor, encodeCursor, str, strOrNull, type Row } from '../rows.ts';
import { InvalidCursorError } from '../vms.ts';
import type { PgDb, PgQueryable } from './db.ts';

/** The advisory lock class of "starting a run of one (policy, kind)"; the object is a hash of the pair. */
const RUN_START_LOCK = 7_266_014;

export function createPgPolicyRepo(db: PgDb): PolicyRepo {
  const toRun = async (q: PgQueryable, r: Row) =>
    toPolicyRun(r, (await q.all<{ job_id: string }>(POLICY_RUN_JOBS, [str(r.id)])).map((j) => j.job_id));
  const getRun = async (q: PgQueryable, id: string) => {
    const r = await q.get<Row>(RUN_BY_ID, [id]);
    return r ? toRun(q, r) : null;
  };
  const get = async (id: string) => {
    const r = await db.get<Row>(POLICY_BY_ID, [id]);
    return r ? toPolicy(r) : null;
  };
  const write = async (sql: string, params: unknown[], id: string): Promise<PolicyWrite> => {
    try {
      if ((await db.run(sql, params)) === 0) return { outcome: 'not-found' };
    } catch (err) {
      if (isPgUniqueViolation(err)) return { outcome: 'name-taken' };
      throw err;
    }
    return { outcome: 'ok', policy: (await get(id))! };
  };

  return {
    insert: (p) => write(INSERT_POLICY, [...policyValues(p), p.id, p.createdAt, p.updatedAt], p.id),
    update: (p) => write(UPDATE_POLICY, [...policyValues(p), p.updatedAt, p.id], p.id),
    get,
    async list() {
      // Byte order, as SQLite's BINARY collation.
      return (await db.all<Row>('SELECT * FROM policies ORDER BY name COLLATE "C"')).map(toPolicy);
    },
    async delete(id) {
      return (await db.run(DELETE_POLICY, [id])) > 0;
    },

    async startRun(run) {
      return db.tx(async (q) => {
        // Two replicas may start the same (policy, kind) at once (a manual start, an old and a new
        // leader firing one slot). Under READ COMMITTED both would see "nothing running" and "slot
        // free"; this lock, held to the end of the transaction, makes the second wait and then see
        // the first's row. The unique indexes (one running run, one run per slot) stay the last word.
        await q.get('SELECT pg_advisory_xact_lock(?, hashtext(?))', [RUN_START_LOCK, `${run.policyId}:${run.kind}`]);
        if (hasSlot(run)) {
          const taken = await q.get<Row>(RUN_OF_SLOT, [run.policyId, run.kind, run.scheduledFor]);
          if (taken) return { run: await toRun(q, taken), duplicate: true };
        }
        const going = await q.get<{ id: string }>(RUNNING_RUN, [run.policyId, run.kind]);
        await q.run(INSERT_RUN, runInsertValues(run, going?.id ?? null));
        return { run: (await getRun(q, run.id))!, duplicate: false };
      });
    },
    async addRunJob(runId, jobId) {
      // One replica runs a run and submits its jobs one after another: seq needs no lock.
      await db.run(
        `INSERT INTO policy_run_jobs (run_id, seq, job_id)
         VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM policy_run_jobs WHERE run_id = ?), ?) ON CONFLICT DO NOTHING`,
        [runId, runId, jobId],
      );
    },
    async finishRun(runId, state, message, at) {
      const changed = await db.run(FINISH_RUN, [state, message, at, runId]);
      return changed === 0 ? null : getRun(db, runId);
    },
    getRun: (id) => getRun(db, id),
    async listRuns(policyId, q) {
      const params: unknown[] = [policyId];
      let where = 'policy_id = ?';
      if (q.cursor !== undefined) {
        const before = decodeCursor(q.cursor, 2);
        if (!before) throw new InvalidCursorError('invalid cursor');
        where += ' AND (started_at COLLATE "C", id COLLATE "C") < (?, ?)';
        params.push(before[0], before[1]);
      }
      const rows = await db.all<Row>(
        `SELECT * FROM policy_runs WHERE ${where} ORDER BY started_at COLLATE "C" DESC, id COLLATE "C" DESC LIMIT ?`,
        [...params, q.limit + 1],
      );
      const items = await Promise.all(rows.slice(0, q.limit).map((r) => toRun(db, r)));
      const last = items[items.length - 1];
      return { items, next: rows.length > q.limit && last ? encodeCursor([last.startedAt, last.id]) : null };
    },
    async runningRuns() {
      const rows = await db.all<Row>(`SELECT * FROM policy_runs WHERE state = 'running' ORDER BY started_at COLLATE "C", id COLLATE "C"`);
      return Promise.all(rows.map((r) => toRun(db, r)));
    },
    async lastScheduledFor(policyId) {
      const slot = async (kind: PolicyRunKind) => strOrNull((await db.get<Row>(LAST_SLOT, [policyId, kind]))!.s);
      return { snapshot: await slot('snapshot'), consolidate: await slot('consolidate') };
    },
  };
}
