/**
 * KVM consolidation: the pure planner (on captured and synthetic chains), and the adapter's control
 * flow around blockcommit against a scripted virsh (states and failures the real lab cannot produce
 * on demand: a shut-off domain with work to do, a block job already running, a cancel mid-commit,
 * a commit that reports success but leaves an unexpected chain).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blockJobActive, commitArgs, mayNeedConsolidation, parseCommitProgress, planConsolidation, staleAfter, type PlannedSnapshot } from '../../providers/kvm/consolidation.ts';
import { createKvmProvider } from '../../providers/kvm/index.ts';
import { parseDomainXml, parseSnapshotXml } from '../../providers/kvm/parse.ts';
import { parseOptions } from '../../providers/kvm/options.ts';
import type { CallContext } from '../../providers/contract.ts';
import { CommandError, type CommandRunner, type RunOptions, type RunResult } from '../../providers/shared/command-runner.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kvm');
const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');

const disk = (target: string, chain: string[], device = 'disk') => ({ target, device, source: chain[0] ?? null, backingChain: chain.slice(1) });
const ext = (name: string, parent: string | null, files: Record<string, string>, memoryFile: string | null = null): PlannedSnapshot => ({
  name,
  parent,
  memoryFile,
  disks: Object.entries(files).map(([d, source]) => ({ name: d, snapshot: 'external', source, driverType: 'qcow2' })),
});

t.test('planner: captured 2-deep chain (real dumpxml + snapshot XML)', async (t) => {
  const dom = parseDomainXml(fixture('dumpxml-after-external.xml'));
  const ext1 = parseSnapshotXml(fixture('snapshot-dumpxml-external-disk-only.xml'));
  t.equal(ext1.disks.find((d) => d.name === 'vda')?.source, '/tmp/kvmcap/cap-db01.ext1');
  // ext2 was captured as a create only: its XML is ext1's with its own overlay and parent.
  const ext2 = { ...ext1, name: 'ext2', parent: 'ext1', disks: ext1.disks.map((d) => (d.name === 'vda' ? { ...d, source: '/tmp/kvmcap/cap-db01.ext2' } : d)) };
  const vda = dom.disks.find((d) => d.target === 'vda');
  t.same(vda?.backingChain.length, 2, 'fixture is two overlays deep');
  t.same(planConsolidation(dom.disks, [ext1, ext2], 2).commits, [], 'depth 2 allowed: nothing to do');
  t.same(planConsolidation(dom.disks, [ext1], 0).commits, [], 'an active image no snapshot created is not ours to merge');
  const plan = planConsolidation(dom.disks, [ext1, ext2], 1);
  t.equal(plan.commits.length, 1);
  const c = plan.commits[0];
  t.same(c?.merged, ['/tmp/kvmcap/cap-db01.ext1'], 'the older overlay is merged');
  t.same(c?.after, ['/tmp/kvmcap/cap-db01.ext2', '/tmp/kvmcap/cap-db01.qcow2'], 'the newest overlay stays, on the base');
  t.equal(c?.active, false);
  t.same(plan.staleSnapshots, ['ext1'], 'ext1 created the merged overlay');
});

t.test('planner: depth rules, active vs inactive commit, internal-only and cdrom disks', async (t) => {
  const chain = ['/i/s3', '/i/s2', '/i/s1', '/i/base'];
  const snaps = [ext('s1', null, { vda: '/i/s1' }), ext('s2', 's1', { vda: '/i/s2' }, '/i/s2.mem'), ext('s3', 's2', { vda: '/i/s3' })];
  const one = planConsolidation([disk('vda', chain)], snaps, 1);
  t.same(one.commits, [{ disk: 'vda', before: chain, after: ['/i/s3', '/i/base'], active: false, top: '/i/s2', base: '/i/base', merged: ['/i/s2', '/i/s1'] }]);
  t.same(one.staleSnapshots, ['s2', 's1'], 'deepest first');
  t.same(one.staleMemoryFiles, ['/i/s2.mem']);
  t.same(commitArgs('u', one.commits[0]!), ['blockcommit', '--domain', 'u', '--path', 'vda', '--top', '/i/s2', '--base', '/i/base', '--wait', '--verbose', '--delete']);

  const zero = planConsolidation([disk('vda', chain)], snaps, 0);
  t.same(zero.commits[0]?.after, ['/i/base']);
  t.equal(zero.commits[0]?.active, true);
  t.same(zero.staleSnapshots, ['s3', 's2', 's1']);
  t.same(commitArgs('u', zero.commits[0]!).slice(5, 9), ['--active', '--pivot', '--base', '/i/base']);

  t.same(planConsolidation([disk('vda', chain)], snaps, 2).commits[0]?.merged, ['/i/s1']);
  t.same(planConsolidation([disk('vda', chain)], snaps, 3).commits, [], 'exactly at the limit: nothing');
  t.same(planConsolidation([disk('vda', ['/i/base'])], [], 0), { commits: [], staleSnapshots: [], staleMemoryFiles: [] }, 'internal-only: nothing');
  t.same(planConsolidation([disk('hdc', ['/iso/x', '/iso/y'], 'cdrom'), { target: 'hdd', device: 'cdrom', source: null, backingChain: [] }], [], 0).commits, [], 'cdroms ignored');
  t.throws(() => planConsolidation([], [], -1));
});

t.test('planner: images below the oldest snapshot overlay (a shared template) are never merged into', async (t) => {
  const chain = ['/i/s2', '/i/s1', '/i/vm.qcow2', '/tpl/debian.qcow2'];
  const snaps = [ext('s1', null, { vda: '/i/s1' }), ext('s2', 's1', { vda: '/i/s2' })];
  const plan = planConsolidation([disk('vda', chain)], snaps, 0);
  t.same(plan.commits[0]?.base, '/i/vm.qcow2');
  t.same(plan.commits[0]?.merged, ['/i/s2', '/i/s1']);
  t.same(plan.commits[0]?.after, ['/i/vm.qcow2', '/tpl/debian.qcow2'], 'the template stays below');
  t.same(planConsolidation([disk('vda', chain)], snaps, 2).commits, [], 'two snapshot overlays: within depth 2');
  t.ok(mayNeedConsolidation([disk('vda', ['/i/s2'])], snaps, 1), 'shut off, chain not shown: two overlays recorded > 1');
  t.notOk(mayNeedConsolidation([disk('vda', ['/i/s2'])], snaps, 2));
});

t.test('planner: two disks, one over the limit; snapshot stale when any of its overlays merged', async (t) => {
  const snaps = [ext('a', null, { vda: '/v/a', vdb: '/w/a' }), ext('b', 'a', { vda: '/v/b', vdb: '/w/b' }), ext('int', null, {})];
  const plan = planConsolidation([disk('vda', ['/v/b', '/v/a', '/v/base']), disk('vdb', ['/w/b', '/w/base'])], snaps, 1);
  t.same(plan.commits.map((c) => c.disk), ['vda']);
  t.same(plan.staleSnapshots, ['a']);
  t.same(staleAfter(snaps, []).staleSnapshots, [], 'nothing merged, nothing stale');
  const cyclic = [ext('x', 'y', { vda: '/f' }), ext('y', 'x', {})];
  t.same(staleAfter(cyclic, ['/f']).staleSnapshots, ['x'], 'a parent loop does not hang');
});

t.test('progress and block job output', async (t) => {
  t.equal(parseCommitProgress('\rBlock commit: [  0 %]\rBlock commit: [ 42 %]'), 42);
  t.equal(parseCommitProgress('\rBlock commit: [100 %]'), 100);
  t.equal(parseCommitProgress('nothing'), null);
  t.notOk(blockJobActive('No current block job for vda\n'));
  t.ok(blockJobActive('Active Block Commit: [ 12 %]\n'));
  t.ok(blockJobActive('    Bandwidth limit: 1 bytes/s (1.000 B/s)\n\n'), 'a job that has not moved yet (real output)');
});

t.test('options', async (t) => {
  t.same(parseOptions('x', {}).consolidate, { maxChainDepth: 1, timeoutSec: 3600 });
  t.equal(parseOptions('x', {}).offlineMerge, 'start-paused');
  t.equal(parseOptions('x', { offlineMerge: 'refuse' }).offlineMerge, 'refuse');
  t.throws(() => parseOptions('x', { offlineMerge: 'qemu-img' }), /offlineMerge/);
  t.same(parseOptions('x', { consolidate: { maxChainDepth: 0 } }).consolidate.maxChainDepth, 0);
  t.throws(() => parseOptions('x', { consolidate: { maxChainDepth: -1 } }), /maxChainDepth/);
  t.throws(() => parseOptions('x', { consolidate: { depth: 1 } }), /consolidate\.depth/);
});

// ---------------------------------------------------------------------------------------------
// adapter flow against a scripted virsh

const UUID = '11111111-2222-3333-4444-555555555555';
const log = silentLogger();

interface FakeHost {
  state: string;
  chain: string[];
  snaps: PlannedSnapshot[];
  files: Set<string>;
  jobRunning: boolean;
  calls: string[][];
  /** libvirt shows a shut-off domain's active image only, no backing chain. */
  hideChainWhenOff?: boolean;
  /** Live-only metadata set by `metadata --live --set` (gone on destroy, as libvirt's). */
  liveMetadata?: string;
  /** Called for blockcommit instead of the default instant success. */
  onCommit?: (argv: readonly string[], opts: RunOptions) => Promise<RunResult>;
}

