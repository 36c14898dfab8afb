/**
 * Pure parsing of what node-soap makes of vim25 answers (shapes in reference/vmware.md):
 * - a ManagedObjectReference is `{attributes: {type}, $value}`;
 * - `DynamicProperty.val` is xsd:anyType: primitives stay strings with an xsi type attribute
 *   (`xsd:boolean`, `xsd:int`, an enum such as `VirtualMachinePowerState`), spelled `xsi:type`
 *   by vCenter and `XMLSchema-instance:type` by vcsim;
 * - an element that may repeat is an array only when the schema says so, and absent when empty;
 * - unset properties are simply missing from propSet.
 * Snapshot trees are flattened here into the contract's ProviderSnapshot.
 */
import type { PowerState, ProviderSnapshot, SnapshotMode } from '../contract.ts';
import { splitMarker } from '../shared/description-marker.ts';
import { xsiTypeOf } from './faults.ts';

export interface MoRef {
  type: string;
  value: string;
}

/** The shape node-soap serialises as `<x type="T">value</x>` (a plain object would go out wrong, silently). */
export interface SoapMoRef {
  attributes: { type: string };
  $value: string;
}

export function toSoap(ref: MoRef): SoapMoRef {
  return { attributes: { type: ref.type }, $value: ref.value };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A parsed MoRef, or null when `node` is not one. */
export function moRefOf(node: unknown): MoRef | null {
  if (!isRecord(node) || !isRecord(node.attributes)) return null;
  const type = node.attributes.type;
  const value = node.$value;
  if (typeof type !== 'string' || (typeof value !== 'string' && typeof value !== 'number')) return null;
  return { type, value: String(value) };
}

export function asArray<T = unknown>(v: unknown): T[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]) as T[];
}

const INTEGER_TYPES = new Set(['int', 'long', 'short', 'byte', 'unsignedInt', 'unsignedLong', 'unsignedShort', 'unsignedByte', 'integer']);

/**
 * Normalises an xsd:anyType value: typed primitives become JS primitives, a typed MoRef becomes a
 * MoRef, an untyped-but-wrapped enum becomes its string; complex values keep their fields (the
 * WSDL's types already gave them numbers, booleans and arrays).
 */
export function normalizeValue(val: unknown): unknown {
  if (!isRecord(val)) return val;
  const type = xsiTypeOf(val);
  const ref = moRefOf(val);
  if (ref && (type === undefined || type === 'ManagedObjectReference')) return ref;
  const keys = Object.keys(val).filter((k) => k !== 'attributes');
  if (keys.length === 1 && keys[0] === '$value') {
    const raw = val.$value;
    const text = raw instanceof Date ? raw.toISOString() : String(raw);
    if (type === 'boolean') return text === 'true' || text === '1';
    if (type !== undefined && INTEGER_TYPES.has(type)) return Number.parseInt(text, 10);
    if (type === 'double' || type === 'float' || type === 'decimal') return Number(text);
    return text;
  }
  if (keys.length === 0) return type === 'string' ? '' : {};
  return val;
}

export interface MissingProp {
  path: string;
  /** The fault's type, e.g. NotAuthenticated, NoPermission, ManagedObjectNotFound. */
  faultType: string;
}

/**
 * ObjectContent → its MoRef, normalised properties by path, and the properties the server could
 * not read (missingSet: vcsim answers a read without a session this way instead of faulting).
 */
export function objectProps(content: unknown): { obj: MoRef | null; props: Map<string, unknown>; missing: MissingProp[] } {
  const props = new Map<string, unknown>();
  const missing: MissingProp[] = [];
  if (!isRecord(content)) return { obj: null, props, missing };
  for (const p of asArray(content.propSet)) {
    if (isRecord(p) && typeof p.name === 'string') props.set(p.name, normalizeValue(p.val));
  }
  for (const m of asArray(content.missingSet)) {
    if (isRecord(m) && typeof m.path === 'string') missing.push({ path: m.path, faultType: (isRecord(m.fault) ? xsiTypeOf(m.fault.fault) : undefined) ?? 'MethodFault' });
  }
  return { obj: moRefOf(content.obj), props, missing };
}

