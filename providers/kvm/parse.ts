/**
 * Pure parsers for virsh output, written against output captured from a real libvirt 9.0 / QEMU 7.2
 * (test/fixtures/kvm/, INDEX.tsv says which command made which file). No I/O.
 *
 * XML goes through fast-xml-parser configured to hand back text exactly as libvirt wrote it, after
 * entity decoding: no number coercion (snapshot names like `007` or `1e3` stay strings), no trimming
 * (names and descriptions may start or end with spaces), entities decoded once (`&amp;lt;` → `&lt;`).
 */
import { XMLParser } from 'fast-xml-parser';
import type { PowerState } from '../contract.ts';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  // Always arrays, so one disk and two disks read the same way.
  isArray: (tagName) => tagName === 'disk',
});

type XmlNode = { [key: string]: unknown };

function node(value: unknown): XmlNode | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as XmlNode) : undefined;
}

/** Text content of an element: a plain string, or `#text` when the element also has attributes/children. */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  const n = node(value);
  if (!n) return undefined;
  const t = n['#text'];
  return typeof t === 'string' ? t : undefined;
}

function attrOf(value: unknown, name: string): string | undefined {
  const a = node(value)?.[`@_${name}`];
  return typeof a === 'string' ? a : undefined;
}

function arrayOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  return value === undefined ? [] : [value];
}

function parseRoot(xml: string, root: string): XmlNode {
  let doc: unknown;
  try {
    doc = parser.parse(xml);
  } catch (error) {
    throw new Error(`virsh XML: cannot parse <${root}>: ${(error as Error).message}`);
  }
  const top = node(node(doc)?.[root]);
  if (!top) throw new Error(`virsh XML: no <${root}> element`);
  return top;
}

// ---------------------------------------------------------------------------------------------
// snapshot-dumpxml DOMAIN SNAPSHOT

export type SnapshotLocation = 'internal' | 'external' | 'no';

export interface ParsedSnapshotDisk {
  /** Target name (`vda`) as libvirt writes it in the snapshot. */
  name: string;
  snapshot: SnapshotLocation | (string & {});
  /** For external disk snapshots: the overlay file created by the snapshot. */
  source: string | null;
  /** Overlay format (`qcow2`) when given. */
  driverType: string | null;
}

export interface ParsedSnapshotXml {
  name: string;
  /** '' when the snapshot has no description (libvirt then omits the element). */
  description: string;
  /** Domain state at the time of the snapshot: running | paused | shutoff | disk-snapshot | … */
  state: string;
  /** Epoch seconds, as libvirt stores it. */
  creationTime: number;
  /** ISO 8601 of creationTime. */
  createdAt: string;
  parent: string | null;
  memory: SnapshotLocation;
  /** External memory state file, when memory is 'external'. */
  memoryFile: string | null;
  disks: ParsedSnapshotDisk[];
  /** UUID of the embedded domain definition, when present. */
  domainUuid: string | null;
}

