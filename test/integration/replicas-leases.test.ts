/**
 * Two daemon replicas (two engines in this process, each with its own PostgreSQL pool) on one
 * database. Jobs: replica A claims a create on the VirtualBox simulator and hangs right after the
 * take (hang-after: the snapshot is made, VBoxManage never exits); while A renews its lease, B's
 * start and its sweeps leave the job alone; then A "dies" (its pool is closed without a stop: no
 * renewal, no write, like a process killed or cut off) and B, once A's lease has run out, takes the
 * job over and finds the snapshot by the job's marker: the job succeeds once, with one snapshot.
 * A replica stopped gracefully mid-job drops its claim and lease: another settles the job the same way.
 * Webhooks: both replicas' delivery rounds run side by side on one outbox, and a local receiver
 * gets every row exactly once.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import t from 'tap';
import { markerForJob } from '../../providers/contract.ts';
import { registryOf } from '../../providers/index.ts';
import { createVirtualBoxProvider } from '../../providers/virtualbox/index.ts';
import { createEngine, type Engine } from '../../src/engine/engine.ts';
import type { Store } from '../../src/store/index.ts';
import { openPgStore } from '../../src/store/pg/index.ts';
import { createFakeProvider, fakeRegistry, fakeSpec, silentLogger } from '../fixtures/fake-provider.ts';
import { until } from '../e2e/daemon.ts';
import { freshDatabase } from '../labs/postgres/lab.ts';
import { createVboxLab, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Short, so the test waits seconds for a takeover; renewed six times per lease, so a loaded machine does not lose it. */
const LEASE_MS = 3_000;
const HEARTBEAT_MS = 500;

async function database(t: TapTest): Promise<string> {
  const db = await freshDatabase('replicas');
  t.teardown(() => db.drop());
  return db.url;
}

async function pgStore(t: TapTest, url: string): Promise<Store> {
  const store = await openPgStore(url);
  t.teardown(() => store.close());
  return store;
}

/** The lease columns, read beside the replicas (they are not part of the Job the store returns). */
async function leaseOf(url: string, jobId: string): Promise<{ state: string; owner: string | null; until: string | null }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ state: string; lease_owner: string | null; lease_until: string | null }>('SELECT state, lease_owner, lease_until FROM jobs WHERE id = $1', [jobId]);
    const row = r.rows[0]!;
    return { state: row.state, owner: row.lease_owner, until: row.lease_until };
  } finally {
    await c.end();
  }
}

async function metric(engine: Engine, pattern: RegExp): Promise<number> {
  const line = (await engine.metrics()).body.split('\n').find((l) => pattern.test(l));
  return line === undefined ? Number.NaN : Number(line.split(' ').pop());
}

