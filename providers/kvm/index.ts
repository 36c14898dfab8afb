/**
 * KVM adapter: drives `virsh -c <uri>` through a CommandRunner (SSH in production, argv arrays
 * only — the transport quotes each argument; never a shell string).
 *
 * Identity: a VM is its libvirt domain UUID; a snapshot is its libvirt name (libvirt's only id), so
 * providerRef = name. Every virsh call names its arguments (`--domain`, `--snapshotname`) so a
 * name can never be read as an option.
 *
 * State is read from XML: `dumpxml`, `snapshot-list --name` + `snapshot-dumpxml` per snapshot
 * (parent, description, state, internal/external), `snapshot-current --name`, `domstate`.
 *
 * Marker: `spec.marker` is the last line of the snapshot `<description>` (like VirtualBox).
 * createSnapshot looks its name up first and returns the snapshot when it carries the marker (a
 * retry of the same job). Each virsh run is a remote process start (~60–200 ms), so independent
 * reads go out side by side and nothing is read twice: a new snapshot is current by libvirt's rule.
 *
 * Modes:
 * - memory: running/paused domain only (a shut-off one is `conflict`: libvirt would silently take a
 *   disk-only snapshot). Internal by default; `snapshotStyle: external` writes a memory file and
 *   one overlay per disk.
 * - crash: `--disk-only --atomic`, external overlays for every disk.
 * - quiesced: as crash plus `--quiesce`. Needs qemu-guest-agent in the guest: without it the call
 *   fails with `conflict` (the VM's state, not a hypervisor limit) and a message saying so.
 * - offline: `shutdown`, poll `domstate` up to offline.shutdownTimeoutSec, `destroy` only if
 *   offline.forceOff (else `conflict`), internal snapshot of the shut-off domain, `start` again if
 *   it was running — also when the snapshot failed (best effort, logged).
 * Overlay and memory files are named from the domain, disk and snapshot plus a hash of the marker,
 * and never over an existing file (checked with `test -e`; libvirt accepts a 0-byte file — danger 4).
 *
 * Revert: natively. Refused (`unsupported`, with the reason): external snapshots on libvirt < 9.9
 * (it would need new overlays on the snapshot's backing images, created as root: the SSH user cannot),
 * an internal snapshot with external descendants (libvirt would silently invalidate the overlays,
 * danger 2), purely numeric names (QEMU would load the snapshot with that id, danger 1).
 *
 * Delete (planner: merge-plan.ts): libvirt's own delete where it can — internal (`--children` for an
 * internal subtree), and on >= 9.0 an external snapshot in a linear external chain (commit + pivot).
 * Where libvirt 9.0 refuses but it is safe, a manual merge: every overlay a deleted snapshot created
 * is committed into the image right below it, one blockcommit per contiguous run (`--active --pivot`
 * when the run includes the active image), then `snapshot-delete --metadata`, deepest first. Cases:
 * `children` on a subtree with external snapshots; an external snapshot with an internal parent (its
 * overlay goes into the image holding the internal snapshot — writing a qcow2's active state leaves
 * its internal snapshots alone). Refused (`unsupported`, reason in the message): a surviving snapshot
 * stored in a file the merge removes, a deleted internal snapshot stored in an image that stays
 * (internal with external children: it sits in a read-only backing file), an external snapshot with
 * more than one child, non-file disks, overlays not in the chain. Already gone = success.
 *
 * Merging (consolidate and manual deletes share mergeCommits): the chain is read from dumpxml before
 * each commit (must be as planned) and after (must be as expected), `blockcommit --wait --verbose
 * --delete` with progress from the `--verbose` percentages; a disk with a block job already running
 * is `conflict`. Snapshots whose data was merged away lose their metadata (`snapshot-delete
 * --metadata`, deepest first), also after a failure part-way. `--delete` lets libvirtd (root) remove
 * the merged files; any file still there afterwards, and external memory files of the dropped
 * snapshots, are named in the job's message: the SSH user cannot delete libvirt-qemu-owned files.
 * Cancelled mid-commit: `blockjob --abort`, chain checked again.
 * Shut-off domains: libvirt 9.0 cannot blockcommit offline and the SSH user cannot qemu-img the 0600
 * overlays, so with offlineMerge 'start-paused' (default) the domain is started `--paused` (the guest
 * never runs), re-planned from the running XML (the shut-off XML lacks the chain), merged, and
 * `destroy`ed again whatever happened; offlineMerge 'refuse' answers `conflict` naming the option.
 * The started domain carries live-only metadata (MERGE_MARKER, gone with its QEMU process): a retry
 * after a crash mid-merge finds it paused *and marked*, finishes, and powers it off; a domain a user
 * paused has no mark and stays as it is.
 *
 * Consolidate (planner: consolidation.ts): per disk, chains of snapshot-made overlays deeper than
 * consolidate.maxChainDepth keep their newest overlays and merge the older ones into the image the
 * oldest overlay sits on (never into a template below it); `--active --pivot` when maxChainDepth is 0.
 * A shut-off domain is started paused only when its recorded overlays say it may be too deep.
 *
 * listVms `consolidationNeeded`: the snapshots are read only when the dumpxml read anyway shows a
 * chain deeper than maxChainDepth (shut off: when it has more external snapshots than that, one
 * `snapshot-list --external`); then the planner decides (shut off: from the recorded overlays).
 */
