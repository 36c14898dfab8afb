/**
 * What the engine offers the API layer (and only this: the API never touches the store or a
 * provider directly). Implemented by `createEngine` in src/engine/engine.ts.
 *
 * Errors: methods throw `SnapvisorError` (src/domain/errors.ts) for Snapvisor's own objects
 * (kind not_found, invalid, unsupported, conflict) and let `ProviderError` through for hypervisor
 * answers; the API maps both to problem+json.
 */
import type { Capabilities, DiskInfo, OrphanArtefact, TargetHealth } from '../../providers/contract.ts';
import type { DriftConsolidationItem, DriftSnapshotItem, DriftSummary, DriftVmItem } from '../domain/drift.ts';
import type { SnapshotGroup } from '../domain/group.ts';
import type { Policy, PolicyRun, PolicyRunKind, RetentionRule, Selector } from '../domain/policy.ts';
import type { PolicyPlan } from '../domain/policy-plan.ts';
import type {
  AuditEntry,
  CreateOptionValue,
  Iso,
  Job,
  JobKind,
  JobState,
  ProviderKind,
  Snapshot,
  SnapshotMode,
  Vm,
} from '../domain/types.ts';

export interface TargetView {
  name: string;
  kind: ProviderKind;
  demo: boolean;
  health: TargetHealth & { checkedAt: Iso | null };
  capabilities: Capabilities;
  vmCount: number;
}

export interface VmView extends Omit<Vm, 'disks'> {
  /** The stored disks; empty when the target never reported any. */
  disks: DiskInfo[];
  targetName: string;
  snapshotCount: number;
  /** Depth of the chain from its root to the current snapshot (0 with no snapshots). */
  chainDepth: number;
  currentSnapshotId: string | null;
}

export interface SnapshotTreeNode extends Snapshot {
  depth: number;
  children: SnapshotTreeNode[];
}

export interface SnapshotTree {
  vmId: string;
  currentSnapshotId: string | null;
  maxDepth: number;
  roots: SnapshotTreeNode[];
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, null at the end. */
  next: string | null;
}

export interface VmFilter {
  target?: string;
  /** Prefix of the VM name (case-insensitive for ASCII letters). */
  name?: string;
  includeGone?: boolean;
  limit: number;
  cursor?: string;
}

export interface JobFilter {
  state?: JobState;
  vmId?: string;
  kind?: JobKind;
  /** Only jobs a run of this policy submitted. */
  policyId?: string;
  limit: number;
  cursor?: string;
}

export type JobRequest =
  | { kind: 'snapshot.create'; vmId: string; name: string; description: string; mode: SnapshotMode; options?: Record<string, CreateOptionValue> }
  | { kind: 'snapshot.revert'; snapshotId: string }
  | { kind: 'snapshot.delete'; snapshotId: string; children: boolean }
  | { kind: 'snapshot.delete-all'; vmId: string }
  | { kind: 'vm.consolidate'; vmId: string; dryRun: boolean };

export interface SubmitMeta {
  /** Token name of the caller, recorded on the job and in the audit log. */
  principal: string;
  /** Idempotency-Key header; with it, a repeat of the same request returns the first job. */
  idempotencyKey?: string;
  /** Hash of method + path + body, so a reused key with another request is refused. */
  requestHash: string;
  /** Set by a policy run: recorded on the job (and on the snapshot a create makes), never by the API. */
  policy?: { policyId: string; runId: string };
}

export interface SubmitResult {
  job: Job;
  /** True when an Idempotency-Key matched an earlier request and its job is returned. */
  replayed: boolean;
}

export type EngineEvent =
  | { type: 'job'; job: Job }
  | { type: 'snapshot'; action: 'created' | 'updated' | 'gone'; snapshot: Snapshot }
  | { type: 'vm'; action: 'created' | 'updated' | 'gone'; vm: Vm }
  | { type: 'target'; target: TargetView }
  /** A policy run started, was skipped or ended. */
  | { type: 'policy-run'; run: PolicyRun }
  /** A target's drift changed (an item came or went), seen after an inventory pass. */
  | { type: 'drift'; target: string; summary: DriftSummary };

