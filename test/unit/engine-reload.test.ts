/**
 * Reload in the engine and the registry: a new registry replaces the old one while jobs run.
 * Changed and removed targets' running jobs finish on their old provider, which is closed only
 * then; queued jobs of a removed target are cancelled with the reason; unchanged providers are kept.
 */
import t from 'tap';
import type { SnapshotProvider } from '../../providers/contract.ts';
import { createRegistry, reconfigureRegistry, TargetSetupError, type TargetSpec } from '../../providers/index.ts';
import { ProviderError } from '../../providers/contract.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger, type FakeProvider } from '../fixtures/fake-provider.ts';
import { harness, meta, until, type Harness } from './engine-harness.ts';

const create = async (h: Harness, vm: string, name = 'snap') =>
  h.engine.submit({ kind: 'snapshot.create', vmId: await h.vmId(vm), name, description: '', mode: 'memory' }, meta());

/** Counts close() calls on a provider. */
function closeCount(p: SnapshotProvider): () => number {
  let n = 0;
  p.close = async () => void n++;
  return () => n;
}

const fake = (h: Harness, name: string, vms: string[]): FakeProvider => createFakeProvider(name, { vms: vms.map((n) => ({ name: n })), now: h.clock.now });

t.test('changed target: the running job finishes on the old provider, new jobs use the new one, the old one is closed after', async (t) => {
  const h = await harness(t, { targets: [{ provider: { vms: [{ name: 'web01', id: 'vm-web01' }, { name: 'web02', id: 'vm-web02' }] } }] });
  const old = h.provider;
  const oldClosed = closeCount(old);
  const gate = old.hold('createSnapshot');
  const running = await create(h, 'web01', 'during reload');
  await gate.reached;

  const next = createFakeProvider('lab', { vms: [{ name: 'web01', id: 'vm-web01' }, { name: 'web02', id: 'vm-web02' }], now: h.clock.now });
  const out = await h.engine.replaceRegistry(fakeRegistry([{ spec: fakeSpec('lab', { options: { changed: true } }), provider: next }]), [old]);
  t.same(out.cancelledJobs, []);
  t.equal(oldClosed(), 0, 'not closed while its job runs');

  const later = await create(h, 'web02', 'after reload');
  t.match(await h.settle(later.job.id), { state: 'succeeded' });
  t.equal(next.callsOf('createSnapshot').length, 1, 'the new job ran on the new provider');
  t.equal(old.callsOf('createSnapshot').length, 1);

  gate.release();
  t.match(await h.settle(running.job.id), { state: 'succeeded' }, 'the job in flight finished');
  await until(() => oldClosed() === 1);
  t.equal(old.vms.get('vm-web01')!.snapshots.length, 1, 'made on the old provider');
});

t.test('removed target: queued jobs cancelled with the reason, the running one finishes, its VMs stay readable', async (t) => {
  const h = await harness(t, {
    targets: [{ name: 'keep', provider: { vms: [{ name: 'k1' }] } }, { name: 'gone', provider: { vms: [{ name: 'g1' }] } }],
  });
  const keep = h.providers.get('keep')!;
  const gone = h.providers.get('gone')!;
  const keepClosed = closeCount(keep);
  const goneClosed = closeCount(gone);
  const gate = gone.hold('createSnapshot');
  const running = await create(h, 'g1', 'one');
  const queued = await create(h, 'g1', 'two');
  await gate.reached;

  const out = await h.engine.replaceRegistry(fakeRegistry([{ spec: fakeSpec('keep'), provider: keep }]), [gone]);
  t.same(out.cancelledJobs, [queued.job.id]);
  const cancelled = await h.engine.getJob(queued.job.id);
  t.match(cancelled, { state: 'cancelled', error: { kind: 'cancelled', message: "target 'gone' was removed from the configuration by a reload" } });
  t.ok(h.events.some((e) => e.type === 'job' && e.job.id === queued.job.id && e.job.state === 'cancelled'), 'an event says so');

  gate.release();
  t.match(await h.settle(running.job.id), { state: 'succeeded' }, 'the running job finished');
  await until(() => goneClosed() === 1);
  t.equal(keepClosed(), 0, 'the unchanged provider is kept open');
  t.same((await h.engine.listTargets()).map((x) => x.name), ['keep']);
  const vmId = await h.vmId('g1');
  t.equal((await h.engine.listSnapshots(vmId, { includeGone: false })).length, 1, 'its VMs and snapshots stay readable');
  await t.rejects(create(h, 'g1', 'three'), { code: 'SNAPVISOR_ERR_TARGET_NOT_CONFIGURED' });

  // Added back by a later reload: same row, its VMs live again.
  const back = createFakeProvider('gone', { vms: [...gone.vms.values()].map((v) => ({ name: v.name, id: v.id })), now: h.clock.now });
  await h.engine.replaceRegistry(fakeRegistry([{ spec: fakeSpec('keep'), provider: keep }, { spec: fakeSpec('gone'), provider: back }]), []);
  const again = await create(h, 'g1', 'three');
  t.match(await h.settle(again.job.id), { state: 'succeeded' }, 'a re-added target runs jobs again');
});

