/**
 * The replicas of one PostgreSQL database: who leads, and messages between them.
 *
 * - ONE dedicated connection per replica (not from the pool: a pooled client is given back and
 *   reused, a session lock must live exactly as long as its session) holds the leader lease — a
 *   session-level `pg_try_advisory_lock(LEADER_LOCK)` — and the LISTENs.
 * - Followers try the lock every `leaderRetryMs`. The leader runs a cheap query every `checkMs`
 *   (with a timeout): a failure or a dropped connection makes it step down AT ONCE, then it
 *   reconnects with backoff, LISTENs again and competes like any follower.
 * - While that connection is down this replica hears nobody, and NOTIFY keeps nothing for it:
 *   hearing() says so (/readyz), and once it is back onResume() tells whoever relies on hearing
 *   (SSE streams, waits on jobs run elsewhere) to read the store again.
 * - Failover: PostgreSQL frees a dead session's advisory locks. A killed process's socket closes,
 *   the server sees it at once, the next follower's try gets the lock (≈ leaderRetryMs). A replica
 *   cut off by the network: our session asks the server for TCP keepalives (≈ 11 s to notice), and
 *   the leader's own check times out well before (≈ max(2 s, 2 × checkMs)), so the old leader has
 *   stepped down before the server hands the lock to anyone. The scheduler's unique slot per
 *   (policy, kind, scheduled_for) (migration 014) guards what is left of that window.
 * - publish() goes through the pool, one NOTIFY after the other (NOTIFYs are delivered in commit
 *   order: a job's events arrive in the order they happened); payloads carry the sender's replica
 *   id so a replica drops what it sent itself.
 * Never logs the URL (it may hold the password): only error messages and codes.
 */
import pg from 'pg';
import type { Logger } from '../../../providers/contract.ts';
import { tellEach } from '../../../providers/shared/tell-each.ts';
import { PayloadTooLargeError, type Cluster, type Leadership } from '../cluster.ts';
import type { PgDb } from './db.ts';

/** The leader lease's advisory lock key (the migration lock is 7_266_001). */
export const LEADER_LOCK = 7_266_002;
/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more. */
const NOTIFY_LIMIT = 7999;
const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;
/** Messages queued for publishing at most (one after the other, for their order). */
const MAX_PENDING = 1000;

export interface PgClusterOptions {
  url: string;
  /** Publishes go through this pool. */
  db: PgDb;
  replicaId: string;
  log?: Logger;
  /** How often a follower tries to take the lead (default 1000 ms). */
  leaderRetryMs?: number;
  /** How often the leader checks its connection (default 1000 ms). */
  checkMs?: number;
  /**
   * Longest wait between reconnect attempts (default 1000 ms; the first waits 100 ms). Short: while
   * this connection is down the replica hears nobody (and says so in /readyz), and an attempt
   * against a server that is away costs one refused connect.
   */
  maxBackoffMs?: number;
}

export interface PgCluster extends Cluster {
  /** The backend pid of the cluster connection (null while disconnected): tests terminate it. */
  backendPid(): number | null;
}

const errInfo = (err: unknown) => ({ message: err instanceof Error ? err.message : String(err), code: (err as { code?: unknown } | null)?.code });