function domXml(h: FakeHost): string {
  let inner = '<backingStore/>';
  const below = h.hideChainWhenOff && h.state === 'shut off' ? [] : h.chain.slice(1);
  for (const f of [...below].reverse()) inner = `<backingStore type='file'><source file='${f}'/>${inner}</backingStore>`;
  const meta = h.liveMetadata && h.state !== 'shut off' ? `<metadata>${h.liveMetadata}</metadata>` : '';
  return `<domain type='qemu'><name>d1</name><uuid>${UUID}</uuid>${meta}<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${h.chain[0]}'/>${inner}<target dev='vda'/></disk></devices></domain>`;
}
function snapXml(s: PlannedSnapshot): string {
  const disks = s.disks.map((d) => `<disk name='${d.name}' snapshot='external' type='file'><driver type='qcow2'/><source file='${d.source}'/></disk>`).join('');
  const mem = s.memoryFile ? `<memory snapshot='external' file='${s.memoryFile}'/>` : `<memory snapshot='no'/>`;
  return `<domainsnapshot><name>${s.name}</name><state>disk-snapshot</state><creationTime>1700000000</creationTime>${s.parent ? `<parent><name>${s.parent}</name></parent>` : ''}${mem}<disks>${disks}</disks></domainsnapshot>`;
}
const ok = (stdout = ''): RunResult => ({ exitCode: 0, stdout, stderr: '' });
const failed = (stderr: string): RunResult => ({ exitCode: 1, stdout: '', stderr });

