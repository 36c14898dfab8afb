import t from 'tap';
import type { Snapshot, Vm } from '../../src/domain/types.ts';
import type { Store } from '../../src/store/index.ts';
import { forEachDialect, openReplicaStore, openTestStore, type Dialect } from './store-dialects.ts';

const AT = '2025-01-01T00:00:00.000Z';

async function seed(t: { teardown(fn: () => void | Promise<void>): void }, dialect: Dialect = 'sqlite') {
  const { store, url } = await openTestStore(t, dialect);
  const lab = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: true });
  const other = await store.targets.ensure({ name: 'other', kind: 'virtualbox', demo: false });
  const vm = (id: string, targetId: string, name: string, extra: Partial<Vm> = {}): Vm => ({
    id,
    targetId,
    providerVmId: `p-${id}`,
    name,
    powerState: 'running',
    rawPowerState: 'running',
    consolidationNeeded: false,
    disks: null,
    firstSeenAt: AT,
    lastSeenAt: AT,
    goneAt: null,
    ...extra,
  });
  await store.vms.apply({
    inserts: [
      vm('v1', lab.id, 'web01'),
      vm('v2', lab.id, 'web02', { consolidationNeeded: true }),
      vm('v3', lab.id, 'db01'),
      vm('v4', other.id, 'Web03'),
      vm('v5', lab.id, 'web04', { goneAt: AT }),
    ],
    updates: [],
    gone: [],
  });
  return { store, lab, other, url };
}

const snap = (id: string, vmId: string, parentId: string | null, extra: Partial<Snapshot> = {}): Snapshot => ({
  id,
  vmId,
  providerRef: `ref-${id}`,
  parentId,
  name: id,
  description: '',
  mode: null,
  owner: 'external',
  jobId: null,
  policyId: null,
  state: 'present',
  current: false,
  ready: true,
  progress: null,
  details: null,
  createdAt: null,
  firstSeenAt: AT,
  deletedAt: null,
  ...extra,
});

t.test('targets: ensure is idempotent by name, health is stored', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const again = await store.targets.ensure({ name: 'lab', kind: 'virtualbox', demo: false });
  t.equal(again.id, lab.id);
  t.equal(again.demo, false, 'demo flag follows the configuration');
  t.equal(again.healthy, null, 'never checked');
  await store.targets.setHealth(lab.id, { healthy: false, message: 'unreachable', version: null, checkedAt: AT });
  t.match(await store.targets.get('lab'), { healthy: false, healthMessage: 'unreachable', checkedAt: AT });
  t.same((await store.targets.list()).map((x) => x.name), ['lab', 'other']);
}));

t.test('vms: filter by target and name (case-insensitive prefix), gone hidden, keyset pages', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const names = async (q: Parameters<Store['vms']['list']>[0]) => (await store.vms.list(q)).items.map((v) => v.name);
  t.same(await names({ includeGone: false, limit: 10 }), ['Web03', 'db01', 'web01', 'web02'], 'binary order by name');
  t.same(await names({ targetId: lab.id, name: 'WEB', includeGone: false, limit: 10 }), ['web01', 'web02']);
  t.same(await names({ targetId: lab.id, name: 'web', includeGone: true, limit: 10 }), ['web01', 'web02', 'web04']);
  t.same(await names({ name: 'eb0', includeGone: false, limit: 10 }), [], 'a prefix, not a substring');
  t.same(await names({ name: 'w_b', includeGone: false, limit: 10 }), [], '_ is literal, not a wildcard');
  t.same(await names({ name: '%', includeGone: false, limit: 10 }), [], '% is literal, not a wildcard');
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.vms.list({ includeGone: true, limit: 2, ...(cursor ? { cursor } : {}) });
    seen.push(...page.items.map((v) => v.id));
    cursor = page.next ?? undefined;
  } while (cursor);
  t.same(seen.sort(), ['v1', 'v2', 'v3', 'v4', 'v5'], 'pages cover every row exactly once');
  await t.rejects(store.vms.list({ includeGone: false, limit: 2, cursor: 'garbage' }), { name: 'InvalidCursorError' });
  t.equal(await store.vms.countPresentByTarget(lab.id), 3);
  t.equal(await store.vms.countConsolidationNeeded(), 1);
}));

