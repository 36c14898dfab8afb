/**
 * Pure parsers for what the Hyper-V adapter reads back from `powershell.exe`/`pwsh` over SSH: the
 * JSON its scripts print with ConvertTo-Json (stdout) and the CLIXML-or-text error stream (stderr).
 * Formats and § numbers: /work/shared/reference/hyperv.md. Real PowerShell 7.6 output and the
 * reference's samples are in test/fixtures/hyperv/ (INDEX.tsv says which command made which file).
 * No I/O.
 *
 * Both PowerShell generations are accepted on purpose: the adapter cannot choose which one the host's
 * OpenSSH DefaultShell runs, and 5.1 and 7 serialise dates, GUIDs and enums differently (§4.1).
 */
import type { PowerState } from '../contract.ts';

/** A parser found output it cannot trust (missing field, wrong type): the adapter maps it to an `internal` ProviderError. */
export class HyperVParseError extends Error {
  override readonly name = 'HyperVParseError';
  constructor(
    message: string,
    /** The Hyper-V property (or input) the parser could not trust, e.g. `State`, `CreationTime`. */
    readonly field?: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Enums (§3). Integers as they appear in ConvertTo-Json output; the names are the .NET member names,
// which is also what `-EnumsAsStrings` (PS7) and `.ToString()` print.

/**
 * Microsoft.HyperV.PowerShell.VMState. Caveat (§3): from ForceReboot (32782) on, the numbers differ
 * between Windows versions (Hibernated and ComponentServicing are missing on Windows Server 2016), so a
 * script that needs those states exactly should project `.State.ToString()`; `toVm` accepts names too.
 */
export const VM_STATE: Readonly<Record<number, string>> = Object.freeze({
  1: 'Other',
  2: 'Running',
  3: 'Off',
  4: 'Stopping',
  6: 'Saved',
  9: 'Paused',
  10: 'Starting',
  11: 'Reset',
  32773: 'Saving',
  32776: 'Pausing',
  32777: 'Resuming',
  32779: 'FastSaved',
  32780: 'FastSaving',
  32781: 'ForceShutdown',
  32782: 'ForceReboot',
  32783: 'Hibernated',
  32784: 'ComponentServicing',
  32785: 'RunningCritical',
  32786: 'OffCritical',
  32787: 'StoppingCritical',
  32788: 'SavedCritical',
  32789: 'PausedCritical',
  32790: 'StartingCritical',
  32791: 'ResetCritical',
  32792: 'SavingCritical',
  32793: 'PausingCritical',
  32794: 'ResumingCritical',
  32795: 'FastSavedCritical',
  32796: 'FastSavingCritical',
});

/** Name of a VMState number; a number this table does not know reads `State(<n>)` (kept for rawPowerState). */
export function vmStateName(n: number): string {
  return VM_STATE[n] ?? `State(${n})`;
}

const POWER_BY_STATE_NAME: Readonly<Record<string, PowerState>> = {
  Running: 'running',
  RunningCritical: 'running',
  Off: 'off',
  OffCritical: 'off',
  Paused: 'paused',
  PausedCritical: 'paused',
  // A saved VM holds its memory on disk: the contract's "suspended".
  Saved: 'suspended',
  SavedCritical: 'suspended',
  FastSaved: 'suspended',
  FastSavedCritical: 'suspended',
  Hibernated: 'suspended',
  Stopping: 'transitioning',
  StoppingCritical: 'transitioning',
  Starting: 'transitioning',
  StartingCritical: 'transitioning',
  Reset: 'transitioning',
  ResetCritical: 'transitioning',
  Saving: 'transitioning',
  SavingCritical: 'transitioning',
  Pausing: 'transitioning',
  PausingCritical: 'transitioning',
  Resuming: 'transitioning',
  ResumingCritical: 'transitioning',
  FastSaving: 'transitioning',
  FastSavingCritical: 'transitioning',
  ForceShutdown: 'transitioning',
  ForceReboot: 'transitioning',
  // Other and ComponentServicing say nothing about power: 'unknown' (as does any unlisted number).
};

/** The contract's PowerState for a VMState number. */
export function powerStateOf(state: number): PowerState {
  const name = VM_STATE[state];
  return (name !== undefined ? POWER_BY_STATE_NAME[name] : undefined) ?? 'unknown';
}

/** Microsoft.HyperV.PowerShell.CheckpointType (Set-VM -CheckpointType, §2.7). */
export const CHECKPOINT_TYPE: Readonly<Record<number, string>> = Object.freeze({
  2: 'Disabled',
  3: 'Production',
  4: 'ProductionOnly',
  5: 'Standard',
});

export type CheckpointTypeName = 'Disabled' | 'Production' | 'ProductionOnly' | 'Standard';

/**
 * Microsoft.HyperV.PowerShell.SnapshotType. There is no "Production" member: production and standard
 * checkpoints both report Standard (0); Recovery (1) is what backup software leaves behind (§2.2).
 */
export const SNAPSHOT_TYPE: Readonly<Record<number, string>> = Object.freeze({
  0: 'Standard',
  1: 'Recovery',
  2: 'Planned',
  5: 'Missing',
  6: 'Replica',
  7: 'AppConsistentReplica',
  8: 'SyncedReplica',
});

/** Microsoft.Vhd.PowerShell.VhdType (§2.9). */
export const VHD_TYPE: Readonly<Record<number, string>> = Object.freeze({
  0: 'Unknown',
  2: 'Fixed',
  3: 'Dynamic',
  4: 'Differencing',
});

/** Microsoft.HyperV.PowerShell.ControllerType (§2.9). */
export const CONTROLLER_TYPE: Readonly<Record<number, string>> = Object.freeze({
  0: 'IDE',
  1: 'SCSI',
  2: 'PMEM',
});

/**
 * VMOperationalStatus (§2.5), for reading names (`-EnumsAsStrings`). ApplyingSnapshot is 32769 as in
 * the WMI documentation; the module stub's 23769 quoted in §2.5 is taken for a typo.
 */
export const OPERATIONAL_STATUS: Readonly<Record<number, string>> = Object.freeze({
  2: 'Ok',
  3: 'Degraded',
  5: 'PredictiveFailure',
  11: 'InService',
  15: 'Dormant',
  16: 'SupportingEntityInError',
  32768: 'CreatingSnapshot',
  32769: 'ApplyingSnapshot',
  32770: 'DeletingSnapshot',
  32771: 'WaitingToStart',
  32772: 'MergingDisks',
  32773: 'ExportingVirtualMachine',
  32774: 'MigratingVirtualMachine',
  32776: 'BackingUpVirtualMachine',
  32777: 'ModifyingUpVirtualMachine',
  32778: 'StorageMigrationPhaseOne',
  32779: 'StorageMigrationPhaseTwo',
  32780: 'MigratingPlannedVm',
  32781: 'CheckingCompatibility',
  32782: 'ApplicationCriticalState',
  32783: 'CommunicationTimedOut',
  32784: 'CommunicationFailed',
  32785: 'NoIommu',
  32786: 'NoIovSupportInNic',
  32787: 'SwitchNotInIovMode',
  32788: 'IovBlockedByPolicy',
  32789: 'IovNoAvailResources',
  32790: 'IovGuestDriversNeeded',
  32795: 'CriticalIoError',
});

/** "Virtual hard disks from previously deleted snapshots are being merged" (§2.5). */
export const OPERATIONAL_STATUS_MERGING = 32772;

// ---------------------------------------------------------------------------------------------
// Value readers shared by the object parsers.

type Json = { [key: string]: unknown };

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function fail(what: string, field: string, v: unknown, expected: string): never {
  throw new HyperVParseError(`Hyper-V ${what}: ${field} is ${show(v)}, expected ${expected}`, field);
}

/**
 * A property by its Hyper-V name. Exact name first; otherwise the one key equal ignoring case (PowerShell
 * names are case-insensitive, so a script's projection may spell `VmId`). Two keys differing only in case
 * (the 5.1 `{"value","Value"}` shape) are ambiguous and read as missing.
 */
function prop(o: Json, name: string): unknown {
  if (Object.hasOwn(o, name)) return o[name];
  const lower = name.toLowerCase();
  const keys = Object.keys(o).filter((k) => k.toLowerCase() === lower);
  return keys.length === 1 ? o[keys[0] as string] : undefined;
}

/**
 * An enum value: an integer, its name (`-EnumsAsStrings`, `.ToString()`), or the 5.1 PSObject wrapper
 * `{"value": 1, "Value": "Unknown"}` (§4.1), whose lower-case `value` is the number. Names are looked up
 * case-insensitively in `table`; a number outside the table is kept (the table may be older than the host).
 */
function enumValue(v: unknown, table: Readonly<Record<number, string>>, what: string, field: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string') {
    const t = v.trim();
    if (/^-?\d+$/.test(t)) return Number(t);
    const lower = t.toLowerCase();
    for (const [n, name] of Object.entries(table)) if (name.toLowerCase() === lower) return Number(n);
  } else if (isObject(v)) {
    const inner = Object.hasOwn(v, 'value') ? v.value : v.Value;
    if (inner !== undefined && !isObject(inner)) return enumValue(inner, table, what, field);
  }
  return fail(what, field, v, `an enum (integer, name or {value: …})`);
}

function str(o: Json, field: string, what: string): string {
  const v = prop(o, field);
  if (typeof v !== 'string') fail(what, field, v, 'a string');
  return v;
}

function optStr(o: Json, field: string, what: string): string | null {
  const v = prop(o, field);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') fail(what, field, v, 'a string or null');
  return v;
}

function int(o: Json, field: string, what: string): number {
  const v = prop(o, field);
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  return fail(what, field, v, 'an integer');
}

const GUID = /^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$/;

/**
 * A GUID as Snapvisor stores it: lower case, no braces. Hyper-V prints GUIDs upper case in messages
 * (§2.4) and `Guid.ToString()` lower case; a bare `[guid]` piped to ConvertTo-Json is `{value, Guid}` (§4.1).
 */
function guidValue(v: unknown, what: string, field: string): string {
  let s = v;
  if (isObject(v)) s = Object.hasOwn(v, 'Guid') ? v.Guid : Object.hasOwn(v, 'value') ? v.value : v.Value;
  const m = typeof s === 'string' ? GUID.exec(s.trim()) : null;
  if (!m) return fail(what, field, v, 'a GUID');
  return (m[1] as string).toLowerCase();
}

function optGuid(o: Json, field: string, what: string): string | null {
  const v = prop(o, field);
  // A checkpoint without parent: null from the §4.2 projection; '' if a script stringified $null.
  if (v === undefined || v === null || v === '') return null;
  return guidValue(v, what, field);
}

function bool(o: Json, field: string, what: string): boolean | null {
  const v = prop(o, field);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'boolean') fail(what, field, v, 'a boolean');
  return v;
}