/** Applies a commit the way libvirt does (with --delete: the merged files disappear). */
function applyCommit(h: FakeHost, argv: readonly string[]): void {
  const top = argv.includes('--active') ? h.chain[0] : argv[argv.indexOf('--top') + 1];
  const base = argv[argv.indexOf('--base') + 1] ?? '';
  const from = h.chain.indexOf(top ?? '');
  const to = h.chain.indexOf(base);
  for (const f of h.chain.slice(from, to)) h.files.delete(f);
  h.chain = [...h.chain.slice(0, from), ...h.chain.slice(to)];
}

function fakeRunner(h: FakeHost): CommandRunner {
  return {
    async run(argv, opts = {}) {
      h.calls.push([...argv]);
      if (argv[0] === 'test') return h.files.has(argv[2] ?? '') ? ok() : failed('');
      const [cmd, ...rest] = argv.slice(3);
      const arg = (flag: string) => rest[rest.indexOf(flag) + 1] ?? '';
      switch (cmd) {
        case 'list':
          return ok(`${UUID}\n\n`);
        case 'dumpxml':
          return ok(domXml(h));
        case 'domstate':
          return ok(`${h.state}\n\n`);
        case 'start':
          if (h.state !== 'shut off') return failed('error: Requested operation is not valid: domain is already active\n');
          h.state = rest.includes('--paused') ? 'paused' : 'running';
          return ok();
        case 'destroy':
          h.state = 'shut off';
          delete h.liveMetadata;
          return ok();
        case 'metadata': {
          if (h.state === 'shut off' || !rest.includes('--live') || !rest.includes('--set')) return failed(`error: unexpected metadata ${rest.join(' ')}\n`);
          const key = arg('--key');
          h.liveMetadata = arg('--set').replace(/^<([\w-]+)/, `<${key}:$1 xmlns:${key}="${arg('--uri')}"`);
          return ok('Metadata modified\n\n');
        }
        case 'snapshot-list':
          return ok(`${h.snaps.map((s) => s.name).join('\n')}\n\n`);
        case 'snapshot-dumpxml': {
          const s = h.snaps.find((x) => x.name === arg('--snapshotname'));
          return s ? ok(snapXml(s)) : failed(`error: Domain snapshot not found: no domain snapshot with matching name '${arg('--snapshotname')}'\n`);
        }
        case 'snapshot-current':
          return ok(`${h.snaps.at(-1)?.name ?? ''}\n`);
        case 'snapshot-delete': {
          const name = arg('--snapshotname');
          const gone = h.snaps.find((s) => s.name === name);
          h.snaps = h.snaps.filter((s) => s.name !== name).map((s) => (s.parent === name ? { ...s, parent: gone?.parent ?? null } : s));
          return ok(`Domain snapshot ${name} deleted\n`);
        }
        case 'blockjob':
          if (rest.includes('--abort')) {
            const was = h.jobRunning;
            h.jobRunning = false;
            return was ? ok() : failed('error: invalid argument: disk vda does not have an active block job\n');
          }
          return ok(h.jobRunning ? 'Active Block Commit: [ 10 %]\n' : 'No current block job for vda\n');
        case 'blockcommit':
          if (h.state !== 'running' && h.state !== 'paused') return failed('error: Requested operation is not valid: domain is not running\n');
          if (h.onCommit) return h.onCommit(argv, opts);
          opts.onStderr?.('\rBlock commit: [ 50 %]');
          opts.onStderr?.('\rBlock commit: [100 %]');
          applyCommit(h, argv);
          return ok(argv.includes('--pivot') ? '\nSuccessfully pivoted\n' : '\nCommit complete\n');
        default:
          return failed(`error: unexpected ${String(cmd)}\n`);
      }
    },
  };
}