t.test('snapshots: apply a plan (children before parents is fine), stats and chain depth', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  // Child inserted before its parent: the parent FK is deferred to commit.
  await store.snapshots.apply({
    inserts: [snap('c', 'v1', 'b', { current: true }), snap('a', 'v1', null), snap('b', 'v1', 'a'), snap('x', 'v1', 'a')],
    updates: [],
    gone: [],
  });
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: 4, chainDepth: 3, currentSnapshotId: 'c', targetName: 'lab' });
  const a = (await store.snapshots.get('b'))!;
  await store.snapshots.apply({
    inserts: [],
    updates: [{ before: (await store.snapshots.get('c'))!, after: {} as Snapshot, set: { parentId: 'a' } }],
    gone: [{ before: a, after: {} as Snapshot, set: { state: 'gone', deletedAt: AT, current: false } }],
  });
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: 3, chainDepth: 2 });
  t.same((await store.snapshots.listByVm('v1', { includeGone: false })).map((s) => s.id).sort(), ['a', 'c', 'x']);
  t.equal((await store.snapshots.listByVm('v1', { includeGone: true })).length, 4, 'gone rows kept');
  t.same((await store.snapshots.listByVm('v1', { includeGone: true })).map((s) => s.id), ['c', 'a', 'b', 'x'], 'found in one sync: in the plan\'s (the provider\'s) order');
  t.equal((await store.snapshots.getByRef('v1', 'ref-c'))?.id, 'c');
  t.match(await store.vms.getWithStats('v2'), { snapshotCount: 0, chainDepth: 0, currentSnapshotId: null });
}));