/** One target's drift (domain/drift.ts), from the store as the latest inventory pass left it. */
export interface DriftReport {
  target: string;
  /** When the target was last checked (its latest inventory pass); null: never. */
  checkedAt: Iso | null;
  createdOutside: DriftSnapshotItem[];
  deletedOutside: DriftSnapshotItem[];
  vmsGone: DriftVmItem[];
  consolidationNeeded: DriftConsolidationItem[];
  /**
   * Provider-declared orphaned artefacts (capabilities.orphans): `supported: false` with the reason
   * and `items: null` when the provider cannot list them — never a made-up empty list.
   */
  orphans: { supported: boolean; message: string | null; checkedAt: Iso | null; items: OrphanArtefact[] | null };
  summary: DriftSummary;
}

export interface ReadyReport {
  ready: boolean;
  store: boolean;
  /** The configured rule: every target (all) or at least one (any) must have been inventoried. */
  readiness: 'all' | 'any';
  /** This replica: its id (job leases name it), whether replicas share the store (PostgreSQL), whether it leads them. */
  replica: { id: string; shared: boolean; leader: boolean };
  /** Why not ready (null when ready). */
  reason: string | null;
  targets: Array<{
    name: string;
    healthy: boolean | null;
    message: string | null;
    /** The latest inventory pass read this target (null: none has ended yet). */
    synced: boolean | null;
    /** Why its latest pass did not read it (null when it did, or none has ended). */
    reason: string | null;
  }>;
}

/** A consistent copy of the database in a file of the daemon's; `dispose` removes the file. */
export interface DatabaseBackup {
  file: string;
  bytes: number;
  schemaVersion: number;
  takenAt: Iso;
  dispose(): Promise<void>;
}

/** POST /v1/snapshot-groups: exactly one of `vms` and `selector`. */
export interface GroupRequest {
  name: string;
  description: string;
  mode: SnapshotMode;
  vms?: string[];
  selector?: Selector;
}

export interface GroupSubmitResult {
  group: SnapshotGroup;
  /** True when an Idempotency-Key matched an earlier request and its group is returned. */
  replayed: boolean;
}

/** What a retry, revert or delete of a group did: the group now and the jobs it made. */
export interface GroupActionResult {
  group: SnapshotGroup;
  jobs: Job[];
}

/** An audit entry as the API hands it in; the store adds its id and time. */
export type AuditRecord = Omit<AuditEntry, 'id' | 'at'>;

/** A new policy as the API hands it in (TypeBox-checked); defaults: timezone UTC, no chain limit, no consolidation schedule, enabled. */
export interface PolicyInput {
  name: string;
  selector: Selector;
  schedule: string;
  timezone?: string;
  mode: SnapshotMode;
  retention: RetentionRule;
  maxChainDepth?: number | null;
  consolidationSchedule?: string | null;
  enabled?: boolean;
}

/** PATCH: the given fields replace the stored ones (selector and retention as a whole). */
export type PolicyPatch = Partial<PolicyInput>;

export interface EngineApi {
  listTargets(): Promise<TargetView[]>;
  getTarget(name: string): Promise<TargetView>;
  /** Re-checks health and re-reads inventory and snapshot trees from the target. */
  syncTarget(name: string): Promise<TargetView>;

  listVms(filter: VmFilter): Promise<Page<VmView>>;
  getVm(vmId: string): Promise<VmView>;

  listSnapshots(vmId: string, options: { includeGone: boolean }): Promise<Snapshot[]>;
  snapshotTree(vmId: string): Promise<SnapshotTree>;
  /**
   * A number that changes whenever any snapshot of the VM does (not_found for an unknown VM):
   * what HTTP caching of a VM's snapshot listing is keyed on.
   */
  snapshotRevision(vmId: string): Promise<number>;
  getSnapshot(snapshotId: string): Promise<Snapshot>;