function host(over: Partial<FakeHost> = {}): FakeHost {
  const chain = ['/i/s3', '/i/s2', '/i/s1', '/i/base'];
  return {
    state: 'running',
    chain,
    snaps: [ext('s1', null, { vda: '/i/s1' }), ext('s2', 's1', { vda: '/i/s2' }), ext('s3', 's2', { vda: '/i/s3' })],
    files: new Set(chain),
    jobRunning: false,
    calls: [],
    ...over,
  };
}

function ctxWith(signal = new AbortController().signal): CallContext & { seen: number[] } {
  const seen: number[] = [];
  return { signal, log, seen, progress: (p) => seen.push(p) };
}

const provider = (h: FakeHost, consolidate: Record<string, unknown> = {}) =>
  createKvmProvider('fake', { consolidate }, { log, runner: fakeRunner(h) });

t.test('adapter: merges, verifies, drops stale metadata, reports progress', async (t) => {
  const h = host();
  const p = provider(h);
  t.equal(p.capabilities().consolidate, true);
  const ctx = ctxWith();
  const r = await p.consolidate(UUID, ctx);
  t.equal(r.merged, 2);
  t.same(h.chain, ['/i/s3', '/i/base']);
  t.same(h.snaps.map((s) => [s.name, s.parent]), [['s3', null]]);
  t.match(r.message, /vda 3 -> 1 overlays/);
  t.match(r.message, /'s2', 's1'/);
  t.match(r.message, /no unused files left/);
  t.ok(ctx.seen.includes(100) && ctx.seen.some((x) => x > 5 && x < 90), `progress ${ctx.seen.join(',')}`);
  t.same([...ctx.seen].sort((a, b) => a - b), ctx.seen, 'progress never goes back');
  const deletes = h.calls.filter((c) => c[3] === 'snapshot-delete');
  t.ok(deletes.every((c) => c.includes('--metadata')), 'metadata-only deletes');
  const again = await p.consolidate(UUID, ctxWith());
  t.same(again.merged, 0, 'second run: nothing to do');
  t.match(again.message, /nothing to do/);
});

t.test('adapter: files libvirt did not delete are named, not hidden', async (t) => {
  const h = host();
  h.onCommit = async (argv) => {
    applyCommit(h, argv);
    h.files.add('/i/s2'); // still there (e.g. libvirt could not remove it)
    return ok('\nCommit complete\n');
  };
  const r = await provider(h).consolidate(UUID, ctxWith());
  t.match(r.message, /no longer used.*\/i\/s2/);
  t.notMatch(r.message, /\/i\/s1/);
});

