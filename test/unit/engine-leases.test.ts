/**
 * Job leases on SQLite (engine/leases.ts): a claim holds a lease for this replica; the heartbeat
 * renews the leases of the jobs this replica runs, and only those; settling a job clears its lease;
 * renewals that fail are logged once per outage, counted, and the jobs whose lease ran out named.
 * The lease columns are read through a second, read-only connection to the database file.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Logger } from '../../providers/contract.ts';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, type FakeProvider } from '../fixtures/fake-provider.ts';
import { fakeClock, meta, TEST_SETTINGS, until, type Clock } from './engine-harness.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const LEASE_MS = 3_000;

interface Line {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string | undefined;
  obj: Record<string, unknown>;
}

function recordingLogger(lines: Line[]): Logger {
  const make = (): Logger => {
    const at = (level: Line['level']) => (obj: object, msg?: string) => void lines.push({ level, msg, obj: obj as Record<string, unknown> });
    return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => make() };
  };
  return make();
}

interface Setup {
  clock: Clock;
  store: Store;
  engine: Engine;
  provider: FakeProvider;
  lines: Line[];
  lease(jobId: string): { owner: string | null; until: string | null };
  vmId(name: string): Promise<string>;
}

async function setup(t: TapTest): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'snapvisor-leases-'));
  const file = join(dir, 'snapvisor.db');
  const clock = fakeClock();
  const store = openStore(file);
  const provider = createFakeProvider('lab', { vms: [{ name: 'web01' }, { name: 'web02' }], now: clock.now });
  const lines: Line[] = [];
  const engine = createEngine({
    store,
    registry: fakeRegistry([{ spec: fakeSpec('lab'), provider }]),
    log: recordingLogger(lines),
    now: clock.now,
    settings: { ...TEST_SETTINGS, jobLeaseMs: LEASE_MS, jobHeartbeatMs: 10 },
  });
  const reader = new Database(file, { readonly: true });
  t.teardown(async () => {
    await engine.stop({ graceMs: 0 });
    reader.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await engine.start();
  return {
    clock,
    store,
    engine,
    provider,
    lines,
    lease: (jobId) => reader.prepare('SELECT lease_owner AS owner, lease_until AS until FROM jobs WHERE id = ?').get(jobId) as { owner: string | null; until: string | null },
    vmId: async (name) => (await engine.listVms({ limit: 10, name })).items[0]!.id,
  };
}

const at = (clock: Clock, plusMs: number) => new Date(clock.now().getTime() + plusMs).toISOString();

t.test('the heartbeat renews the leases of the jobs this replica runs, and no other replica\'s; settling clears the lease', async (t) => {
  const s = await setup(t);
  const replica = s.store.cluster.replicaId;
  // Another replica's running job (written as running: this worker never claims it).
  const target = (await s.store.targets.get('lab'))!;
  const foreignId = '00000000-0000-4000-8000-0000000000f1';
  await s.store.jobs.submit({
    id: foreignId, kind: 'snapshot.revert', targetId: target.id, vmId: await s.vmId('web02'), snapshotId: null,
    params: { snapshotId: 'x' }, maxAttempts: 1, requestedBy: 'ops', createdAt: s.clock.now().toISOString(), state: 'running',
  });
  const foreignUntil = at(s.clock, LEASE_MS);
  t.ok(await s.store.jobs.takeOver(foreignId, 'other-ticket', s.clock.now().toISOString(), { owner: 'other-replica', until: foreignUntil }));

  const gate = s.provider.hold('createSnapshot');
  const { job } = await s.engine.submit({ kind: 'snapshot.create', vmId: await s.vmId('web01'), name: 'held', description: '', mode: 'memory' }, meta());
  await gate.reached;
  t.same(s.lease(job.id), { owner: replica, until: at(s.clock, LEASE_MS) }, 'claimed with a lease for this replica');

  s.clock.advance(20_000);
  const renewed = at(s.clock, LEASE_MS);
  await until(() => s.lease(job.id).until === renewed);
  t.same(s.lease(job.id), { owner: replica, until: renewed }, 'renewed from the moved clock');
  t.same(s.lease(foreignId), { owner: 'other-replica', until: foreignUntil }, 'another replica\'s lease is left alone');

  gate.release();
  t.match(await s.engine.waitForJob(job.id, 3_000), { state: 'succeeded' });
  t.same(s.lease(job.id), { owner: null, until: null }, 'a settled job holds no lease');
  s.clock.advance(20_000);
  await s.engine.claimRound();
  t.same(s.lease(foreignId), { owner: 'other-replica', until: foreignUntil }, 'still untouched after this replica\'s jobs ended');
});

t.test('renewals that fail: one warning per outage, each counted, the jobs whose lease ran out named once; the job goes on', async (t) => {
  const s = await setup(t);
  const renewLeases = s.store.jobs.renewLeases.bind(s.store.jobs);
  let failing = true;
  let failures = 0;
  // A database that stops answering the heartbeat (only it: the job's own writes still work).
  s.store.jobs.renewLeases = async (owner, untilIso) => {
    if (!failing) return renewLeases(owner, untilIso);
    failures++;
    throw new Error('connection terminated');
  };
  const gate = s.provider.hold('createSnapshot');
  const { job } = await s.engine.submit({ kind: 'snapshot.create', vmId: await s.vmId('web01'), name: 'held', description: '', mode: 'memory' }, meta());
  await gate.reached;
  await until(() => failures >= 3);
  const warnings = () => s.lines.filter((l) => l.level === 'warn' && /could not renew the leases/.test(l.msg ?? ''));
  t.equal(warnings().length, 1, 'one warning for the outage, not one per heartbeat');
  t.notOk(s.lines.some((l) => l.level === 'error' && /leases ran out/.test(l.msg ?? '')), 'nothing ran out yet');
  const metric = async () => Number(/^snapvisor_job_lease_renewal_failures_total (\d+)/m.exec((await s.engine.metrics()).body)?.[1]);
  t.ok((await metric()) >= 3, 'every failed renewal counted');

  s.clock.advance(LEASE_MS + 1);
  const ranOut = await until(() => s.lines.find((l) => l.level === 'error' && /leases ran out/.test(l.msg ?? '')));
  t.same(ranOut.obj.jobs, [job.id], 'names the job whose lease ran out');
  const more = failures;
  await until(() => failures >= more + 3);
  t.equal(s.lines.filter((l) => l.level === 'error' && /leases ran out/.test(l.msg ?? '')).length, 1, 'named once');
  t.equal(warnings().length, 1, 'still one warning');

  failing = false;
  const renewed = at(s.clock, LEASE_MS);
  await until(() => s.lease(job.id).until === renewed);
  t.ok(s.lines.some((l) => l.level === 'info' && /renewed again/.test(l.msg ?? '')), 'the end of the outage is logged');
  gate.release();
  t.match(await s.engine.waitForJob(job.id, 3_000), { state: 'succeeded' }, 'the job went on and its success counted: nobody took it over');
});