t.test('removed target: a running job whose attempt fails transiently is cancelled, not requeued for ever', async (t) => {
  const h = await harness(t, { targets: [{ name: 'gone', provider: { vms: [{ name: 'g1' }] } }] });
  const gone = h.provider;
  const gate = gone.hold('createSnapshot');
  gone.failNext('createSnapshot', new ProviderError('virtualbox', 'transient', 'connection reset'));
  const running = await create(h, 'g1');
  await gate.reached;
  await h.engine.replaceRegistry(fakeRegistry([]), [gone]);
  gate.release();
  t.match(await h.settle(running.job.id), { state: 'cancelled', error: { message: "target 'gone' was removed from the configuration by a reload" } });
});

t.test('added target and a concurrency change take effect for new jobs', async (t) => {
  const h = await harness(t, { targets: [{ name: 'lab', spec: { concurrency: 1 }, provider: { vms: [{ name: 'a' }, { name: 'b' }] } }] });
  const lab = h.provider;
  const added = fake(h, 'new', ['n1']);
  await h.engine.replaceRegistry(
    fakeRegistry([
      { spec: fakeSpec('lab', { concurrency: 2 }), provider: lab },
      { spec: fakeSpec('new'), provider: added },
    ]),
    [],
  );
  // The added target is synced in the background at once.
  const n1 = await until(async () => (await h.engine.listVms({ target: 'new', limit: 10 })).items[0]?.id);
  const job = await h.engine.submit({ kind: 'snapshot.create', vmId: n1, name: 'x', description: '', mode: 'memory' }, meta());
  t.match(await h.settle(job.job.id), { state: 'succeeded' }, 'a job on the added target runs');

  const gates = [lab.hold('createSnapshot'), lab.hold('createSnapshot')];
  const jobs = [await create(h, 'a'), await create(h, 'b')];
  await Promise.all(gates.map((g) => g.reached));
  t.pass('two jobs run at once on lab: concurrency 2 applies');
  for (const g of gates) g.release();
  for (const j of jobs) t.match(await h.settle(j.job.id), { state: 'succeeded' });
});

t.test('a stopping engine refuses a new registry', async (t) => {
  const h = await harness(t);
  await h.engine.stop({ graceMs: 0 });
  await t.rejects(h.engine.replaceRegistry(fakeRegistry([]), []), { code: 'SNAPVISOR_ERR_STOPPING' });
});

t.test('reconfigureRegistry: unchanged targets keep their provider, changed options get a new one, bad options name the target', async (t) => {
  const log = silentLogger();
  const vbox = (name: string, more: Partial<TargetSpec> = {}, options: Record<string, unknown> = {}): TargetSpec => ({
    name,
    kind: 'virtualbox',
    demo: false,
    concurrency: 2,
    options: { vboxmanage: '/usr/bin/VBoxManage', ...options },
    ...more,
  });
  const current = await createRegistry([vbox('same'), vbox('conc'), vbox('opts'), vbox('gone')], { log });
  const before = new Map(current.list().map((e) => [e.spec.name, e.provider]));
  const change = await reconfigureRegistry(current, [vbox('same'), vbox('conc', { concurrency: 5 }), vbox('opts', {}, { commandTimeoutSec: 9 }), vbox('fresh')], { log });
  t.same(
    { added: change.added, changed: change.changed, removed: change.removed, unchanged: change.unchanged },
    { added: ['fresh'], changed: ['conc', 'opts'], removed: ['gone'], unchanged: ['same'] },
  );
  t.equal(change.registry.get('same'), before.get('same'), 'unchanged: same provider');
  t.equal(change.registry.get('conc'), before.get('conc'), 'concurrency only: same provider (no reconnection)');
  t.equal(change.registry.list().find((e) => e.spec.name === 'conc')!.spec.concurrency, 5);
  t.not(change.registry.get('opts'), before.get('opts'), 'changed options: a new provider');
  t.same(change.retired.map((r) => r.spec.name).sort(), ['gone', 'opts']);

  const bad = reconfigureRegistry(current, [vbox('same'), vbox('broken', {}, { nope: 1 })], { log });
  await t.rejects(bad, TargetSetupError);
  await t.rejects(bad, { index: 1, target: 'broken', message: /target 'broken': unknown option 'nope'/ });
  await current.close();
});