function record(o: unknown, what: string): Json {
  if (!isObject(o)) return fail(what, 'object', o, 'a JSON object');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Dates and collections (§4.1)

// After JSON.parse `"\/Date(…)\/"` is `/Date(…)/`; the backslashed form is accepted for raw text too.
const MS_DATE = /^\\?\/Date\((-?\d+)(?:[+-]\d{4})?\)\\?\/$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?(Z|[+-]\d{2}:\d{2})?$/;
// System.DateTime's range: 0001-01-01 … 9999-12-31T23:59:59.999 (ms since the epoch).
const MIN_MS = -62135596800000;
const MAX_MS = 253402300799999;

function isoOf(ms: number, v: unknown): string {
  if (!Number.isFinite(ms) || ms < MIN_MS || ms > MAX_MS) throw new HyperVParseError(`Hyper-V date out of range: ${show(v)}`, 'date');
  return new Date(ms).toISOString();
}

/**
 * `\/Date(1714550400000)\/`, `/Date(…)/`, `\/Date(1714550400000+0200)\/` (ms since epoch, UTC; an offset suffix does not change the instant), ISO 8601 with 7-digit fractions and offsets (PS7), a .NET DateTime object wrapper `{value: …, DateTime: …}` → ISO 8601 UTC with milliseconds (`2024-05-01T08:00:00.000Z`); null/'' → null; anything else throws HyperVParseError.
 *
 * An ISO string without offset is read as UTC: PS7 writes a DateTimeKind.Unspecified value that way
 * (DateTime.MinValue is `0001-01-01T00:00:00`, captured), and reading it in the daemon's own time zone
 * would make the result depend on where Snapvisor runs. Fractions beyond milliseconds are truncated,
 * as .NET's own Millisecond does. The wrapper's `DateTime` member is a localised display string
 * ("Sunday 14 July 2024 02:13:02") and is never read.
 */
export function parseWindowsDate(v: unknown): string | null {
  if (v === null || v === '') return null;
  if (isObject(v) && Object.hasOwn(v, 'value') && !isObject(v.value)) return parseWindowsDate(v.value);
  if (typeof v !== 'string') throw new HyperVParseError(`Hyper-V date: ${show(v)} is not a date`, 'date');
  const t = v.trim();
  const ms = MS_DATE.exec(t);
  if (ms) return isoOf(Number(ms[1]), v);
  const iso = ISO_DATE.exec(t);
  if (!iso) throw new HyperVParseError(`Hyper-V date: ${show(v)} is not a date`, 'date');
  const [year, month, day, hour, minute, second] = iso.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = Number(((iso[7] ?? '') + '000').slice(0, 3));
  const d = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999 (DateTime.MinValue is year 1).
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, millis);
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
    throw new HyperVParseError(`Hyper-V date: ${show(v)} is not a valid date`, 'date');
  }
  let offsetMinutes = 0;
  const zone = iso[8];
  if (zone !== undefined && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const oh = Number(zone.slice(1, 3));
    const om = Number(zone.slice(4, 6));
    if (oh > 14 || om > 59) throw new HyperVParseError(`Hyper-V date: ${show(v)} has an invalid offset`, 'date');
    offsetMinutes = sign * (oh * 60 + om);
  }
  return isoOf(d.getTime() - offsetMinutes * 60_000, v);
}

