// PostgreSQL restarted under load (issue 16): two replicas on a private cluster, creates submitted
// continuously through both; PostgreSQL goes away for a few seconds — a fast shutdown, then a
// SIGKILL of the postmaster — and comes back. While it is away /readyz answers 503 naming the
// database on both replicas; after, 200 again without anyone restarting them (ready includes their
// LISTEN connection being back), a stream open across the outage has been ended by its replica (it
// missed events: its client must read again), and an event of a job submitted on one replica
// reaches the other's new stream. No job is lost: every submission ends up accepted once (the same
// Idempotency-Key retried across the outage) and every job succeeds; no job's snapshot is made
// twice; no two calls on a VM overlap.
import t from 'tap';
import { createDatabase, startPostgresCluster } from '../labs/postgres/lab.ts';
import { overlappingCalls } from '../labs/vboxmanage-sim/lab.ts';
import { api, until, type Daemon } from './daemon.ts';
import { dbClient, replicaLab, submitContinuously, TOKEN, vmIds, watchJobEvents } from './pg-replicas.ts';

const VMS = 8;
/** How long PostgreSQL stays away once both replicas have seen it go: the scenario's outage, not a wait for a condition. */
const OUTAGE_MS = 3_000;

for (const how of (['fast shutdown', 'SIGKILL of the postmaster'] as const).filter((h) => !process.env.RESTART_ONLY || h.startsWith(process.env.RESTART_ONLY))) {
  t.test(`PostgreSQL away (${how}) and back under load`, async (t) => {
    const cluster = await startPostgresCluster();
    t.teardown(() => cluster.destroy());
    const database = await createDatabase(cluster.port, 'restart');
    // The lab runs PostgreSQL with synchronous_commit off (speed): a crashed server may then lose
    // commits it had acknowledged — a 202 whose job vanishes. This database commits durably, as
    // production does, so a postmaster SIGKILL tests Snapvisor, not that setting.
    const admin = await dbClient(database.url);
    await admin.query(`ALTER DATABASE ${database.name} SET synchronous_commit TO on`);
    await admin.end();
    const vmNames = Array.from({ length: VMS }, (_, i) => `vm-${i}`);
    const rl = replicaLab({
      dir: t.testdir({}),
      databaseUrl: database.url,
      vms: vmNames.map((name) => ({ name, state: 'running' as const })),
      stepMs: 1,
      concurrency: 4,
      });
    t.teardown(() => rl.killAll());
    const r1 = await rl.start('r1');
    const r2 = await rl.start('r2');
    const ids = await vmIds(r1, VMS);
    // No answer (a kept-alive connection reset under load) counts as not ready yet.
    const ready = (d: Daemon) =>
      api<{ reason?: string | null }>(d, TOKEN, 'GET', '/readyz').catch((err: Error) => ({ status: 0, body: { reason: `no answer: ${err.message} (${String(err.cause)})` } }));
    for (const d of [r1, r2]) await until('ready', async () => (await ready(d)).status === 200, 60_000, 200);

    const live = () => [...rl.replicas.entries()];
    const load = submitContinuously(live, (i) => ({ key: `restart-${i}`, vmId: ids.get(vmNames[i % VMS]!)!, body: { name: `s${i}`, description: '', mode: 'memory' } }), 3);
    t.teardown(() => load.stop());
    await until('jobs flowing', async () => load.accepted.size >= 20, 60_000, 100);

    // A stream open across the outage misses what the other replica did meanwhile (no replay).
    const across = watchJobEvents(r2);
    t.teardown(() => across.close());
    await across.opened;

    if (how === 'fast shutdown') await cluster.stop();
    else await cluster.kill();
    const acceptedAtOutage = load.accepted.size;
    for (const [name, d] of [['r1', r1], ['r2', r2]] as const) {
      let last: unknown;
      const down = await until(`${name} reports the outage`, async () => {
        const r = await ready(d);
        last = [r.status, r.body];
        return r.status === 503 ? r.body : undefined;
      }, 30_000, 100).catch((err: Error) => {
        throw new Error(`${err.message}; last answer ${JSON.stringify(last)}; exit ${d.proc.exitCode ?? d.proc.signalCode}; stderr ${d.stderr().slice(-1500)}`);
      });
      t.match(String(down.reason), /database|postgres/i, `${name}: 503 naming the database (${down.reason})`);
    }
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    t.ok(load.refusals() > 0, `submissions were refused while it was away (${load.refusals()})`);
    t.same([...load.refusalStatuses().keys()].filter((s) => s !== 503 && s !== 0), [], `refused with 503 (the database did not answer), never a 500: ${JSON.stringify([...load.refusalStatuses()])}`);
    await cluster.start();

    for (const [name, d] of [['r1', r1], ['r2', r2]] as const) {
      let last: unknown;
      await until(`${name} ready again on its own`, async () => {
        const r = await ready(d);
        last = [r.status, r.body.reason];
        return r.status === 200;
      }, 60_000, 200).catch((err: Error) => {
        const cluster = d.logs().filter((l) => /cluster/.test(String(l.msg))).slice(-10).map((l) => JSON.stringify(l)).join('\n');
        throw new Error(`${err.message}; last answer ${JSON.stringify(last)}; exit ${d.proc.exitCode ?? d.proc.signalCode}; stderr ${d.stderr().slice(-3000)}; last lines ${d.stdout().split(`\n`).slice(-6).join(`\n`).slice(-3000)}; its cluster log:\n${cluster}`);
      });
    }
    t.ok(r1.proc.exitCode === null && r2.proc.exitCode === null, 'neither replica exited');
    // Ready again means hearing again, and that ended the stream with a gap: its client reconnects and reads.
    await until('r2 ends the stream that was open across the outage', async () => across.endedByServer(), 10_000, 50);
    // r2's stream sees a job submitted on r1 while queued: only the database can have told it.
    const stream = watchJobEvents(r2);
    t.teardown(() => stream.close());
    await stream.opened;
    const crossing = await api<{ id: string }>(r1, TOKEN, 'POST', `/v1/vms/${ids.get(vmNames[0]!)!}/snapshots`, { name: 'crossing', description: '', mode: 'memory' });
    t.equal(crossing.status, 202);
    await until('the job\'s events on the other replica', async () => stream.jobs.some((j) => j.id === crossing.body.id), 30_000, 100).catch((err: Error) => {
      // What each replica said about its database and its peers since the outage: the reason is there.
      const said = (d: Daemon) => d.logs().filter((l) => Number(l.level) >= 40 || /cluster/.test(String(l.msg))).slice(-40).map((l) => JSON.stringify(l)).join('\n');
      throw new Error(`${err.message}; ${stream.jobs.length} job events heard on r2\nr1:\n${said(r1)}\nr2:\n${said(r2)}`);
    });
    await until('jobs flowing again', async () => load.accepted.size >= acceptedAtOutage + 20, 60_000, 100);
    await load.stop();

    const db = await dbClient(database.url);
    t.teardown(() => db.end());
    await until('every job final', async () => (await db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE state IN ('queued', 'running')`))[0]!.n === 0, 120_000, 250);
    const jobIds = new Set([...load.accepted.values(), crossing.body.id]);
    const rows = await db.rows<{ id: string; state: string }>('SELECT id, state FROM jobs');
    t.equal(rows.length, jobIds.size, `one row per accepted submission (${jobIds.size})`);
    t.same(rows.filter((r) => !jobIds.has(r.id) || r.state !== 'succeeded').map((r) => `${r.id} ${r.state}`), [], 'every job accepted, every one succeeded: none lost');
    const markers = new Map<string, number>();
    for (const vm of rl.lab.readState().vms) {
      for (const s of Object.values(vm.snapshots)) {
        const m = /snapvisor:(\S+)/.exec(s.description)?.[1];
        if (m) markers.set(m, (markers.get(m) ?? 0) + 1);
      }
    }
    t.same([...jobIds].filter((id) => markers.get(id) !== 1), [], 'each job\'s marker on exactly one snapshot');
    const calls = rl.lab.calls();
    const takes = new Map<string, number>();
    for (const c of calls) if (c.op === 'take' && c.exit === 0 && c.marker) takes.set(c.marker, (takes.get(c.marker) ?? 0) + 1);
    t.same([...takes].filter(([, n]) => n > 1), [], 'no job took its snapshot twice');
    t.same(overlappingCalls(calls).length, 0, 'no two mutating calls on one VM overlapped');
  });
}
