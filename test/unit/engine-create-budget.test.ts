/**
 * Create budgets (capabilities.limits.createRate): a create job on a target declaring one is checked
 * before it is claimed; over budget it stays queued — not failed, not claimed — until the budget frees,
 * with the reason as its progress message; within budget its claim records one event per key.
 */
import t from 'tap';
import { ProviderError, type CreateRateLimit, type DiskInfo } from '../../providers/contract.ts';
import type { Job } from '../../src/domain/types.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import type { FakeVmSeed } from '../fixtures/fake-provider.ts';
import { harness, meta, until, type Harness } from './engine-harness.ts';

const AZURE: CreateRateLimit = { per: 'disk', max: 7, windowMs: 300_000, reason: 'Azure allows 7 incremental snapshots per disk every 5 minutes' };
const disks = (vm: string): DiskInfo[] => [
  { slot: 'os', path: `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/${vm}-osdisk1` },
  { slot: 'lun0', path: `/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/${vm}-data1` },
];
const budgeted = (createRate: CreateRateLimit[], vms: FakeVmSeed[]) => ({ capabilities: { limits: { createRate } }, vms });

async function createMany(h: Harness, vmName: string, n: number): Promise<string[]> {
  const vmId = await h.vmId(vmName);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: `${vmName}-${i}`, description: '', mode: 'memory' }, meta());
    ids.push(job.id);
  }
  return ids;
}

/** Waits until every job is succeeded or waiting for the budget (queued with a next attempt in the future). */
async function quiet(h: Harness, ids: string[]): Promise<Job[]> {
  return until(async () => {
    const jobs = await Promise.all(ids.map((id) => h.engine.getJob(id)));
    const now = h.clock.now().toISOString();
    const done = jobs.every((j) => j.state === 'succeeded' || (j.state === 'queued' && j.nextAttemptAt !== null && j.nextAttemptAt > now && j.attempts === 0));
    return done ? jobs : undefined;
  });
}

const countEvents = async (store: Store, targetId: string) => (await store.budgets.recent(targetId, '')).length;

t.test('10 creates of one VM with 2 disks under 7 per disk per 5 min: 7 run, 3 wait with the reason, then run', async (t) => {
  const h = await harness(t, { targets: [{ provider: budgeted([AZURE], [{ name: 'az1', disks: disks('az1') }]) }] });
  const ids = await createMany(h, 'az1', 10);
  const jobs = await quiet(h, ids);
  t.equal(jobs.filter((j) => j.state === 'succeeded').length, 7, '7 ran');
  const waiting = jobs.filter((j) => j.state === 'queued');
  t.equal(waiting.length, 3, '3 wait');
  for (const j of waiting) {
    t.equal(j.nextAttemptAt, '2025-01-01T00:05:00.000Z', 'due when the first event leaves the window');
    t.match(j.progressMessage, /^waiting for the create budget: Azure allows 7 incremental snapshots per disk every 5 minutes; disk \/subscriptions\/.+\/disks\/az1-(osdisk1|data1) is free again at 2025-01-01T00:05:00\.000Z$/);
    t.equal(j.error, null, 'not an error');
  }
  t.notOk(jobs.some((j) => j.state === 'failed'), 'nothing failed');
  t.equal(h.provider.callsOf('createSnapshot').length, 7, 'the provider saw exactly 7 creates');
  const target = (await h.store.targets.get('lab'))!;
  t.equal(await countEvents(h.store, target.id), 14, 'one event per disk per claimed create');
  t.ok(
    h.events.some((e) => e.type === 'job' && e.job.id === waiting[0]!.id && e.job.state === 'queued' && /create budget/.test(e.job.progressMessage ?? '')),
    'a job event tells SSE clients why it waits',
  );

  // Nothing moves before the window ends…
  h.clock.advance(299_999);
  await h.engine.claimRound();
  await h.engine.claimRound();
  t.equal(h.provider.callsOf('createSnapshot').length, 7, 'still 7 one millisecond before');
  // …and the rest run after it.
  h.clock.advance(1);
  const rest = await Promise.all(waiting.map((j) => h.settle(j.id)));
  t.same(rest.map((j) => j.state), ['succeeded', 'succeeded', 'succeeded']);
  t.equal(h.provider.callsOf('createSnapshot').length, 10);
  t.notOk(rest.some((j) => /create budget/.test(j.progressMessage ?? '')), 'the waiting message is gone once the job runs');
});

