/**
 * How the replicas sharing a store coordinate. SQLite has one daemon per file (store/lock.ts):
 * its cluster is this process alone, the leader from the start, with nobody to tell anything.
 * PostgreSQL's (store/pg/cluster.ts) may hold several replicas: one leads (an advisory lock), and
 * messages reach the others (LISTEN/NOTIFY).
 */
import { randomUUID } from 'node:crypto';

/**
 * Which replica runs the once-per-cluster duties (scheduler, periodic sync, drift, retention).
 * The engine calls start() once it can do them, stop() before it closes.
 */
export interface Leadership {
  isLeader(): boolean;
  /** Told at every change, in order; a listener that throws is the listener's problem (logged). Returns the unsubscribe. */
  onChange(listener: (leading: boolean) => void): () => void;
  /** Begin competing for the lead (local: already leading, no change is told). */
  start(): void;
  /** Stop competing and give the lead up (so another replica takes it at once); tells onChange(false) if it was leading. */
  stop(): Promise<void>;
}

export interface Cluster {
  /** Several daemon replicas may share this store (PostgreSQL). */
  readonly shared: boolean;
  /** This process's id, new at every start: job leases name it. */
  readonly replicaId: string;
  readonly leadership: Leadership;
  /** The largest payload publish() carries (bytes of UTF-8); a larger one is refused. */
  readonly maxPayloadBytes: number;
  /**
   * Sends the payload to the listeners of the channel in the OTHER replicas (best effort: a replica
   * disconnected at the time misses it). This process's own listeners never hear it: what happens
   * here is already known here, so a local cluster has nobody to send to and drops it.
   */
  publish(channel: string, payload: string): Promise<void>;
  /** Listens to what the other replicas publish on the channel. Returns the unsubscribe. */
  listen(channel: string, listener: (payload: string) => void): () => void;
  /**
   * Whether what the other replicas publish reaches this one now: false while the connection that
   * listens is down (a local cluster, with nobody to hear, always hears).
   */
  hearing(): boolean;
  /**
   * Told when listening works again after it was lost: whatever was published in between never
   * arrives (NOTIFY has no replay), so who relies on hearing must read the store again.
   * Returns the unsubscribe.
   */
  onResume(listener: () => void): () => void;
  /** Gives the lead up and closes the cluster's connection (Store.close calls it). */
  close(): Promise<void>;
}

/** Payload over cluster.maxPayloadBytes: send a reference the receivers can read from the store instead. */
export class PayloadTooLargeError extends Error {
  override readonly name = 'PayloadTooLargeError';
  constructor(bytes: number, max: number) {
    super(`cluster message of ${bytes} bytes is over the limit of ${max}`);
  }
}

/** One process alone on its database: always the leader, nobody else to publish to. */
export function localCluster(): Cluster {
  const leadership: Leadership = {
    isLeader: () => true,
    onChange: () => () => undefined,
    start: () => undefined,
    stop: async () => undefined,
  };
  return {
    shared: false,
    replicaId: randomUUID(),
    leadership,
    maxPayloadBytes: Number.MAX_SAFE_INTEGER,
    publish: async () => undefined,
    listen: () => () => undefined,
    hearing: () => true,
    onResume: () => () => undefined,
    close: async () => undefined,
  };
}