t.test('jobs: submit with idempotency, claim rules, release by ticket only', async (t) => {
  const { store, lab } = await seed(t);
  const newJob = (id: string, vmId: string, createdAt = AT) => ({
    id,
    kind: 'snapshot.create' as const,
    targetId: lab.id,
    vmId,
    snapshotId: null,
    params: { name: id, description: '', mode: 'memory' as const },
    maxAttempts: 3,
    requestedBy: 'ops',
    createdAt,
  });
  const key = { principal: 'ops', key: 'k1', requestHash: 'h1' };
  t.match(await store.jobs.submit(newJob('j1', 'v1'), key), { outcome: 'created', job: { id: 'j1', state: 'queued' } });
  t.match(await store.jobs.submit(newJob('j1b', 'v1'), key), { outcome: 'replayed', job: { id: 'j1' } });
  t.match(await store.jobs.submit(newJob('j1c', 'v1'), { ...key, requestHash: 'h2' }), { outcome: 'key-reused', jobId: 'j1' });
  t.equal(await store.jobs.get('j1b'), null, 'replay inserted nothing');
  t.match(await store.jobs.submit(newJob('j1d', 'v1'), { ...key, principal: 'someone-else' }), { outcome: 'created' }, 'keys are per principal');
  await store.jobs.submit(newJob('j2', 'v2', '2025-01-01T00:00:01.000Z'));
  await store.jobs.submit(newJob('j3', 'v3', '2025-01-01T00:00:02.000Z'));

  t.same((await store.jobs.due(AT, 10)).map((j) => j.id), ['j1', 'j1d'], 'only jobs due at AT, oldest first');
  const claimed = await store.jobs.tryClaim('j1', 'T1', AT, 2);
  t.match(claimed, { state: 'running', attempts: 1 });
  t.equal(await store.jobs.tryClaim('j1', 'T2', AT, 2), null, 'a claimed job cannot be claimed again');
  t.equal(await store.jobs.tryClaim('j1d', 'T3', AT, 2), null, 'one running job per VM');
  t.notOk((await store.jobs.due(AT, 10)).some((j) => j.vmId === 'v1'), 'a busy VM offers no candidates');
  const later = '2025-01-01T00:01:00.000Z';
  t.ok(await store.jobs.tryClaim('j2', 'T4', later, 2));
  t.equal(await store.jobs.tryClaim('j3', 'T5', later, 2), null, 'per-target limit reached');

  t.equal(await store.jobs.finish('j1', 'wrong', { state: 'succeeded', at: later }), null, 'release needs the ticket');
  t.equal(await store.jobs.setProgress('j1', 'wrong', 50, null), null);
  t.match(await store.jobs.setProgress('j1', 'T1', 50, 'half'), { progress: 50, progressMessage: 'half' });
  t.match(await store.jobs.requeue('j1', 'T1', { nextAttemptAt: later, error: { kind: 'transient', message: 'x' } }), {
    state: 'queued',
    attempts: 1,
    nextAttemptAt: later,
    error: { kind: 'transient' },
  });
  t.equal(await store.jobs.finish('j1', 'T1', { state: 'succeeded', at: later }), null, 'the old ticket is dead after release');
  t.match(await store.jobs.finish('j2', 'T4', { state: 'succeeded', result: { snapshotId: null as unknown as string }, at: later }), {
    state: 'succeeded',
    progress: 100,
    finishedAt: later,
  });
  t.ok(await store.jobs.tryClaim('j3', 'T5', later, 2), 'a slot freed up');

  t.match(await store.jobs.cancelQueued('j1', later, { kind: 'cancelled', message: 'c' }), { state: 'cancelled' });
  t.equal(await store.jobs.cancelQueued('j3', later, { kind: 'cancelled', message: 'c' }), null, 'running jobs are not cancelled directly');
  t.match(await store.jobs.requestCancel('j3'), { cancelRequested: true, state: 'running' });
  t.match(await store.jobs.countByState(), { queued: 1, running: 1, succeeded: 1, cancelled: 1, failed: 0 });
  t.same([...(await store.jobs.createModes(['j3', 'nope'])).entries()], [['j3', { mode: 'memory', policyId: null }]]);
  t.match(await store.jobs.takeOver('j3', 'T9', later), { state: 'running' });
  t.ok(await store.jobs.finish('j3', 'T9', { state: 'failed', error: { kind: 'internal', message: 'x' }, at: later }));
});

t.test('jobs: list newest first with filters and cursor', async (t) => {
  const { store, lab } = await seed(t);
  for (let i = 0; i < 5; i++) {
    await store.jobs.submit({
      id: `j${i}`,
      kind: i % 2 ? 'snapshot.revert' : 'snapshot.create',
      targetId: lab.id,
      vmId: i < 3 ? 'v1' : 'v2',
      snapshotId: null,
      params: { snapshotId: 'x' },
      maxAttempts: 1,
      requestedBy: 'ops',
      createdAt: `2025-01-01T00:00:0${i}.000Z`,
    });
  }
  const first = await store.jobs.list({ limit: 2 });
  t.same(first.items.map((j) => j.id), ['j4', 'j3']);
  const second = await store.jobs.list({ limit: 2, cursor: first.next! });
  t.same(second.items.map((j) => j.id), ['j2', 'j1']);
  t.same((await store.jobs.list({ limit: 10, vmId: 'v1', kind: 'snapshot.create' })).items.map((j) => j.id), ['j2', 'j0']);
  t.same((await store.jobs.list({ limit: 10, state: 'succeeded' })).items, []);
});

t.test('audit log: append and read newest first', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  await store.audit.insert({ at: AT, principal: 'ops', method: 'POST', path: '/v1/x', statusCode: 202, jobId: null, detail: null });
  await store.audit.insert({ at: AT, principal: 'ops', method: 'DELETE', path: '/v1/y', statusCode: 404, jobId: null, detail: 'nf' });
  const rows = await store.audit.list({ limit: 10 });
  t.same(rows.map((r) => r.method), ['DELETE', 'POST']);
  t.same((await store.audit.list({ limit: 10, beforeId: rows[0]!.id })).map((r) => r.method), ['POST']);
}));