t.test('two VMs do not share budgets', async (t) => {
  const h = await harness(t, {
    targets: [{ provider: budgeted([AZURE], [{ name: 'az1', disks: disks('az1') }, { name: 'az2', disks: disks('az2') }]) }],
  });
  const a = await createMany(h, 'az1', 8);
  const b = await createMany(h, 'az2', 8);
  const jobs = await quiet(h, [...a, ...b]);
  t.equal(jobs.filter((j) => j.state === 'succeeded').length, 14, '7 per VM');
  const waiting = jobs.filter((j) => j.state === 'queued');
  t.same(waiting.map((j) => j.vmId).sort(), [await h.vmId('az1'), await h.vmId('az2')].sort(), 'one waits on each VM');
  t.equal(h.provider.callsOf('createSnapshot').length, 14);
});

t.test("per: 'vm' counts against the VM (and a VM without known disks falls back to it under per: 'disk')", async (t) => {
  const perVm: CreateRateLimit = { per: 'vm', max: 2, windowMs: 60_000, reason: 'two creates per VM a minute' };
  const h = await harness(t, {
    targets: [{ provider: budgeted([perVm], [{ name: 'vm1', disks: disks('vm1') }]) }, { name: 'nodisks', provider: budgeted([AZURE], [{ name: 'bare' }]) }],
  });
  const ids = await createMany(h, 'vm1', 3);
  const jobs = await quiet(h, ids);
  t.same(jobs.map((j) => j.state).sort(), ['queued', 'succeeded', 'succeeded']);
  const vmId = await h.vmId('vm1');
  t.match(jobs.find((j) => j.state === 'queued')!.progressMessage, `two creates per VM a minute; VM ${vmId} is free again at 2025-01-01T00:01:00.000Z`);
  const target = (await h.store.targets.get('lab'))!;
  t.same((await h.store.budgets.recent(target.id, '')).map((e) => e.key), [`vm:${vmId}`, `vm:${vmId}`]);

  const bare = await createMany(h, 'bare', 8);
  const bareJobs = await quiet(h, bare);
  t.equal(bareJobs.filter((j) => j.state === 'queued').length, 1, '7 of 8 ran, counted against the VM');
  const other = (await h.store.targets.get('nodisks'))!;
  t.same(new Set((await h.store.budgets.recent(other.id, '')).map((e) => e.key)), new Set([`vm:${await h.vmId('bare')}`]));
});

t.test('a target without createRate pays nothing: no budget query, no event, no deferral', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  const calls = { recent: 0, prune: 0, disksOf: 0, deferQueued: 0 };
  const spy = <O extends object, K extends keyof O & keyof typeof calls>(obj: O, key: K) => {
    const fn = obj[key] as unknown as (...args: unknown[]) => unknown;
    (obj as Record<string, unknown>)[key] = (...args: unknown[]) => {
      calls[key] += 1;
      return fn.apply(obj, args);
    };
  };
  spy(store.budgets, 'recent');
  spy(store.budgets, 'prune');
  spy(store.vms, 'disksOf');
  spy(store.jobs, 'deferQueued');
  const h = await harness(t, { store, targets: [{ provider: { vms: [{ name: 'plain', disks: disks('plain') }] } }] });
  const ids = await createMany(h, 'plain', 10);
  const jobs = await Promise.all(ids.map((id) => h.settle(id)));
  t.ok(jobs.every((j) => j.state === 'succeeded'), 'all 10 ran');
  t.same(calls, { recent: 0, prune: 0, disksOf: 0, deferQueued: 0 });
  t.equal(await countEvents(store, (await store.targets.get('lab'))!.id), 0);
});

