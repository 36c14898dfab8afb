/**
 * The provider contract: what a hypervisor or cloud adapter must do for Snapvisor.
 *
 * A plugin author reads this file and nothing else. The engine, the API and the conformance
 * suite all read the same `Capabilities` object, so a capability is declared once, as data.
 *
 * Rules every adapter follows (the conformance suite checks them):
 * - Every call takes a `CallContext`; honour `ctx.signal` (reject with kind `transient`,
 *   retry `uncertain` if the request may already have reached the hypervisor).
 * - Never throw a raw transport error: wrap it in `ProviderError` with a kind.
 * - A snapshot is addressed by the provider's own reference (`providerRef`), never by its name:
 *   names are not unique on VirtualBox, Hyper-V or vSphere.
 * - `createSnapshot` is idempotent by `spec.marker`: asked again with a marker it already used, it
 *   returns the snapshot it made instead of making another.
 * - Deleting a snapshot that is already gone succeeds.
 * - A mode or operation the hypervisor cannot do throws kind `unsupported` — never a silent
 *   downgrade, never a fake success.
 */
import { Type, type Static } from 'typebox';

export const PROVIDER_KINDS = ['azure', 'vmware', 'hyperv', 'virtualbox', 'kvm'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

/**
 * memory: disks + RAM, VM keeps running. crash: disks only while running, crash-consistent.
 * quiesced: guest flushed/frozen first. offline: powered off first, power state restored after.
 */
export const SNAPSHOT_MODES = ['memory', 'crash', 'quiesced', 'offline'] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];

/** Normalised power state; the native word is kept in `rawPowerState`. */
export const POWER_STATES = ['running', 'paused', 'suspended', 'off', 'transitioning', 'unknown'] as const;
export type PowerState = (typeof POWER_STATES)[number];

const ModeSupportSchema = Type.Union([
  Type.Object({
    supported: Type.Literal(true),
    /**
     * Set when snapshots taken in this mode cannot be reverted to, with the reason (libvirt < 9.9
     * cannot revert the external overlays that crash/quiesced snapshots are). Absent: they can,
     * wherever `revert` is declared.
     */
    revertRefused: Type.Optional(Type.String()),
  }),
  Type.Object({ supported: Type.Literal(false), reason: Type.String({ description: 'Why the mode is not available (shown on 422)' }) }),
]);
export type ModeSupport = Static<typeof ModeSupportSchema>;

/**
 * A rule a snapshot name (or description) must keep, as data: the API refuses a name that breaks one
 * with 400 before any job exists, and the adapter checks the same rules before calling the hypervisor.
 */
export const TextRuleSchema = Type.Object({
  /** ECMAScript regular expression source, evaluated with the `u` flag. */
  pattern: Type.String(),
  /** `forbid`: a text matching the pattern is refused. `require`: a text not matching it is refused. */
  effect: Type.Union([Type.Literal('forbid'), Type.Literal('require')]),
  /** Which text the rule is about (default: the name). */
  field: Type.Optional(Type.Union([Type.Literal('name'), Type.Literal('description')])),
  /** Why, shown to the user: "a snapshot name must not start with '-' (virsh would read it as an option)". */
  reason: Type.String(),
});
export type TextRule = Static<typeof TextRuleSchema>;

/**
 * A budget the hypervisor or cloud puts on snapshot creation, as data: the engine keeps create jobs
 * within it before calling the provider (they wait queued, with the reason shown), so a job never
 * provokes the throttling it would otherwise meet (Azure: 7 incremental snapshots per disk every
 * 5 minutes). `per: 'disk'` counts one create against every disk the VM has (`VmInfo.disks`, keyed by
 * `path`, else `slot`); `per: 'vm'` against the VM.
 */
