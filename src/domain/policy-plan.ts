/**
 * What one run of a policy would do, step by step (GET /v1/policies/{id}/plan shows this list and
 * a run executes it). Pure: VMs, snapshots and `now` come in, steps come out.
 */
import { localWallMs } from './local-calendar.ts';
import type { PlannedSnapshot, Policy, PolicyRunKind } from './policy.ts';
import { retentionDeletes } from './retention-plan.ts';
import { selectorMatcher } from './selector.ts';
import type { Iso, SnapshotMode } from './types.ts';

export interface PlanVm {
  id: string;
  name: string;
  targetName: string;
  chainDepth: number;
  consolidationNeeded: boolean;
  /** Modes the VM's target can take a snapshot in. */
  supportedModes: readonly SnapshotMode[];
  canConsolidate: boolean;
  gone: boolean;
}

export type PlanAction = 'create' | 'delete' | 'consolidate' | 'skip';

export interface PlanStep {
  vmId: string;
  vmName: string;
  targetName: string;
  action: PlanAction;
  snapshotId?: string;
  snapshotName?: string;
  reason: string;
}

export interface PolicyPlan {
  policyId: string;
  kind: PolicyRunKind;
  at: Iso;
  steps: PlanStep[];
}

export interface PolicyPlanInput {
  policy: Policy;
  kind: PolicyRunKind;
  vms: readonly PlanVm[];
  /** Present snapshots by VM id. */
  snapshots: ReadonlyMap<string, readonly PlannedSnapshot[]>;
  now: Date;
}

/** Stands for the snapshot the run is about to make; no stored id can look like it. */
const NEW_SNAPSHOT_ID = '\u0000new';

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `<policy name>-<local date>T<hhmm>` in the policy's zone, e.g. nightly-2026-12-04T0230. */
export function snapshotNameFor(policy: Pick<Policy, 'name' | 'timezone'>, now: Date): string {
  const d = new Date(localWallMs(policy.timezone, now.getTime()));
  return `${policy.name}-${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}`;
}

export function planPolicyRun(input: PolicyPlanInput): PolicyPlan {
  const { policy, kind, now } = input;
  const matches = selectorMatcher(policy.selector);
  const steps: PlanStep[] = [];
  const name = snapshotNameFor(policy, now);
  for (const vm of input.vms) {
    if (!matches(vm)) continue;
    if (vm.gone) {
      steps.push(step(vm, 'skip', 'VM is gone'));
      continue;
    }
    if (kind === 'snapshot') planSnapshot(policy, vm, input.snapshots.get(vm.id) ?? [], name, now, steps);
    else planConsolidate(policy, vm, steps);
  }
  return { policyId: policy.id, kind, at: now.toISOString(), steps };
}

/** Built as one literal: `{ ...head, … }` per step cost ~10 µs each in V8 here (the fleet benchmark). */
function step(vm: PlanVm, action: PlanAction, reason: string, snapshotName?: string, snapshotId?: string): PlanStep {
  const out: PlanStep = { vmId: vm.id, vmName: vm.name, targetName: vm.targetName, action, reason };
  if (snapshotId !== undefined) out.snapshotId = snapshotId;
  if (snapshotName !== undefined) out.snapshotName = snapshotName;
  return out;
}

function planSnapshot(policy: Policy, vm: PlanVm, present: readonly PlannedSnapshot[], name: string, now: Date, steps: PlanStep[]): void {
  if (!vm.supportedModes.includes(policy.mode)) {
    // Never a silent downgrade to another mode; and no retention without the new snapshot.
    const offered = vm.supportedModes.length === 0 ? 'none' : vm.supportedModes.join(', ');
    steps.push(step(vm, 'skip', `mode ${policy.mode} not supported by target ${vm.targetName} (supports: ${offered})`));
    return;
  }
  steps.push(step(vm, 'create', `scheduled ${policy.mode} snapshot`, name));
  const made: PlannedSnapshot = {
    id: NEW_SNAPSHOT_ID,
    vmId: vm.id,
    parentId: null,
    name,
    owner: 'snapvisor',
    policyId: policy.id,
    current: true,
    createdAt: now.toISOString(),
  };
  const deletes = retentionDeletes({ policy, snapshots: [...present, made], now });
  if (deletes.length === 0) return;
  const byId = new Map<string, PlannedSnapshot>();
  for (const s of present) byId.set(s.id, s);
  for (const d of deletes) {
    if (d.id === NEW_SNAPSHOT_ID) continue;
    steps.push(step(vm, 'delete', d.reason, byId.get(d.id)?.name ?? d.id, d.id));
  }
}

function planConsolidate(policy: Policy, vm: PlanVm, steps: PlanStep[]): void {
  const tooDeep = policy.maxChainDepth !== null && vm.chainDepth > policy.maxChainDepth;
  if (!tooDeep && !vm.consolidationNeeded) return;
  const why = tooDeep ? `chain depth ${vm.chainDepth} > maxChainDepth ${policy.maxChainDepth}` : 'the hypervisor reports consolidation needed';
  if (vm.canConsolidate) steps.push(step(vm, 'consolidate', why));
  else steps.push(step(vm, 'skip', `${why}, but target ${vm.targetName} cannot consolidate`));
}
