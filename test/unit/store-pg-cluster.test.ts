/**
 * The PostgreSQL cluster (src/store/pg/cluster.ts) against the lab: one leader among replicas on a
 * database, failover when the leader's session dies, messages between replicas, reconnects.
 * Waits on the leadership events and on the server's own views (pg_locks, pg_stat_activity),
 * never on a fixed delay.
 */
import t from 'tap';
import pg from 'pg';
import type { Logger } from '../../providers/contract.ts';
import { PayloadTooLargeError, type Cluster } from '../../src/store/cluster.ts';
import { LEADER_LOCK, type PgCluster } from '../../src/store/pg/cluster.ts';
import { openPgStore } from '../../src/store/pg/index.ts';
import type { Store } from '../../src/store/index.ts';
import { createDatabase, freshDatabase, startPostgresCluster } from '../labs/postgres/lab.ts';

const FAST = { leaderRetryMs: 50, checkMs: 50, maxBackoffMs: 200 };

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

function captureLog(lines: string[]): Logger {
  const at = (obj: object, msg?: string) => void lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  const log: Logger = { debug: at, info: at, warn: at, error: at, child: () => log };
  return log;
}

async function database(t: Teardown) {
  const db = await freshDatabase('cluster');
  const admin = new pg.Client(db.url);
  await admin.connect();
  t.teardown(async () => {
    await admin.end();
    await db.drop();
  });
  return { url: db.url, admin };
}

async function replica(t: Teardown, url: string, log?: Logger): Promise<{ store: Store; cluster: PgCluster }> {
  const store = await openPgStore(url, { cluster: FAST, ...(log ? { log } : {}) });
  t.teardown(() => store.close());
  return { store, cluster: store.cluster as PgCluster };
}

/** Resolves at the next change of the cluster's leadership to `value` (at once when it already is). */
function until(cluster: Cluster, value: boolean): Promise<void> {
  return new Promise((resolve) => {
    if (cluster.leadership.isLeader() === value) return resolve();
    const off = cluster.leadership.onChange((leading) => {
      if (leading !== value) return;
      off();
      resolve();
    });
  });
}

/** Polls a condition on the server (each poll is a query: the wait is on the server's state). */
async function serverSays(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setImmediate(r));
}

const lockHolders = async (admin: pg.Client): Promise<number[]> =>
  (await admin.query<{ pid: number }>(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted`, [LEADER_LOCK])).rows.map((r) => r.pid);

/** The session has asked for the lock (and was refused) since `since` queries ago: its last query was the try. */
const hasTried = async (admin: pg.Client, pid: number): Promise<boolean> =>
  (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_try_advisory_lock%' AND state = 'idle'`, [pid])).rowCount === 1;

const messages = (cluster: Cluster, channel: string) => {
  const got: string[] = [];
  const waiters: Array<() => void> = [];
  cluster.listen(channel, (p) => {
    got.push(p);
    for (const w of waiters.splice(0)) w();
  });
  return {
    got,
    async next(count: number) {
      while (got.length < count) await new Promise<void>((r) => waiters.push(r));
    },
  };
};

t.test('two replicas on one database: exactly one leads', async (t) => {
  const { url, admin } = await database(t);
  const a = await replica(t, url);
  const b = await replica(t, url);
  a.cluster.leadership.start();
  await until(a.cluster, true);
  b.cluster.leadership.start();
  await serverSays(async () => b.cluster.backendPid() !== null && hasTried(admin, b.cluster.backendPid()!));
  t.equal(b.cluster.leadership.isLeader(), false, 'the second replica tried and was refused');
  t.same(await lockHolders(admin), [a.cluster.backendPid()], "the lock is held by the leader's session alone");
});

