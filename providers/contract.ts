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

export type ModeSupport = { supported: true } | { supported: false; reason: string };

export interface Capabilities {
  /** One entry per mode: supported, or not with the reason shown to the user (HTTP 422). */
  modes: Record<SnapshotMode, ModeSupport>;
  /** Can revert the VM to a snapshot. */
  revert: boolean;
  /** Can delete a snapshot together with its whole subtree in one request. */
  deleteChildren: boolean;
  /**
   * Can remove every snapshot of a VM: natively (`deleteAllSnapshots`, e.g. vSphere's
   * RemoveAllSnapshots_Task) or, without it, by the engine deleting each root with its children.
   */
  deleteAll: boolean;
  /** Implements `consolidate`. */
  consolidate: boolean;
  /** The hypervisor allows two snapshots of one VM with the same name. */
  duplicateNames: boolean;
  /** Snapshots carry a free-text description. */
  descriptions: boolean;
  limits: {
    /** Longest snapshot name, in UTF-8 bytes. */
    maxNameBytes: number;
    /** Most snapshots per VM the hypervisor allows, when it has a limit. */
    maxSnapshotsPerVm?: number;
  };
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

/** The one error type adapters throw. Its message is shown to API clients: keep secrets and raw stderr out. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  readonly kind: ProviderErrorKind;
  readonly provider: string;
  readonly retry: RetryClass;
  readonly retryAfterMs: number | undefined;
  readonly nativeCode: string | undefined;

  constructor(provider: string, kind: ProviderErrorKind, message: string, options: ProviderErrorOptions = {}) {
    super(`[snapvisor] [${provider}] ${message}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.provider = provider;
    this.kind = kind;
    this.retry = options.retry ?? DEFAULT_RETRY[kind];
    this.retryAfterMs = options.retryAfterMs;
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
}

export interface TargetHealth {
  reachable: boolean;
  /** Hypervisor or API version as reported by the target. */
  version?: string;
  authOk?: boolean;
  message?: string;
}

export interface DiskInfo {
  /** Controller/slot or device name, e.g. "SATA-0-0" or "vda". */
  slot: string;
  /** The medium the VM writes to now (the leaf of its chain). */
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
}

export interface CreateSpec {
  name: string;
  description: string;
  mode: SnapshotMode;
  /** `snapvisor:<jobId>`: stored with the snapshot so a retry or crash recovery can find it. */
  marker: string;
}

export interface DeleteOptions {
  /** Delete the whole subtree below the snapshot too (needs `capabilities.deleteChildren`). */
  children: boolean;
}

export interface ConsolidationReport {
  merged: number;
  message: string;
}

/** Version 1 of the provider interface. A breaking change becomes SnapshotProviderV2 beside it. */
export interface SnapshotProviderV1 {
  readonly kind: ProviderKind;
  /** The configured target name; used in errors and logs. */
  readonly target: string;
  capabilities(): Capabilities;
  check(ctx: CallContext): Promise<TargetHealth>;
  listVms(ctx: CallContext): Promise<VmInfo[]>;
  /** Flat list; tree shape is given by `parentRef`, exactly one `current` when any exist. */
  listSnapshots(providerVmId: string, ctx: CallContext): Promise<ProviderSnapshot[]>;
  /** Idempotent by `spec.marker`. */
  createSnapshot(providerVmId: string, spec: CreateSpec, ctx: CallContext): Promise<ProviderSnapshot>;
  /**
   * Only when `capabilities().revert`; otherwise throws `unsupported`. Answers the VM's power state
   * afterwards (a revert changes it), so the engine updates that one VM without an inventory pass.
   */
  revertSnapshot(providerVmId: string, providerRef: string, ctx: CallContext): Promise<RevertOutcome>;
  /** Already gone is success. */
  deleteSnapshot(providerVmId: string, providerRef: string, options: DeleteOptions, ctx: CallContext): Promise<void>;
  /** Only when `capabilities().consolidate`; otherwise throws `unsupported`. */
  consolidate(providerVmId: string, ctx: CallContext): Promise<ConsolidationReport>;
  /**
   * Optional: the hypervisor's own "remove every snapshot" (one operation, merged into the disks).
   * An empty VM is success. Without it the engine deletes the roots with their children.
   */
  deleteAllSnapshots?(providerVmId: string, ctx: CallContext): Promise<void>;
  /** Release connections. */
  close(): Promise<void>;
}

export type SnapshotProvider = SnapshotProviderV1;

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