import {
  ProviderError,
  type CallContext,
  type Capabilities,
  type ConsolidationReport,
  type CreateSpec,
  type DeleteOptions,
  type Logger,
  type ProviderSnapshot,
  type SnapshotMode,
  type ProviderWith,
  type SnapshotProvider,
  type TargetHealth,
  type VmInfo,
} from '../contract.ts';
import { snapshotIn } from '../shared/snapshot-lookup.ts';
import type { CommandRunner, RunResult } from '../shared/command-runner.ts';
import { createTargetTransport, type TargetTransport } from '../shared/ssh-target.ts';
import { sleep } from '../shared/sleep.ts';
import { fromRunError, fromVirshFailure, NO_SNAPSHOT, type CallInfo } from './errors.ts';
import { KVM_LIMITS, isNumericName, memoryPath, nameProblems, overlayPath, specValue } from './naming.ts';
import { PROVIDER, parseOptions, type KvmOptions } from './options.ts';
import {
  blockJobActive,
  chainOf,
  commitArgs,
  consolidationNeeded,
  mayNeedConsolidation,
  parseCommitProgress,
  planConsolidation,
  sameChain,
  staleAfter,
  worthReadingSnapshots,
  type DiskCommit,
} from './consolidation.ts';
import { classifyDelete, droppedAfterMerge, isExternal, planMerge } from './merge-plan.ts';
import { descriptionWithMarker, splitMarker } from '../shared/description-marker.ts';
import {
  parseDomainXml,
  parseDomState,
  parseNameList,
  MERGE_MARKER,
  parseSnapshotXml,
  parseVersion,
  versionAtLeast,
  type ParsedDomainXml,
  type ParsedSnapshotXml,
  type VirshVersion,
} from './parse.ts';