t.test('a restart on the same store keeps the budget (events are persisted)', async (t) => {
  const store = openStore(':memory:');
  t.teardown(() => store.close());
  const seed = { id: 'arm-vm-1', name: 'az1', disks: disks('az1') };
  await t.test('first run: 7 creates', async (t) => {
    const h = await harness(t, { store, targets: [{ provider: budgeted([AZURE], [seed]) }] });
    const jobs = await Promise.all((await createMany(h, 'az1', 7)).map((id) => h.settle(id)));
    t.ok(jobs.every((j) => j.state === 'succeeded'));
  });
  await t.test('after the restart: the 8th waits', async (t) => {
    const h = await harness(t, { store, targets: [{ provider: budgeted([AZURE], [seed]) }] });
    h.clock.advance(60_000);
    const [id] = await createMany(h, 'az1', 1);
    const [job] = await quiet(h, [id!]);
    t.match(job, { state: 'queued', nextAttemptAt: '2025-01-01T00:05:00.000Z' });
    t.equal(h.provider.callsOf('createSnapshot').length, 0, 'the new provider was not asked');
    h.clock.advance(240_000);
    t.match(await h.settle(id!), { state: 'succeeded' });
  });
});

t.test('deletes and reverts are not budgeted; every create attempt counts', async (t) => {
  const one: CreateRateLimit = { per: 'disk', max: 2, windowMs: 300_000, reason: 'two per disk' };
  const h = await harness(t, { targets: [{ provider: budgeted([one], [{ name: 'az1', disks: disks('az1') }]) }] });
  const vmId = await h.vmId('az1');
  // A create whose first attempt fails transiently: both attempts count (a retry may PUT again).
  h.provider.failNext('createSnapshot', new ProviderError('lab', 'transient', 'connection reset'));
  const { job: c1 } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'a', description: '', mode: 'memory' }, meta());
  await until(async () => ((await h.engine.getJob(c1.id)).state === 'queued' && (await h.engine.getJob(c1.id)).attempts === 1) || undefined);
  h.clock.advance(5_000);
  const done = await h.settle(c1.id);
  t.match(done, { state: 'succeeded', attempts: 2 });
  const target = (await h.store.targets.get('lab'))!;
  t.equal(await countEvents(h.store, target.id), 4, 'two attempts × two disks');
  const snapshotId = done.result!.snapshotId!;
  const { job: rv } = await h.engine.submit({ kind: 'snapshot.revert', snapshotId }, meta());
  t.match(await h.settle(rv.id), { state: 'succeeded' }, 'a revert runs with the create budget spent');
  const { job: del } = await h.engine.submit({ kind: 'snapshot.delete', snapshotId, children: false }, meta());
  t.match(await h.settle(del.id), { state: 'succeeded' }, 'so does a delete');
  t.equal(await countEvents(h.store, target.id), 4, 'neither recorded an event');
  const { job: c2 } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 'b', description: '', mode: 'memory' }, meta());
  const [waiting] = await quiet(h, [c2.id]);
  t.match(waiting, { state: 'queued', nextAttemptAt: '2025-01-01T00:05:00.000Z' }, 'a create still waits');
});

t.test('old events are pruned in a claim round, at most once a minute', async (t) => {
  const h = await harness(t, { targets: [{ provider: budgeted([AZURE], [{ name: 'az1', disks: disks('az1') }]) }] });
  const target = (await h.store.targets.get('lab'))!;
  await Promise.all((await createMany(h, 'az1', 2)).map((id) => h.settle(id)));
  t.equal(await countEvents(h.store, target.id), 4);
  h.clock.advance(300_001);
  await h.engine.claimRound();
  await h.engine.claimRound();
  t.equal(await countEvents(h.store, target.id), 0, 'older than the longest window: gone');
});

