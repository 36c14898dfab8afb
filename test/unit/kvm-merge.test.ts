/**
 * The blockcommit merge (providers/kvm/merge.ts) against a scripted runner keyed by argv: every
 * virsh run the merge makes is listed with its answer, in order per argv; a call the script does
 * not list fails the test, and so does a listed call that never came.
 */
import t from 'tap';
import type { CallContext } from '../../providers/contract.ts';
import { CommandError, type CommandRunner } from '../../providers/shared/command-runner.ts';
import { createGuards } from '../../providers/shared/guards.ts';
import type { DiskCommit } from '../../providers/kvm/consolidation.ts';
import { createMerger } from '../../providers/kvm/merge.ts';
import { parseOptions } from '../../providers/kvm/options.ts';
import { createVirshHost } from '../../providers/kvm/virsh.ts';
import { rejection } from '../fixtures/provider-error.ts';
import { silentLogger } from '../fixtures/fake-provider.ts';
import { failed, ok, scriptedRunner as scripted, type Reply } from '../fixtures/scripted-runner.ts';

const UUID = '11111111-2222-3333-4444-555555555555';
const URI = 'qemu:///system';
const V = (...args: string[]): string[] => ['virsh', '-c', URI, ...args];

function domXml(chain: string[]): string {
  let inner = '<backingStore/>';
  for (const f of [...chain.slice(1)].reverse()) inner = `<backingStore type='file'><source file='${f}'/>${inner}</backingStore>`;
  return `<domain type='kvm'><name>d1</name><uuid>${UUID}</uuid><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${chain[0]}'/>${inner}<target dev='vda'/></disk></devices></domain>`;
}
function snapXml(name: string, parent: string | null, overlay: string, memoryFile: string | null = null): string {
  const mem = memoryFile ? `<memory snapshot='external' file='${memoryFile}'/>` : `<memory snapshot='no'/>`;
  return `<domainsnapshot><name>${name}</name><state>disk-snapshot</state><creationTime>1700000000</creationTime>${parent ? `<parent><name>${parent}</name></parent>` : ''}${mem}<disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='${overlay}'/></disk></disks></domainsnapshot>`;
}

const log = silentLogger();
function ctxWith(signal = new AbortController().signal): CallContext & { seen: Array<[number, string | undefined]> } {
  const seen: Array<[number, string | undefined]> = [];
  return { signal, log, seen, progress: (p, m) => seen.push([p, m]) };
}

function merger(runner: CommandRunner, raw: Record<string, unknown> = {}) {
  const options = parseOptions('lab', raw);
  const guards = createGuards('kvm', 'lab');
  const host = createVirshHost(runner, options, guards);
  return createMerger(host, options, guards);
}

// s1 <- s2 <- s3 (active): merge s2 and s1 into base, keep s3.
const BEFORE = ['/i/s3', '/i/s2', '/i/s1', '/i/base'];
const AFTER = ['/i/s3', '/i/base'];
const COMMIT: DiskCommit = { disk: 'vda', before: BEFORE, after: AFTER, active: false, top: '/i/s2', base: '/i/base', merged: ['/i/s2', '/i/s1'] };
const COMMIT_ARGV = V('blockcommit', '--domain', UUID, '--path', 'vda', '--top', '/i/s2', '--base', '/i/base', '--wait', '--verbose', '--delete');
const NO_JOB: [string[], Reply] = [V('blockjob', '--domain', UUID, '--path', 'vda', '--info'), ok('No current block job for vda\n')];
const readSnapshotsAfter = (names: string[]): Array<[string[], Reply]> => [
  [V('snapshot-list', '--domain', UUID, '--name'), ok(`${names.join('\n')}\n\n`)],
  ...names.map((n, i): [string[], Reply] => [V('snapshot-dumpxml', '--domain', UUID, '--snapshotname', n), ok(snapXml(n, i === 0 ? null : names[i - 1]!, `/i/${n}`, n === 's2' ? '/i/s2.mem' : null))]),
  [V('snapshot-current', '--domain', UUID, '--name'), ok(`${names.at(-1) ?? ''}\n`)],
];
const dropMeta = (name: string, reply: Reply = ok(`Domain snapshot ${name} deleted\n`)): [string[], Reply] => [V('snapshot-delete', '--domain', UUID, '--snapshotname', name, '--metadata'), reply];
const exists = (path: string, yes: boolean): [string[], Reply] => [['test', '-e', path], yes ? ok() : failed('')];