t.test("the leader's session killed: it steps down at once, the other leads, the old one reconnects as a follower and listens again", async (t) => {
  const { url, admin } = await database(t);
  const a = await replica(t, url);
  const b = await replica(t, url);
  const changes: Array<[string, boolean]> = [];
  a.cluster.leadership.onChange((v) => changes.push(['a', v]));
  b.cluster.leadership.onChange((v) => changes.push(['b', v]));
  const inbox = messages(a.cluster, 'snapvisor_test');
  let resumes = 0;
  let hearingAtResume: boolean | null = null;
  a.cluster.onResume(() => {
    resumes++;
    hearingAtResume = a.cluster.hearing();
  });
  a.cluster.leadership.start();
  await until(a.cluster, true);
  t.equal(a.cluster.hearing(), true);
  t.equal(resumes, 0, 'the first connection is no resume');
  b.cluster.leadership.start();
  const killedPid = a.cluster.backendPid()!;
  const aDown = until(a.cluster, false);
  const bUp = until(b.cluster, true);
  await admin.query('SELECT pg_terminate_backend($1)', [killedPid]);
  await aDown;
  t.equal(a.cluster.hearing(), false, 'not hearing while its session is gone');
  await bUp;
  t.same(changes, [['a', true], ['a', false], ['b', true]], 'the old leader stepped down before the new one led (it saw its connection die)');
  t.equal(a.cluster.leadership.isLeader(), false);

  // Back as a follower: a new session, listening again, refused the lock.
  await serverSays(async () => {
    const pid = a.cluster.backendPid();
    return pid !== null && pid !== killedPid && (await hasTried(admin, pid));
  });
  t.equal(a.cluster.leadership.isLeader(), false);
  t.same(await lockHolders(admin), [b.cluster.backendPid()]);
  await b.cluster.publish('snapvisor_test', 'after the reconnect');
  await inbox.next(1);
  t.same(inbox.got, ['after the reconnect'], 'LISTEN was renewed on the new session');
  t.equal(resumes, 1, 'told once that it hears again (what was published meanwhile is lost)');
  t.equal(hearingAtResume, true, 'told after LISTEN was renewed');
  t.equal(b.cluster.hearing(), true);
});

t.test('a leader that stops hands over; one that closes too', async (t) => {
  const { url } = await database(t);
  const a = await replica(t, url);
  const b = await replica(t, url);
  const c = await replica(t, url);
  for (const r of [a, b, c]) r.cluster.leadership.start();
  const leaderOf = async () => {
    await Promise.race([a, b, c].map((r) => until(r.cluster, true)));
    const leaders = [a, b, c].filter((r) => r.cluster.leadership.isLeader());
    t.equal(leaders.length, 1, 'one leader');
    return leaders[0]!;
  };
  const first = await leaderOf();
  const rest = [a, b, c].filter((r) => r !== first);
  const next = Promise.race(rest.map((r) => until(r.cluster, true)));
  await first.cluster.leadership.stop();
  t.equal(first.cluster.leadership.isLeader(), false);
  await next;
  const second = rest.find((r) => r.cluster.leadership.isLeader())!;
  const third = rest.find((r) => r !== second)!;
  const last = until(third.cluster, true);
  await second.store.close();
  await last;
  t.equal(first.cluster.leadership.isLeader(), false, 'a replica that stopped competing does not lead again');
});

