/**
 * Pure parsers for VBoxManage output (formats: /work/shared/reference/virtualbox.md, § numbers below).
 * No I/O. Every function accepts Windows CRLF output too (§1.1).
 */
import type { PowerState } from '../contract.ts';

const NO_SNAPSHOTS = 'This machine does not have any snapshots';
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

function lines(text: string): string[] {
  const normalised = text.replace(/\r\n?/g, '\n');
  const all = normalised.split('\n');
  if (all.length > 0 && all[all.length - 1] === '') all.pop();
  return all;
}

// ---------------------------------------------------------------------------------------------
// snapshot list --machinereadable (§4.1)

export interface ParsedSnapshot {
  uuid: string;
  name: string;
  /** Raw description as VirtualBox stores it ('' when none). */
  description: string;
  parentUuid: string | null;
  current: boolean;
  /** Path prefix of the node: '' for the root, '-1-2' for the 2nd child of the 1st child. */
  path: string;
}

const SNAPSHOT_KEY = /^(SnapshotName|SnapshotUUID|SnapshotDescription)((?:-\d+)*)="/;
const CURRENT_KEY = /^(CurrentSnapshotName|CurrentSnapshotUUID|CurrentSnapshotNode)="/;

/**
 * Parses `snapshot <vm> list --machinereadable` (or the snapshot lines of `showvminfo
 * --machinereadable`). Values are printed raw — no escaping, descriptions may span lines — so a line
 * that does not start with a snapshot key continues the previous value, and a value's closing quote
 * is the last character of its last line. Meant for `snapshot list` output, where every key is a
 * snapshot key (in `showvminfo` output other keys follow and would read as continuations).
 */
export function parseSnapshotList(stdout: string): ParsedSnapshot[] {
  if (stdout.replace(/\r/g, '').trim() === NO_SNAPSHOTS) return [];
  type Entry = { key: string; path: string; value: string };
  const entries: Entry[] = [];
  let open: Entry | undefined;
  for (const line of lines(stdout)) {
    const snap = SNAPSHOT_KEY.exec(line);
    const cur = snap ? null : CURRENT_KEY.exec(line);
    if (snap) {
      open = { key: snap[1] as string, path: snap[2] as string, value: line.slice(snap[0].length) };
      entries.push(open);
    } else if (cur) {
      open = { key: cur[1] as string, path: '', value: line.slice(cur[0].length) };
      entries.push(open);
    } else if (open) {
      open.value += `\n${line}`;
    }
  }
  const byPath = new Map<string, ParsedSnapshot>();
  const order: ParsedSnapshot[] = [];
  let currentUuid: string | undefined;
  let currentNode: string | undefined;
  for (const e of entries) {
    const value = e.value.endsWith('"') ? e.value.slice(0, -1) : e.value;
    if (e.key === 'CurrentSnapshotUUID') {
      currentUuid = value;
      continue;
    }
    if (e.key === 'CurrentSnapshotNode') {
      currentNode = value;
      continue;
    }
    if (e.key === 'CurrentSnapshotName') continue;
    let node = byPath.get(e.path);
    if (!node) {
      node = { uuid: '', name: '', description: '', parentUuid: null, current: false, path: e.path };
      byPath.set(e.path, node);
      order.push(node);
    }
    if (e.key === 'SnapshotName') node.name = value;
    else if (e.key === 'SnapshotUUID') node.uuid = value;
    else node.description = value;
  }
  for (const node of order) {
    if (node.path !== '') {
      const parentPath = node.path.slice(0, node.path.lastIndexOf('-'));
      node.parentUuid = byPath.get(parentPath)?.uuid ?? null;
    }
    node.current = currentUuid !== undefined ? node.uuid === currentUuid : currentNode === `SnapshotName${node.path}`;
  }
  return order.filter((n) => n.uuid !== '');
}

// ---------------------------------------------------------------------------------------------
// showvminfo --machinereadable (§5)