export const CreateRateLimitSchema = Type.Object({
  per: Type.Union([Type.Literal('disk'), Type.Literal('vm')]),
  /** Most creates per `windowMs`, sliding. */
  max: Type.Integer({ minimum: 1 }),
  windowMs: Type.Integer({ minimum: 1 }),
  /** Shown on a job that waits for the budget: "Azure allows 7 incremental snapshots per disk every 5 minutes". */
  reason: Type.String(),
});
export type CreateRateLimit = Static<typeof CreateRateLimitSchema>;

/**
 * An option of a snapshot create that only some providers have (Azure: `incremental`), declared as
 * data: the API accepts exactly the declared names with values of the declared type (else 400, before
 * any job exists) and the provider receives them in `CreateSpec.options`. Absent from a request: the
 * provider's own default.
 */
export const CreateOptionSchema = Type.Object({
  type: Type.Union([Type.Literal('boolean'), Type.Literal('integer'), Type.Literal('string')]),
  description: Type.String(),
});
export type CreateOption = Static<typeof CreateOptionSchema>;
export type CreateOptionValue = boolean | number | string;

/** The capability matrix, declared once: the engine, the API schema and the conformance suite read it. */
export const CapabilitiesSchema = Type.Object(
  {
    /** One entry per mode: supported, or not with the reason shown to the user (HTTP 422). */
    modes: Type.Object({
      memory: ModeSupportSchema,
      crash: ModeSupportSchema,
      quiesced: ModeSupportSchema,
      offline: ModeSupportSchema,
    }),
    /** Can revert the VM to a snapshot: exactly when the provider has `revertSnapshot`. */
    revert: Type.Boolean(),
    /** Can delete a snapshot together with its whole subtree in one request. */
    deleteChildren: Type.Boolean(),
    /**
     * Can remove every snapshot of a VM: natively (`deleteAllSnapshots`, e.g. vSphere's
     * RemoveAllSnapshots_Task) or, without it, by the engine deleting each root with its children.
     */
    deleteAll: Type.Boolean(),
    /** Can consolidate disk chains: exactly when the provider has `consolidate`. */
    consolidate: Type.Boolean(),
    /** The hypervisor allows two snapshots of one VM with the same name. */
    duplicateNames: Type.Boolean(),
    /** Snapshots carry a free-text description. */
    descriptions: Type.Boolean(),
    /**
     * A new snapshot may exist before it is usable (a cloud still copying it): `createSnapshot` can
     * answer `ready: false`, and the job waits on `getSnapshot` until it is ready.
     */
    readiness: Type.Boolean(),
    /**
     * Can list orphaned artefacts (`listOrphans`): things Snapvisor or a snapshot left behind that no
     * VM uses any more, detected from the hypervisor's own output. Absent = false: the drift report
     * then says the target cannot tell, never an empty list.
     */
    orphans: Type.Optional(Type.Boolean()),
    /** Provider-specific options a create request may carry (`options` in the request body), by name. */
    createOptions: Type.Optional(Type.Record(Type.String(), CreateOptionSchema)),
    limits: Type.Object({
      /** Longest snapshot name, in UTF-8 bytes. */
      maxNameBytes: Type.Integer({ minimum: 1 }),
      /** Most snapshots per VM the hypervisor allows, when it has a limit. */
      maxSnapshotsPerVm: Type.Optional(Type.Integer({ minimum: 1 })),
      /** What a name (or description) may contain, beyond its length. */
      nameRules: Type.Array(TextRuleSchema),
      /** Creation budgets the engine keeps before calling the provider (absent: none). */
      createRate: Type.Optional(Type.Array(CreateRateLimitSchema)),
    }),
  },
  { title: 'Capabilities' },
);
export type Capabilities = Static<typeof CapabilitiesSchema>;