/** Parses `virsh snapshot-dumpxml D S`. Only the snapshot's own `<disks>`, never the embedded domain's. */
export function parseSnapshotXml(xml: string): ParsedSnapshotXml {
  const snap = parseRoot(xml, 'domainsnapshot');
  const name = textOf(snap.name);
  if (name === undefined) throw new Error('virsh XML: <domainsnapshot> without <name>');
  const creation = textOf(snap.creationTime)?.trim() ?? '';
  if (!/^\d+$/.test(creation)) throw new Error(`virsh XML: snapshot ${JSON.stringify(name)} has no valid <creationTime>`);
  const creationTime = Number(creation);
  const memorySnapshot = attrOf(snap.memory, 'snapshot');
  const memory: SnapshotLocation = memorySnapshot === 'internal' || memorySnapshot === 'external' ? memorySnapshot : 'no';
  const disks = arrayOf(node(snap.disks)?.disk).map((d): ParsedSnapshotDisk => {
    const source = node(d)?.source;
    return {
      name: attrOf(d, 'name') ?? '',
      snapshot: attrOf(d, 'snapshot') ?? 'no',
      source: attrOf(source, 'file') ?? attrOf(source, 'dev') ?? attrOf(source, 'name') ?? null,
      driverType: attrOf(node(d)?.driver, 'type') ?? null,
    };
  });
  const domain = node(snap.domain) ?? node(snap.inactiveDomain);
  return {
    name,
    description: textOf(snap.description) ?? '',
    state: textOf(snap.state)?.trim() ?? '',
    creationTime,
    createdAt: new Date(creationTime * 1000).toISOString(),
    parent: textOf(node(snap.parent)?.name) ?? null,
    memory,
    memoryFile: attrOf(snap.memory, 'file') ?? null,
    disks,
    domainUuid: textOf(domain?.uuid)?.trim() ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// dumpxml DOMAIN

export interface ParsedDomainDisk {
  /** `<target dev>`: vda, sda, hdc… */
  target: string;
  /** file | block | network | volume */
  type: string;
  /** disk | cdrom | floppy | lun */
  device: string;
  /** Active layer (what the guest writes to); null for an empty cdrom. */
  source: string | null;
  /** Format of the active layer (`<driver type>`), e.g. qcow2 or raw. */
  format: string | null;
  /** Backing files below `source`, nearest first (the base image last). */
  backingChain: string[];
}

export interface ParsedDomainXml {
  uuid: string;
  name: string;
  /** `<domain type>`: qemu (TCG) or kvm. */
  type: string;
  disks: ParsedDomainDisk[];
  hasGuestAgentChannel: boolean;
  /** The live XML carries MERGE_MARKER: Snapvisor started this (shut-off) domain paused to merge overlays. */
  startedPausedForMerge: boolean;
}

/**
 * Live-only domain metadata (`virsh metadata --live`) set right after `start --paused` for a merge:
 * it lives exactly as long as that QEMU process, so a retry after a crash can tell a domain it
 * started (and must power off again) from one a user paused.
 */
export const MERGE_MARKER = { uri: 'urn:snapvisor:merge:1', key: 'snapvisor', xml: '<started-paused/>' } as const;

function sourcePath(source: unknown): string | null {
  return attrOf(source, 'file') ?? attrOf(source, 'dev') ?? attrOf(source, 'name') ?? attrOf(source, 'volume') ?? null;
}

/** Parses `virsh dumpxml D` (live or --inactive): disks with their nested `<backingStore>` chain. */
export function parseDomainXml(xml: string): ParsedDomainXml {
  const domain = parseRoot(xml, 'domain');
  const uuid = textOf(domain.uuid)?.trim();
  const name = textOf(domain.name);
  if (!uuid || name === undefined) throw new Error('virsh XML: <domain> without <uuid> or <name>');
  const devices = node(domain.devices);
  const disks = arrayOf(devices?.disk).map((d): ParsedDomainDisk => {
    const chain: string[] = [];
    // The terminating element is an empty <backingStore/>, which parses as '' (no source).
    for (let b = node(node(d)?.backingStore); b; b = node(b.backingStore)) {
      const path = sourcePath(b.source);
      if (path === null) break;
      chain.push(path);
    }
    return {
      target: attrOf(node(d)?.target, 'dev') ?? '',
      type: attrOf(d, 'type') ?? '',
      device: attrOf(d, 'device') ?? 'disk',
      source: sourcePath(node(d)?.source),
      format: attrOf(node(d)?.driver, 'type') ?? null,
      backingChain: chain,
    };
  });
  const hasGuestAgentChannel = arrayOf(devices?.channel).some(
    (c) => attrOf(node(c)?.target, 'name') === 'org.qemu.guest_agent.0',
  );
  const metadata = node(domain.metadata) ?? {};
  const startedPausedForMerge = Object.values(metadata)
    .flatMap(arrayOf)
    .some((el) => Object.entries(node(el) ?? {}).some(([k, v]) => k.startsWith('@_xmlns:') && v === MERGE_MARKER.uri));
  return { uuid, name, type: attrOf(domain, 'type') ?? '', disks, hasGuestAgentChannel, startedPausedForMerge };
}

// ---------------------------------------------------------------------------------------------
// domstate [--reason]

// The words virsh prints (virshDomainStateToString); "idle" is libvirt's "blocked".
const POWER_STATE: Record<string, PowerState> = {
  running: 'running',
  idle: 'running',
  blocked: 'running',
  paused: 'paused',
  pmsuspended: 'suspended',
  'shut off': 'off',
  // QEMU is gone after a crash: for snapshots the domain is as good as off.
  crashed: 'off',
  'in shutdown': 'transitioning',
  'no state': 'unknown',
};

/** Parses `virsh domstate D` or `domstate D --reason` ("paused (user)"). */
export function parseDomState(stdout: string): { powerState: PowerState; raw: string; reason: string | null } {
  const line = stdout.replace(/\r/g, '').split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '';
  const m = /^(.*?)\s*\(([^()]*)\)$/.exec(line);
  const raw = m ? (m[1] ?? '') : line;
  return { powerState: POWER_STATE[raw] ?? 'unknown', raw, reason: m ? (m[2] ?? null) : null };
}

// ---------------------------------------------------------------------------------------------
// errors

/**
 * virsh writes failures to stderr as `error: …` lines, exit 1; multi-step commands print two
 * ("Failed to revert snapshot X", then the reason). `message` is the most specific line (the last).
 */
export function parseVirshError(stderr: string): { message: string; lines: string[] } {
  const all = stderr.replace(/\r/g, '').split('\n');
  const lines = all.filter((l) => l.startsWith('error: ')).map((l) => l.slice('error: '.length));
  if (lines.length === 0) {
    const other = all.map((l) => l.trim()).filter((l) => l !== '');
    return { message: other.join(' '), lines: other };
  }
  return { message: lines[lines.length - 1] ?? '', lines };
}

// ---------------------------------------------------------------------------------------------
// --name lists

/**
 * Parses one-name-per-line output (`snapshot-list D --name`, `list --all --name`, `snapshot-current
 * D --name`). virsh ends such lists with an extra empty line and prints a lone newline when the list is
 * empty; names are kept byte for byte (leading/trailing spaces are legal in snapshot names), so only
 * empty lines are dropped. libvirt 9.0 ACCEPTS a newline inside a snapshot name (measured), which this
 * format splits over two lines: the adapter rejoins such names by checking each candidate against
 * `snapshot-dumpxml` (see providers/kvm/index.ts).
 */
export function parseNameList(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '');
}

// ---------------------------------------------------------------------------------------------
// version

export interface VirshVersion {
  library: string | null;
  daemon: string | null;
  hypervisor: string | null;
}

/** `virsh version --daemon`. */
export function parseVersion(stdout: string): VirshVersion {
  const pick = (label: string) => new RegExp(`^${label}:\\s*(.+)$`, 'm').exec(stdout)?.[1]?.trim() ?? null;
  const num = (s: string | null) => (s === null ? null : (/(\d+\.\d+\.\d+)/.exec(s)?.[1] ?? null));
  return { library: num(pick('Using library')), daemon: num(pick('Running against daemon')), hypervisor: pick('Running hypervisor') };
}

/** 9.0.0 → [9, 0, 0]; compares as a tuple. */
export function versionAtLeast(version: string | null, major: number, minor: number): boolean {
  if (version === null) return false;
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}
