// Three replicas on one PostgreSQL database (issue 16): real daemon processes sharing one
// VirtualBox simulator lab. 1,000 creates across 50 VMs are submitted through the REST API of
// every replica in turn; the scheduler's leader is SIGKILLed mid-run and another replica is
// restarted (SIGTERM, then started again). Then, once every job is final:
// - every job ended exactly once: one row per submission (idempotency keys across replicas),
//   every row succeeded, no job logged final twice by any process;
// - no duplicate snapshot: each job's marker is on exactly one simulator snapshot and one store row,
//   and no job's take succeeded twice;
// - per-VM serialisation held: from the simulator's own call log, no two mutating calls on one VM
//   overlapped (test/labs/vboxmanage-sim: callLog);
// - the scheduler fired each due slot of an every-minute policy exactly once across the leader's
//   death: one policy_runs row per scheduled_for, consecutive minutes, the slots after the kill
//   fired by another replica.
//
// REPLICAS_JOBS / REPLICAS_VMS shrink it by hand (development); the suite runs 1,000 across 50.
import t from 'tap';
import { freshDatabase } from '../labs/postgres/lab.ts';
import { overlappingCalls } from '../labs/vboxmanage-sim/lab.ts';
import { api, FINAL_LINES, until, type Daemon } from './daemon.ts';
import { dbClient, leaderOf, replicaLab, submitSpread, TOKEN, vmIds, type Submission } from './pg-replicas.ts';

const JOBS = Number(process.env.REPLICAS_JOBS ?? 1000);
const VMS = Number(process.env.REPLICAS_VMS ?? 50);
const REPLICAS = ['r1', 'r2', 'r3'];
const SCHED_VM = 'sched-vm';
const MINUTE = 60_000;