/** What create options break among the declared ones; empty when the target takes them. Pure. */
export function createOptionProblems(declared: Capabilities['createOptions'], options: Record<string, unknown>): string[] {
  const known = declared ?? {};
  const names = Object.keys(known);
  const problems: string[] = [];
  for (const [name, value] of Object.entries(options)) {
    const option = Object.hasOwn(known, name) ? known[name] : undefined;
    if (!option) {
      problems.push(`unknown create option '${name}' (${names.length === 0 ? 'this target takes none' : `this target takes: ${names.join(', ')}`})`);
      continue;
    }
    const ok = option.type === 'boolean' ? typeof value === 'boolean' : option.type === 'integer' ? Number.isInteger(value) : typeof value === 'string';
    if (!ok) problems.push(`create option '${name}' must be ${option.type === 'integer' ? 'an integer' : `a ${option.type}`}`);
  }
  return problems;
}

/** What a name (and description) breaks among `limits`; empty when the target can take it. Pure. */
export function snapshotTextProblems(limits: Capabilities['limits'], text: { name: string; description: string }): string[] {
  const problems: string[] = [];
  if (text.name.trim() === '') problems.push('the snapshot name is empty');
  const bytes = Buffer.byteLength(text.name, 'utf8');
  if (bytes > limits.maxNameBytes) problems.push(`the snapshot name is ${bytes} bytes; the target allows ${limits.maxNameBytes}`);
  for (const rule of limits.nameRules) {
    const value = rule.field === 'description' ? text.description : text.name;
    const matches = compiledRule(rule).test(value);
    if (matches === (rule.effect === 'forbid')) problems.push(rule.reason);
  }
  return problems;
}

const compiled = new Map<string, RegExp>();
function compiledRule(rule: TextRule): RegExp {
  let re = compiled.get(rule.pattern);
  if (!re) {
    re = new RegExp(rule.pattern, 'u');
    compiled.set(rule.pattern, re);
  }
  return re;
}

export const PROVIDER_ERROR_KINDS = [
  'not_found',
  'conflict',
  'unsupported',
  'throttled',
  'transient',
  'auth',
  'quota',
  'invalid',
  'internal',
] as const;
export type ProviderErrorKind = (typeof PROVIDER_ERROR_KINDS)[number];

/**
 * What a retry may do. `transient`: safe to try again. `final`: trying again gives the same answer.
 * `uncertain`: the request may have been applied (a timeout after sending); only the engine, which
 * knows the marker, may look on the hypervisor and decide.
 */
export type RetryClass = 'transient' | 'final' | 'uncertain';

export interface SnapvisorErrorOptions {
  /** Default: `final` — trying again gives the same answer. */
  retry?: RetryClass;
  /** For `throttled`: how long to wait before trying again. */
  retryAfterMs?: number;
  /** Extra fields safe to show in the problem body (never secrets). */
  extra?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The one error base. Its `kind` decides the HTTP status and whether a job is retried; `code` is a
 * stable machine-readable name, part of the public API (SNAPVISOR_ERR_VM_NOT_FOUND). Its message is
 * shown to API clients: keep secrets and raw stderr out.
 */
export class SnapvisorError extends Error {
  override readonly name: string = 'SnapvisorError';
  readonly kind: ProviderErrorKind;
  readonly code: string;
  readonly retry: RetryClass;
  readonly retryAfterMs: number | undefined;
  readonly extra: Record<string, unknown>;

  constructor(kind: ProviderErrorKind, code: string, message: string, options: SnapvisorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.code = code;
    this.retry = options.retry ?? 'final';
    this.retryAfterMs = options.retryAfterMs;
    this.extra = options.extra ?? {};
  }
}

export interface ProviderErrorOptions {
  retry?: RetryClass;
  /** For `throttled`: how long the hypervisor asked us to wait. */
  retryAfterMs?: number;
  cause?: unknown;
  /** Native error code (e.g. VBOX_E_OBJECT_NOT_FOUND); safe to show, never contains secrets. */
  nativeCode?: string;
}

const DEFAULT_RETRY: Record<ProviderErrorKind, RetryClass> = {
  not_found: 'final',
  conflict: 'final',
  unsupported: 'final',
  throttled: 'transient',
  transient: 'transient',
  auth: 'final',
  quota: 'final',
  invalid: 'final',
  internal: 'final',
};

/** What a hypervisor or cloud said: the one error type adapters throw. */
export class ProviderError extends SnapvisorError {
  override readonly name = 'ProviderError';
  readonly provider: string;
  readonly nativeCode: string | undefined;

