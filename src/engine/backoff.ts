/**
 * What happens to a job after its handler threw. Pure: the worker applies the decision.
 * Backoff: initialMs doubling per attempt, capped at maxMs; a larger retryAfter from the
 * hypervisor wins (it knows its own throttling window).
 */
import { isProviderError } from '../../providers/contract.ts';
import { SnapvisorError } from '../domain/errors.ts';
import type { JobError } from '../domain/types.ts';

export interface BackoffSettings {
  initialMs: number;
  maxMs: number;
}

export function backoffDelayMs(attemptsMade: number, settings: BackoffSettings, retryAfterMs?: number): number {
  const exp = settings.initialMs * 2 ** Math.max(0, attemptsMade - 1);
  const delay = Math.min(settings.maxMs, Number.isFinite(exp) ? exp : settings.maxMs);
  return Math.max(delay, retryAfterMs ?? 0);
}

export type FailureDecision =
  | { action: 'retry'; delayMs: number; error: JobError }
  | { action: 'fail'; error: JobError; /** The error was not ours to show: log it. */ internal: boolean };

export const INTERNAL_MESSAGE = 'internal error while running the job; the daemon log has the details';

export function decideAfterError(
  err: unknown,
  job: { attempts: number; maxAttempts: number },
  settings: BackoffSettings,
): FailureDecision {
  if (err instanceof SnapvisorError) {
    // A provider's job error carries its native code (VBOX_E_…); the engine's own, its stable code.
    const code = isProviderError(err) ? err.nativeCode : err.code;
    const error: JobError = { kind: err.kind, message: err.message, ...(code ? { code } : {}) };
    // `uncertain` is retried too: create is idempotent by marker and the handler looks first.
    if (err.retry !== 'final' && job.attempts < job.maxAttempts) {
      return { action: 'retry', delayMs: backoffDelayMs(job.attempts, settings, err.retryAfterMs), error };
    }
    return { action: 'fail', error, internal: false };
  }
  return { action: 'fail', error: { kind: 'internal', message: INTERNAL_MESSAGE }, internal: true };
}
