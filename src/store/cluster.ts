/**
 * How the replicas sharing a store coordinate. SQLite has one daemon per file (store/lock.ts):
 * its cluster is this process alone. PostgreSQL's (store/pg/) may hold several replicas.
 */
import { randomUUID } from 'node:crypto';

export interface Cluster {
  /** Several daemon replicas may share this store (PostgreSQL). */
  readonly shared: boolean;
  /** This process's id, new at every start: job leases name it. */
  readonly replicaId: string;
}

/** One process alone on its database. */
export function localCluster(): Cluster {
  return { shared: false, replicaId: randomUUID() };
}