export function powerStateOf(raw: string): PowerState {
  switch (raw) {
    case 'poweredOn':
      return 'running';
    case 'poweredOff':
      return 'off';
    case 'suspended':
      return 'suspended';
    default:
      return 'unknown';
  }
}

function isoOf(v: unknown): string | null {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v === 'string' && v !== '') {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }
  return null;
}

function bool(v: unknown): boolean {
  return v === true || v === 'true' || v === '1';
}

function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (isRecord(v) && (typeof v.$value === 'string' || typeof v.$value === 'number')) return String(v.$value);
  return '';
}

/**
 * What the tree records about how the snapshot was taken: `quiesced` is its own flag; a snapshot
 * whose `state` is poweredOn includes the memory (a disk-only snapshot of a running VM records
 * poweredOff: reverting to it leaves the VM off). Otherwise the tree cannot tell crash from offline.
 */
export function modeOf(state: string, quiesced: boolean): SnapshotMode | null {
  if (quiesced) return 'quiesced';
  if (state === 'poweredOn') return 'memory';
  return null;
}

/**
 * `VirtualMachineSnapshotInfo` → flat list, parents before children. `current` comes from
 * `currentSnapshot`; the marker is split off the description.
 */
export function flattenSnapshots(info: unknown): ProviderSnapshot[] {
  if (!isRecord(info)) return [];
  const current = moRefOf(info.currentSnapshot)?.value ?? null;
  const out: ProviderSnapshot[] = [];
  const visit = (node: unknown, parentRef: string | null) => {
    if (!isRecord(node)) return;
    const ref = moRefOf(node.snapshot);
    if (!ref) return;
    const state = text(node.state);
    const quiesced = bool(node.quiesced);
    const { description, marker } = splitMarker(text(node.description));
    out.push({
      providerRef: ref.value,
      name: text(node.name),
      description,
      parentRef,
      current: ref.value === current,
      ready: true,
      createdAt: isoOf(node.createTime),
      mode: modeOf(state, quiesced),
      marker,
    });
    for (const child of asArray(node.childSnapshotList)) visit(child, ref.value);
  };
  for (const root of asArray(info.rootSnapshotList)) visit(root, null);
  return out;
}

export interface ParsedVm {
  ref: MoRef;
  name: string;
  instanceUuid: string | null;
  rawPowerState: string;
  consolidationNeeded: boolean;
  snapshots: ProviderSnapshot[];
}

/** One VirtualMachine ObjectContent of the inventory pass; null when it is not a VM or vanished mid-read. */
export function parseVm(content: unknown): ParsedVm | null {
  const { obj, props } = objectProps(content);
  if (!obj || obj.type !== 'VirtualMachine') return null;
  const name = props.get('name');
  const power = props.get('runtime.powerState');
  const uuid = props.get('config.instanceUuid');
  return {
    ref: obj,
    name: typeof name === 'string' ? name : obj.value,
    instanceUuid: typeof uuid === 'string' && uuid !== '' ? uuid : null,
    rawPowerState: typeof power === 'string' ? power : 'unknown',
    // Absent means false (unset properties are omitted).
    consolidationNeeded: props.get('runtime.consolidationNeeded') === true,
    snapshots: flattenSnapshots(props.get('snapshot')),
  };
}

export type TaskState = 'queued' | 'running' | 'success' | 'error';

export interface ParsedTaskInfo {
  state: TaskState;
  progress: number | null;
  /** LocalizedMethodFault when state is error. */
  error: unknown;
  result: unknown;
  cancelable: boolean;
}

export function parseTaskInfo(info: unknown): ParsedTaskInfo {
  const rec = isRecord(info) ? info : {};
  const s = text(rec.state);
  const state: TaskState = s === 'queued' || s === 'running' || s === 'success' || s === 'error' ? s : 'running';
  const p = typeof rec.progress === 'number' ? rec.progress : Number.parseInt(text(rec.progress), 10);
  return {
    state,
    progress: Number.isFinite(p) ? Math.max(0, Math.min(100, p)) : null,
    error: rec.error,
    result: normalizeValue(rec.result),
    cancelable: bool(rec.cancelable),
  };
}
