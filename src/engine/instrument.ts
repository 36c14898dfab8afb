/**
 * Every provider call goes through here: one place for latency, error counts and the error
 * type guarantee (anything that is not a ProviderError is wrapped as `internal`).
 */
import { isProviderError, ProviderError, type SnapshotProvider } from '../../providers/contract.ts';
import type { EngineMetrics } from './metrics.ts';

export type ProviderOperation = Exclude<keyof SnapshotProvider, 'kind' | 'target' | 'capabilities' | 'close'>;

export async function instrumented<T>(
  metrics: EngineMetrics,
  provider: SnapshotProvider,
  operation: ProviderOperation,
  fn: () => Promise<T>,
): Promise<T> {
  const labels = { target: provider.target, provider: provider.kind, operation };
  const end = metrics.providerCallDuration.startTimer(labels);
  try {
    const out = await fn();
    end({ outcome: 'ok' });
    return out;
  } catch (err) {
    const wrapped = isProviderError(err)
      ? err
      : new ProviderError(provider.kind, 'internal', `${operation} failed unexpectedly`, { cause: err });
    end({ outcome: wrapped.kind });
    metrics.providerErrors.inc({ target: provider.target, provider: provider.kind, kind: wrapped.kind });
    throw wrapped;
  }
}