export interface KvmDeps {
  log: Logger;
  /** The transport; built from options.ssh (or local processes without it) when absent. */
  runner?: CommandRunner;
  /** How often to look at the domain while waiting for a guest shutdown (default 500 ms). */
  pollIntervalMs?: number;
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Parallel virsh calls when reading many snapshots: well under OpenSSH's MaxSessions 10. */
const READ_PARALLELISM = 4;

const CAPABILITIES: Capabilities = {
  modes: {
    memory: { supported: true },
    crash: { supported: true },
    // Supported by libvirt; each job still needs qemu-guest-agent in the guest (conflict without it).
    quiesced: { supported: true },
    offline: { supported: true },
  },
  revert: true,
  deleteChildren: true,
  deleteAll: true,
  consolidate: true,
  duplicateNames: false,
  descriptions: true,
  readiness: false,
  limits: KVM_LIMITS,
};

interface Snap extends ParsedSnapshotXml {
  current: boolean;
}

function modeOf(s: ParsedSnapshotXml): SnapshotMode | null {
  if (s.memory === 'internal' || s.memory === 'external') return 'memory';
  if (s.state === 'shutoff') return 'offline';
  return null; // disk-snapshot: crash or quiesced, libvirt does not record which
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export type KvmProvider = ProviderWith<'revertSnapshot' | 'consolidate'>;

export function createKvmProvider(target: string, rawOptions: Record<string, unknown>, deps: KvmDeps): KvmProvider {
  const options: KvmOptions = parseOptions(target, rawOptions);
  const transport: TargetTransport = deps.runner ? { runner: deps.runner, close: async () => {} } : createTargetTransport(options.ssh, deps.log);
  const runner = transport.runner;
  const pollMs = deps.pollIntervalMs ?? 500;
  const timeoutMs = options.commandTimeoutSec * 1000;
  let version: VirshVersion | undefined;

  const err = (kind: ConstructorParameters<typeof ProviderError>[1], message: string, opts: ConstructorParameters<typeof ProviderError>[3] = {}) =>
    new ProviderError(PROVIDER, kind, `target '${target}': ${message}`, opts);

  function assertNotAborted(ctx: CallContext, what: string): void {
    if (ctx.signal.aborted) throw err('transient', `${what}: cancelled before start`, { retry: 'transient' });
  }

  const withTarget = (call: CallInfo): CallInfo => ({ ...call, what: `target '${target}': ${call.what}` });

  /** Runs any argv on the host; returns the result whatever its exit code, or throws a mapped transport error. */
  async function exec(argv: string[], ctx: CallContext, call: CallInfo): Promise<RunResult> {
    try {
      return await runner.run(argv, { signal: ctx.signal, timeoutMs });
    } catch (e) {
      throw fromRunError(e, withTarget(call));
    }
  }

  async function virsh(args: string[], ctx: CallContext, call: CallInfo): Promise<RunResult> {
    const result = await exec(['virsh', '-c', options.uri, ...args], ctx, call);
    if (result.exitCode !== 0) throw fromVirshFailure(result, withTarget(call));
    return result;
  }

  function domArg(providerVmId: string): string {
    // A domain is addressed by UUID only; anything else could be a name, an id or an option.
    if (!UUID_RE.test(providerVmId)) throw err('not_found', `no domain with id '${providerVmId}' (libvirt domain ids are UUIDs)`);
    return providerVmId.toLowerCase();
  }

  async function libvirtVersion(ctx: CallContext): Promise<VirshVersion> {
    if (!version) version = parseVersion((await virsh(['version', '--daemon'], ctx, { what: 'read the libvirt version', mutating: false })).stdout);
    return version;
  }

  async function readDomain(dom: string, ctx: CallContext): Promise<ParsedDomainXml> {
    const r = await virsh(['dumpxml', '--domain', dom], ctx, { what: `read domain ${dom}`, mutating: false });
    return parseDomainXml(r.stdout);
  }

  async function readDomState(dom: string, ctx: CallContext): Promise<ReturnType<typeof parseDomState>> {
    return parseDomState((await virsh(['domstate', '--domain', dom], ctx, { what: `read the state of domain ${dom}`, mutating: false })).stdout);
  }

  async function readState(dom: string, ctx: CallContext): Promise<string> {
    return (await readDomState(dom, ctx)).raw;
  }

  /** The snapshot's XML, or null when it does not exist. */
  async function readSnapshot(dom: string, name: string, ctx: CallContext): Promise<ParsedSnapshotXml | null> {
    try {
      const r = await virsh(['snapshot-dumpxml', '--domain', dom, '--snapshotname', name], ctx, { what: `read snapshot '${name}' of domain ${dom}`, mutating: false });
      return parseSnapshotXml(r.stdout);
    } catch (e) {
      if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return null;
      throw e;
    }
  }

  async function currentName(dom: string, ctx: CallContext): Promise<string | null> {
    const call = { what: `read the current snapshot of domain ${dom}`, mutating: false };
    const r = await exec(['virsh', '-c', options.uri, 'snapshot-current', '--domain', dom, '--name'], ctx, call);
    if (r.exitCode !== 0) {
      if (/has no current snapshot/.test(r.stderr)) return null;
      throw fromVirshFailure(r, withTarget(call));
    }
    return r.stdout.endsWith('\n') ? r.stdout.slice(0, -1) : r.stdout;
  }

  /** `snapshot-list --from`: the lines naming a snapshot's children; null when the snapshot is gone. */
  async function childNames(dom: string, name: string, ctx: CallContext): Promise<string[] | null> {
    try {
      const r = await virsh(['snapshot-list', '--domain', dom, '--from', name, '--name'], ctx, { what: `list the children of snapshot '${name}' of domain ${dom}`, mutating: false });
      return parseNameList(r.stdout);
    } catch (e) {
      if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return null;
      throw e;
    }
  }

  /**
   * All snapshots with their XML. `snapshot-list --name` is one name per line, but libvirt allows a
   * newline inside a name: a line that is not a snapshot is joined with the next until it is one.
   */
  async function readSnapshots(dom: string, ctx: CallContext): Promise<Snap[]> {
    const lines = parseNameList((await virsh(['snapshot-list', '--domain', dom, '--name'], ctx, { what: `list snapshots of domain ${dom}`, mutating: false })).stdout);
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
  }

  function toProviderSnapshot(s: Snap): ProviderSnapshot {
    const { description, marker } = splitMarker(s.description);
    return {
      providerRef: s.name,
      name: s.name,
      description,
      parentRef: s.parent,
      current: s.current,
      createdAt: s.createdAt,
      mode: modeOf(s),
      marker,
      ready: true,
    };
  }

  function descendants(all: readonly Snap[], name: string): Snap[] {
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

  function validateSpec(spec: CreateSpec): void {
    const problems = nameProblems(spec.name);
    if (spec.description.includes('\0')) problems.push('a description cannot contain NUL');
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  const shutdownWait = (ms: number, signal: AbortSignal) =>
    sleep(ms, signal, () => err('transient', 'cancelled while waiting for the guest to shut down', { retry: 'uncertain' }));

  async function fileExists(path: string, ctx: CallContext): Promise<boolean> {
    const r = await exec(['test', '-e', path], ctx, { what: `look for ${path}`, mutating: false });
    return r.exitCode === 0;
  }

  /** A path from `make(attempt)` that does not exist yet on the host. */
  async function freshPath(make: (attempt: number) => string, ctx: CallContext): Promise<string> {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const p = make(attempt);
      if (!(await fileExists(p, ctx))) return p;
    }
    throw err('conflict', `no free file name for an overlay next to ${make(1)}`);
  }

  /** `--diskspec` for every disk: an overlay for writable file disks, `snapshot=no` for the rest. */
  async function diskSpecs(dom: ParsedDomainXml, spec: CreateSpec, ctx: CallContext): Promise<string[]> {
    const args: string[] = [];
    for (const d of dom.disks) {
      if (d.device !== 'disk' || d.source === null) {
        if (d.target) args.push('--diskspec', `${specValue(d.target)},snapshot=no`);
        continue;
      }
      if (d.type !== 'file') throw err('unsupported', `disk ${d.target} of domain ${dom.uuid} is a '${d.type}' disk; external snapshots are made for file disks only`);
      const source = d.source;
      const file = await freshPath((a) => overlayPath(source, dom.name, d.target, spec.name, spec.marker, a), ctx);
      args.push('--diskspec', `${specValue(d.target)},snapshot=external,driver=qcow2,file=${specValue(file)}`);
    }
    return args;
  }

  async function create(dom: string, spec: CreateSpec, extra: string[], ctx: CallContext): Promise<void> {
    const args = ['snapshot-create-as', '--domain', dom, '--name', spec.name, '--description', descriptionWithMarker(spec.description, spec.marker), '--atomic', ...extra];
    ctx.progress(10);
    try {
      await virsh(args, ctx, { what: `create snapshot of domain ${dom}`, mutating: true });
    } catch (e) {
      // An earlier attempt of this same job (its connection dropped) may have finished meanwhile.
      if (!(e instanceof ProviderError && e.kind === 'conflict' && /already exists/.test(e.message))) throw e;
      const s = await readSnapshot(dom, spec.name, ctx);
      if (!s || splitMarker(s.description).marker !== spec.marker) throw e;
    }
    ctx.progress(90);
  }

  async function waitUntilOff(dom: string, ctx: CallContext): Promise<void> {
    const deadline = Date.now() + options.offline.shutdownTimeoutSec * 1000;
    for (;;) {
      const state = await readState(dom, ctx);
      if (state === 'shut off') return;
      if (Date.now() >= deadline) {
        if (!options.offline.forceOff) {
          throw err('conflict', `offline snapshot of domain ${dom}: the guest did not shut down within ${options.offline.shutdownTimeoutSec} s (state ${state}); set offline.forceOff to power it off`);
        }
        ctx.log.warn({ dom }, 'guest did not shut down in time; destroying');
        await virsh(['destroy', '--domain', dom], ctx, { what: `power off domain ${dom}`, mutating: true });
        return;
      }
      await shutdownWait(Math.min(pollMs, Math.max(1, deadline - Date.now())), ctx.signal);
    }
  }

  async function start(dom: string, ctx: CallContext): Promise<void> {
    await virsh(['start', '--domain', dom], ctx, { what: `start domain ${dom}`, mutating: true });
  }

  /** The snapshot just made, read back (parent, time, state). libvirt makes a new snapshot current. */
  async function createdSnapshot(dom: string, spec: CreateSpec, ctx: CallContext): Promise<ProviderSnapshot> {
    const s = await readSnapshot(dom, spec.name, ctx);
    if (!s || splitMarker(s.description).marker !== spec.marker) {
      throw err('internal', `create snapshot of domain ${dom}: the new snapshot is not listed`, { retry: 'uncertain' });
    }
    return toProviderSnapshot({ ...s, current: true });
  }

  // ------------------------------------------------------------------------------------------
  // consolidate: merge external chains deeper than consolidate.maxChainDepth (see consolidation.ts)

  /** A disk's chain now, active first, from dumpxml (a non-root user cannot qemu-img the overlays). */
  async function chainNow(dom: string, disk: string, ctx: CallContext): Promise<string[] | null> {
    const d = (await readDomain(dom, ctx)).disks.find((x) => x.target === disk);
    return d ? chainOf(d) : null;
  }

  async function abortBlockJob(dom: string, disk: string, ctx: CallContext): Promise<void> {
    const call = { what: `abort the block job on disk ${disk} of domain ${dom}`, mutating: true };
    let r: RunResult;
    try {
      r = await exec(['virsh', '-c', options.uri, 'blockjob', '--domain', dom, '--path', disk, '--abort'], ctx, call);
    } catch (e) {
      ctx.log.error({ dom, disk, err: e instanceof Error ? e.message : String(e) }, 'could not abort the block job');
      return;
    }
    if (r.exitCode !== 0 && !/does not have an active block job|No current block job/i.test(r.stderr)) {
      ctx.log.error({ dom, disk, err: fromVirshFailure(r, withTarget(call)).message }, 'could not abort the block job');
    }
  }

  /**
   * One blockcommit, waited for. On a transport failure (cancel, timeout, dropped connection) the
   * job may still run inside libvirtd: abort it, then look at the chain — a commit that finished
   * (pivoted) anyway counts as done; an unchanged chain rethrows; anything else is `internal`.
   */
  async function commitDisk(dom: string, c: DiskCommit, ctx: CallContext, onPercent: (pct: number) => void): Promise<void> {
    const call = { what: `merge disk ${c.disk} of domain ${dom} into ${c.base}`, mutating: true };
    let result: RunResult;
    try {
      result = await runner.run(['virsh', '-c', options.uri, ...commitArgs(dom, c)], {
        signal: ctx.signal,
        timeoutMs: options.consolidate.timeoutSec * 1000,
        onStderr: (chunk) => {
          const pct = parseCommitProgress(chunk);
          if (pct !== null) onPercent(pct);
        },
      });
    } catch (e) {
      const failure = fromRunError(e, withTarget(call));
      const calm: CallContext = { ...ctx, signal: new AbortController().signal };
      await abortBlockJob(dom, c.disk, calm);
      const now = await chainNow(dom, c.disk, calm).catch(() => null);
      if (now && sameChain(now, c.after)) return; // finished before the abort reached it
      if (now && sameChain(now, c.before)) {
        throw err('transient', `${call.what}: ${ctx.signal.aborted ? 'cancelled' : 'interrupted'}; the block job was aborted and the chain is unchanged`, { retry: 'transient', cause: failure });
      }
      throw err('internal', `${call.what}: interrupted, and the chain is now ${now ? now.join(' <- ') : 'unreadable'} (expected ${c.before.join(' <- ')} or ${c.after.join(' <- ')})`, { cause: failure });
    }
    if (result.exitCode !== 0) throw fromVirshFailure(result, withTarget(call));
    const now = await chainNow(dom, c.disk, ctx);
    if (!now || !sameChain(now, c.after)) {
      throw err('internal', `${call.what}: virsh reported success but the chain is ${now ? now.join(' <- ') : 'gone'} (expected ${c.after.join(' <- ')})`);
    }
  }

  /** `conflict` when a disk to commit already has a block job (ours would fail half-way through). */
  async function assertNoBlockJobs(dom: string, domainName: string, commits: readonly DiskCommit[], ctx: CallContext): Promise<void> {
    for (const disk of new Set(commits.map((c) => c.disk))) {
      const info = await virsh(['blockjob', '--domain', dom, '--path', disk, '--info'], ctx, { what: `read block jobs of disk ${disk} of domain ${dom}`, mutating: false });
      if (blockJobActive(info.stdout)) throw err('conflict', `disk ${disk} of domain '${domainName}' already has a block job running; try again when it has finished`);
    }
  }

  /**
   * Runs `commits` in order (each disk's chain checked against the plan before, and by commitDisk
   * after), then removes the metadata of the snapshots `dropped` names (deepest first) — also after a
   * failure, for those whose data is gone — and names every file left behind. Consolidate and manual
   * deletes both go through here.
   */
  async function mergeCommits(
    dom: string,
    domainName: string,
    commits: readonly DiskCommit[],
    ctx: CallContext,
    dropped: (snapshots: readonly Snap[], mergedFiles: readonly string[], allDone: boolean) => string[],
  ): Promise<ConsolidationReport> {
    await assertNoBlockJobs(dom, domainName, commits, ctx);
    if (commits.length > 0) ctx.progress(5, `merging ${commits.map((c) => `${c.disk} (${c.before.length - 1} -> ${c.after.length - 1} overlays)`).join(', ')}`);

    const done: DiskCommit[] = [];
    let failure: unknown = null;
    const share = 85 / Math.max(1, commits.length);
    for (const [i, c] of commits.entries()) {
      if (ctx.signal.aborted) {
        failure = err('transient', `merge overlays of domain '${domainName}': cancelled`, { retry: 'transient' });
        break;
      }
      try {
        const now = await chainNow(dom, c.disk, ctx);
        if (!now || !sameChain(now, c.before)) {
          throw err('conflict', `disk ${c.disk} of domain '${domainName}' changed while merging (chain ${now ? now.join(' <- ') : 'gone'}, planned ${c.before.join(' <- ')}); try again`);
        }
        await commitDisk(dom, c, ctx, (pct) => ctx.progress(Math.round(5 + share * (i + pct / 100)), `block commit ${c.disk}: ${pct} %`));
        done.push(c);
      } catch (e) {
        failure = e;
        break;
      }
    }

    // Whatever happened, snapshots whose data is merged away are stale: drop their metadata.
    const calm: CallContext = { ...ctx, signal: new AbortController().signal };
    const mergedFiles = done.flatMap((c) => c.merged);
    const snapshots = await readSnapshots(dom, calm).catch(() => [] as Snap[]);
    const names = dropped(snapshots, mergedFiles, failure === null);
    const memoryFiles = names.flatMap((n) => {
      const f = snapshots.find((s) => s.name === n)?.memoryFile ?? null;
      return f === null ? [] : [f];
    });
    const metadataLeft: string[] = [];
    for (const name of names) {
      try {
        await virsh(['snapshot-delete', '--domain', dom, '--snapshotname', name, '--metadata'], calm, { what: `remove the stale metadata of snapshot '${name}' of domain ${dom}`, mutating: true });
      } catch (e) {
        if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) continue;
        ctx.log.error({ dom, snapshot: name, err: e instanceof Error ? e.message : String(e) }, 'could not remove stale snapshot metadata');
        metadataLeft.push(name);
      }
    }
    // `--delete` has libvirtd (root) remove the merged images. Files it left behind, and external memory
    // files of the dropped snapshots, belong to libvirt-qemu/root: the SSH user cannot delete them, so
    // they are named in the report instead of pretending they are gone.
    const unused: string[] = [];
    for (const f of [...mergedFiles, ...memoryFiles]) {
      if (await fileExists(f, calm).catch(() => true)) unused.push(f);
    }

    const parts: string[] = [];
    if (done.length > 0) {
      parts.push(`merged ${mergedFiles.length} overlay image(s) of domain '${domainName}' into the image below them: ${done.map((c) => `${c.disk} ${c.before.length - 1} -> ${c.after.length - 1} overlays`).join(', ')}`);
    }
    if (names.length - metadataLeft.length > 0) {
      parts.push(`removed the metadata of snapshot(s) ${names.filter((n) => !metadataLeft.includes(n)).map((n) => `'${n}'`).join(', ')} (their overlays are merged away)`);
    }
    if (metadataLeft.length > 0) parts.push(`could not remove the stale metadata of snapshot(s) ${metadataLeft.map((n) => `'${n}'`).join(', ')}`);
    parts.push(unused.length === 0 ? 'no unused files left' : `these files are no longer used but could not be deleted by the SSH user (delete them as root on the host): ${unused.join(', ')}`);
    const message = parts.join('; ');

    if (failure !== null) {
      if (done.length === 0 && failure instanceof ProviderError) throw failure;
      const f = failure instanceof ProviderError ? failure : null;
      throw err(f?.kind ?? 'internal', `${f ? f.message : String(failure)} (before that: ${message})`, { retry: f?.retry ?? 'final', cause: failure });
    }
    if (metadataLeft.length > 0) throw err('internal', message);
    ctx.progress(100, message);
    return { merged: mergedFiles.length, message };
  }

  /**
   * Runs `work` on a domain QEMU has open: as it is when running/paused; a shut-off one is started
   * paused (the guest never executes) and destroyed afterwards whatever happened, so it ends shut off
   * as it was. libvirt 9.0 cannot blockcommit offline and the SSH user cannot qemu-img the overlays.
   */
  async function withQemuRunning<T>(dom: string, state: string, what: string, ctx: CallContext, work: (domain: ParsedDomainXml) => Promise<T>): Promise<T> {
    if (state === 'running' || state === 'paused') {
      const domain = await readDomain(dom, ctx);
      // An earlier attempt started it paused for this merge and died before powering it off again.
      if (state === 'paused' && domain.startedPausedForMerge) {
        ctx.log.info({ dom }, 'domain was started paused for a merge by an earlier attempt; it is powered off again afterwards');
        return thenPowerOff(dom, what, ctx, () => work(domain));
      }
      return work(domain);
    }
    if (state !== 'shut off') throw err('conflict', `${what}: domain ${dom} is ${state}; merging overlays needs it running, paused or shut off`);
    if (options.offlineMerge === 'refuse') {
      throw err('conflict', `${what}: merging external overlays needs a running domain (state: ${state}) and option offlineMerge is 'refuse'; start the VM first, or set offlineMerge: 'start-paused'`);
    }
    await virsh(['start', '--domain', dom, '--paused'], ctx, { what: `start domain ${dom} paused to merge its overlays`, mutating: true });
    return thenPowerOff(dom, what, ctx, async () => {
      const { uri, key, xml } = MERGE_MARKER;
      await virsh(['metadata', '--domain', dom, '--uri', uri, '--key', key, '--set', xml, '--live'], ctx, { what: `mark domain ${dom} as started for a merge`, mutating: true });
      return work(await readDomain(dom, ctx));
    });
  }

  /** Runs `work` on a domain started paused for it, then destroys it whatever happened, so it ends shut off. */
  async function thenPowerOff<T>(dom: string, what: string, ctx: CallContext, work: () => Promise<T>): Promise<T> {
    let finished = false;
    try {
      const out = await work();
      finished = true;
      return out;
    } finally {
      const calm: CallContext = { ...ctx, signal: new AbortController().signal };
      try {
        await virsh(['destroy', '--domain', dom], calm, { what: `power off domain ${dom} again after merging its overlays`, mutating: true });
      } catch (e) {
        ctx.log.error({ dom, err: e instanceof Error ? e.message : String(e) }, 'could not power off the domain started paused for a merge');
        // The merge is done but the domain is left paused instead of shut off: the caller must hear it.
        if (finished) throw err('internal', `${what}: done, but domain ${dom} (started paused for the merge) could not be powered off again: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  async function consolidateDomain(dom: string, ctx: CallContext): Promise<ConsolidationReport> {
    const max = options.consolidate.maxChainDepth;
    const [state, shown, snapshots] = await Promise.all([readState(dom, ctx), readDomain(dom, ctx), readSnapshots(dom, ctx)]);
    const online = state === 'running' || state === 'paused';
    const nothing = (name: string): ConsolidationReport => ({ merged: 0, message: `nothing to do: no disk of domain '${name}' has more than ${max} snapshot overlay(s) above its base` });
    // A shut-off domain's XML lacks the chain: start it (paused) only when its recorded overlays say it may be too deep.
    if (!online && !mayNeedConsolidation(shown.disks, snapshots, max)) return nothing(shown.name);
    if (online && planConsolidation(shown.disks, snapshots, max).commits.length === 0) return nothing(shown.name);
    return withQemuRunning(dom, state, `consolidate domain '${shown.name}'`, ctx, async (domain) => {
      const plan = planConsolidation(domain.disks, snapshots, max);
      if (plan.commits.length === 0) return nothing(domain.name);
      return mergeCommits(dom, domain.name, plan.commits, ctx, (snaps, merged) => staleAfter(snaps, merged).staleSnapshots);
    });
  }

  /**
   * listVms' consolidationNeeded: the snapshots are read only when the dumpxml already read shows a
   * chain deeper than maxChainDepth (a shut-off domain shows none: then when it has more external
   * snapshots than that), and the planner decides.
   */
  async function needsConsolidation(dom: string, domain: ParsedDomainXml, online: boolean, ctx: CallContext): Promise<boolean> {
    const max = options.consolidate.maxChainDepth;
    const externals = online || !domain.disks.some((d) => chainOf(d) !== null)
      ? 0
      : parseNameList((await virsh(['snapshot-list', '--domain', dom, '--external', '--name'], ctx, { what: `list external snapshots of domain ${dom}`, mutating: false })).stdout).length;
    if (!worthReadingSnapshots(domain.disks, online, max, externals)) return false;
    return consolidationNeeded(domain.disks, await readSnapshots(dom, ctx), online, max);
  }

  /** Deletes `deleted` (classifyDelete's answer for `name`) by merging their overlays, where libvirt will not. */
  async function deleteByMerge(dom: string, name: string, all: readonly Snap[], deleted: string[], ctx: CallContext): Promise<void> {
    const what = `delete snapshot '${name}' of domain ${dom}`;
    const state = await readState(dom, ctx);
    ctx.progress(2);
    await withQemuRunning(dom, state, what, ctx, async (domain) => {
      const plan = planMerge(domain.disks, all, deleted);
      if (plan.kind === 'refuse') throw err('unsupported', `${what}: ${plan.reason}`);
      return mergeCommits(dom, domain.name, plan.commits, ctx, (snaps, merged, allDone) => droppedAfterMerge(snaps, deleted, merged, allDone));
    });
  }

  const provider: KvmProvider = {
    kind: 'kvm',
    target,

    capabilities: () => structuredClone(CAPABILITIES),

    async check(ctx) {
      assertNotAborted(ctx, 'check');
      try {
        version = undefined;
        const v = await libvirtVersion(ctx);
        return { reachable: true, version: `libvirt ${v.daemon ?? v.library ?? '?'}${v.hypervisor ? `, ${v.hypervisor}` : ''}`, authOk: true } satisfies TargetHealth;
      } catch (e) {
        if (e instanceof ProviderError && e.kind === 'transient') return { reachable: false, message: e.message };
        if (e instanceof ProviderError && e.kind === 'auth') return { reachable: false, authOk: false, message: e.message };
        throw e;
      }
    },

    async listVms(ctx) {
      assertNotAborted(ctx, 'list VMs');
      const uuids = parseNameList((await virsh(['list', '--all', '--uuid'], ctx, { what: 'list domains', mutating: false })).stdout)
        .map((l) => l.trim())
        .filter((l) => UUID_RE.test(l));
      const vms = await mapLimit(uuids, READ_PARALLELISM, async (uuid): Promise<VmInfo | null> => {
        try {
          const [dom, state] = await Promise.all([readDomain(uuid, ctx), virsh(['domstate', '--domain', uuid], ctx, { what: `read the state of domain ${uuid}`, mutating: false })]);
          const { powerState, raw } = parseDomState(state.stdout);
          return {
            providerVmId: uuid.toLowerCase(),
            name: dom.name,
            powerState,
            rawPowerState: raw,
            consolidationNeeded: await needsConsolidation(uuid, dom, raw === 'running' || raw === 'paused', ctx),
            disks: dom.disks
              .filter((d) => d.device === 'disk')
              .map((d) => ({ slot: d.target, ...(d.source === null ? {} : { path: d.source }), chainDepth: d.backingChain.length })),
          };
        } catch (e) {
          if (e instanceof ProviderError && e.kind === 'not_found') return null; // undefined meanwhile
          throw e;
        }
      });
      return vms.filter((v): v is VmInfo => v !== null);
    },

    async listSnapshots(providerVmId, ctx) {
      assertNotAborted(ctx, 'list snapshots');
      return (await readSnapshots(domArg(providerVmId), ctx)).map(toProviderSnapshot);
    },

    async getSnapshot(providerVmId, providerRef, ctx) {
      return snapshotIn(await provider.listSnapshots(providerVmId, ctx), providerRef, () => err('not_found', `domain ${providerVmId} has no snapshot '${providerRef}'`));
    },

    async createSnapshot(providerVmId, spec, ctx) {
      assertNotAborted(ctx, 'create snapshot');
      const dom = domArg(providerVmId);
      validateSpec(spec);

      // libvirt names are unique and a job's retry asks for the same name, so one lookup by name
      // finds an earlier attempt's snapshot (its marker) or a foreign one — O(1), not a full listing.
      // The reads a create needs go out together: each virsh run costs a round trip and a process start.
      const external = spec.mode === 'crash' || spec.mode === 'quiesced' || (spec.mode === 'memory' && options.snapshotStyle === 'external');
      const [earlier, state, domain] = await Promise.all([
        readSnapshot(dom, spec.name, ctx),
        readState(dom, ctx),
        external ? readDomain(dom, ctx) : Promise.resolve(null),
      ]);
      if (earlier) {
        if (splitMarker(earlier.description).marker === spec.marker) return toProviderSnapshot({ ...earlier, current: (await currentName(dom, ctx)) === earlier.name });
        throw err('conflict', `domain ${dom} already has a snapshot named '${spec.name}' (libvirt names are unique)`);
      }
      const online = state === 'running' || state === 'paused';
      const domainXml = (): ParsedDomainXml => {
        if (!domain) throw err('internal', `create snapshot of domain ${dom}: the domain XML was not read`);
        return domain;
      };
      switch (spec.mode) {
        case 'memory': {
          if (!online) throw err('conflict', `memory snapshot of domain ${dom} needs a running domain (state: ${state}); use mode 'offline' or 'crash' for a domain that is not running`);
          if (options.snapshotStyle === 'internal') {
            await create(dom, spec, [], ctx);
          } else {
            const d = domainXml();
            const leaf = d.disks.find((x) => x.device === 'disk' && x.source !== null)?.source;
            if (leaf === undefined || leaf === null) throw err('unsupported', `domain ${dom} has no file disk to place the memory file next to`);
            const mem = await freshPath((a) => memoryPath(leaf, d.name, spec.name, spec.marker, a), ctx);
            await create(dom, spec, ['--memspec', `file=${specValue(mem)},snapshot=external`, ...(await diskSpecs(d, spec, ctx))], ctx);
          }
          break;
        }
        case 'crash': {
          const d = domainXml();
          await create(dom, spec, ['--disk-only', ...(await diskSpecs(d, spec, ctx))], ctx);
          break;
        }
        case 'quiesced': {
          if (state !== 'running') throw err('conflict', `quiesced snapshot of domain ${dom} needs a running guest with qemu-guest-agent (state: ${state})`);
          const d = domainXml();
          await create(dom, spec, ['--disk-only', '--quiesce', ...(await diskSpecs(d, spec, ctx))], ctx);
          break;
        }
        case 'offline': {
          if (state === 'shut off') {
            await create(dom, spec, [], ctx);
            break;
          }
          if (state !== 'running') throw err('conflict', `offline snapshot: domain ${dom} is ${state}; resume it or shut it down first`);
          await virsh(['shutdown', '--domain', dom], ctx, { what: `shut down domain ${dom}`, mutating: true });
          try {
            await waitUntilOff(dom, ctx);
            await create(dom, spec, [], ctx);
          } catch (e) {
            // Put the domain back the way we found it; the snapshot error is what the caller needs to see.
            const calm: CallContext = { ...ctx, signal: new AbortController().signal };
            if ((await readState(dom, calm).catch(() => 'unknown')) === 'shut off') {
              await start(dom, calm).catch((startErr: unknown) =>
                ctx.log.error({ dom, err: startErr instanceof Error ? startErr.message : String(startErr) }, 'could not restart the domain after a failed offline snapshot'),
              );
            }
            throw e;
          }
          await start(dom, ctx);
          break;
        }
      }
      const made = await createdSnapshot(dom, spec, ctx);
      ctx.progress(100);
      return made;
    },

    async revertSnapshot(providerVmId, providerRef, ctx) {
      assertNotAborted(ctx, 'revert');
      const dom = domArg(providerVmId);
      const all = await readSnapshots(dom, ctx);
      const snap = all.find((s) => s.name === providerRef);
      if (!snap) throw err('not_found', `domain ${dom} has no snapshot '${providerRef}'`);
      if (isNumericName(snap.name)) {
        throw err('unsupported', `snapshot '${snap.name}' has a purely numeric name: libvirt would revert to the QEMU snapshot with that id instead; rename it first`);
      }
      if (isExternal(snap)) {
        const v = await libvirtVersion(ctx);
        if (!versionAtLeast(v.daemon ?? v.library, 9, 9)) {
          throw err('unsupported', `snapshot '${snap.name}' is external: libvirt ${v.daemon ?? v.library ?? '?'} cannot revert external snapshots (added in 9.9)`);
        }
      } else if (descendants(all, snap.name).some((d) => isExternal(d))) {
        throw err('unsupported', `snapshot '${snap.name}' is internal but has external descendants: reverting would silently invalidate their overlay files`);
      }
      ctx.progress(5);
      await virsh(['snapshot-revert', '--domain', dom, '--snapshotname', snap.name], ctx, { what: `revert domain ${dom} to snapshot '${snap.name}'`, mutating: true });
      const { powerState, raw } = await readDomState(dom, ctx);
      ctx.progress(100);
      return { powerState, rawPowerState: raw };
    },

    async deleteSnapshot(providerVmId, providerRef, options: DeleteOptions, ctx) {
      assertNotAborted(ctx, 'delete');
      const dom = domArg(providerVmId);
      const remove = async (args: string[]): Promise<void> => {
        ctx.progress(5);
        try {
          await virsh(args, ctx, { what: `delete snapshot '${providerRef}' of domain ${dom}`, mutating: true });
        } catch (e) {
          if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) return; // deleted meanwhile
          throw e;
        }
        ctx.progress(100);
      };
      // An internal snapshot without children (the common case) needs no view of the rest of the
      // tree: two reads, side by side, instead of one virsh run per snapshot of the domain.
      const [one, childLines] = await Promise.all([readSnapshot(dom, providerRef, ctx), childNames(dom, providerRef, ctx)]);
      if (!one) return; // already gone
      if (!isExternal(one) && childLines !== null && childLines.length === 0) {
        return remove(['snapshot-delete', '--domain', dom, '--snapshotname', one.name]);
      }
      const all = await readSnapshots(dom, ctx);
      const snap = all.find((s) => s.name === providerRef);
      if (!snap) return; // already gone
      // Planner: merge-plan.ts. libvirt's own delete where it can (internal; >= 9.0: an external
      // snapshot in a linear external chain); a manual merge where it refuses but it is safe.
      const involvesExternal = isExternal(snap) || (options.children && descendants(all, snap.name).some((d) => isExternal(d)));
      const v = involvesExternal ? await libvirtVersion(ctx) : null;
      const decision = classifyDelete(all, snap.name, options.children, versionAtLeast(v?.daemon ?? v?.library ?? null, 9, 0));
      if (decision.kind === 'refuse') throw err('unsupported', `delete snapshot '${snap.name}' of domain ${dom}: ${decision.reason}`);
      if (decision.kind === 'merge') return deleteByMerge(dom, snap.name, all, decision.deleted, ctx);
      const args = ['snapshot-delete', '--domain', dom, '--snapshotname', snap.name, ...(decision.children ? ['--children'] : [])];
      await remove(args);
    },

    async consolidate(providerVmId, ctx): Promise<ConsolidationReport> {
      assertNotAborted(ctx, 'consolidate');
      return consolidateDomain(domArg(providerVmId), ctx);
    },

    async close() {
      await transport.close();
    },
  };
  return provider;
}

/** Registry entry point (providers/index.ts). */
export default function kvmFactory(target: string, options: Record<string, unknown>, deps: { log: Logger }): SnapshotProvider {
  return createKvmProvider(target, options, deps);
}