  constructor(provider: string, kind: ProviderErrorKind, message: string, options: ProviderErrorOptions = {}) {
    super(kind, `SNAPVISOR_ERR_${kind.toUpperCase()}`, `[snapvisor] [${provider}] ${message}`, {
      retry: options.retry ?? DEFAULT_RETRY[kind],
      ...(options.retryAfterMs === undefined ? {} : { retryAfterMs: options.retryAfterMs }),
      extra: { target: provider, ...(options.nativeCode === undefined ? {} : { nativeCode: options.nativeCode }) },
      cause: options.cause,
    });
    this.provider = provider;
    this.nativeCode = options.nativeCode;
  }
}

export function isProviderError(err: unknown): err is ProviderError {
  return err instanceof ProviderError;
}

/** Minimal structured logger (pino satisfies it). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface CallContext {
  signal: AbortSignal;
  /** 0..100; the engine persists it on the job and streams it as an event. */
  progress(percent: number, message?: string): void;
  log: Logger;
  /**
   * True only when no earlier attempt of this job can have reached the hypervisor (its first attempt,
   * never recovered after a crash): createSnapshot may then skip looking for `spec.marker` first —
   * nothing can carry a marker made from a job id that was never sent. Absent or false: look.
   */
  firstAttempt?: boolean;
  /**
   * Present on job calls (absent on the engine's background reads). Records `record` on the job
   * durably — in its row, before the promise resolves — and merges it (by key) into what earlier
   * calls of the job recorded. An adapter checkpoints before a step that a crash must not leave half
   * done (the offline mode's shutdown: see `JobCheckpoint.offline`); when it rejects, do not take the
   * step (the job is no longer this process's).
   */
  checkpoint?(record: JobCheckpoint): Promise<void>;
  /**
   * What earlier attempts of this job recorded through `checkpoint`, handed back on every retry,
   * including the one after a crash recovery; absent when nothing was recorded.
   */
  resume?: JobCheckpoint;
}

/**
 * What an attempt of a job records before a step that a crash must not leave half done; a later
 * attempt finishes the promise from it. JSON-serialisable; every field optional (one per step).
 */
export interface JobCheckpoint {
  /**
   * Offline create: the power state the VM had when it was asked to shut down (recorded before the
   * request). A later attempt that finds it makes sure the snapshot exists and the VM is started
   * again before the job succeeds (providers/shared/offline.ts); a VM that was off is never shut
   * down, so nothing is recorded for it and it stays off.
   */
  offline?: { powerBefore: PowerState };
}

export interface TargetHealth {
  reachable: boolean;
  /** Hypervisor or API version as reported by the target. */
  version?: string;
  authOk?: boolean;
  message?: string;
  /**
   * The target's own clock when it answered (ISO 8601), where the protocol tells it (an HTTP Date
   * header, a server time call); absent when it cannot be read. `snapvisor doctor` reports skew from it.
   */
  time?: string;
}

export interface DiskInfo {
  /** Controller/slot or device name, e.g. "SATA-0-0" or "vda". */
  slot: string;
  /**
   * The medium the VM writes to now (the leaf of its chain): a file path, or a cloud disk's resource
   * id (Azure). Also the disk's identity for `per: 'disk'` create budgets.
   */
  path?: string;
  /** Number of images in the chain above the base, when the provider can tell. */
  chainDepth?: number;
}

/** The VM as a revert left it. */
export interface RevertOutcome {
  powerState: PowerState;
  rawPowerState: string;
}

