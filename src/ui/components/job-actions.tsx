/**
 * Cancel and Retry for one job, for a write-scope token only (absent otherwise, not disabled).
 * Each asks first; a retry carries one Idempotency-Key per opened dialog, so a double click makes
 * one new job.
 */
import { useState } from 'preact/hooks';
import { api, seg } from '../api.ts';
import { isCancellable, isRetryable } from '../job-updates.ts';
import { session } from '../session.ts';
import type { Job } from '../types.ts';
import { ConfirmDialog } from './confirm.tsx';
import { ProblemBanner } from './problem.tsx';

type Asking = { action: 'Cancel job' | 'Retry'; key: string };

export function JobActions({ job, onDone }: { job: Job; onDone: (job: Job, action: 'cancel' | 'retry') => void }) {
  const [asking, setAsking] = useState<Asking | null>(null);
  const [error, setError] = useState<unknown>(null);
  if (!session.can('write')) return null;
  // The API lets only an admin cancel another caller's job (a policy's included): no button that can only answer 403.
  const cancellable = isCancellable(job) && (job.requestedBy === session.who()?.name || session.can('admin'));
  const retryable = isRetryable(job);

  const confirm = async () => {
    const a = asking;
    setAsking(null);
    if (!a) return;
    try {
      setError(null);
      if (a.action === 'Retry') onDone(await api.post<Job>(`/v1/jobs/${seg(job.id)}/retry`, {}, { 'idempotency-key': a.key }), 'retry');
      else onDone(await api.post<Job>(`/v1/jobs/${seg(job.id)}/cancel`, {}), 'cancel');
    } catch (err) {
      setError(err);
    }
  };

  if (!cancellable && !retryable && error === null) return null;
  return (
    <span class="job-actions">
      {cancellable && (
        <button type="button" class="danger" onClick={() => setAsking({ action: 'Cancel job', key: '' })}>Cancel</button>
      )}
      {retryable && (
        <button type="button" onClick={() => setAsking({ action: 'Retry', key: crypto.randomUUID() })}>Retry</button>
      )}
      <ProblemBanner error={error} />
      {asking && (
        <ConfirmDialog
          title={asking.action === 'Retry' ? `Retry this ${job.kind} job?` : `Cancel this ${job.kind} job?`}
          action={asking.action}
          danger={asking.action !== 'Retry'}
          onConfirm={confirm}
          onCancel={() => setAsking(null)}
        >
          <p>
            {asking.action === 'Retry'
              ? 'A new job asks for the same thing again (same VM, snapshot and settings); this one stays in the history as it ended.'
              : job.state === 'queued'
                ? 'It has not started: it ends cancelled at once.'
                : 'Its operation on the hypervisor is aborted; what the hypervisor already finished may stay.'}
          </p>
        </ConfirmDialog>
      )}
    </span>
  );
}
