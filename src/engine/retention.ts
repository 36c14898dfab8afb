/**
 * Retention of the audit log and of finished jobs: a pass deletes audit entries older than
 * `auditDays` and jobs that finished more than `jobsDays` ago (never a queued or running one), by
 * the engine's clock, in batches of `batchSize` rows with the event loop yielded between them, so a
 * huge table never holds the loop (or the database's write lock) for long. The engine runs a pass
 * shortly after start and then periodically; tests call `prune()` and move the injected clock.
 */
import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { Core } from './core.ts';
import { errSummary } from './sync.ts';

const DAY_MS = 86_400_000;

export interface RetentionReport {
  audit: number;
  jobs: number;
}

export interface Retention {
  /** One pass; concurrent calls share it. */
  prune(): Promise<RetentionReport>;
  start(): void;
  stop(): void;
}

export function createRetention(core: Core): Retention {
  let running: Promise<RetentionReport> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let generations = 0;

  const drain = async (fn: (limit: number) => Promise<number>): Promise<number> => {
    const limit = Math.max(1, core.settings.retention.batchSize);
    let total = 0;
    for (;;) {
      if (core.lifecycle.signal.aborted) return total;
      const n = await fn(limit);
      total += n;
      if (n < limit) return total;
      await yieldLoop();
    }
  };

  const pass = async (): Promise<RetentionReport> => {
    const { auditDays, jobsDays } = core.settings.retention;
    const now = core.now().getTime();
    const auditBefore = new Date(now - auditDays * DAY_MS).toISOString();
    const jobsBefore = new Date(now - jobsDays * DAY_MS).toISOString();
    const audit = await drain((limit) => core.store.audit.prune(auditBefore, limit));
    const jobs = await drain((limit) => core.store.jobs.pruneFinished(jobsBefore, limit));
    if (audit || jobs) core.log.info({ audit, jobs, auditBefore, jobsBefore }, 'retention: old audit entries and finished jobs deleted');
    return { audit, jobs };
  };

  const retention: Retention = {
    prune() {
      running ??= pass().finally(() => (running = null));
      return running;
    },
    start() {
      const { firstDelayMs, intervalMs } = core.settings.retention;
      if (firstDelayMs <= 0) return;
      if (timer) clearTimeout(timer);
      // Stopped and started again (a replica that leads again) while a pass was going: that pass's
      // end must not arm a second timer chain beside this one's.
      const generation = ++generations;
      const tick = () => {
        retention
          .prune()
          .catch((err: unknown) => core.log.error({ err: errSummary(err) }, 'retention pass failed'))
          .finally(() => {
            if (timer !== null && generation === generations && intervalMs > 0) {
              timer = setTimeout(tick, intervalMs);
              timer.unref?.();
            }
          });
      };
      timer = setTimeout(tick, firstDelayMs);
      timer.unref?.();
    },
    stop() {
      generations++;
      if (timer) clearTimeout(timer);
      timer = null;
    },
  };
  return retention;
}
