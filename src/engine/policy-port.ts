/**
 * The seam between the scheduler (src/engine/scheduler.ts), which only decides *when* a policy
 * runs, and the engine's policy runs, which decide *what* a run does. The scheduler depends on
 * this interface alone so either side can change without the other.
 */
import type { Policy, PolicyRun, PolicyRunKind, PolicyRunTrigger } from '../domain/policy.ts';
import type { Iso } from '../domain/types.ts';

export interface PolicyRunPort {
  /** Enabled policies with the latest cron slot each kind already ran for (null: never). */
  schedulable(): Array<{ policy: Policy; lastScheduledFor: { snapshot: Iso | null; consolidate: Iso | null } }>;
  /** Persists the run record, then submits its jobs; a run still going for (policy, kind) → a 'skipped' run record. */
  startRun(policyId: string, kind: PolicyRunKind, trigger: PolicyRunTrigger, scheduledFor: Iso | null): Promise<PolicyRun>;
}