/** The simulated VirtualBox host with one running VM; hung VBoxManage processes are killed at teardown. */
function simulatedHost(t: TapTest): VboxLab {
  const lab = createVboxLab({ dir: t.testdir({}), stepMs: 5, vms: [{ name: 'web01', state: 'running' }] });
  t.teardown(() => {
    for (const h of lab.readState().hung ?? []) {
      try {
        process.kill(h.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  return lab;
}

/** A replica on the simulated VirtualBox host: its own provider (its own VBoxManage processes), stopped at teardown. */
function vboxReplica(t: TapTest, lab: VboxLab, store: Store): Engine {
  const log = silentLogger();
  // Long: A's hung take must outlast the test, not fail by its timeout.
  const provider = createVirtualBoxProvider('lab', { vboxmanage: lab.vboxmanage, commandTimeoutSec: 120 }, { log });
  const engine = createEngine({
    store,
    registry: registryOf([{ spec: { name: 'lab', kind: 'virtualbox', demo: false, concurrency: 2, options: {} }, provider }]),
    log,
    settings: { workerPollMs: 20, syncIntervalMs: 0, maxAttempts: 2, jobLeaseMs: LEASE_MS, jobHeartbeatMs: HEARTBEAT_MS },
  });
  t.teardown(async () => {
    await engine.stop({ graceMs: 100 });
    await provider.close();
  });
  return engine;
}

/** A create on web01 through `engine`, whose take makes the snapshot and then hangs (VBoxManage never exits). */
async function hungCreate(engine: Engine, lab: VboxLab): Promise<{ jobId: string; vmId: string }> {
  const vmId = (await engine.listVms({ limit: 10, name: 'web01' })).items[0]!.id;
  lab.setFault('take', 'web01', { type: 'hang-after', times: 1 });
  const { job } = await engine.submit({ kind: 'snapshot.create', vmId, name: 'nightly', description: '', mode: 'memory' }, { principal: 'ops', requestHash: 'h' });
  await until('the take made the snapshot and hangs', async () => lab.readState().hung?.find((h) => h.op === 'take' && h.type === 'hang-after'), 30_000, 20);
  return { jobId: job.id, vmId };
}

/** Polls `engine` until the job is final (B's recovery settles it in the background). */
async function settled(engine: Engine, jobId: string) {
  return until('the job settled', async () => {
    const j = await engine.waitForJob(jobId, 1_000);
    return j.state !== 'queued' && j.state !== 'running' && j;
  }, 60_000, 0);
}

const markedSnapshots = (lab: VboxLab, jobId: string) => Object.values(lab.readState().vms[0]!.snapshots).filter((s) => s.description.includes(markerForJob(jobId)));

t.test('a dead replica\'s running create is recovered by another once its lease runs out, through the marker: one snapshot, succeeded once', async (t) => {
  const url = await database(t);
  const lab = simulatedHost(t);
  const storeA = await pgStore(t, url);
  const storeB = await pgStore(t, url);
  const a = vboxReplica(t, lab, storeA);
  await a.start();
  const { jobId, vmId } = await hungCreate(a, lab);
  const claimed = await leaseOf(url, jobId);
  t.match(claimed, { state: 'running', owner: storeA.cluster.replicaId }, 'A holds the job');

  const b = vboxReplica(t, lab, storeB);
  await b.start();
  // Two leases' time past A's claim, renewed by A all along: B's start and its sweeps (every half
  // lease or sooner) have looked at the job several times.
  const heldOn = await until(
    'A renewed its lease for two leases\' time, or lost the job',
    async () => {
      const l = await leaseOf(url, jobId);
      return (l.owner !== storeA.cluster.replicaId || Date.parse(l.until ?? '') >= Date.parse(claimed.until!) + 2 * LEASE_MS) && l;
    },
    30_000,
    50,
  );
  t.match(heldOn, { state: 'running', owner: storeA.cluster.replicaId }, 'B did not take the job while A\'s lease was live');
  t.equal(await metric(b, /^snapvisor_jobs_recovered_total\{decision="succeeded"\}/), 0, 'nor recovered it');

  // A dies: no more renewals, no more writes (its VBoxManage still hangs; the engine is stopped at teardown).
  await storeA.close();

  const done = await settled(b, jobId);
  t.match(done, { state: 'succeeded', attempts: 1 }, 'succeeded without a second attempt');
  t.equal(await metric(b, /^snapvisor_jobs_recovered_total\{decision="succeeded"\}/), 1, 'B recovered it from the hypervisor');
  t.equal(markedSnapshots(lab, jobId).length, 1, 'one snapshot carries the job\'s marker');
  const stored = (await b.listSnapshots(vmId, { includeGone: false })).filter((s) => s.jobId === jobId);
  t.equal(stored.length, 1, 'recorded once');
  t.equal(done.result?.snapshotId, stored[0]!.id);
  t.match(await leaseOf(url, jobId), { state: 'succeeded', owner: null, until: null });
});

t.test('a replica stopped mid-job leaves it with no claim and no lease, and another replica settles it from the hypervisor', async (t) => {
  const url = await database(t);
  const lab = simulatedHost(t);
  const storeA = await pgStore(t, url);
  const a = vboxReplica(t, lab, storeA);
  const b = vboxReplica(t, lab, await pgStore(t, url));
  await a.start();
  const { jobId } = await hungCreate(a, lab);
  await b.start();
  await a.stop({ graceMs: 0 });
  // No lease of A's left: the claim was dropped with it (or B's sweep, which may take a dropped
  // claim over at once, holds the job already).
  t.not((await leaseOf(url, jobId)).owner, storeA.cluster.replicaId, 'A\'s stop kept no lease');
  t.match(await settled(b, jobId), { state: 'succeeded', attempts: 1 }, 'found by its marker, not run again');
  t.equal(markedSnapshots(lab, jobId).length, 1, 'one snapshot');
});

t.test('webhook rows: two replicas\' delivery rounds side by side send each row once', async (t) => {
  const url = await database(t);
  const received: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      received.push(String(req.headers['snapvisor-delivery']));
      // A little slow, so each replica's round is still sending while the other claims.
      setTimeout(() => res.writeHead(204).end(), 10);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;

  const replica = async () => {
    const store = await pgStore(t, url);
    const engine = createEngine({
      store,
      registry: fakeRegistry([{ spec: fakeSpec('lab'), provider: createFakeProvider('lab', { vms: [] }) }]),
      log: silentLogger(),
      settings: { workerPollMs: 20, syncIntervalMs: 0 },
      webhooks: [{ name: 'ops', url: `http://127.0.0.1:${port}/in`, secret: 'wh-secret-0123456789abcdef-xyz', events: ['job.failed'], giveUpAfterDays: 3 }],
      webhookSettings: { timeoutMs: 10_000, batch: 5 },
    });
    t.teardown(() => engine.stop({ graceMs: 0 }));
    await engine.start();
    return { store, engine };
  };
  const a = await replica();
  const b = await replica();
  const now = new Date().toISOString();
  const ids = Array.from({ length: 40 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  // Written directly (as two replicas' events would have): no event kicks a round, the test runs them.
  await a.store.webhooks.enqueue(ids.map((id, i) => ({ id, webhook: 'ops', eventType: 'job.failed', eventKey: `job.failed:${i}`, body: JSON.stringify({ id }), createdAt: now })));
  while (((await a.store.webhooks.pendingByWebhook()).get('ops') ?? 0) > 0) {
    await Promise.all([a.engine.webhookRound(), b.engine.webhookRound()]);
  }
  t.equal(received.length, ids.length, 'as many deliveries as rows');
  t.same([...received].sort(), ids, 'each row once');
  const delivered = (e: Engine) => metric(e, /^snapvisor_webhook_deliveries_total\{webhook="ops",result="delivered"\}/);
  const [byA, byB] = [await delivered(a.engine), await delivered(b.engine)];
  t.equal(byA + byB, ids.length);
  t.ok(byA > 0 && byB > 0, `both replicas delivered (A ${byA}, B ${byB})`);
});