t.test('adapter: shut-off domain is merged started paused and ends shut off; offlineMerge refuse is conflict', async (t) => {
  const h = host({ state: 'shut off', hideChainWhenOff: true });
  const r = await provider(h).consolidate(UUID, ctxWith());
  t.equal(r.merged, 2, 're-planned from the running XML');
  t.same(h.chain, ['/i/s3', '/i/base']);
  t.equal(h.state, 'shut off', 'ends shut off');
  const verbs = h.calls.map((c) => c[3]);
  t.ok(h.calls.some((c) => c[3] === 'start' && c.includes('--paused')), 'started paused');
  t.ok(verbs.indexOf('start') < verbs.indexOf('blockcommit') && verbs.lastIndexOf('destroy') > verbs.lastIndexOf('blockcommit'), 'commit between start and destroy');
  t.ok(verbs.indexOf('start') < verbs.indexOf('metadata') && verbs.indexOf('metadata') < verbs.indexOf('blockcommit'), 'marked (live) after the start, before merging');
  t.equal(h.liveMetadata, undefined, 'the mark went with the destroy');

  const failing = host({ state: 'shut off', hideChainWhenOff: true });
  failing.onCommit = async () => failed('error: internal error: boom\n');
  t.equal((await rejection(provider(failing).consolidate(UUID, ctxWith()))).kind, 'internal');
  t.equal(failing.state, 'shut off', 'destroyed also after a failed merge');

  const refused = host({ state: 'shut off', hideChainWhenOff: true });
  const e = await rejection(createKvmProvider('fake', { offlineMerge: 'refuse' }, { log, runner: fakeRunner(refused) }).consolidate(UUID, ctxWith()));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /offlineMerge.*start the VM first/);
  t.notOk(refused.calls.some((c) => c[3] === 'start' || c[3] === 'blockcommit'), 'not started');

  const flat = host({ state: 'shut off', chain: ['/i/base'], snaps: [] });
  t.same((await provider(flat).consolidate(UUID, ctxWith())).merged, 0);
  const one = host({ state: 'shut off', chain: ['/i/s1', '/i/base'], hideChainWhenOff: true, snaps: [ext('s1', null, { vda: '/i/s1' })] });
  t.same((await provider(one).consolidate(UUID, ctxWith())).merged, 0, 'one overlay recorded, limit 1: nothing to do');
  t.notOk(one.calls.some((c) => c[3] === 'start'), 'not started when nothing may be needed');
});

t.test('adapter: listVms consolidationNeeded', async (t) => {
  const deep = host();
  t.equal((await provider(deep).listVms(ctxWith()))[0]?.consolidationNeeded, true, '3 overlays > 1');
  t.equal((await provider(deep).listVms(ctxWith()))[0]?.consolidationNeeded, true);
  await provider(deep).consolidate(UUID, ctxWith());
  t.equal((await provider(deep).listVms(ctxWith()))[0]?.consolidationNeeded, false, 'false after consolidate');
  const shallow = host({ chain: ['/i/s1', '/i/base'], snaps: [ext('s1', null, { vda: '/i/s1' })] });
  const p = provider(shallow);
  t.equal((await p.listVms(ctxWith()))[0]?.consolidationNeeded, false);
  t.notOk(shallow.calls.some((c) => c[3] === 'snapshot-list'), 'a shallow chain reads no snapshots');
  const off = host({ state: 'shut off', hideChainWhenOff: true });
  t.equal((await provider(off).listVms(ctxWith()))[0]?.consolidationNeeded, true, 'shut off: from the recorded overlays');
});

t.test('adapter: a block job already running is conflict, nothing touched', async (t) => {
  const h = host({ jobRunning: true });
  const e = await rejection(provider(h).consolidate(UUID, ctxWith()));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /block job/);
  t.equal(h.calls.filter((c) => c[3] === 'blockcommit' || c[3] === 'snapshot-delete').length, 0);
});

t.test('adapter: cancelled mid-commit → job aborted, chain unchanged, transient', async (t) => {
  const h = host();
  const ac = new AbortController();
  h.onCommit = async (_argv, opts) => {
    h.jobRunning = true;
    opts.onStderr?.('\rBlock commit: [ 30 %]');
    ac.abort();
    throw new CommandError('aborted', 'aborted', true);
  };
  const e = await rejection(provider(h).consolidate(UUID, ctxWith(ac.signal)));
  t.equal(e.kind, 'transient');
  t.match(e.message, /cancelled.*aborted.*unchanged/);
  t.ok(h.calls.some((c) => c[3] === 'blockjob' && c.includes('--abort')), 'blockjob --abort sent');
  t.equal(h.jobRunning, false);
  t.same(h.snaps.length, 3, 'no metadata dropped');
});

t.test('adapter: cancelled after the commit finished → the cleanup still happens', async (t) => {
  const h = host();
  const ac = new AbortController();
  h.onCommit = async (argv) => {
    applyCommit(h, argv);
    ac.abort();
    throw new CommandError('aborted', 'aborted', true);
  };
  const r = await provider(h).consolidate(UUID, ctxWith(ac.signal));
  t.equal(r.merged, 2, 'done is done');
  t.same(h.snaps.map((s) => s.name), ['s3']);
});

t.test('adapter: success reported but chain unexpected → internal', async (t) => {
  const h = host();
  h.onCommit = async () => ok('\nCommit complete\n');
  const e = await rejection(provider(h).consolidate(UUID, ctxWith()));
  t.equal(e.kind, 'internal');
  t.match(e.message, /expected \/i\/s3 <- \/i\/base/);
  t.same(h.snaps.length, 3, 'metadata kept: nothing was merged');
});