export interface ParsedVmInfo {
  name: string;
  uuid: string;
  /** Raw VMState token, e.g. 'running', 'aborted-saved'. */
  vmState: string;
  /** ISO 8601 with Z, from VMStateChangeTime (which VirtualBox prints without the Z, §5.4). */
  vmStateChangeTime: string | null;
  /** Attached media by slot ("SATA-0-0" → path); empty slots ("none", "emptydrive") left out. */
  storage: Record<string, string>;
  /** The first occurrence of every key=value line, values unquoted and unescaped. */
  values: Record<string, string>;
}

/** §5.1 outputMachineReadableString escaping: `\\` → `\`, `\"` → `"`; other backslashes kept (raw 6.x paths). */
function unescapeValue(v: string): string {
  return v.replace(/\\([\\"])/g, '$1');
}

function endsWithUnescapedQuote(s: string): boolean {
  if (!s.endsWith('"')) return false;
  let backslashes = 0;
  for (let i = s.length - 2; i >= 0 && s[i] === '\\'; i--) backslashes++;
  return backslashes % 2 === 0;
}

/**
 * Generic machine-readable reader: `key=value`, `"quoted key"=value`, quoted values that may span
 * lines; lines without `=` (`Encryption:     disabled`, ` rec_screen0`) are skipped. The first
 * occurrence of a key wins: the keys Snapvisor needs come before any free-text description.
 */
export function parseMachineReadable(stdout: string): Record<string, string> {
  const values: Record<string, string> = {};
  const all = lines(stdout);
  for (let i = 0; i < all.length; i++) {
    const line = all[i] as string;
    let key: string;
    let rest: string;
    if (line.startsWith('"')) {
      const m = /^"([^"]*)"=(.*)$/.exec(line);
      if (!m) continue;
      key = m[1] as string;
      rest = m[2] as string;
    } else {
      const eq = line.indexOf('=');
      if (eq <= 0 || /^\s/.test(line)) continue;
      key = line.slice(0, eq);
      rest = line.slice(eq + 1);
    }
    let value: string;
    if (rest.startsWith('"')) {
      let body = rest.slice(1);
      while (!endsWithUnescapedQuote(body) && i + 1 < all.length) {
        i++;
        body += `\n${all[i] as string}`;
      }
      value = unescapeValue(body.endsWith('"') ? body.slice(0, -1) : body);
    } else {
      value = rest;
    }
    if (!(key in values)) values[key] = value;
  }
  return values;
}

const STORAGE_SLOT = /^[A-Za-z][A-Za-z0-9 ]*-\d+-\d+$/;

export function parseVmInfo(stdout: string): ParsedVmInfo {
  const values = parseMachineReadable(stdout);
  const storage: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (STORAGE_SLOT.test(k) && !/-(ImageUUID|tempeject|IsEjected|hot-pluggable|nonrotational|discard)-/.test(k) && v !== 'none' && v !== 'emptydrive') {
      storage[k] = v;
    }
  }
  const changed = values.VMStateChangeTime;
  return {
    name: values.name ?? '',
    uuid: values.UUID ?? '',
    vmState: values.VMState ?? 'unknown',
    vmStateChangeTime: changed ? vboxTimeToIso(changed) : null,
    storage,
    values,
  };
}

/** `2023-02-06T02:18:47.191000000` (UTC, no Z) → `2023-02-06T02:18:47.191Z`. */
export function vboxTimeToIso(t: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z?$/.exec(t.trim());
  if (!m) return null;
  const ms = (m[2] ?? '').padEnd(3, '0').slice(0, 3);
  return `${m[1]}.${ms}Z`;
}

/** §5.3 VMState token → contract PowerState. */
export function powerStateOf(token: string): PowerState {
  switch (token) {
    case 'running':
      return 'running';
    case 'paused':
      return 'paused';
    case 'saved':
      return 'suspended';
    case 'poweroff':
    case 'aborted':
    case 'aborted-saved':
    case 'teleported':
      return 'off';
    case 'gurumeditation':
    case 'unknown':
      return 'unknown';
    default:
      return TRANSIENT_STATES.has(token) ? 'transitioning' : 'unknown';
  }
}