t.test('vms: disks are stored as reported, updated through the plan, read in one query for many VMs', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const disks = [{ slot: 'os', path: '/subscriptions/s/disks/osdisk1', chainDepth: 0 }, { slot: 'lun0' }];
  await store.vms.apply({
    inserts: [
      {
        id: 'v9', targetId: lab.id, providerVmId: 'p-v9', name: 'az1', powerState: 'running', rawPowerState: 'running',
        consolidationNeeded: false, disks, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
      },
    ],
    updates: [],
    gone: [],
  });
  t.same((await store.vms.get('v9'))?.disks, disks);
  t.equal((await store.vms.get('v1'))?.disks, null, 'never reported: null');
  t.same((await store.vms.getWithStats('v9'))?.disks, disks, 'also with stats');
  const before = (await store.vms.get('v1'))!;
  await store.vms.apply({ inserts: [], updates: [{ before, after: before, set: { disks: [{ slot: 'vda' }] }, meaningful: true }], gone: [] });
  t.same((await store.vms.get('v1'))?.disks, [{ slot: 'vda' }]);
  const map = await store.vms.disksOf(['v1', 'v9', 'v2', 'nope']);
  t.same([...map.entries()].sort(([a], [b]) => a.localeCompare(b)), [['v1', [{ slot: 'vda' }]], ['v2', null], ['v9', disks]]);
  t.same([...(await store.vms.disksOf([])).entries()], []);
}));

t.test('vms: names are data — % _ \\ quotes, $() and non-ASCII round-trip, filter literally, page in byte order', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  const names = await store.targets.ensure({ name: 'names', kind: 'virtualbox', demo: false });
  const odd = ['web%1', 'web_1', 'webX1', 'web\\1', 'WEB\\2', 'Web', 'Élan', 'élan', 'ÉLAN', `a'b"c$(rm -rf /)\`x\`;--`, '日本語', 'zz', 'Z'];
  await store.vms.apply({
    inserts: odd.map((name, i) => ({
      id: `n${String(i).padStart(2, '0')}`, targetId: names.id, providerVmId: `p-${name}`, name, powerState: 'running', rawPowerState: 'running',
      consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
    })),
    updates: [],
    gone: [],
  });
  for (const [i, name] of odd.entries()) t.equal((await store.vms.get(`n${String(i).padStart(2, '0')}`))?.name, name, `${name} round-trips`);
  const find = async (name: string) => (await store.vms.list({ targetId: names.id, name, includeGone: false, limit: 50 })).items.map((v) => v.name);
  t.same(await find('web%'), ['web%1'], '% matches itself only');
  t.same(await find('WEB_'), ['web_1'], '_ matches itself only, case folded');
  t.same(await find('web\\'), ['WEB\\2', 'web\\1'], 'a backslash matches itself, case folded');
  t.same(await find('wEb'), ['WEB\\2', 'Web', 'web%1', 'webX1', 'web\\1', 'web_1'], 'ASCII case folded, byte order');
  t.same(await find('é'), ['élan'], 'non-ASCII letters are not case folded (SQLite LIKE)');
  t.same(await find('É'), ['ÉLAN', 'Élan']);
  t.same(await find(`a'b"c$(`), [`a'b"c$(rm -rf /)\`x\`;--`], 'quotes and $() are plain characters');
  t.same(await find('日本'), ['日本語']);
  const byteOrder = [...odd].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const paged: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await store.vms.list({ targetId: names.id, includeGone: false, limit: 3, ...(cursor ? { cursor } : {}) });
    paged.push(...page.items.map((v) => v.name));
    cursor = page.next ?? undefined;
  } while (cursor);
  t.same(paged, byteOrder, 'keyset pages in byte order (SQLite BINARY), every row once');
}));