export interface VmInfo {
  /** Stable provider id: VirtualBox/vSphere UUID, libvirt domain UUID, ARM resource id. */
  providerVmId: string;
  name: string;
  powerState: PowerState;
  rawPowerState: string;
  disks?: DiskInfo[];
  /** The hypervisor reports that disk chains need consolidation (vSphere `consolidationNeeded`). */
  consolidationNeeded?: boolean;
  /**
   * The VM's whole snapshot list, when the provider reads it in the same pass as the inventory
   * (vSphere: one PropertyCollector call for every VM's tree). The engine's sync then uses it instead
   * of calling listSnapshots once per VM. Absent = not read; [] = no snapshots.
   */
  snapshots?: ProviderSnapshot[];
}

export interface ProviderSnapshot {
  /** The provider's own id for the snapshot (UUID, ARM id, libvirt name). Opaque to the engine. */
  providerRef: string;
  name: string;
  /** The user's description, with any Snapvisor marker removed. */
  description: string;
  /** `providerRef` of the parent snapshot; null for a root. */
  parentRef: string | null;
  /** The VM's current state descends from this snapshot. */
  current: boolean;
  /** ISO 8601, when the hypervisor reports it. */
  createdAt: string | null;
  /** The mode, when the hypervisor records enough to tell (e.g. memory state present). */
  mode: SnapshotMode | null;
  /** `snapvisor:<jobId>` when Snapvisor made it; null for snapshots made outside Snapvisor. */
  marker: string | null;
  /**
   * Usable now (restorable, complete). False while a cloud still copies it (Azure CompletionPercent
   * < 100); only providers declaring `capabilities.readiness` answer false.
   */
  ready: boolean;
  /** 0..100 while not ready, when the provider can tell. */
  progress?: number;
  /**
   * What the provider knows beyond the common fields, shown as-is in the API (`details`): Azure's
   * disk snapshots of a set with each disk's incremental lineage, a partial set's missing disks.
   * JSON-serialisable, never a secret.
   */
  details?: Record<string, unknown>;
}

export interface CreateSpec {
  name: string;
  description: string;
  mode: SnapshotMode;
  /** `snapvisor:<jobId>`: stored with the snapshot so a retry or crash recovery can find it. */
  marker: string;
  /** Values of declared `capabilities.createOptions` the request gave (checked by the engine). */
  options?: Record<string, CreateOptionValue>;
}

export interface DeleteOptions {
  /** Delete the whole subtree below the snapshot too (needs `capabilities.deleteChildren`). */
  children: boolean;
}

/** Something on the target no VM or snapshot uses any more (a cloud snapshot of a deleted disk, an overlay in no chain). */
export interface OrphanArtefact {
  /** The provider's own id or path of it; stable between listings. */
  ref: string;
  /** What it is, e.g. `disk-snapshot`, `overlay-file`. */
  kind: string;
  /** Why it is an orphan, for people. */
  reason: string;
  /** Size, when the provider can tell. */
  sizeBytes?: number;
}

export interface ConsolidationReport {
  merged: number;
  message: string;
  /**
   * Disk files beside the VM's that no chain uses any more (Hyper-V .avhdx left by a failed merge,
   * cloud snapshots of deleted disks): reported, also in `message`, never deleted by consolidate.
   */
  orphans?: string[];
}

/**
 * Version 1 of the provider interface. A breaking change becomes SnapshotProviderV2 beside it.
 *
 * The required core is small: check, list VMs, list / get / create / delete snapshots. Everything
 * else is optional and present exactly when `capabilities()` says so (the registry refuses a provider
 * whose methods and capabilities disagree); the engine answers 422 from the capabilities, so no
 * adapter carries a method whose only body throws `unsupported`.
 */