/**
 * ConvertTo-Json of a collection: an array stays, one object (piped, or 5.1) becomes [obj], null/'' → []. Input is the JSON text; a BOM and surrounding whitespace are fine.
 *
 * Piping unrolls a collection, so one element arrives as a bare object and none as no output at all
 * (captured: `@() | ConvertTo-Json` prints nothing; `ConvertTo-Json -InputObject @()` prints `[]`).
 * Any other single value is wrapped too; the element parsers decide whether it is trustworthy.
 */
export function parseJsonArray(text: string): unknown[] {
  const t = text.replace(/^\uFEFF/, '').trim();
  if (t === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(t);
  } catch (error) {
    throw new HyperVParseError(`Hyper-V JSON: cannot parse ConvertTo-Json output: ${(error as Error).message}`, 'json');
  }
  if (value === null) return [];
  return Array.isArray(value) ? value : [value];
}

// ---------------------------------------------------------------------------------------------
// Projected objects (§4.2)

export interface HvVm {
  /** Lower-case GUID. */
  id: string;
  name: string;
  state: number;
  stateName: string;
  powerState: PowerState;
  status: string | null;
  operationalStatus: number[];
  merging: boolean;
  checkpointType: CheckpointTypeName | null;
  parentSnapshotId: string | null;
  notes: string;
}