const TRANSIENT_STATES = new Set([
  'teleporting', 'teleportingpausedvm', 'teleportingin', 'livesnapshotting', 'onlinesnapshotting', 'snapshotting',
  'starting', 'stopping', 'saving', 'restoring', 'restoringsnapshot', 'deletingsnapshot', 'deletingsnapshotlive',
  'deletingsnapshotlivepaused', 'settingup', 'faulttolerantsyncing',
]);

// ---------------------------------------------------------------------------------------------
// list vms (§6)

export interface ParsedVmRef {
  name: string;
  uuid: string;
}

export function parseListVms(stdout: string): ParsedVmRef[] {
  const out: ParsedVmRef[] = [];
  const re = new RegExp(`^"(.*)" \\{(${UUID})\\}$`);
  for (const line of lines(stdout)) {
    const m = re.exec(line);
    if (m) out.push({ name: m[1] as string, uuid: (m[2] as string).toLowerCase() });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// errors (§1.3, §3)

export interface ParsedVboxError {
  /** The first `error:` line that is neither Details nor Context. */
  message: string;
  /** Every such message line, in order (a progress failure prints a summary, then the cause). */
  messages: string[];
  /** HRESULT name from the Details (or old `Code …`) line, e.g. VBOX_E_OBJECT_NOT_FOUND. */
  code?: string;
  hresult?: string;
  component?: string;
  iface?: string;
}

const ERROR_PREFIX = /^VBoxManage(?:[.a-z]+)?: error: ?(.*)$/i;

/** True when stderr carries at least one `VBoxManage…: error:` line (§1.2: may happen with exit 0). */
export function hasErrorLine(stderr: string): boolean {
  return lines(stderr).some((l) => ERROR_PREFIX.test(l));
}

export function parseVboxError(stderr: string): ParsedVboxError | null {
  const messages: string[] = [];
  const result: Omit<ParsedVboxError, 'message' | 'messages'> = {};
  for (const line of lines(stderr)) {
    const m = ERROR_PREFIX.exec(line);
    if (!m) continue;
    const text = (m[1] as string).trimEnd();
    const details = /^Details: code (\S+) \((0x[0-9a-fA-F]+)\)(?:, component ([^,]+))?(?:, interface ([^,]+))?/.exec(text);
    if (details) {
      result.code ??= details[1];
      result.hresult ??= details[2]?.toLowerCase();
      if (details[3]) result.component ??= details[3];
      if (details[4]) result.iface ??= details[4];
      continue;
    }
    const oldCode = /^Code (\S+) \((0x[0-9a-fA-F]+)\)/.exec(text);
    if (oldCode) {
      result.code ??= oldCode[1];
      result.hresult ??= oldCode[2]?.toLowerCase();
      continue;
    }
    if (text.startsWith('Context: ')) continue;
    if (text !== '') messages.push(text);
  }
  if (messages.length === 0 && result.code === undefined) return null;
  return { message: messages[0] ?? result.code ?? 'unknown error', messages, ...result };
}

// ---------------------------------------------------------------------------------------------
// take / progress (§2.1, §1.4)

export function parseTakenUuid(stdout: string): string | null {
  const m = new RegExp(`Snapshot taken\\. UUID: \\{?(${UUID})\\}?`).exec(stdout);
  return m ? (m[1] as string).toLowerCase() : null;
}

/** The last `N%` seen in a chunk of progress output, or null. */
export function lastProgressPercent(text: string): number | null {
  let last: number | null = null;
  for (const m of text.matchAll(/(\d{1,3})%/g)) {
    const n = Number(m[1]);
    if (n <= 100) last = n;
  }
  return last;
}

