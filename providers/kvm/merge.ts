/**
 * The blockcommit merge, shared by consolidate and by the deletes libvirt will not do itself
 * (planners: consolidation.ts, merge-plan.ts).
 *
 * mergeCommits: the chain is read from dumpxml before each commit (must be as planned) and after
 * (must be as expected), `blockcommit --wait --verbose --delete` with progress from the `--verbose`
 * percentages; a disk with a block job already running is `conflict`. Snapshots whose data was
 * merged away lose their metadata (`snapshot-delete --metadata`, deepest first), also after a failure
 * part-way. Files still there afterwards (libvirt-qemu-owned: the SSH user cannot delete them) and
 * external memory files of the dropped snapshots are named in the report. Cancelled mid-commit:
 * `blockjob --abort`, chain checked again.
 *
 * withQemuRunning: libvirt 9.0 cannot blockcommit offline and the SSH user cannot qemu-img the 0600
 * overlays, so with offlineMerge 'start-paused' a shut-off domain is started `--paused` (the guest
 * never runs), marked with live-only metadata (MERGE_MARKER), re-planned from the running XML, merged,
 * and `destroy`ed again whatever happened; 'refuse' answers `conflict` naming the option. A retry
 * after a crash mid-merge finds the domain paused *and marked*, finishes, and powers it off.
 */
import { ProviderError, type CallContext, type ConsolidationReport } from '../contract.ts';
import type { RunResult } from '../shared/command-runner.ts';
import type { Guards } from '../shared/guards.ts';
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
import { NO_SNAPSHOT } from './errors.ts';
import { droppedAfterMerge, planMerge } from './merge-plan.ts';
import type { KvmOptions } from './options.ts';
import { MERGE_MARKER, type ParsedDomainXml } from './parse.ts';
import type { Snap, VirshHost } from './virsh.ts';

/** Which snapshots lose their metadata after a merge: (snapshots now, files merged away, every commit done). */
export type DroppedAfter = (snapshots: readonly Snap[], mergedFiles: readonly string[], allDone: boolean) => string[];

export interface Merger {
  mergeCommits(dom: string, domainName: string, commits: readonly DiskCommit[], ctx: CallContext, dropped: DroppedAfter): Promise<ConsolidationReport>;
  withQemuRunning<T>(dom: string, state: string, what: string, ctx: CallContext, work: (domain: ParsedDomainXml) => Promise<T>): Promise<T>;
  consolidateDomain(dom: string, ctx: CallContext): Promise<ConsolidationReport>;
  /** listVms' consolidationNeeded (reads the snapshots only when the XML already read says it may be). */
  needsConsolidation(dom: string, domain: ParsedDomainXml, online: boolean, ctx: CallContext): Promise<boolean>;
  /** Deletes `deleted` (classifyDelete's answer for `name`) by merging their overlays, where libvirt will not. */
  deleteByMerge(dom: string, name: string, all: readonly Snap[], deleted: string[], ctx: CallContext): Promise<void>;
}