export interface HvCheckpoint {
  id: string;
  name: string;
  vmId: string;
  vmName: string;
  parentId: string | null;
  snapshotType: number;
  state: number;
  /** State === Saved: the checkpoint holds memory (a standard checkpoint of a running VM, §2.2). */
  hasMemory: boolean;
  createdAt: string | null;
  notes: string;
  automatic: boolean;
}

export interface HvVhd {
  path: string;
  vhdType: number;
  differencing: boolean;
  parentPath: string | null;
}

export interface HvDrive {
  path: string;
  controllerType: number;
  controllerNumber: number;
  controllerLocation: number;
}

/** Accepts the integer, the name (any case), or the 5.1 `{value, Value}` wrapper. */
export function checkpointTypeOf(v: unknown): CheckpointTypeName {
  const n = enumValue(v, CHECKPOINT_TYPE, 'VM', 'CheckpointType');
  const name = CHECKPOINT_TYPE[n];
  if (name === undefined) return fail('VM', 'CheckpointType', v, 'Disabled, Production, ProductionOnly or Standard (2–5)');
  return name as CheckpointTypeName;
}

function operationalStatus(o: Json): number[] {
  const v = prop(o, 'OperationalStatus');
  if (v === undefined || v === null) return [];
  // One element unrolls to a bare value, exactly like a one-element collection does.
  const items = Array.isArray(v) ? v : [v];
  return items.map((item) => enumValue(item, OPERATIONAL_STATUS, 'VM', 'OperationalStatus'));
}