t.test('drift: snapshots of a target (present, and gone since), deleting jobs, last state per target', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const later = '2025-01-02T00:00:00.000Z';
  await store.snapshots.apply({
    inserts: [
      snap('a', 'v1', null, { owner: 'snapvisor', createdAt: AT }),
      snap('b', 'v1', 'a', { current: true }),
      snap('old', 'v2', null, { state: 'gone', deletedAt: AT }),
      snap('recent', 'v2', null, { state: 'gone', deletedAt: later }),
      snap('elsewhere', 'v4', null),
    ],
    updates: [],
    gone: [],
  });
  const rows = (await store.drift.snapshotsOfTarget(lab.id, later)).sort((x, y) => x.id.localeCompare(y.id));
  t.same(rows, [
    { id: 'a', vmId: 'v1', parentId: null, name: 'a', owner: 'snapvisor', state: 'present', current: false, createdAt: AT, deletedAt: null },
    { id: 'b', vmId: 'v1', parentId: 'a', name: 'b', owner: 'external', state: 'present', current: true, createdAt: null, deletedAt: null },
    { id: 'recent', vmId: 'v2', parentId: null, name: 'recent', owner: 'external', state: 'gone', current: false, createdAt: null, deletedAt: later },
  ], 'present ones, gone ones since then; not another target\'s');
  t.same(await store.drift.deletingJobs(lab.id), [], 'no jobs yet');
  t.equal(await store.drift.lastState('lab'), null);
  await store.drift.saveState('lab', { fingerprint: 'f1', summary: { createdOutside: 1 }, checkedAt: AT });
  await store.drift.saveState('lab', { fingerprint: 'f2', summary: { createdOutside: 2 }, checkedAt: later });
  t.same(await store.drift.lastState('lab'), { fingerprint: 'f2', summary: { createdOutside: 2 }, checkedAt: later }, 'one row per target, replaced');
}));

t.test('vms and snapshots: a plan larger than one statement is written whole, in order', (t) => forEachDialect(t, async (t, dialect) => {
  const { store, lab } = await seed(t, dialect);
  const n = 1203;
  const id = (i: number) => `big${String(i).padStart(4, '0')}`;
  await store.vms.apply({
    inserts: Array.from({ length: n }, (_, i) => ({
      id: id(i), targetId: lab.id, providerVmId: `p-${id(i)}`, name: id(i), powerState: 'running' as const, rawPowerState: 'running',
      consolidationNeeded: false, disks: null, firstSeenAt: AT, lastSeenAt: AT, goneAt: null,
    })),
    updates: [],
    gone: [],
  });
  t.equal(await store.vms.countPresentByTarget(lab.id), n + 3);
  const refs = Array.from({ length: n }, (_, i) => `s${(i * 7919) % n}`);
  await store.snapshots.apply({ inserts: refs.map((r, i) => snap(r, 'v1', i === 0 ? null : refs[i - 1]!)), updates: [], gone: [] });
  t.same((await store.snapshots.listByVm('v1', { includeGone: false })).map((s) => s.id), refs, 'every snapshot, in the plan\'s order');
  t.match(await store.vms.getWithStats('v1'), { snapshotCount: n });
}));

t.test('postgres: two replicas applying plans to one VM at once: each plan bumps its revision once', async (t) => {
  const { store: a, url } = await seed(t, 'postgres');
  const b = await openReplicaStore(t, url!);
  const before = (await a.snapshots.revision('v1'))!;
  const plans = 20;
  // Each plan writes its own snapshot row: nothing but the revision makes them wait for each other.
  await Promise.all(Array.from({ length: plans }, (_, i) => (i % 2 ? a : b).snapshots.apply({ inserts: [snap(`n${i}`, 'v1', null)], updates: [], gone: [] })));
  t.equal(await a.snapshots.revision('v1'), before + plans, 'no bump lost');
});