t.test('one commit: chain checked before and after, progress from --verbose, stale metadata dropped deepest first, files checked', async (t) => {
  const runner = scripted(t, [
    NO_JOB,
    [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))],
    [COMMIT_ARGV, (opts) => {
      opts.onStderr?.('\rBlock commit: [ 40 %]');
      opts.onStderr?.('\rBlock commit: [100 %]');
      t.equal(opts.timeoutMs, 3600 * 1000, 'a commit gets consolidate.timeoutSec, not commandTimeoutSec');
      return ok('\nCommit complete\n');
    }],
    [V('dumpxml', '--domain', UUID), ok(domXml(AFTER))],
    ...readSnapshotsAfter(['s1', 's2', 's3']),
    dropMeta('s2'),
    dropMeta('s1'),
    exists('/i/s2', false),
    exists('/i/s1', false),
    exists('/i/s2.mem', true),
  ]);
  const ctx = ctxWith();
  let askedWith: unknown[] = [];
  const r = await merger(runner).mergeCommits(UUID, 'd1', [COMMIT], ctx, (snaps, merged, allDone) => {
    askedWith = [snaps.map((s) => s.name), merged, allDone];
    return ['s2', 's1'];
  });
  t.same(askedWith, [['s1', 's2', 's3'], ['/i/s2', '/i/s1'], true], 'dropped() sees the snapshots now, the merged files, all done');
  t.equal(r.merged, 2);
  t.match(r.message, /merged 2 overlay image\(s\) of domain 'd1'.*vda 3 -> 1 overlays/);
  t.match(r.message, /removed the metadata of snapshot\(s\) 's2', 's1'/);
  t.match(r.message, /could not be deleted by the SSH user.*\/i\/s2\.mem/, 'the memory file left behind is named');
  const pct = ctx.seen.map(([p]) => p);
  t.same(pct, [5, 39, 90, 100], 'start, 40 %, 100 % of the one commit, done');
  t.same([...pct].sort((a, b) => a - b), pct, 'never goes back');
  runner.done();
});

t.test('the chain is not as planned: conflict before any commit, nothing dropped', async (t) => {
  const runner = scripted(t, [
    NO_JOB,
    [V('dumpxml', '--domain', UUID), ok(domXml(['/i/s4', ...BEFORE]))],
    ...readSnapshotsAfter(['s1', 's2', 's3']),
  ]);
  const e = await rejection(merger(runner).mergeCommits(UUID, 'd1', [COMMIT], ctxWith(), (_s, merged) => (merged.length ? ['s2'] : [])));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /target 'lab': disk vda of domain 'd1' changed while merging \(chain \/i\/s4 <- .*planned \/i\/s3/);
  t.notOk(runner.calls.some((c) => c[3] === 'blockcommit'));
  runner.done();
});

t.test('a block job already running: conflict, nothing else called', async (t) => {
  const runner = scripted(t, [[V('blockjob', '--domain', UUID, '--path', 'vda', '--info'), ok('Active Block Commit: [ 12 %]\n')]]);
  const e = await rejection(merger(runner).mergeCommits(UUID, 'd1', [COMMIT], ctxWith(), () => []));
  t.equal(e.kind, 'conflict');
  t.match(e.message, /already has a block job running/);
  runner.done();
});

t.test('the second of two commits fails: its error, with what the first did; the first one\'s metadata is still dropped', async (t) => {
  const second: DiskCommit = { disk: 'vda', before: AFTER, after: ['/i/base'], active: true, top: '/i/s3', base: '/i/base', merged: ['/i/s3'] };
  const runner = scripted(t, [
    NO_JOB,
    [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))],
    [COMMIT_ARGV, ok('\nCommit complete\n')],
    [V('dumpxml', '--domain', UUID), ok(domXml(AFTER))],
    [V('dumpxml', '--domain', UUID), ok(domXml(AFTER))],
    [V('blockcommit', '--domain', UUID, '--path', 'vda', '--active', '--pivot', '--base', '/i/base', '--wait', '--verbose', '--delete'), failed('error: internal error: unable to execute QEMU command: boom\n')],
    ...readSnapshotsAfter(['s1', 's2', 's3']),
    dropMeta('s2'),
    dropMeta('s1'),
    exists('/i/s2', false),
    exists('/i/s1', false),
    exists('/i/s2.mem', false),
  ]);
  const e = await rejection(merger(runner).mergeCommits(UUID, 'd1', [COMMIT, second], ctxWith(), (_s, merged, allDone) => {
    t.notOk(allDone);
    return merged.includes('/i/s1') ? ['s2', 's1'] : [];
  }));
  t.equal(e.kind, 'internal');
  t.match(e.message, /boom \(before that: merged 2 overlay image\(s\).*removed the metadata of snapshot\(s\) 's2', 's1'/);
  runner.done();
});

t.test('stale metadata that cannot be removed: internal, naming it; one already gone is fine', async (t) => {
  const runner = scripted(t, [
    NO_JOB,
    [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))],
    [COMMIT_ARGV, ok('\nCommit complete\n')],
    [V('dumpxml', '--domain', UUID), ok(domXml(AFTER))],
    ...readSnapshotsAfter(['s1', 's2', 's3']),
    dropMeta('s2', failed('error: Domain snapshot not found: no domain snapshot with matching name \'s2\'\n')),
    dropMeta('s1', failed('error: internal error: cannot write metadata\n')),
    exists('/i/s2', false),
    exists('/i/s1', false),
    exists('/i/s2.mem', false),
  ]);
  const e = await rejection(merger(runner).mergeCommits(UUID, 'd1', [COMMIT], ctxWith(), () => ['s2', 's1']));
  t.equal(e.kind, 'internal');
  t.match(e.message, /could not remove the stale metadata of snapshot\(s\) 's1'/);
  t.notMatch(e.message, /could not remove the stale metadata of snapshot\(s\) 's2/);
  runner.done();
});