export function createPgCluster(options: PgClusterOptions): PgCluster {
  const { url, db, replicaId, log } = options;
  const retryMs = Math.max(10, options.leaderRetryMs ?? 1000);
  const checkMs = Math.max(10, options.checkMs ?? 1000);
  const checkTimeoutMs = Math.max(2000, 2 * checkMs);
  const maxBackoffMs = Math.max(100, options.maxBackoffMs ?? 1000);
  const prefix = `${replicaId} `;
  const maxPayloadBytes = NOTIFY_LIMIT - Buffer.byteLength(prefix);

  const channels = new Map<string, Set<(payload: string) => void>>();
  const changeListeners = new Set<(leading: boolean) => void>();
  const resumeListeners = new Set<() => void>();
  /** The listening connection was lost since it last worked: its return is a resume. */
  let deaf = false;
  let client: pg.Client | null = null;
  let pid: number | null = null;
  let competing = false;
  let leading = false;
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  let looping: Promise<void> | null = null;
  let backoffMs = 0;
  let nextConnectAt = 0;
  /** Logged once per outage, not at every reconnect attempt. */
  let outageLogged = false;
  let publishChain: Promise<unknown> = Promise.resolve();
  let pending = 0;

  const tell = (value: boolean) => tellEach(changeListeners, [value], (err) => log?.warn({ err: errInfo(err) }, 'cluster: leadership listener threw'));

  const setLeading = (value: boolean) => {
    if (leading === value) return;
    leading = value;
    log?.info({ replicaId, leading: value }, value ? 'cluster: this replica leads' : 'cluster: this replica no longer leads');
    tell(value);
  };

  /** The connection c is gone (or unusable): step down first, then reconnect later. */
  const lost = (c: pg.Client, err: unknown) => {
    if (client !== c) return;
    client = null;
    deaf = true;
    setLeading(false);
    if (!closed && !outageLogged) {
      outageLogged = true;
      log?.warn({ err: errInfo(err) }, 'cluster: connection to PostgreSQL lost; reconnecting');
    }
    c.end().catch(() => undefined);
    backoffMs = 100;
    nextConnectAt = Date.now() + backoffMs;
    kick();
  };

  const dispatch = (channel: string, raw: string | undefined) => {
    if (raw === undefined || raw.startsWith(prefix)) return;
    const space = raw.indexOf(' ');
    if (space < 0) return;
    const payload = raw.slice(space + 1);
    tellEach(channels.get(channel) ?? [], [payload], (err) => log?.warn({ channel, err: errInfo(err) }, 'cluster: message listener threw'));
  };

  const connect = async () => {
    const c = new pg.Client({
      connectionString: url,
      application_name: 'snapvisor-cluster',
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      // Every query of this connection: one that hangs (a silent network cut) counts as a lost connection.
      query_timeout: checkTimeoutMs,
    });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c, new Error('connection ended')));
    c.on('notification', (n) => dispatch(n.channel, n.payload));
    try {
      await c.connect();
      // The server notices a vanished replica by keepalive (≈ 5 + 2 × 3 s) and frees its lock.
      await c.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3');
      pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? null;
      for (const channel of channels.keys()) await c.query(`LISTEN ${channel}`);
    } catch (err) {
      c.removeAllListeners('end');
      c.on('error', () => undefined);
      c.end().catch(() => undefined);
      throw err;
    }
    client = c;
    backoffMs = 0;
    if (outageLogged) log?.info({}, 'cluster: connection to PostgreSQL back');
    outageLogged = false;
    if (deaf) {
      deaf = false;
      tellEach(resumeListeners, [], (err) => log?.warn({ err: errInfo(err) }, 'cluster: resume listener threw'));
    }
  };

  /** One round: connect when needed, then the leader checks its connection and a follower tries the lock. */
  const round = async () => {
    if (!client) {
      if (Date.now() < nextConnectAt) return;
      try {
        await connect();
      } catch (err) {
        if (!outageLogged) {
          outageLogged = true;
          log?.warn({ err: errInfo(err) }, 'cluster: cannot connect to PostgreSQL; retrying');
        }
        backoffMs = Math.min(maxBackoffMs, Math.max(100, backoffMs * 2));
        nextConnectAt = Date.now() + backoffMs;
        return;
      }
    }
    const c = client;
    if (!c || closed) return;
    try {
      if (leading) {
        await c.query('SELECT 1');
      } else if (competing) {
        const r = await c.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [LEADER_LOCK]);
        if (r.rows[0]?.got !== true) return;
        // Given up meanwhile (stop() or the connection dropped): do not keep the lock.
        if (!competing || client !== c) {
          await c.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK]).catch(() => undefined);
          return;
        }
        setLeading(true);
      } else {
        // Only listening: a connection cut off silently would miss every message.
        await c.query('SELECT 1');
      }
    } catch (err) {
      lost(c, err);
    }
  };

  const arm = () => {
    if (closed || timer) return;
    const delay = !client ? Math.max(0, nextConnectAt - Date.now()) : leading ? checkMs : retryMs;
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, delay);
    timer.unref?.();
  };

  /** Runs a round now (one at a time), then arms the next. */
  function kick(): void {
    if (closed) return;
    if (looping) return;
    if (timer) clearTimeout(timer);
    timer = null;
    looping = round()
      .catch((err: unknown) => log?.warn({ err: errInfo(err) }, 'cluster: round failed'))
      .finally(() => {
        looping = null;
        arm();
      });
  }

  const leadership: Leadership = {
    isLeader: () => leading,
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    start() {
      if (closed || competing) return;
      competing = true;
      kick();
    },
    async stop() {
      competing = false;
      await looping;
      if (!leading) return;
      setLeading(false);
      const c = client;
      if (!c) return;
      try {
        await c.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK]);
      } catch (err) {
        // Still held, maybe: only ending the session surely frees it.
        lost(c, err);
      }
    },
  };

  return {
    shared: true,
    replicaId,
    leadership,
    maxPayloadBytes,
    backendPid: () => (client ? pid : null),
    publish(channel, payload) {
      if (!CHANNEL.test(channel)) return Promise.reject(new Error(`cluster: bad channel name '${channel}'`));
      const bytes = Buffer.byteLength(payload);
      if (bytes > maxPayloadBytes) return Promise.reject(new PayloadTooLargeError(bytes, maxPayloadBytes));
      // The database away: each NOTIFY waits for the pool's connect timeout; past a bound, drop
      // at once rather than queue without end (and deliver stale events minutes late).
      if (pending >= MAX_PENDING) return Promise.reject(new Error(`cluster: ${pending} messages already waiting for the database; dropped`));
      pending++;
      const sent = publishChain.then(() => db.run('SELECT pg_notify(?, ?)', [channel, prefix + payload])).finally(() => pending--);
      publishChain = sent.catch(() => undefined);
      return sent.then(() => undefined);
    },
    listen(channel, listener) {
      if (!CHANNEL.test(channel)) throw new Error(`cluster: bad channel name '${channel}'`);
      let set = channels.get(channel);
      if (!set) {
        channels.set(channel, (set = new Set()));
        const c = client;
        // Connected now: LISTEN at once (a later connect LISTENs to every channel known then).
        if (c) c.query(`LISTEN ${channel}`).catch((err: unknown) => lost(c, err));
        else kick();
      }
      set.add(listener);
      return () => set.delete(listener);
    },
    hearing: () => client !== null,
    onResume(listener) {
      resumeListeners.add(listener);
      return () => resumeListeners.delete(listener);
    },
    async close() {
      if (closed) return;
      await leadership.stop();
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await looping;
      const c = client;
      client = null;
      if (c) {
        c.removeAllListeners('end');
        c.on('error', () => undefined);
        await c.end().catch(() => undefined);
      }
      await publishChain;
    },
  };
}