/**
 * One projected object each (property names are Hyper-V's: Name, Id, State, Status, OperationalStatus, CheckpointType, ParentSnapshotId, Notes | Id, Name, VMId, VMName, ParentSnapshotId, SnapshotType, State, CreationTime, Notes, IsAutomaticCheckpoint | Path, VhdType, ParentPath | Path, ControllerType, ControllerNumber, ControllerLocation). Accept both 5.1 and 7 forms (GUIDs upper or lower case, optional braces, or a {Guid: …}/{value: …} wrapper; enums as integers or 5.1 wrappers; OperationalStatus as an array or a single number; Notes null → ''); `merging` = 32772 in OperationalStatus or Status starting with 'Merging disks' (case-insensitive). Throw HyperVParseError naming the field on anything else.
 *
 * Optional properties (absent or null): Status → null, OperationalStatus → [], CheckpointType → null,
 * ParentSnapshotId → null, Notes → ''. Name, Id and State are required.
 */
export function toVm(o: unknown): HvVm {
  const what = 'VM';
  const r = record(o, what);
  const name = str(r, 'Name', what);
  const id = guidValue(prop(r, 'Id'), what, 'Id');
  const state = enumValue(prop(r, 'State'), VM_STATE, what, 'State');
  const status = optStr(r, 'Status', what);
  const ops = operationalStatus(r);
  const ct = prop(r, 'CheckpointType');
  return {
    id,
    name,
    state,
    stateName: vmStateName(state),
    powerState: powerStateOf(state),
    status,
    operationalStatus: ops,
    // Whether Status carries a percentage is unknown (§2.5): match the prefix only.
    merging: ops.includes(OPERATIONAL_STATUS_MERGING) || /^merging disks/i.test(status?.trim() ?? ''),
    checkpointType: ct === undefined || ct === null ? null : checkpointTypeOf(ct),
    parentSnapshotId: optGuid(r, 'ParentSnapshotId', what),
    notes: optStr(r, 'Notes', what) ?? '',
  };
}

/**
 * A Get-VMSnapshot projection. Required: Id, Name, VMId, VMName, SnapshotType, State and CreationTime
 * (present, possibly null). IsAutomaticCheckpoint absent or null (hosts before Windows 10/2016 have
 * no such property) → false.
 */
export function toCheckpoint(o: unknown): HvCheckpoint {
  const what = 'checkpoint';
  const r = record(o, what);
  const id = guidValue(prop(r, 'Id'), what, 'Id');
  const state = enumValue(prop(r, 'State'), VM_STATE, what, 'State');
  const created = prop(r, 'CreationTime');
  let createdAt: string | null;
  try {
    createdAt = parseWindowsDate(created);
  } catch (error) {
    if (!(error instanceof HyperVParseError)) throw error;
    return fail(what, 'CreationTime', created, 'a date (\\/Date(ms)\\/ or ISO 8601) or null');
  }
  return {
    id,
    name: str(r, 'Name', what),
    vmId: guidValue(prop(r, 'VMId'), what, 'VMId'),
    vmName: str(r, 'VMName', what),
    parentId: optGuid(r, 'ParentSnapshotId', what),
    snapshotType: enumValue(prop(r, 'SnapshotType'), SNAPSHOT_TYPE, what, 'SnapshotType'),
    state,
    hasMemory: state === 6,
    createdAt,
    notes: optStr(r, 'Notes', what) ?? '',
    automatic: bool(r, 'IsAutomaticCheckpoint', what) ?? false,
  };
}