export interface SnapshotProviderV1 {
  readonly kind: ProviderKind;
  /** The configured target name; used in errors and logs. */
  readonly target: string;
  capabilities(): Capabilities;
  check(ctx: CallContext): Promise<TargetHealth>;
  listVms(ctx: CallContext): Promise<VmInfo[]>;
  /** Flat list; tree shape is given by `parentRef`, exactly one `current` when any exist. */
  listSnapshots(providerVmId: string, ctx: CallContext): Promise<ProviderSnapshot[]>;
  /** One snapshot, with its readiness; `not_found` when the VM or the snapshot does not exist. */
  getSnapshot(providerVmId: string, providerRef: string, ctx: CallContext): Promise<ProviderSnapshot>;
  /** Idempotent by `spec.marker`. May answer `ready: false` only with `capabilities().readiness`. */
  createSnapshot(providerVmId: string, spec: CreateSpec, ctx: CallContext): Promise<ProviderSnapshot>;
  /** Already gone is success. */
  deleteSnapshot(providerVmId: string, providerRef: string, options: DeleteOptions, ctx: CallContext): Promise<void>;
  /**
   * Present exactly when `capabilities().revert`. Answers the VM's power state afterwards (a revert
   * changes it), so the engine updates that one VM without an inventory pass.
   */
  revertSnapshot?(providerVmId: string, providerRef: string, ctx: CallContext): Promise<RevertOutcome>;
  /** Present exactly when `capabilities().consolidate`. */
  consolidate?(providerVmId: string, ctx: CallContext): Promise<ConsolidationReport>;
  /**
   * Optional: the hypervisor's own "remove every snapshot" (one operation, merged into the disks).
   * An empty VM is success. Without it the engine deletes the roots with their children.
   */
  deleteAllSnapshots?(providerVmId: string, ctx: CallContext): Promise<void>;
  /** Present exactly when `capabilities().orphans`. Read-only: reports, never deletes. */
  listOrphans?(ctx: CallContext): Promise<OrphanArtefact[]>;
  /** Release connections. */
  close(): Promise<void>;
}

/** Why a provider's methods and declared capabilities disagree; empty when they match. Pure. */
export function capabilityMismatches(provider: SnapshotProvider): string[] {
  const caps = provider.capabilities();
  const problems: string[] = [];
  const pair = (capability: string, declared: boolean, method: string, present: boolean) => {
    if (declared && !present) problems.push(`declares ${capability} but has no ${method}()`);
    if (!declared && present) problems.push(`has ${method}() but does not declare ${capability}`);
  };
  pair('revert', caps.revert, 'revertSnapshot', typeof provider.revertSnapshot === 'function');
  pair('consolidate', caps.consolidate, 'consolidate', typeof provider.consolidate === 'function');
  pair('orphans', caps.orphans === true, 'listOrphans', typeof provider.listOrphans === 'function');
  if (caps.deleteAll && typeof provider.deleteAllSnapshots !== 'function' && !caps.deleteChildren) {
    problems.push('declares deleteAll but has neither deleteAllSnapshots() nor deleteChildren');
  }
  if (!caps.deleteAll && typeof provider.deleteAllSnapshots === 'function') problems.push('has deleteAllSnapshots() but does not declare deleteAll');
  for (const rule of caps.limits.nameRules) {
    try {
      new RegExp(rule.pattern, 'u');
    } catch {
      problems.push(`name rule /${rule.pattern}/ is not a valid regular expression`);
    }
  }
  return problems;
}

export type SnapshotProvider = SnapshotProviderV1;

/** A provider whose optional methods K are known to be present: an adapter's own factory type. */
export type ProviderWith<K extends 'revertSnapshot' | 'consolidate' | 'deleteAllSnapshots'> = SnapshotProvider & Required<Pick<SnapshotProvider, K>>;

export interface ProviderDeps {
  log: Logger;
}

/** Adapters export a factory, not a class: options are validated eagerly inside it. */
export type ProviderFactory<Options> = (target: string, options: Options, deps: ProviderDeps) => SnapshotProvider;

export const MARKER_PREFIX = 'snapvisor:';

export function markerForJob(jobId: string): string {
  return `${MARKER_PREFIX}${jobId}`;
}

export function jobIdFromMarker(marker: string | null): string | null {
  return marker !== null && marker.startsWith(MARKER_PREFIX) ? marker.slice(MARKER_PREFIX.length) : null;
}