t.test('three replicas, 1,000 jobs, a leader SIGKILLed and a replica restarted', async (t) => {
  const database = await freshDatabase('replicas');
  t.teardown(() => database.drop());
  const vmNames = Array.from({ length: VMS }, (_, i) => `vm-${String(i).padStart(2, '0')}`);
  const rl = replicaLab({
    dir: t.testdir({}),
    databaseUrl: database.url,
    vms: [...vmNames, SCHED_VM].map((name) => ({ name, state: 'running' as const })),
    stepMs: 1,
    concurrency: 8,
    // A dead replica's jobs are taken over once their lease ends: short here, so the test does not wait.
  });
  t.teardown(() => rl.killAll());
  const db = await dbClient(database.url);
  t.teardown(() => db.end());
  const started = Date.now();
  const timeline: string[] = [];
  const mark = (what: string) => {
    timeline.push(`${((Date.now() - started) / 1000).toFixed(1)} s (${new Date().toISOString()}): ${what}`);
    t.comment(timeline.at(-1)!);
  };

  for (const name of REPLICAS) await rl.start(name);
  const ids = await vmIds(rl.replicas.get('r1')!, VMS + 1);
  mark('three replicas up, inventory read');
  for (const [name, d] of rl.replicas) {
    await until(`${name} ready`, async () => (await api(d, TOKEN, 'GET', '/readyz')).status === 200, 60_000, 200);
  }

  // An every-minute policy on a VM of its own: its runs are counted per slot at the end.
  const policy = await api<{ id: string }>(rl.replicas.get('r2')!, TOKEN, 'POST', '/v1/policies', {
    name: 'every-minute',
    selector: { vms: [ids.get(SCHED_VM)!] },
    schedule: '* * * * *',
    mode: 'memory',
    retention: { keepLast: 1000 },
  });
  t.equal(policy.status, 201, 'policy created');
  const policyId = policy.body.id;
  const runsOf = () =>
    db.rows<{ scheduled_for: string; n: number }>(
      `SELECT scheduled_for, count(*)::int AS n FROM policy_runs WHERE policy_id = $1 AND trigger <> 'manual' GROUP BY scheduled_for ORDER BY scheduled_for`,
      [policyId],
    );
  const openJobs = async () => (await db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE state IN ('queued', 'running')`))[0]!.n;

  const submissions: Submission[] = Array.from({ length: JOBS }, (_, i) => ({
    key: `replicas-${i}`,
    vmId: ids.get(vmNames[i % VMS]!)!,
    body: { name: `job-${i}`, description: '', mode: 'memory' },
  }));
  const stopping = new Set<Daemon>();
  const live = () => [...rl.replicas.entries()].filter(([, d]) => d.proc.exitCode === null && d.proc.signalCode === null && !stopping.has(d));
  const finalJobs = async () => (await db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE state NOT IN ('queued', 'running')`))[0]!.n;

  // The first slot fires before any submission, so a later one must come from another replica, and
  // the kill (right after the submissions begin) lands mid-run wherever in the minute the test
  // started: submitted at once, the 1,000 jobs take less than the minute the slot can be away.
  await until('the first scheduled run', async () => (await runsOf()).length >= 1, 2 * MINUTE, 500);
  const firstSlots = await runsOf();
  mark(`first slot ${firstSlots[0]!.scheduled_for} fired; submitting`);
  let submitted = false;
  const submitting = submitSpread(live, submissions, 6).finally(() => (submitted = true));
  const leader = await leaderOf(rl.replicas);
  // Its replica id (as /readyz reports it) names the leases of the jobs it runs.
  const leaderId = (await api<{ replica: { id: string } }>(rl.replicas.get(leader)!, TOKEN, 'GET', '/readyz')).body.replica.id;
  const held = async () => (await db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE state = 'running' AND lease_owner = $1`, [leaderId]))[0]!.n;
  await until('the leader running jobs', async () => (await held()) > 0, MINUTE, 20);
  const running = await held();
  t.ok(running > 0 && !submitted, `mid-run: the leader runs ${running} jobs and submissions are still coming when it dies`);
  const killedAt = Date.now();
  await rl.replicas.get(leader)!.kill('SIGKILL');
  rl.replicas.delete(leader);
  mark(`leader ${leader} SIGKILLed after slot ${firstSlots.at(-1)!.scheduled_for}; ${running} jobs running`);

  // Another replica restarted (graceful stop, start again on the same config) while jobs still run.
  const others = [...rl.replicas.keys()];
  const restarted = others[0]!;
  const finalAtKill = await finalJobs();
  await until('100 more jobs final after the kill', async () => (await finalJobs()) >= finalAtKill + 100 || (submitted && (await openJobs()) === 0), 5 * MINUTE, 500);
  const old = rl.replicas.get(restarted)!;
  stopping.add(old);
  const stop = await old.kill('SIGTERM');
  t.equal(stop.code, 0, `${restarted} stopped cleanly`);
  await rl.start(restarted);
  mark(`${restarted} restarted`);

  const accepted = await submitting;
  mark(`${accepted.length} submissions accepted`);
  // The slot after the kill, from whichever replica leads now.
  await until('a slot after the kill', async () => (await runsOf()).some((r) => Date.parse(r.scheduled_for) > killedAt), 3 * MINUTE, 500);
  t.equal((await api(rl.replicas.get(others[1]!)!, TOKEN, 'PATCH', `/v1/policies/${policyId}`, { enabled: false })).status, 200, 'policy disabled: no run after this one');
  await until('every job final', async () => (await openJobs()) === 0, 5 * MINUTE, 500);
  mark('every job final');

  // --- every job ended exactly once
  const jobIds = new Set(accepted.map((a) => a.jobId));
  t.equal(accepted.length, JOBS, 'every submission accepted');
  t.equal(jobIds.size, JOBS, 'one job per submission (a retried submission got its job back)');
  const rows = await db.rows<{ id: string; state: string; attempts: number }>(`SELECT id, state, attempts FROM jobs WHERE policy_id IS NULL`);
  t.equal(rows.length, JOBS, 'one row per job: none lost, none duplicated');
  t.same(rows.filter((r) => !jobIds.has(r.id)), [], 'no job nobody submitted');
  const byState = rows.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.state]: (acc[r.state] ?? 0) + 1 }), {});
  const unsuccessful = await db.rows<{ id: string; state: string; attempts: number; error: string | null }>(`SELECT id, state, attempts, error FROM jobs WHERE policy_id IS NULL AND state <> 'succeeded'`);
  const logs: Array<Record<string, unknown>> = rl.all.flatMap(({ name, daemon }) => daemon.logs().map((l) => ({ ...l, replica: name })));
  // A failed job's own log lines at warn and above (an internal error's cause is only in the log).
  const why = unsuccessful.map((j) => ({ ...j, log: logs.filter((l) => l.jobId === j.id && Number(l.level) >= 40) }));
  t.same(byState, { succeeded: JOBS }, `every job succeeded${why.length ? `: ${JSON.stringify(why)}` : ''}`);
  const finalLines = new Map<string, number>();
  for (const l of logs) if (typeof l.jobId === 'string' && FINAL_LINES.has(String(l.msg))) finalLines.set(l.jobId, (finalLines.get(l.jobId) ?? 0) + 1);
  t.same([...finalLines].filter(([, n]) => n > 1), [], 'no job logged final twice, across every process');
  const recovered = logs.filter((l) => String(l.msg).startsWith('recovery:') && l.replica !== leader).length;
  t.ok(recovered > 0, `the dead leader's jobs were recovered by the others (${recovered} recovery lines)`);
  t.equal((await db.rows<{ n: number }>(`SELECT count(*)::int AS n FROM jobs WHERE lease_owner IS NOT NULL`))[0]!.n, 0, 'no lease left behind');

  // --- no duplicate snapshot
  const sim = rl.lab.readState();
  const markers = new Map<string, number>();
  for (const vm of sim.vms) {
    for (const s of Object.values(vm.snapshots)) {
      const m = /snapvisor:(\S+)/.exec(s.description)?.[1];
      if (m) markers.set(m, (markers.get(m) ?? 0) + 1);
    }
  }
  t.same([...jobIds].filter((id) => markers.get(id) !== 1), [], 'each job\'s marker is on exactly one snapshot of the simulator');
  const storeRows = await db.rows<{ job_id: string; n: number }>(`SELECT job_id, count(*)::int AS n FROM snapshots WHERE job_id IS NOT NULL GROUP BY job_id HAVING count(*) > 1`);
  t.same(storeRows, [], 'one store row per job\'s snapshot');
  const calls = rl.lab.calls();
  const takes = new Map<string, number>();
  for (const c of calls) if (c.op === 'take' && c.exit === 0 && c.marker) takes.set(c.marker, (takes.get(c.marker) ?? 0) + 1);
  const doubled = [...takes].filter(([, n]) => n > 1);
  // A doubled take's story goes into the failure's own diagnostics (the run's tail keeps those):
  // its job row, its calls and those around them on its VM, its snapshots, and every log line naming it.
  const stories = await Promise.all(
    doubled.map(async ([marker]) => {
      const jobId = marker.slice('snapvisor:'.length);
      const mine = calls.filter((c) => c.marker === marker);
      const vm = mine[0]?.vm;
      const from = Math.min(...mine.map((c) => c.start)) - 10_000;
      const to = Math.max(...mine.map((c) => c.end)) + 2_000;
      const brief = (c: (typeof calls)[number]) => `${new Date(c.start).toISOString()} +${c.end - c.start}ms pid ${c.pid} ${c.op} ${c.marker ?? ''} exit ${c.exit}`;
      const line = (l: Record<string, unknown>) => {
        const { replica, time, level, msg, ...rest } = l;
        for (const k of ['pid', 'hostname', 'reqId', 'req', 'res', 'component']) delete rest[k];
        return `${replica} ${new Date(Number(time)).toISOString()} ${level} ${msg} ${JSON.stringify(rest)}`;
      };
      return {
        marker,
        job: await db.rows(`SELECT id, vm_id, policy_id, state, attempts, created_at, finished_at FROM jobs WHERE id = $1`, [jobId]),
        calls: calls.filter((c) => c.vm === vm && c.start >= from && c.start <= to && c.op !== 'showvminfo').map(brief),
        snapshots: sim.vms.flatMap((v) => Object.values(v.snapshots).filter((s) => s.description.includes(marker)).map((s) => `${v.name}/${s.name}`)),
        log: logs.filter((l) => JSON.stringify(l).includes(jobId) || /lease|recovery sweep|stopp|leader/i.test(String(l.msg))).map(line),
      };
    }),
  );
  t.same(doubled, [], 'no job took its snapshot twice', stories.length > 0 ? { timeline, stories } : {});

  // --- per-VM serialisation, from the simulator's own record
  t.ok(calls.filter((c) => c.op === 'take').length >= JOBS, `the call log has every take (${calls.length} calls)`);
  const overlaps = overlappingCalls(calls);
  t.same(overlaps.map(([a, b]) => `${a.vm}: ${a.op} ${a.marker} [${a.start}, ${a.end}] × ${b.op} ${b.marker} [${b.start}, ${b.end}]`), [], 'no two mutating calls on one VM overlapped');

  // --- each due slot fired exactly once across the leader's death
  const slots = await runsOf();
  t.same(slots.filter((s) => s.n !== 1), [], 'one run per slot');
  const times = slots.map((s) => Date.parse(s.scheduled_for));
  t.ok(times.length >= 2, `at least two slots (${times.length})`);
  t.same(times.slice(1).map((x, i) => x - times[i]!).filter((d) => d !== MINUTE), [], 'consecutive minutes: no slot skipped');
  const starters = logs.filter((l) => l.msg === 'policy run started' && l.policyId === policyId);
  const afterKill = starters.filter((l) => Date.parse(String(l.scheduledFor)) > killedAt);
  t.ok(afterKill.length > 0 && afterKill.every((l) => l.replica !== leader), `slots after the kill fired by another replica (${afterKill.map((l) => l.replica).join(', ')})`);
  t.equal(new Set(starters.map((l) => l.scheduledFor)).size, starters.length, 'no slot started twice (logs of every process)');
  mark('checked');
});