  /**
   * Validates the request against the store and the target's capabilities (unknown ids →
   * not_found, unsupported mode → unsupported with the reason) before any job row exists,
   * then persists the job as queued. A consolidate dry run touches nothing: it is stored as an
   * already-succeeded job whose `result.message` is the plan.
   */
  submit(request: JobRequest, meta: SubmitMeta): Promise<SubmitResult>;
  getJob(jobId: string): Promise<Job>;
  listJobs(filter: JobFilter): Promise<Page<Job>>;
  /** Queued jobs end cancelled at once; running ones get their AbortSignal fired. */
  cancelJob(jobId: string, principal: string): Promise<Job>;
  /**
   * A new job doing what a failed or cancelled one asked (same kind, VM, snapshot and params),
   * through `submit`: validated again, counted against the caller's limits, idempotent by the
   * caller's key. A policy's job stays the policy's (its snapshot is then managed by its
   * retention). conflict for a queued, running or succeeded job, and for a snapshot group's job
   * (its group's retry keeps the new job a member); not_found for an unknown one.
   */
  retryJob(jobId: string, meta: SubmitMeta): Promise<SubmitResult>;
  /** Resolves with the job once it is final or when `timeoutMs` passes (then still running). */
  waitForJob(jobId: string, timeoutMs: number, signal?: AbortSignal): Promise<Job>;

  /** Subscribe to engine events (SSE); returns the unsubscribe function. */
  subscribe(listener: (event: EngineEvent) => void): () => void;
  /**
   * Told when events of other replicas were missed (this replica could not hear them for a while):
   * a stream that relayed events has a gap its client must fill by reading again. Returns the unsubscribe.
   */
  onEventsMissed(listener: () => void): () => void;

  ready(): Promise<ReadyReport>;
  audit(record: AuditRecord): Promise<void>;
  /**
   * An online backup of the database while jobs keep running: a new file beside the database,
   * integrity-checked. The caller sends it on and disposes of it.
   */
  backupDatabase(): Promise<DatabaseBackup>;
  /** Prometheus text exposition of the engine's metrics (jobs by state, provider latency, errors). */
  metrics(): Promise<{ contentType: string; body: string }>;

  /**
   * Snapshot groups (src/engine/groups.ts). Create validates every member as `submit` does
   * (unknown VMs → not_found naming them, a mode a member's target cannot do → unsupported naming
   * the VM and the reason) before anything is stored, then writes the group and one create job per
   * VM in one transaction.
   */
  createSnapshotGroup(request: GroupRequest, meta: SubmitMeta): Promise<GroupSubmitResult>;
  listSnapshotGroups(filter: { limit: number; cursor?: string }): Promise<Page<SnapshotGroup>>;
  getSnapshotGroup(groupId: string): Promise<SnapshotGroup>;
  /** New create jobs for the failed and cancelled members (conflict when there are none). */
  retrySnapshotGroup(groupId: string, principal: string): Promise<GroupActionResult>;
  /** A revert job per member snapshot (conflict unless every member has one). */
  revertSnapshotGroup(groupId: string, principal: string): Promise<GroupActionResult>;
  /** A delete job per member snapshot; the group stays, as deleted. */
  deleteSnapshotGroup(groupId: string, principal: string): Promise<GroupActionResult>;
  /** Policies (issue 13). Invalid fields → invalid naming the field; a name in use → conflict. */
  createPolicy(input: PolicyInput): Promise<Policy>;
  /** By name. */
  listPolicies(): Promise<Policy[]>;
  getPolicy(id: string): Promise<Policy>;
  updatePolicy(id: string, patch: PolicyPatch): Promise<Policy>;
  /** The policy only: its runs stay, its snapshots keep their policyId (no other policy ever deletes them). */
  deletePolicy(id: string): Promise<void>;
  /** What a run now would do, step by step, doing nothing. */
  planPolicy(id: string, kind: PolicyRunKind): Promise<PolicyPlan>;
  /** A manual run: the run record (running, or skipped when one of the same kind is going); its jobs follow. */
  runPolicy(id: string, kind: PolicyRunKind): Promise<PolicyRun>;
  /** Newest first. */
  listPolicyRuns(policyId: string, query: { limit: number; cursor?: string }): Promise<Page<PolicyRun>>;
  /** One run of the policy (not_found for an unknown policy or run, or a run of another policy). */
  getPolicyRun(policyId: string, runId: string): Promise<PolicyRun>;
  /** Drift and orphans per configured target (one target with `target`: not_found when unknown). Changes nothing. */
  drift(filter: { target?: string }): Promise<DriftReport[]>;
}