t.test('messages reach the other replicas, never the sender; an oversize payload is refused with its own error', async (t) => {
  const { url } = await database(t);
  const a = await replica(t, url);
  const b = await replica(t, url);
  const c = await replica(t, url);
  const inA = messages(a.cluster, 'snapvisor_test');
  const inB = messages(b.cluster, 'snapvisor_test');
  const otherChannel = messages(c.cluster, 'snapvisor_other');
  const inC = messages(c.cluster, 'snapvisor_test');
  // Listening is asynchronous (each replica's session LISTENs): wait until all three do.
  await Promise.all([a, b, c].map((r) => serverSays(async () => r.cluster.backendPid() !== null)));
  const ready = async (): Promise<void> => {
    // A probe from b until a and c have heard one: then their LISTENs are in place.
    let n = 0;
    while (inA.got.length === 0 || inC.got.length === 0) {
      await b.cluster.publish('snapvisor_test', `probe ${n++}`);
      await new Promise((r) => setImmediate(r));
    }
    // Probes published before the loop saw an answer may still be on their way: one last one,
    // heard after all of them (one sender's messages arrive in order), closes the set-up.
    await b.cluster.publish('snapvisor_test', 'probe end');
    const heardEnd = (inbox: { got: string[] }) => inbox.got.includes('probe end');
    await Promise.all([inA, inC].map(async (inbox) => {
      while (!heardEnd(inbox)) await inbox.next(inbox.got.length + 1);
    }));
    inA.got.length = 0;
    inC.got.length = 0;
  };
  await ready();
  for (let i = 0; i < 50; i++) await a.cluster.publish('snapvisor_test', `m${i} ünïcode`);
  await inB.next(50 + inB.got.filter((m) => m.startsWith('probe')).length);
  await inC.next(50);
  const fromA = inB.got.filter((m) => !m.startsWith('probe'));
  t.same(fromA, Array.from({ length: 50 }, (_, i) => `m${i} ünïcode`), 'in order, intact');
  t.same(inA.got, [], 'the sender does not hear itself');
  t.same(otherChannel.got, [], 'another channel hears nothing');

  const max = a.cluster.maxPayloadBytes;
  t.ok(max > 7000 && max < 8000, `limit ${max} bytes`);
  await t.rejects(a.cluster.publish('snapvisor_test', 'x'.repeat(max + 1)), PayloadTooLargeError);
  await t.rejects(a.cluster.publish('snapvisor_test', 'é'.repeat(Math.ceil(max / 2) + 1)), PayloadTooLargeError, 'counted in bytes, not characters');
  await a.cluster.publish('snapvisor_test', 'y'.repeat(max));
  await inC.next(51);
  t.equal(inC.got[50]!.length, max, 'a payload at the limit arrives whole');
  t.throws(() => a.cluster.listen('bad channel; DROP TABLE jobs', () => undefined), /bad channel/);
});

t.test('a lost connection is logged without the password', async (t) => {
  const { url, admin } = await database(t);
  const lines: string[] = [];
  const withPassword = url.replace('snapvisor@', 'snapvisor:s3cret-pw@');
  const a = await replica(t, withPassword, captureLog(lines));
  a.cluster.leadership.start();
  await until(a.cluster, true);
  const pid = a.cluster.backendPid()!;
  await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  await until(a.cluster, false);
  await until(a.cluster, true);
  t.ok(lines.some((l) => /connection to PostgreSQL lost/.test(l)), 'the loss is logged');
  t.notOk(lines.some((l) => l.includes('s3cret-pw')), 'never the password');
});

t.test('the server crashes and comes back: the leader steps down at once; then one replica leads and both listen again', { timeout: 60_000 }, async (t) => {
  const server = await startPostgresCluster();
  // kill() first: the lab's stop() (which destroy() calls) waits forever as root, its SIGINT stopping at runuser.
  t.teardown(async () => {
    await server.kill();
    await server.destroy();
  });
  const db = await createDatabase(server.port, 'restart');
  const a = await replica(t, db.url);
  const b = await replica(t, db.url);
  const inA = messages(a.cluster, 'snapvisor_test');
  const inB = messages(b.cluster, 'snapvisor_test');
  a.cluster.leadership.start();
  b.cluster.leadership.start();
  const first = await Promise.race([a, b].map(async (r) => (await until(r.cluster, true), r)));
  const down = until(first.cluster, false);
  // SIGKILL of the postmaster (the lab's stop() cannot signal it through runuser when we are root).
  await server.kill();
  await down;
  t.notOk(a.cluster.leadership.isLeader() || b.cluster.leadership.isLeader(), 'nobody leads while the server is away');
  await server.start();
  const second = await Promise.race([a, b].map(async (r) => (await until(r.cluster, true), r)));
  t.equal([a, b].filter((r) => r.cluster.leadership.isLeader()).length, 1, 'one leads again');
  // Both sessions LISTEN again: each hears the other.
  const other = second === a ? b : a;
  await serverSays(async () => other.cluster.backendPid() !== null);
  let n = 0;
  while (inA.got.length === 0 || inB.got.length === 0) {
    await a.cluster.publish('snapvisor_test', `from a ${n}`);
    await b.cluster.publish('snapvisor_test', `from b ${n++}`);
    await new Promise((r) => setImmediate(r));
  }
  t.match(inA.got[0], /^from b/);
  t.match(inB.got[0], /^from a/);
});
