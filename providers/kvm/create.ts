/**
 * The create path of the KVM adapter: one lookup by name first (libvirt names are unique and a
 * job's retry asks for the same name, so it finds an earlier attempt's snapshot by its marker, or a
 * foreign one: conflict), then per mode:
 * - memory: running/paused domain only (a shut-off one is `conflict`: libvirt would silently take a
 *   disk-only snapshot). Internal by default; `snapshotStyle: external` writes a memory file and one
 *   overlay per disk.
 * - crash: `--disk-only --atomic`, external overlays for every disk.
 * - quiesced: as crash plus `--quiesce`; needs qemu-guest-agent (conflict saying so without it).
 * - offline: the shared sequence (shared/offline.ts) with virsh shutdown / domstate / destroy / start
 *   around an internal snapshot of the shut-off domain.
 * Overlay and memory files are named from the domain, disk and snapshot plus a hash of the marker,
 * and never over an existing file (`test -e`; libvirt accepts a 0-byte file — danger 4).
 */
import { ProviderError, type CallContext, type CreateSpec, type ProviderSnapshot } from '../contract.ts';
import { descriptionWithMarker, splitMarker } from '../shared/description-marker.ts';
import type { Guards } from '../shared/guards.ts';
import { offlineSnapshot, resumeOffline, type Clock, type OfflineSteps } from '../shared/offline.ts';
import { memoryPath, nameProblems, overlayPath, specValue } from './naming.ts';
import type { KvmOptions } from './options.ts';
import type { ParsedDomainXml } from './parse.ts';
import { toProviderSnapshot, type VirshHost } from './virsh.ts';

export interface CreateDeps {
  host: VirshHost;
  options: Pick<KvmOptions, 'snapshotStyle' | 'offline'>;
  guards: Pick<Guards, 'err'>;
  /** How often to read the domain state while waiting for a guest shutdown. */
  pollMs: number;
  clock?: Clock;
}

export type CreateSnapshot = (dom: string, spec: CreateSpec, ctx: CallContext) => Promise<ProviderSnapshot>;

export function createSnapshotPath(deps: CreateDeps): CreateSnapshot {
  const { host, options, pollMs } = deps;
  const { err } = deps.guards;

  function validateSpec(spec: CreateSpec): void {
    const problems = nameProblems(spec.name);
    if (spec.description.includes('\0')) problems.push('a description cannot contain NUL');
    if (problems.length > 0) throw err('invalid', problems.join('; '));
  }

  /** A path from `make(attempt)` that does not exist yet on the host. */
  async function freshPath(make: (attempt: number) => string, ctx: CallContext): Promise<string> {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const p = make(attempt);
      if (!(await host.fileExists(p, ctx))) return p;
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
      await host.virsh(args, ctx, { what: `create snapshot of domain ${dom}`, mutating: true });
    } catch (e) {
      // An earlier attempt of this same job (its connection dropped) may have finished meanwhile.
      if (!(e instanceof ProviderError && e.kind === 'conflict' && /already exists/.test(e.message))) throw e;
      const s = await host.readSnapshot(dom, spec.name, ctx);
      if (!s || splitMarker(s.description).marker !== spec.marker) throw e;
    }
    ctx.progress(90);
  }

  /** The snapshot just made, read back (parent, time, state). libvirt makes a new snapshot current. */
  async function createdSnapshot(dom: string, spec: CreateSpec, ctx: CallContext): Promise<ProviderSnapshot> {
    const s = await host.readSnapshot(dom, spec.name, ctx);
    if (!s || splitMarker(s.description).marker !== spec.marker) {
      throw err('internal', `create snapshot of domain ${dom}: the new snapshot is not listed`, { retry: 'uncertain' });
    }
    return toProviderSnapshot({ ...s, current: true });
  }

  /** The offline sequence's libvirt steps. */
  const offlineSteps = (dom: string): OfflineSteps => ({
    shutdown: async (ctx) => {
      await host.virsh(['shutdown', '--domain', dom], ctx, { what: `shut down domain ${dom}`, mutating: true });
    },
    readPower: async (ctx) => {
      const state = await host.readState(dom, ctx);
      return { off: state === 'shut off', raw: state, transitioning: state === 'in shutdown' };
    },
    powerOff: async (ctx) => {
      await host.virsh(['destroy', '--domain', dom], ctx, { what: `power off domain ${dom}`, mutating: true });
    },
    start: async (ctx) => {
      await host.virsh(['start', '--domain', dom], ctx, { what: `start domain ${dom}`, mutating: true });
    },
  });

  const offlineSequence = (dom: string) => ({ offline: options.offline, err, what: `offline snapshot of domain ${dom}`, pollMs, ...(deps.clock ? { clock: deps.clock } : {}) });

  return async function createSnapshot(dom, spec, ctx): Promise<ProviderSnapshot> {
    validateSpec(spec);
    if (spec.mode === 'offline' && ctx.resume) return resumeOffline(offlineSteps(dom), offlineSequence(dom), ctx, (c) => createSnapshot(dom, spec, c));
    // The reads a create needs go out together: each virsh run costs a round trip and a process start.
    const external = spec.mode === 'crash' || spec.mode === 'quiesced' || (spec.mode === 'memory' && options.snapshotStyle === 'external');
    const [earlier, state, domain] = await Promise.all([
      host.readSnapshot(dom, spec.name, ctx),
      host.readState(dom, ctx),
      external ? host.readDomain(dom, ctx) : Promise.resolve(null),
    ]);
    if (earlier) {
      if (splitMarker(earlier.description).marker === spec.marker) return toProviderSnapshot({ ...earlier, current: (await host.currentName(dom, ctx)) === earlier.name });
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
      case 'crash':
        await create(dom, spec, ['--disk-only', ...(await diskSpecs(domainXml(), spec, ctx))], ctx);
        break;
      case 'quiesced':
        if (state !== 'running') throw err('conflict', `quiesced snapshot of domain ${dom} needs a running guest with qemu-guest-agent (state: ${state})`);
        await create(dom, spec, ['--disk-only', '--quiesce', ...(await diskSpecs(domainXml(), spec, ctx))], ctx);
        break;
      case 'offline': {
        if (state === 'shut off') {
          await create(dom, spec, [], ctx);
          break;
        }
        if (state !== 'running') throw err('conflict', `offline snapshot: domain ${dom} is ${state}; resume it or shut it down first`);
        await offlineSnapshot(offlineSteps(dom), offlineSequence(dom), ctx, (c) => create(dom, spec, [], c));
        break;
      }
    }
    const made = await createdSnapshot(dom, spec, ctx);
    ctx.progress(100);
    return made;
  };
}
