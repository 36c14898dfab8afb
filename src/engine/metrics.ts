/** The engine's Prometheus metrics, on its own Registry (no global default registry). */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { JOB_STATES } from '../domain/types.ts';
import type { Store } from '../store/index.ts';

export interface EngineMetrics {
  registry: Registry;
  jobsFinished: Counter<'kind' | 'state'>;
  providerCallDuration: Histogram<'target' | 'provider' | 'operation' | 'outcome'>;
  providerErrors: Counter<'target' | 'provider' | 'kind'>;
  /** Submissions refused because the token had its most queued jobs (limits.queuedPerToken). */
  queueFullRefusals: Counter<'principal'>;
  storeWriteFailures: Counter<'reason'>;
  render(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(store: Store): EngineMetrics {
  const registry = new Registry();
  new Gauge({
    name: 'snapvisor_jobs',
    help: 'Jobs in the store by state',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const counts = await store.jobs.countByState();
      for (const state of JOB_STATES) this.set({ state }, counts[state]);
    },
  });
  new Gauge({
    name: 'snapvisor_vm_consolidation_needed',
    help: 'VMs whose hypervisor reports that disk chains need consolidation',
    registers: [registry],
    async collect() {
      this.set(await store.vms.countConsolidationNeeded());
    },
  });
  const jobsFinished = new Counter({
    name: 'snapvisor_jobs_finished_total',
    help: 'Jobs that reached a final state',
    labelNames: ['kind', 'state'] as const,
    registers: [registry],
  });
  const providerCallDuration = new Histogram({
    name: 'snapvisor_provider_call_duration_seconds',
    help: 'Duration of provider calls',
    labelNames: ['target', 'provider', 'operation', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const providerErrors = new Counter({
    name: 'snapvisor_provider_errors_total',
    help: 'Provider calls that failed, by error kind',
    labelNames: ['target', 'provider', 'kind'] as const,
    registers: [registry],
  });
  const queueFullRefusals = new Counter({
    name: 'snapvisor_queue_full_refusals_total',
    help: 'Job submissions refused (429) because the token already had its most queued jobs (limits.queuedPerToken)',
    labelNames: ['principal'] as const,
    registers: [registry],
  });
  const storeWriteFailures = new Counter({
    name: 'snapvisor_store_write_failures_total',
    help: 'Database statements or commits that failed because of the storage (full: no space left; io; readonly)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Shown at 0 from the start: an alert on its rate needs the series before the first failure.
  for (const reason of ['full', 'io', 'readonly'] as const) storeWriteFailures.inc({ reason }, 0);
  store.onWriteFailure((reason) => storeWriteFailures.inc({ reason }));
  return {
    registry,
    jobsFinished,
    providerCallDuration,
    providerErrors,
    queueFullRefusals,
    storeWriteFailures,
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
