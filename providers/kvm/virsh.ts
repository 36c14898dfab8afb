/**
 * virsh I/O for the KVM adapter: every process it starts on the host (`virsh -c <uri> …`, `test -e`)
 * and the reads of domain and snapshot XML built on them. Each run is a remote process start
 * (~60–200 ms over SSH), so the many-snapshot read goes out a few at a time (mapLimit) and nothing
 * here reads twice what one call gives.
 *
 * Failures leave as ProviderErrors: transport ones through errors.ts fromRunError, a non-zero exit
 * through fromVirshFailure; both messages start with the target.
 */
import { ProviderError, type CallContext, type ProviderSnapshot, type SnapshotMode } from '../contract.ts';
import type { CommandRunner, RunOptions, RunResult } from '../shared/command-runner.ts';
import { splitMarker } from '../shared/description-marker.ts';
import { checkId, uuidIds, type Guards } from '../shared/guards.ts';
import { mapLimit } from '../shared/map-limit.ts';
import { fromRunError, fromVirshFailure, NO_SNAPSHOT, type CallInfo } from './errors.ts';
import type { KvmOptions } from './options.ts';
import {
  parseDomainXml,
  parseDomState,
  parseNameList,
  parseSnapshotXml,
  parseVersion,
  type ParsedDomainXml,
  type ParsedSnapshotXml,
  type VirshVersion,
} from './parse.ts';

/** Parallel virsh calls when reading many snapshots: well under OpenSSH's MaxSessions 10. */
export const READ_PARALLELISM = 4;

const DOMAIN_IDS = uuidIds('libvirt domain');

/** A snapshot as read from its XML, and whether it is the domain's current one. */
export interface Snap extends ParsedSnapshotXml {
  current: boolean;
}

export function modeOf(s: ParsedSnapshotXml): SnapshotMode | null {
  if (s.memory === 'internal' || s.memory === 'external') return 'memory';
  if (s.state === 'shutoff') return 'offline';
  return null; // disk-snapshot: crash or quiesced, libvirt does not record which
}

export function toProviderSnapshot(s: Snap): ProviderSnapshot {
  const { description, marker } = splitMarker(s.description);
  return { providerRef: s.name, name: s.name, description, parentRef: s.parent, current: s.current, createdAt: s.createdAt, mode: modeOf(s), marker, ready: true };
}

/** Every snapshot below `name`, depth first. */
export function descendants(all: readonly Snap[], name: string): Snap[] {
  const out: Snap[] = [];
  const walk = (n: string) => {
    for (const c of all.filter((s) => s.parent === n)) {
      out.push(c);
      walk(c.name);
    }
  };
  walk(name);
  return out;
}

export interface VirshHost {
  /** The domain argument for virsh: a UUID only (anything else could be a name, an id or an option); else not_found. */
  domArg(providerVmId: string): string;
  /** Runs any argv on the host; returns the result whatever its exit code, or throws a mapped transport error. */
  exec(argv: string[], ctx: CallContext, call: CallInfo, extra?: Pick<RunOptions, 'timeoutMs' | 'onStderr'>): Promise<RunResult>;
  /** `virsh -c <uri> …`; a non-zero exit throws. */
  virsh(args: string[], ctx: CallContext, call: CallInfo): Promise<RunResult>;
  /** The exit-code failure of a virsh call, mapped (for callers that look at the result first). */
  failure(result: RunResult, call: CallInfo): ProviderError;
  /** The transport failure of a run, mapped. */
  runFailure(e: unknown, call: CallInfo): ProviderError;
  /** Read once and kept; `fresh` reads again (check()). */
  libvirtVersion(ctx: CallContext, fresh?: boolean): Promise<VirshVersion>;
  /** The version last read, without a call (undefined before the first read). */
  knownVersion(): VirshVersion | undefined;
  listDomainUuids(ctx: CallContext): Promise<string[]>;
  readDomain(dom: string, ctx: CallContext): Promise<ParsedDomainXml>;
  readDomState(dom: string, ctx: CallContext): Promise<ReturnType<typeof parseDomState>>;
  /** The raw `domstate` word: 'running', 'shut off', … */
  readState(dom: string, ctx: CallContext): Promise<string>;
  /** The snapshot's XML, or null when it does not exist. */
  readSnapshot(dom: string, name: string, ctx: CallContext): Promise<ParsedSnapshotXml | null>;
  currentName(dom: string, ctx: CallContext): Promise<string | null>;
  /** `snapshot-list --from`: the lines naming a snapshot's children; null when the snapshot is gone. */
  childNames(dom: string, name: string, ctx: CallContext): Promise<string[] | null>;
  /** How many external snapshots the domain has (one `snapshot-list --external`). */
  externalSnapshotCount(dom: string, ctx: CallContext): Promise<number>;
  /** All snapshots with their XML. */
  readSnapshots(dom: string, ctx: CallContext): Promise<Snap[]>;
  fileExists(path: string, ctx: CallContext): Promise<boolean>;
}