t.test('interrupted mid-commit: the block job is aborted; a chain already pivoted counts as done, an unchanged one is transient', async (t) => {
  for (const finished of [true, false]) {
    await t.test(finished ? 'finished anyway' : 'unchanged', async (t) => {
      const ac = new AbortController();
      const runner = scripted(t, [
        NO_JOB,
        [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))],
        [COMMIT_ARGV, () => {
          ac.abort();
          throw new CommandError('aborted', 'aborted', true);
        }],
        [V('blockjob', '--domain', UUID, '--path', 'vda', '--abort'), finished ? failed('error: invalid argument: disk vda does not have an active block job\n') : ok()],
        [V('dumpxml', '--domain', UUID), ok(domXml(finished ? AFTER : BEFORE))],
        ...readSnapshotsAfter(['s1', 's2', 's3']),
        ...(finished ? [dropMeta('s2'), dropMeta('s1'), exists('/i/s2', false), exists('/i/s1', false), exists('/i/s2.mem', false)] : []),
      ]);
      const run = merger(runner).mergeCommits(UUID, 'd1', [COMMIT], ctxWith(ac.signal), (_s, merged) => (merged.length ? ['s2', 's1'] : []));
      if (finished) {
        t.equal((await run).merged, 2, 'done is done, and the cleanup ran on a signal of its own');
      } else {
        const e = await rejection(run);
        t.same([e.kind, e.retry], ['transient', 'transient']);
        t.match(e.message, /cancelled; the block job was aborted and the chain is unchanged/);
      }
      runner.done();
    });
  }
});

t.test('withQemuRunning: a shut-off domain is started paused, marked, and destroyed again — also when the work fails', async (t) => {
  const start: [string[], Reply] = [V('start', '--domain', UUID, '--paused'), ok()];
  const mark: [string[], Reply] = [V('metadata', '--domain', UUID, '--uri', 'urn:snapvisor:merge:1', '--key', 'snapvisor', '--set', '<started-paused/>', '--live'), ok('Metadata modified\n')];
  const destroy = (reply: Reply = ok()): [string[], Reply] => [V('destroy', '--domain', UUID), reply];
  const runner = scripted(t, [start, mark, [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))], destroy()]);
  const chains: number[] = [];
  t.equal(await merger(runner).withQemuRunning(UUID, 'shut off', 'consolidate', ctxWith(), async (d) => (chains.push(d.disks[0]!.backingChain.length), 'done')), 'done');
  t.same(chains, [3], 'planned from the running XML');
  t.same(runner.calls.map((c) => c[3]), ['start', 'metadata', 'dumpxml', 'destroy']);
  runner.done();

  const failing = scripted(t, [start, mark, [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))], destroy()]);
  await t.rejects(merger(failing).withQemuRunning(UUID, 'shut off', 'consolidate', ctxWith(), async () => Promise.reject(new Error('merge failed'))), /merge failed/);
  t.equal(failing.calls.at(-1)?.[3], 'destroy');
  failing.done();

  const stuck = scripted(t, [start, mark, [V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))], destroy(failed('error: Failed to destroy domain\nerror: Timed out during operation: cannot acquire state change lock\n'))]);
  const e = await rejection(merger(stuck).withQemuRunning(UUID, 'shut off', 'consolidate', ctxWith(), async () => 'done'));
  t.equal(e.kind, 'internal');
  t.match(e.message, /consolidate: done, but domain .* could not be powered off again/);
  stuck.done();
});

t.test('withQemuRunning: offlineMerge refuse, a state it cannot merge in, a domain a user paused', async (t) => {
  const none = scripted(t, []);
  const refused = await rejection(merger(none, { offlineMerge: 'refuse' }).withQemuRunning(UUID, 'shut off', 'consolidate', ctxWith(), async () => 1));
  t.equal(refused.kind, 'conflict');
  t.match(refused.message, /offlineMerge is 'refuse'/);
  const saved = await rejection(merger(none).withQemuRunning(UUID, 'pmsuspended', 'consolidate', ctxWith(), async () => 1));
  t.match(saved.message, /is pmsuspended; merging overlays needs it running, paused or shut off/);
  const paused = scripted(t, [[V('dumpxml', '--domain', UUID), ok(domXml(BEFORE))]]);
  t.equal(await merger(paused).withQemuRunning(UUID, 'paused', 'consolidate', ctxWith(), async () => 7), 7, 'not marked by us: left paused, no destroy');
  paused.done();
  none.done();
});