/** A Get-VHD projection. ParentPath null or '' → null (Get-VHD prints '' for a disk without parent). */
export function toVhd(o: unknown): HvVhd {
  const what = 'VHD';
  const r = record(o, what);
  const vhdType = enumValue(prop(r, 'VhdType'), VHD_TYPE, what, 'VhdType');
  const parentPath = optStr(r, 'ParentPath', what);
  return { path: str(r, 'Path', what), vhdType, differencing: vhdType === 4, parentPath: parentPath === '' ? null : parentPath };
}

/** A Get-VMHardDiskDrive projection. */
export function toDrive(o: unknown): HvDrive {
  const what = 'drive';
  const r = record(o, what);
  return {
    path: str(r, 'Path', what),
    controllerType: enumValue(prop(r, 'ControllerType'), CONTROLLER_TYPE, what, 'ControllerType'),
    controllerNumber: int(r, 'ControllerNumber', what),
    controllerLocation: int(r, 'ControllerLocation', what),
  };
}

// ---------------------------------------------------------------------------------------------
// stderr (§1.3)

/** stderr of powershell.exe/pwsh: the `#< CLIXML` document(s) of §1.3 (several may follow one another, possibly after plain text) or plain text. */
export interface PowerShellStderr {
  /** The error text, `_xHHHH_` decoded (surrogate pairs too), ANSI escapes removed, wrapped `<S S="Error">` pieces joined, CRLF → LF, trimmed; progress records and non-error streams dropped. Plain (non-CLIXML) stderr is returned trimmed, ANSI removed. */
  text: string;
  /** The first line of the first error message (e.g. `Get-VMCheckpoint : Unable to find a snapshot matching the given criteria.` with the leading `<Cmdlet> : ` prefix removed → `Unable to find …`), for user-facing messages. Empty when there is no error. */
  message: string;
  /** Every `FullyQualifiedErrorId : X` found (5.1's formatted view), in order. */
  fullyQualifiedErrorIds: string[];
  /** Every `CategoryInfo : Category: (…) [Cmdlet], ExceptionType` found: { category, activity, reason }. */
  categories: { category: string; activity: string; reason: string; /** The `(…)` part as printed: `minikube:String`, or `:` when empty. */ target: string }[];
  /** Lines of the WARNING / informational streams, when the stream tags say so (`S="warning"` etc.), else []. */
  warnings: string[];
}

const ESC = String.fromCharCode(0x1b);
const BEL = String.fromCharCode(0x07);
// CSI sequences (colours: PS7 writes `ESC[31;1m` even into CLIXML), OSC sequences (hyperlinks), and
// any other two-character escape.
const ANSI = new RegExp(`${ESC}\\[[0-?]*[ -/]*[@-~]|${ESC}\\][^${BEL}${ESC}]*(?:${BEL}|${ESC}\\\\)?|${ESC}[@-Z\\\\-_]?`, 'g');

function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}

function decodeXml(s: string): string {
  return s.replace(/&(?:#x([0-9a-fA-F]+)|#(\d+)|(lt|gt|amp|quot|apos));/g, (_m, hex: string | undefined, dec: string | undefined, named: string | undefined) => {
    if (hex !== undefined) return String.fromCodePoint(parseInt(hex, 16));
    if (dec !== undefined) return String.fromCodePoint(Number(dec));
    return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[named as 'lt'];
  });
}

/**
 * PowerShell's serializer writes characters XML cannot carry (CR, LF, ESC…) as `_xHHHH_`, one UTF-16
 * code unit each, and a literal `_x…_` in the text with its `_` escaped as `_x005F_`. One left-to-right
 * pass decodes both correctly; a surrogate pair (`_xD83D__xDE00_`) becomes one character because the
 * two code units end up adjacent.
 */