t.test('a throttled provider error with retryAfterMs requeues the job no earlier than that', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01' }] } }] });
  const vmId = await h.vmId('web01');
  h.provider.failNext('createSnapshot', new ProviderError('lab', 'throttled', 'OperationNotAllowed: too many snapshots', { retryAfterMs: 30_000 }));
  const failedAt = h.clock.now().getTime();
  const { job } = await h.engine.submit({ kind: 'snapshot.create', vmId, name: 's', description: '', mode: 'memory' }, meta());
  const queued = await until(async () => {
    const j = await h.engine.getJob(job.id);
    return j.state === 'queued' && j.attempts === 1 ? j : undefined;
  });
  t.ok(Date.parse(queued.nextAttemptAt!) - failedAt >= 30_000, `next attempt ${queued.nextAttemptAt} is at least 30 s later`);
  t.match(queued.error, { kind: 'throttled' });
  h.clock.advance(29_999);
  await h.engine.claimRound();
  await h.engine.claimRound();
  t.match(await h.engine.getJob(job.id), { state: 'queued', attempts: 1 }, 'not retried before');
  h.clock.advance(1);
  t.match(await h.settle(job.id), { state: 'succeeded', attempts: 2 });
});

t.test('the inventory sync stores the reported disks, writes nothing for an unchanged list, keeps them when not reported', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'az1', disks: disks('az1') }, { name: 'plain' }] } }] });
  const vmId = await h.vmId('az1');
  t.same((await h.store.vms.get(vmId))?.disks, disks('az1'));
  t.equal((await h.store.vms.get(await h.vmId('plain')))?.disks, null, 'not reported: null');
  t.same((await h.engine.getVm(vmId)).disks, disks('az1'), 'the VM view shows them');
  t.same((await h.engine.getVm(await h.vmId('plain'))).disks, [], 'and [] when unknown');
  const updates = () => h.events.filter((e) => e.type === 'vm' && e.action === 'updated').length;
  const before = updates();
  await h.engine.syncTarget('lab');
  t.equal(updates(), before, 'unchanged: no update');
  const fake = [...h.provider.vms.values()].find((v) => v.name === 'az1')!;
  fake.disks = [disks('az1')[0]!];
  await h.engine.syncTarget('lab');
  t.equal(updates(), before + 1, 'a changed list is an update');
  t.same((await h.store.vms.get(vmId))?.disks, [disks('az1')[0]]);
  delete fake.disks;
  await h.engine.syncTarget('lab');
  t.same((await h.store.vms.get(vmId))?.disks, [disks('az1')[0]], 'not reported any more: kept');
});

t.test('the budget counts a create from when the provider call ended, not from the claim (a slow call never lets the next one in early)', async (t) => {
  const one: CreateRateLimit = { ...AZURE, max: 1 };
  const h = await harness(t, { targets: [{ provider: budgeted([one], [{ name: 'az1', disks: disks('az1') }]) }], settings: { jobTimeoutMs: 3_600_000 } });
  const gate = h.provider.hold('createSnapshot');
  const [first, second] = await createMany(h, 'az1', 2);
  await gate.reached;
  // The call takes a minute (a busy target: the hypervisor accepts the create late in it).
  h.clock.advance(60_000);
  gate.release();
  t.equal((await h.settle(first!)).state, 'succeeded');
  const waiting = await until(async () => {
    const j = await h.engine.getJob(second!);
    return j.state === 'queued' && /create budget/.test(j.progressMessage ?? '') ? j : undefined;
  });
  t.equal(waiting.nextAttemptAt, '2025-01-01T00:06:00.000Z', 'free a window after the call ended (00:01), not after the claim (00:00)');
  const target = (await h.store.targets.get('lab'))!;
  t.same([...new Set((await h.store.budgets.recent(target.id, '')).map((e) => e.at))], ['2025-01-01T00:01:00.000Z']);
  h.clock.advance(299_999);
  await h.engine.claimRound();
  t.equal(h.provider.callsOf('createSnapshot').length, 1, 'not yet');
  h.clock.advance(1);
  t.equal((await h.settle(second!)).state, 'succeeded');
});
