/**
 * The duties one replica of a cluster does for all (scheduler, periodic sync, retention; drift
 * follows the sync): begun when this replica comes to lead, ended when it stops leading
 * (store/cluster.ts Leadership). A local (SQLite) cluster leads from the start: the duties begin
 * at engine start, exactly as before replicas.
 *
 * Changes are applied one after the other (an end waits for the begin before it), so a lead lost
 * while its duties are starting still ends them. A begin that fails (the database did not answer)
 * is undone and tried again while the lead lasts.
 *
 * Metrics: `snapvisor_cluster_leader` (1 while this replica leads), `snapvisor_cluster_leadership_changes_total`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../providers/contract.ts';
import type { Leadership } from '../store/cluster.ts';
import { errSummary } from './sync.ts';

export interface LeaderDutiesOptions {
  leadership: Leadership;
  log: Logger;
  metrics: Registry;
  begin(): Promise<void>;
  end(): Promise<void>;
  /** Wait before a failed begin is tried again (default 1 s). */
  retryMs?: number;
}

export interface LeaderDuties {
  /** This replica leads (its duties may still be starting). */
  leading(): boolean;
  /** Follows the leadership from now on and competes for it; resolves once the duties match it. */
  start(): Promise<void>;
  /** Ends the duties (if begun), then gives the lead up. */
  stop(): Promise<void>;
}

export function createLeaderDuties(options: LeaderDutiesOptions): LeaderDuties {
  const { leadership, log } = options;
  const retryMs = options.retryMs ?? 1000;
  const gauge = new Gauge({ name: 'snapvisor_cluster_leader', help: "1 while this replica leads the cluster (runs the scheduler, periodic sync, drift checks and retention); SQLite's one daemon always leads", registers: [options.metrics] });
  const changes = new Counter({ name: 'snapvisor_cluster_leadership_changes_total', help: 'Times this replica came to lead or stopped leading', registers: [options.metrics] });
  let active = false;
  let stopped = false;
  let following = false;
  let retry: NodeJS.Timeout | null = null;
  let chain = Promise.resolve();
  gauge.set(leadership.isLeader() ? 1 : 0);

  const apply = (): Promise<void> => {
    chain = chain.then(async () => {
      const want = leadership.isLeader() && !stopped;
      if (want === active) return;
      if (!want) {
        active = false;
        await options.end().catch((err: unknown) => log.error({ err: errSummary(err) }, 'cluster: leader duties did not end cleanly'));
        return;
      }
      try {
        await options.begin();
        active = true;
      } catch (err) {
        log.error({ err: errSummary(err) }, 'cluster: leader duties could not begin; retried while this replica leads');
        await options.end().catch(() => undefined);
        retry ??= setTimeout(() => {
          retry = null;
          void apply();
        }, retryMs);
        retry.unref?.();
      }
    });
    return chain;
  };

  let unsubscribe: () => void = () => undefined;
  return {
    leading: () => leadership.isLeader(),
    async start() {
      if (following || stopped) return;
      following = true;
      unsubscribe = leadership.onChange((leading) => {
        gauge.set(leading ? 1 : 0);
        changes.inc();
        void apply();
      });
      leadership.start();
      gauge.set(leadership.isLeader() ? 1 : 0);
      await apply();
    },
    async stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      retry = null;
      await apply();
      unsubscribe();
      await leadership.stop();
      gauge.set(0);
    },
  };
}