const calmOf = (ctx: CallContext): CallContext => ({ ...ctx, signal: new AbortController().signal });
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export function createMerger(host: VirshHost, options: Pick<KvmOptions, 'uri' | 'offlineMerge' | 'consolidate'>, guards: Pick<Guards, 'err'>): Merger {
  const { err } = guards;

  /** A disk's chain now, active first, from dumpxml (a non-root user cannot qemu-img the overlays). */
  async function chainNow(dom: string, disk: string, ctx: CallContext): Promise<string[] | null> {
    const d = (await host.readDomain(dom, ctx)).disks.find((x) => x.target === disk);
    return d ? chainOf(d) : null;
  }

  async function abortBlockJob(dom: string, disk: string, ctx: CallContext): Promise<void> {
    const call = { what: `abort the block job on disk ${disk} of domain ${dom}`, mutating: true };
    let r: RunResult;
    try {
      r = await host.exec(['virsh', '-c', options.uri, 'blockjob', '--domain', dom, '--path', disk, '--abort'], ctx, call);
    } catch (e) {
      ctx.log.error({ dom, disk, err: messageOf(e) }, 'could not abort the block job');
      return;
    }
    if (r.exitCode !== 0 && !/does not have an active block job|No current block job/i.test(r.stderr)) {
      ctx.log.error({ dom, disk, err: host.failure(r, call).message }, 'could not abort the block job');
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
      result = await host.exec(['virsh', '-c', options.uri, ...commitArgs(dom, c)], ctx, call, {
        timeoutMs: options.consolidate.timeoutSec * 1000,
        onStderr: (chunk) => {
          const pct = parseCommitProgress(chunk);
          if (pct !== null) onPercent(pct);
        },
      });
    } catch (failure) {
      const calm = calmOf(ctx);
      await abortBlockJob(dom, c.disk, calm);
      const now = await chainNow(dom, c.disk, calm).catch(() => null);
      if (now && sameChain(now, c.after)) return; // finished before the abort reached it
      if (now && sameChain(now, c.before)) {
        throw err('transient', `${call.what}: ${ctx.signal.aborted ? 'cancelled' : 'interrupted'}; the block job was aborted and the chain is unchanged`, { retry: 'transient', cause: failure });
      }
      throw err('internal', `${call.what}: interrupted, and the chain is now ${now ? now.join(' <- ') : 'unreadable'} (expected ${c.before.join(' <- ')} or ${c.after.join(' <- ')})`, { cause: failure });
    }
    if (result.exitCode !== 0) throw host.failure(result, call);
    const now = await chainNow(dom, c.disk, ctx);
    if (!now || !sameChain(now, c.after)) {
      throw err('internal', `${call.what}: virsh reported success but the chain is ${now ? now.join(' <- ') : 'gone'} (expected ${c.after.join(' <- ')})`);
    }
  }

  /** `conflict` when a disk to commit already has a block job (ours would fail half-way through). */
  async function assertNoBlockJobs(dom: string, domainName: string, commits: readonly DiskCommit[], ctx: CallContext): Promise<void> {
    for (const disk of new Set(commits.map((c) => c.disk))) {
      const info = await host.virsh(['blockjob', '--domain', dom, '--path', disk, '--info'], ctx, { what: `read block jobs of disk ${disk} of domain ${dom}`, mutating: false });
      if (blockJobActive(info.stdout)) throw err('conflict', `disk ${disk} of domain '${domainName}' already has a block job running; try again when it has finished`);
    }
  }

  /**
   * Runs `commits` in order (each disk's chain checked against the plan before, and by commitDisk
   * after), then removes the metadata of the snapshots `dropped` names (deepest first) — also after a
   * failure, for those whose data is gone — and names every file left behind.
   */
  async function mergeCommits(dom: string, domainName: string, commits: readonly DiskCommit[], ctx: CallContext, dropped: DroppedAfter): Promise<ConsolidationReport> {
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
    const calm = calmOf(ctx);
    const mergedFiles = done.flatMap((c) => c.merged);
    const snapshots = await host.readSnapshots(dom, calm).catch(() => [] as Snap[]);
    const names = dropped(snapshots, mergedFiles, failure === null);
    const memoryFiles = names.flatMap((n) => {
      const f = snapshots.find((s) => s.name === n)?.memoryFile ?? null;
      return f === null ? [] : [f];
    });
    const metadataLeft: string[] = [];
    for (const name of names) {
      try {
        await host.virsh(['snapshot-delete', '--domain', dom, '--snapshotname', name, '--metadata'], calm, { what: `remove the stale metadata of snapshot '${name}' of domain ${dom}`, mutating: true });
      } catch (e) {
        if (e instanceof ProviderError && e.nativeCode === NO_SNAPSHOT) continue;
        ctx.log.error({ dom, snapshot: name, err: messageOf(e) }, 'could not remove stale snapshot metadata');
        metadataLeft.push(name);
      }
    }
    // `--delete` has libvirtd (root) remove the merged images. Files it left behind, and external memory
    // files of the dropped snapshots, belong to libvirt-qemu/root: the SSH user cannot delete them, so
    // they are named in the report instead of pretending they are gone.
    const unused: string[] = [];
    for (const f of [...mergedFiles, ...memoryFiles]) {
      if (await host.fileExists(f, calm).catch(() => true)) unused.push(f);
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
   * as it was.
   */
  async function withQemuRunning<T>(dom: string, state: string, what: string, ctx: CallContext, work: (domain: ParsedDomainXml) => Promise<T>): Promise<T> {
    if (state === 'running' || state === 'paused') {
      const domain = await host.readDomain(dom, ctx);
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
    await host.virsh(['start', '--domain', dom, '--paused'], ctx, { what: `start domain ${dom} paused to merge its overlays`, mutating: true });
    return thenPowerOff(dom, what, ctx, async () => {
      const { uri, key, xml } = MERGE_MARKER;
      await host.virsh(['metadata', '--domain', dom, '--uri', uri, '--key', key, '--set', xml, '--live'], ctx, { what: `mark domain ${dom} as started for a merge`, mutating: true });
      return work(await host.readDomain(dom, ctx));
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
      try {
        await host.virsh(['destroy', '--domain', dom], calmOf(ctx), { what: `power off domain ${dom} again after merging its overlays`, mutating: true });
      } catch (e) {
        ctx.log.error({ dom, err: messageOf(e) }, 'could not power off the domain started paused for a merge');
        // The merge is done but the domain is left paused instead of shut off: the caller must hear it.
        if (finished) throw err('internal', `${what}: done, but domain ${dom} (started paused for the merge) could not be powered off again: ${messageOf(e)}`);
      }
    }
  }

  return {
    mergeCommits,
    withQemuRunning,

    async consolidateDomain(dom, ctx) {
      const max = options.consolidate.maxChainDepth;
      const [state, shown, snapshots] = await Promise.all([host.readState(dom, ctx), host.readDomain(dom, ctx), host.readSnapshots(dom, ctx)]);
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
    },

    async needsConsolidation(dom, domain, online, ctx) {
      const max = options.consolidate.maxChainDepth;
      // A shut-off domain shows no chain: then its external snapshots say whether it may be too deep.
      const externals = online || !domain.disks.some((d) => chainOf(d) !== null) ? 0 : await host.externalSnapshotCount(dom, ctx);
      if (!worthReadingSnapshots(domain.disks, online, max, externals)) return false;
      return consolidationNeeded(domain.disks, await host.readSnapshots(dom, ctx), online, max);
    },

    async deleteByMerge(dom, name, all, deleted, ctx) {
      const what = `delete snapshot '${name}' of domain ${dom}`;
      const state = await host.readState(dom, ctx);
      ctx.progress(2);
      await withQemuRunning(dom, state, what, ctx, async (domain) => {
        const plan = planMerge(domain.disks, all, deleted);
        if (plan.kind === 'refuse') throw err('unsupported', `${what}: ${plan.reason}`);
        return mergeCommits(dom, domain.name, plan.commits, ctx, (snaps, merged, allDone) => droppedAfterMerge(snaps, deleted, merged, allDone));
      });
    },
  };
}