t.test('snapshots: details are stored as JSON, updated through the plan (bumping the revision), null when absent', (t) => forEachDialect(t, async (t, dialect) => {
  const { store } = await seed(t, dialect);
  const details = { diskSnapshots: [{ disk: 'os', id: 'snap-os' }], missingDisks: ['data'] };
  await store.snapshots.apply({ inserts: [snap('a', 'v1', null, { details }), snap('b', 'v1', 'a')], updates: [], gone: [] });
  t.same((await store.snapshots.get('a'))?.details, details);
  t.equal((await store.snapshots.get('b'))?.details, null);
  const rev = await store.snapshots.revision('v1');
  const a = (await store.snapshots.get('a'))!;
  await store.snapshots.apply({ inserts: [], updates: [{ before: a, after: a, set: { details: { ...details, missingDisks: [] } } }], gone: [] });
  t.same((await store.snapshots.get('a'))?.details, { ...details, missingDisks: [] });
  t.equal(await store.snapshots.revision('v1'), rev! + 1, 'a details change bumps the revision (ETags follow)');
  await store.snapshots.apply({ inserts: [], updates: [{ before: a, after: a, set: { details: null } }], gone: [] });
  t.equal((await store.snapshots.get('a'))?.details, null);
}));

t.test('jobs: due names the kind; deferQueued only moves a queued unclaimed job; a budgeted claim records its events with it', async (t) => {
  const { store, lab } = await seed(t);
  const job = (id: string, vmId: string, kind: 'snapshot.create' | 'vm.consolidate' = 'snapshot.create') => ({
    id, kind, targetId: lab.id, vmId, snapshotId: null,
    params: kind === 'snapshot.create' ? { name: id, description: '', mode: 'memory' as const } : { dryRun: false },
    maxAttempts: 3, requestedBy: 'ops', createdAt: AT,
  });
  await store.jobs.submit(job('c1', 'v1'));
  await store.jobs.submit(job('k1', 'v2', 'vm.consolidate'));
  await store.jobs.submit(job('c3', 'v3'));
  t.same((await store.jobs.due(AT, 10)).map((c) => [c.id, c.kind]).sort(), [['c1', 'snapshot.create'], ['c3', 'snapshot.create'], ['k1', 'vm.consolidate']]);

  const later = '2025-01-01T00:05:00.000Z';
  t.match(await store.jobs.deferQueued('c3', later, 'waiting for the create budget: x'), {
    state: 'queued', nextAttemptAt: later, progressMessage: 'waiting for the create budget: x', attempts: 0,
  });
  t.notOk((await store.jobs.due(AT, 10)).some((c) => c.id === 'c3'), 'not due before the budget frees');
  t.ok((await store.jobs.due(later, 10)).some((c) => c.id === 'c3'), 'due again then');

  const claimed = await store.jobs.tryClaim('c1', 'T1', AT, 4, { budgetKeys: ['disk:/d/os', 'disk:/d/data'] });
  t.match(claimed, { state: 'running', attempts: 1 });
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => [e.key, e.at, e.jobId]).sort(), [['disk:/d/data', AT, 'c1'], ['disk:/d/os', AT, 'c1']]);
  t.equal(await store.jobs.deferQueued('c1', later, 'x'), null, 'a running job is not deferred');
  t.equal(await store.jobs.tryClaim('c1', 'T2', AT, 4, { budgetKeys: ['disk:/d/os'] }), null, 'a lost claim…');
  t.equal((await store.budgets.recent(lab.id, AT)).length, 2, '…records nothing');

  const c3 = await store.jobs.tryClaim('c3', 'T3', later, 4, { budgetKeys: ['vm:v3'] });
  t.match(c3, { state: 'running', progressMessage: null }, 'the waiting message is cleared by the claim');
  t.same((await store.budgets.recent(lab.id, '2025-01-01T00:04:00.000Z')).map((e) => e.key), ['vm:v3'], 'recent: at or after since');
  t.equal(await store.budgets.prune(later), 2, 'prune deletes what is older than before');
  t.same((await store.budgets.recent(lab.id, AT)).map((e) => e.key), ['vm:v3']);
});