function decodePsEscapes(s: string): string {
  return s.replace(/_x([0-9a-fA-F]{4})_/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

interface StreamItem {
  /** The stream tag as written (`Error`, `warning`, `verbose`, `Info`, `information`, `progress`…). */
  stream: string;
  text: string;
}

/**
 * The top-level children of one `<Objs>` document that carry a stream tag: `<S S="…">text</S>` and
 * `<Obj S="…">` records (an information record's text is its `<ToString>` child).
 *
 * A small hand-written scanner instead of fast-xml-parser: the module stays free of runtime imports
 * (the adapter's other half is written in parallel against this file alone), the grammar PowerShell
 * writes here is tiny (elements, double-quoted attributes, text, no CDATA/comments/DTD), and a
 * scanner can read a truncated document (stderr cut off by a dropped connection) up to where it
 * stops instead of failing as a whole.
 */
function scanClixml(doc: string): StreamItem[] {
  const items: StreamItem[] = [];
  const tag = /<(\/?)([A-Za-z_][\w.-]*)((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(\/?)>/g;
  const depthOf: string[] = []; // open element names; depth 1 = direct child of <Objs>
  let current: { stream: string; kind: 'S' | 'Obj'; textStart: number; text: string } | undefined;
  for (let m = tag.exec(doc); m; m = tag.exec(doc)) {
    const [whole, closing, name, attrs, selfClosing] = m as unknown as [string, string, string, string, string];
    if (closing) {
      // Pop to the matching open element (tolerates stray closers).
      const at = depthOf.lastIndexOf(name);
      if (at < 0) continue;
      depthOf.length = at;
      if (current && depthOf.length === 1 && name === current.kind) {
        if (current.kind === 'S') current.text = doc.slice(current.textStart, m.index);
        items.push({ stream: current.stream, text: decodePsEscapes(decodeXml(current.text)) });
        current = undefined;
      } else if (current?.kind === 'Obj' && depthOf.length === 2 && name === 'ToString' && current.text === '') {
        current.text = doc.slice(current.textStart, m.index);
      }
      continue;
    }
    const depth = depthOf.length; // depth this element sits at
    if (!selfClosing) depthOf.push(name);
    if (depth === 1 && (name === 'S' || name === 'Obj')) {
      const s = /\sS\s*=\s*"([^"]*)"/.exec(attrs);
      if (s && !selfClosing) current = { stream: decodeXml(s[1] as string), kind: name, textStart: m.index + whole.length, text: '' };
      else if (s) items.push({ stream: decodeXml(s[1] as string), text: '' });
    } else if (current?.kind === 'Obj' && depth === 2 && name === 'ToString' && current.text === '') {
      current.textStart = m.index + whole.length;
    }
  }
  return items;
}

type Segment = { kind: 'plain'; text: string } | { kind: 'clixml'; items: StreamItem[] };

const MARKER = /#< CLIXML\r?\n?/g;

function segments(stderr: string): Segment[] {
  const out: Segment[] = [];
  const input = stderr.replace(/^\uFEFF/, '');
  let pos = 0;
  MARKER.lastIndex = 0;
  for (let m = MARKER.exec(input); m; m = MARKER.exec(input)) {
    if (m.index < pos) continue;
    if (m.index > pos) out.push({ kind: 'plain', text: input.slice(pos, m.index) });
    const start = m.index + m[0].length;
    const next = input.indexOf('#< CLIXML', start);
    const close = input.indexOf('</Objs>', start);
    // The document ends at </Objs>; without one (truncated) at the next marker or the end.
    const end = close >= 0 && (next < 0 || close < next) ? close + '</Objs>'.length : next >= 0 ? next : input.length;
    out.push({ kind: 'clixml', items: scanClixml(input.slice(start, end)) });
    pos = end;
    MARKER.lastIndex = end;
  }
  if (pos < input.length) out.push({ kind: 'plain', text: input.slice(pos) });
  return out;
}

function normaliseNewlines(s: string): string {
  return s.replace(/\r\n?/g, '\n');
}

/**
 * Joins the Error strings of one document. Each formatted line is one `<S>` ending in a newline; a
 * piece without a newline continues in the next `<S>`, and Windows PowerShell 5.1 wraps a long line by
 * ending a piece with a space and a newline ("… Check _x000D__x000A_" then "the spelling …", §1.3):
 * that newline is removed too. A whitespace-only piece (5.1's closing " \r\n") is not a wrap.
 */
function joinErrorPieces(pieces: string[]): string {
  let out = '';
  for (let i = 0; i < pieces.length; i++) {
    let piece = normaliseNewlines(stripAnsi(pieces[i] as string));
    if (i < pieces.length - 1 && / \n$/.test(piece) && piece.trim() !== '') piece = piece.slice(0, -1);
    out += piece;
  }
  return out;
}

const PS51_PREFIX = /^(?:[\w.-]+\\)?[\w.-]+ : /;
const PS7_PREFIX = /^(?:[\w.-]+\\)?(?:[A-Za-z]+-[A-Za-z0-9]+|[\w.]*Exception): /;

/**
 * First line of an error's text, without its `<Command> : ` (5.1 NormalView) or `<Command>: ` (PS7
 * ConciseView) prefix. PS7's ConciseView of an error raised in a script file puts the position first
 * (`Get-Item: C:\s.ps1:2`, `Line |`, the source, the `~~~` marker) and the message on the following
 * `     | ` lines: then the first of those is the message.
 */
function firstMessageLine(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() !== '');
  if (start < 0) return '';
  if (/^\s*Line \|\s*$/.test(lines[start + 1] ?? '')) {
    for (const l of lines.slice(start + 2)) {
      const bar = /^\s*\|\s?(.*)$/.exec(l);
      if (bar && !/^\s*~*\s*$/.test(bar[1] as string)) return (bar[1] as string).trim();
    }
  }
  const first = (lines[start] as string).trim();
  return first.replace(PS51_PREFIX, '').replace(PS7_PREFIX, '').trim();
}

const FQID = /^\s*\+?\s*FullyQualifiedErrorId\s*:\s*(.+?)\s*$/;
const CATEGORY = /^\s*\+?\s*CategoryInfo\s*:\s*([A-Za-z]+)\s*:\s*\((.*)\)\s*\[(.*?)\]\s*,\s*(.+?)\s*$/;

const WARNING_STREAMS = new Set(['warning', 'info', 'information']);

/**
 * Reads stderr of powershell.exe/pwsh. Never throws: it runs on error paths, where a half-readable
 * stderr is still better than none.
 *
 * `message` comes from the first CLIXML document with an error, else from the plain text. `text` keeps
 * every error string and every plain-text part (ssh and cmd.exe write plain text around the CLIXML),
 * in order. Information records (Write-Information, and Write-Host, which pwsh 7.6 also prints to
 * stdout) count as informational; verbose and debug streams are dropped.
 */
export function parsePowerShellStderr(stderr: string): PowerShellStderr {
  const parts: string[] = [];
  const warnings: string[] = [];
  let clixmlError: string | undefined;
  let plainError: string | undefined;
  for (const seg of segments(stderr)) {
    if (seg.kind === 'plain') {
      const t = normaliseNewlines(stripAnsi(seg.text)).trim();
      if (t !== '') {
        parts.push(t);
        plainError ??= t;
      }
      continue;
    }
    const errors = seg.items.filter((i) => i.stream.toLowerCase() === 'error').map((i) => i.text);
    const t = joinErrorPieces(errors).trim();
    if (t !== '') {
      parts.push(t);
      clixmlError ??= t;
    }
    for (const item of seg.items) {
      if (!WARNING_STREAMS.has(item.stream.toLowerCase())) continue;
      for (const line of normaliseNewlines(stripAnsi(item.text)).split('\n')) if (line.trim() !== '') warnings.push(line.trimEnd());
    }
  }
  const text = parts.join('\n');
  const fullyQualifiedErrorIds: string[] = [];
  const categories: PowerShellStderr['categories'] = [];
  for (const line of text.split('\n')) {
    const f = FQID.exec(line);
    if (f) fullyQualifiedErrorIds.push(f[1] as string);
    const c = CATEGORY.exec(line);
    if (c) categories.push({ category: c[1] as string, target: c[2] as string, activity: c[3] as string, reason: c[4] as string });
  }
  const source = clixmlError ?? plainError;
  return { text, message: source === undefined ? '' : firstMessageLine(source), fullyQualifiedErrorIds, categories, warnings };
}