export function createVirshHost(runner: CommandRunner, options: Pick<KvmOptions, 'uri' | 'commandTimeoutSec'>, guards: Pick<Guards, 'err' | 'withTarget'>): VirshHost {
  const { err, withTarget } = guards;
  const timeoutMs = options.commandTimeoutSec * 1000;
  let version: VirshVersion | undefined;

  const failure = (result: RunResult, call: CallInfo) => fromVirshFailure(result, withTarget(call));
  const runFailure = (e: unknown, call: CallInfo) => fromRunError(e, withTarget(call));

  async function exec(argv: string[], ctx: CallContext, call: CallInfo, extra: Pick<RunOptions, 'timeoutMs' | 'onStderr'> = {}): Promise<RunResult> {
    try {
      return await runner.run(argv, { signal: ctx.signal, timeoutMs, ...extra });
    } catch (e) {
      throw runFailure(e, call);
    }
  }

  async function virsh(args: string[], ctx: CallContext, call: CallInfo): Promise<RunResult> {
    const result = await exec(['virsh', '-c', options.uri, ...args], ctx, call);
    if (result.exitCode !== 0) throw failure(result, call);
    return result;
  }

  const read = (what: string): CallInfo => ({ what, mutating: false });

  async function readSnapshot(dom: string, name: string, ctx: CallContext): Promise<ParsedSnapshotXml | null> {
    try {
      const r = await virsh(['snapshot-dumpxml', '--domain', dom, '--snapshotname', name], ctx, read(`read snapshot '${name}' of domain ${dom}`));
      return parseSnapshotXml(r.stdout);
    } catch (e) {
      if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return null;
      throw e;
    }
  }

  async function currentName(dom: string, ctx: CallContext): Promise<string | null> {
    const call = read(`read the current snapshot of domain ${dom}`);
    const r = await exec(['virsh', '-c', options.uri, 'snapshot-current', '--domain', dom, '--name'], ctx, call);
    if (r.exitCode !== 0) {
      if (/has no current snapshot/.test(r.stderr)) return null;
      throw failure(r, call);
    }
    return r.stdout.endsWith('\n') ? r.stdout.slice(0, -1) : r.stdout;
  }

  return {
    domArg: (providerVmId) => checkId(err, DOMAIN_IDS, 'domain', providerVmId),
    exec,
    virsh,
    failure,
    runFailure,

    knownVersion: () => version,
    async libvirtVersion(ctx, fresh = false) {
      if (!version || fresh) version = parseVersion((await virsh(['version', '--daemon'], ctx, read('read the libvirt version'))).stdout);
      return version;
    },

    async listDomainUuids(ctx) {
      return parseNameList((await virsh(['list', '--all', '--uuid'], ctx, read('list domains'))).stdout)
        .map((l) => l.trim())
        .filter((l) => DOMAIN_IDS.test.test(l));
    },

    async readDomain(dom, ctx) {
      return parseDomainXml((await virsh(['dumpxml', '--domain', dom], ctx, read(`read domain ${dom}`))).stdout);
    },

    async readDomState(dom, ctx) {
      return parseDomState((await virsh(['domstate', '--domain', dom], ctx, read(`read the state of domain ${dom}`))).stdout);
    },

    async readState(dom, ctx) {
      return parseDomState((await virsh(['domstate', '--domain', dom], ctx, read(`read the state of domain ${dom}`))).stdout).raw;
    },

    readSnapshot,
    currentName,

    async childNames(dom, name, ctx) {
      try {
        const r = await virsh(['snapshot-list', '--domain', dom, '--from', name, '--name'], ctx, read(`list the children of snapshot '${name}' of domain ${dom}`));
        return parseNameList(r.stdout);
      } catch (e) {
        if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return null;
        throw e;
      }
    },

    async externalSnapshotCount(dom, ctx) {
      return parseNameList((await virsh(['snapshot-list', '--domain', dom, '--external', '--name'], ctx, read(`list external snapshots of domain ${dom}`))).stdout).length;
    },

    /**
     * `snapshot-list --name` is one name per line, but libvirt allows a newline inside a name: a line
     * that is not a snapshot is joined with the next until it is one.
     */
    async readSnapshots(dom, ctx) {
      const lines = parseNameList((await virsh(['snapshot-list', '--domain', dom, '--name'], ctx, read(`list snapshots of domain ${dom}`))).stdout);
      if (lines.length === 0) return [];
      const single = await mapLimit(lines, READ_PARALLELISM, (l) => readSnapshot(dom, l, ctx));
      const found: ParsedSnapshotXml[] = [];
      for (let i = 0; i < lines.length; ) {
        const one = single[i];
        if (one && one.name === lines[i]) {
          found.push(one);
          i++;
          continue;
        }
        let joined = lines[i] ?? '';
        let j = i + 1;
        let hit: ParsedSnapshotXml | null = null;
        for (; j < lines.length && !hit; j++) {
          joined = `${joined}\n${lines[j] ?? ''}`;
          hit = await readSnapshot(dom, joined, ctx);
        }
        if (hit) found.push(hit); // else: deleted meanwhile
        i = hit ? j : i + 1;
      }
      const current = await currentName(dom, ctx);
      return found.map((s) => ({ ...s, current: s.name === current }));
    },

    async fileExists(path, ctx) {
      return (await exec(['test', '-e', path], ctx, read(`look for ${path}`))).exitCode === 0;
    },
  };
}
