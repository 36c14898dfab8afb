/**
 * The daemon's shutdown on SIGTERM or SIGINT, bounded in time whatever hangs:
 * 1. the API stops accepting connections, the worker stops claiming jobs (at once);
 * 2. running jobs get the grace period; then their calls are aborted through their signals and
 *    they are left `running` with an uncertain outcome, for the next start's recovery (engine.stop);
 * 3. connections still open are closed, the providers' connections too, the store is closed; exit 0.
 * If that has not happened `HARD_MARGIN_MS` after the grace (a call that ignores its signal, a
 * close that hangs), the store is closed and the process exits 1 all the same. A second signal
 * does that at once. Closing the store is synchronous and SQLite commits whole transactions, so
 * every path leaves it consistent; jobs it finds `running` are what start-up recovery is for.
 */
import type { Logger } from '../providers/contract.ts';
import { within } from '../providers/shared/sleep.ts';

/** After the grace, the most the aborts and closes may take before the process exits anyway. */
export const HARD_MARGIN_MS = 1_800;
/** How long the API and the providers may take to close once the engine has stopped. */
const CLOSE_WAIT_MS = 300;

export interface ShutdownSteps {
  /** Stop listening; resolves when open requests are done (it is begun first, awaited last). */
  closeApi(): Promise<void>;
  /** Drop the connections closeApi is still waiting for. */
  dropConnections(): void;
  /** Grace, then abort: resolves within about 1 s after the grace. */
  stopEngine(graceMs: number): Promise<void>;
  closeProviders(): Promise<void>;
  /** Synchronous and idempotent. */
  closeStore(): void | Promise<void>;
}

export interface Shutdown {
  /** What a SIGTERM or SIGINT does. */
  onSignal(signal: string): void;
  /** Resolves when the first signal's shutdown has exited (tests inject `exit`). */
  readonly done: Promise<number>;
}

export function createShutdown(options: { graceMs: number; log: Logger; steps: ShutdownSteps; exit: (code: number) => void }): Shutdown {
  const { graceMs, log, steps } = options;
  let started = false;
  let exited = false;
  let hardStop: NodeJS.Timeout | undefined;
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));

  const exit = (code: number) => {
    if (exited) return;
    exited = true;
    clearTimeout(hardStop);
    try {
      // PostgreSQL's pool closes asynchronously; the process exits right after, which ends its sockets anyway.
      void Promise.resolve(steps.closeStore()).catch((err: unknown) => log.error({ err: String(err) }, 'closing the store failed'));
    } catch (err) {
      log.error({ err: String(err) }, 'closing the store failed');
    }
    resolveDone(code);
    options.exit(code);
  };

  const run = async () => {
    const api = steps.closeApi();
    await steps.stopEngine(graceMs);
    if (!(await within(api, CLOSE_WAIT_MS / 2))) {
      steps.dropConnections();
      await within(api, CLOSE_WAIT_MS / 2);
    }
    if (!(await within(steps.closeProviders(), CLOSE_WAIT_MS))) log.warn({}, 'provider connections did not close in time');
  };

  return {
    done,
    onSignal(signal) {
      if (started) {
        log.warn({ signal }, 'second signal: exiting now; jobs still running are recovered at the next start');
        exit(1);
        return;
      }
      started = true;
      log.info({ signal, graceSec: graceMs / 1000 }, 'shutting down: no new jobs; running ones have the grace period');
      hardStop = setTimeout(() => {
        log.error({}, 'shutdown did not finish in time; exiting now (jobs still running are recovered at the next start)');
        exit(1);
      }, graceMs + HARD_MARGIN_MS);
      run().then(
        () => {
          log.info({}, 'stopped');
          exit(0);
        },
        (err: unknown) => {
          log.error({ err: String(err) }, 'error during shutdown');
          exit(1);
        },
      );
    },
  };
}
