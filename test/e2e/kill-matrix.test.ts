// The kill matrix (issue 10): the daemon is SIGKILLed at 22 precise points of create, delete,
// revert, delete-all and offline create — each point a simulator fault that stops VBoxManage
// exactly there (test/labs/vboxmanage-sim: hang, stall, hang-after; `hung` records the moment) —
// then restarted on the same data directory. After each: every job created through the API ends,
// exactly once, in the right state; no snapshot is made twice; the VM's power state is the one the
// job promised; the store agrees with the hypervisor; the SQLite file passes integrity_check both
// as the kill left it and after a clean stop.
//
// With KILL_MATRIX_REPORT=<file> the figures are written there as JSON (bench/reliability.ts
// records them in BENCHMARKS.md).
import t from 'tap';
import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import type { SimFault, SimHung, SimOp, VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, FINAL_LINES, startDaemon, until, type Daemon } from './daemon.ts';
import { finalJob, firstVm, TOKEN, vboxDaemonSetup, type JobBody } from './vbox-daemon.ts';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

// The first start goes through scripts/start.mjs exactly as `npm start` does; the others run the
// build it made (startDaemon's default).
const start = (ctx: { dir: string; env: Record<string, string> }): Promise<Daemon> => startDaemon({ cwd: ctx.dir, env: ctx.env });

/** Milliseconds per 10 % of a simulated operation: every stop waits on a recorded point, never on time. */
const STEP_MS = 10;
const VM = 'app-1';

type Scenario = 'create' | 'delete-leaf' | 'delete-children' | 'revert-running' | 'revert-off' | 'delete-all' | 'offline' | 'queued';

interface Point {
  scenario: Scenario;
  /** Where the daemon dies, in words. */
  at: string;
  /** The simulator call that stops there, and how. */
  stop: { op: SimOp; type: 'hang' | 'stall' | 'hang-after'; skip?: number };
}

const P = (scenario: Scenario, at: string, op: SimOp, type: Point['stop']['type'], skip?: number): Point => ({
  scenario,
  at,
  stop: { op, type, ...(skip === undefined ? {} : { skip }) },
});

// The VirtualBox adapter's calls, in order (providers/virtualbox/index.ts):
// create memory: list (marker) · showvminfo · take · list (the new snapshot)
// create offline: list · showvminfo · controlvm acpipowerbutton · showvminfo (poll)… · take · startvm · list
// delete: list · delete (children: deepest first, one delete each)
// revert: list · showvminfo · [controlvm poweroff when running] · restore · showvminfo · [startvm when saved · showvminfo]
const POINTS: Point[] = [
  P('queued', 'right after the 202 of a second job (queued behind the first, not claimed)', 'showvminfo', 'hang'),
  P('create', 'memory create: before the take is sent', 'showvminfo', 'hang'),
  P('create', 'memory create: while the take is pending', 'take', 'stall'),
  P('create', 'memory create: take finished, before the final write', 'list', 'hang', 1),
  P('delete-leaf', 'delete leaf: before the delete is sent', 'list', 'hang'),
  P('delete-leaf', 'delete leaf: while the delete is pending', 'delete', 'stall'),
  P('delete-leaf', 'delete leaf: delete finished, before the final write', 'delete', 'hang-after'),
  P('delete-children', 'delete with children: before the first delete is sent', 'list', 'hang'),
  P('delete-children', 'delete with children: second of three deletes pending', 'delete', 'stall', 1),
  P('delete-children', 'delete with children: last delete finished, before the final write', 'delete', 'hang-after', 2),
  P('revert-running', 'revert of a running VM: before anything is sent', 'list', 'hang'),
  P('revert-running', 'revert of a running VM: while the restore is pending (VM powered off)', 'restore', 'stall'),
  P('revert-running', 'revert of a running VM: restored and restarted, before the final write', 'startvm', 'hang-after'),
  P('revert-off', 'revert of an off VM: before anything is sent', 'list', 'hang'),
  P('revert-off', 'revert of an off VM: while the restore is pending', 'restore', 'stall'),
  P('revert-off', 'revert of an off VM: restore finished, before the final write', 'restore', 'hang-after'),
  P('delete-all', 'delete-all: second of three deletes pending', 'delete', 'stall', 1),
  P('offline', 'offline create: waiting for the guest to shut down', 'showvminfo', 'hang', 1),
  P('offline', 'offline create: VM off, before the take', 'take', 'hang'),
  P('offline', 'offline create: while the take is pending', 'take', 'stall'),
  P('offline', 'offline create: take finished, before the restart', 'startvm', 'hang'),
  P('offline', 'offline create: restarted, before the final write', 'list', 'hang', 1),
];

export interface PointFigures {
  point: string;
  scenario: Scenario;
  jobs: number;
  states: string[];
  kills: number;
  restarts: number;
  duplicates: number;
  lost: number;
  endedTwice: number;
  wrongPower: number;
  storeDisagrees: number;
  integrityAfterKill: string;
  integrityAfterStop: string;
  ms: number;
}

interface SimSnap { uuid: string; name: string; description: string }

const vmOf = (lab: VboxLab) => lab.readState().vms.find((v) => v.name === VM)!;
const simSnaps = (lab: VboxLab): SimSnap[] => Object.values(vmOf(lab).snapshots).map((s) => ({ uuid: s.uuid, name: s.name, description: s.description }));
const markedBy = (lab: VboxLab, jobId: string) => simSnaps(lab).filter((s) => s.description.split('\n').includes(`snapvisor:${jobId}`));

/** A chain of snapshots made outside Snapvisor, each the child of the one before; returns name → UUID. */
function seedChain(lab: VboxLab, names: string[], online: boolean): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const name of names) ids[name] = lab.addExternalSnapshot(VM, { name, online });
  return ids;
}

interface Plan {
  /** Submits the job(s) that will be interrupted; returns their ids in order. */
  submit(d: Daemon, vmId: string): Promise<string[]>;
  /** After the stop point is reached, before the kill (the queued point submits its second job here). */
  beforeKill?(d: Daemon, vmId: string, jobs: string[]): Promise<void>;
  /** The power state the jobs promised: the one the VM must be in once they ended. */
  power: 'running' | 'poweroff';
  /** UUIDs that must be gone from the hypervisor when the job succeeded (else: still there). */
  doomed: string[];
  /** Creates: each must leave exactly one marked snapshot when it succeeded, none when it failed. */
  creates: boolean;
  /** Revert: the snapshot the VM's current state must come from. */
  current?: string;
}

async function snapshotIdByName(d: Daemon, vmId: string, name: string): Promise<string> {
  const list = await api<{ items: Array<{ id: string; name: string; state: string }> }>(d, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots`);
  const found = list.body.items.find((s) => s.name === name && s.state === 'present');
  if (!found) throw new Error(`no snapshot named ${name} in the store`);
  return found.id;
}

async function accepted(res: Promise<{ status: number; body: JobBody }>): Promise<string> {
  const r = await res;
  if (r.status !== 202) throw new Error(`expected 202, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body.id;
}

function plan(scenario: Scenario, lab: VboxLab): Plan {
  const create = (mode: 'memory' | 'offline', name: string) => (d: Daemon, vmId: string) =>
    accepted(api<JobBody>(d, TOKEN, 'POST', `/v1/vms/${vmId}/snapshots`, { name, mode }));
  switch (scenario) {
    case 'create':
      return { submit: async (d, vmId) => [await create('memory', 'kill-create')(d, vmId)], power: 'running', doomed: [], creates: true };
    case 'offline':
      return { submit: async (d, vmId) => [await create('offline', 'kill-offline')(d, vmId)], power: 'running', doomed: [], creates: true };
    case 'queued':
      return {
        submit: async (d, vmId) => [await create('memory', 'first')(d, vmId)],
        async beforeKill(d, vmId, jobs) {
          jobs.push(await create('memory', 'second')(d, vmId));
          const second = await api<JobBody>(d, TOKEN, 'GET', `/v1/jobs/${jobs[1]}`);
          if (second.body.state !== 'queued') throw new Error(`second job is ${second.body.state}, not queued`);
        },
        power: 'running',
        doomed: [],
        creates: true,
      };
    case 'delete-leaf': {
      const ids = seedChain(lab, ['base', 'leaf'], true);
      return {
        submit: async (d, vmId) => [await accepted(api<JobBody>(d, TOKEN, 'DELETE', `/v1/snapshots/${await snapshotIdByName(d, vmId, 'leaf')}`))],
        power: 'running',
        doomed: [ids.leaf!],
        creates: false,
      };
    }
    case 'delete-children': {
      const ids = seedChain(lab, ['base', 'parent', 'child', 'grandchild'], true);
      return {
        submit: async (d, vmId) => [await accepted(api<JobBody>(d, TOKEN, 'DELETE', `/v1/snapshots/${await snapshotIdByName(d, vmId, 'parent')}?children=true`))],
        power: 'running',
        doomed: [ids.parent!, ids.child!, ids.grandchild!],
        creates: false,
      };
    }
    case 'delete-all': {
      const ids = seedChain(lab, ['a', 'b', 'c'], true);
      return {
        submit: async (d, vmId) => [await accepted(api<JobBody>(d, TOKEN, 'DELETE', `/v1/vms/${vmId}/snapshots`))],
        power: 'running',
        doomed: Object.values(ids),
        creates: false,
      };
    }
    case 'revert-running': {
      // Online snapshots: a revert brings the VM back running.
      const ids = seedChain(lab, ['warm', 'later'], true);
      return {
        submit: async (d, vmId) => [await accepted(api<JobBody>(d, TOKEN, 'POST', `/v1/snapshots/${await snapshotIdByName(d, vmId, 'warm')}/revert`))],
        power: 'running',
        doomed: [],
        creates: false,
        current: ids.warm!,
      };
    }
    case 'revert-off': {
      lab.setVmState(VM, 'poweroff');
      const ids = seedChain(lab, ['cold', 'later'], false);
      return {
        submit: async (d, vmId) => [await accepted(api<JobBody>(d, TOKEN, 'POST', `/v1/snapshots/${await snapshotIdByName(d, vmId, 'cold')}/revert`))],
        power: 'poweroff',
        doomed: [],
        creates: false,
        current: ids.cold!,
      };
    }
  }
}

function integrity(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
}

async function runPoint(t: TapTest, point: Point): Promise<PointFigures> {
  const started = performance.now();
  const mark = (what: string) => process.env.KILL_MATRIX_DEBUG && t.comment(`${Math.round(performance.now() - started)} ms: ${what}`);
  const ctx = vboxDaemonSetup(t, { stepMs: STEP_MS });
  const { lab } = ctx;
  const p = plan(point.scenario, lab);
  const before = simSnaps(lab);

  const d1 = await start(ctx);
  t.teardown(() => d1.kill('SIGKILL'));
  const vmId = await firstVm(d1);
  mark('d1 up, vm');
  // The first inventory pass (VMs and snapshot trees) is over: the only calls from now on are the job's.
  await until('ready', async () => (await api(d1, TOKEN, 'GET', '/readyz')).status === 200, 30_000, 20);
  const fault = { type: point.stop.type, times: 1, ...(point.stop.skip === undefined ? {} : { skip: point.stop.skip }) } as SimFault;
  lab.setFault(point.stop.op, VM, fault);
  mark('ready');

  const jobs = await p.submit(d1, vmId);
  const stopped = await until<SimHung>(
    `VBoxManage stopped at ${point.stop.op} (${point.stop.type})`,
    async () => lab.readState().hung?.find((h) => h.op === point.stop.op && h.type === point.stop.type),
    30_000,
    10,
  );
  const first = await api<JobBody>(d1, TOKEN, 'GET', `/v1/jobs/${jobs[0]}`);
  t.equal(first.body.state, 'running', 'the job is running when the daemon dies');
  await p.beforeKill?.(d1, vmId, jobs);
  mark('stopped');
  const exit = await d1.kill('SIGKILL');
  t.equal(exit.signal, 'SIGKILL');
  // The VBoxManage clients die with it; what one left pending completes at the next call (VBoxSVC).
  for (const h of lab.readState().hung ?? []) {
    try {
      process.kill(h.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  lab.clearFaults();
  t.equal(stopped.vm, VM);
  const integrityAfterKill = integrity(ctx.database);
  t.equal(integrityAfterKill, 'ok', 'integrity_check on the file the kill left');
  mark('killed');

  const d2 = await start(ctx);
  t.teardown(() => d2.kill('SIGKILL'));
  mark('d2 up');
  if (process.env.KILL_MATRIX_DEBUG) {
    const l = d2.logs();
    const t0 = Number(l[0]?.time ?? 0);
    for (const line of l) t.comment(`  d2 +${Number(line.time) - t0} ms ${String(line.msg)}`);
  }
  let lost = 0;
  const finals: JobBody[] = [];
  for (const id of jobs) {
    try {
      finals.push(await finalJob(d2, id, 60_000));
    } catch {
      lost += 1;
      finals.push((await api<JobBody>(d2, TOKEN, 'GET', `/v1/jobs/${id}`)).body);
    }
  }
  t.equal(lost, 0, 'every job ended');
  mark('final');

  let duplicates = 0;
  let endedTwice = 0;
  const after = simSnaps(lab);
  for (const [i, id] of jobs.entries()) {
    const job = finals[i]!;
    t.not(job.state, 'cancelled', `job ${i + 1} not cancelled`);
    if (job.state === 'failed') t.ok(job.error?.kind, `job ${i + 1} failed with a clear error: ${JSON.stringify(job.error)}`);
    t.equal(job.state, 'succeeded', `job ${i + 1} succeeded (the hypervisor did it, or the retry did): ${JSON.stringify(job.error)}`);
    const ends = [...d1.logs(), ...d2.logs()].filter((l) => l.jobId === id && FINAL_LINES.has(String(l.msg))).length;
    if (ends !== 1) endedTwice += 1;
    t.equal(ends, 1, `job ${i + 1} ended exactly once`);
    if (p.creates) {
      const marked = markedBy(lab, id).length;
      const want = job.state === 'succeeded' ? 1 : 0;
      if (marked > 1) duplicates += marked - 1;
      t.equal(marked, want, job.state === 'failed' ? 'a failed create left no snapshot' : 'exactly one snapshot carries the job marker');
    }
  }
  const succeeded = finals.every((j) => j.state === 'succeeded');
  const expected = new Set(before.map((s) => s.uuid).filter((u) => !(succeeded && p.doomed.includes(u))));
  for (const s of after) if (p.creates && jobs.some((id) => s.description.split('\n').includes(`snapvisor:${id}`))) expected.add(s.uuid);
  t.same(new Set(after.map((s) => s.uuid)), expected, 'the hypervisor holds exactly the snapshots the jobs promised');
  if (p.current) t.equal(vmOf(lab).current, p.current, 'the VM now comes from the reverted-to snapshot');

  const power = vmOf(lab).state;
  const wrongPower = power === p.power ? 0 : 1;
  t.equal(power, p.power, `the VM is ${p.power}, as the job promised`);

  const listed = await api<{ items: Array<{ providerRef: string; state: string }> }>(d2, TOKEN, 'GET', `/v1/vms/${vmId}/snapshots`);
  const stored = new Set(listed.body.items.filter((s) => s.state === 'present').map((s) => s.providerRef));
  const storeDisagrees = [...stored].filter((r) => !after.some((s) => s.uuid === r)).length + after.filter((s) => !stored.has(s.uuid)).length;
  t.equal(storeDisagrees, 0, 'the store lists exactly the snapshots the hypervisor has');

  const stop = await d2.kill('SIGTERM');
  t.equal(stop.code, 0, 'clean stop');
  mark('stopped d2');
  const integrityAfterStop = integrity(ctx.database);
  t.equal(integrityAfterStop, 'ok', 'integrity_check after a clean stop');

  return {
    point: point.at,
    scenario: point.scenario,
    jobs: jobs.length,
    states: finals.map((j) => j.state),
    kills: 1,
    restarts: 1,
    duplicates,
    lost,
    endedTwice,
    wrongPower,
    storeDisagrees,
    integrityAfterKill,
    integrityAfterStop,
    ms: Math.round(performance.now() - started),
  };
}

const figures: PointFigures[] = [];
// KILL_MATRIX_ONLY=<scenario or words of a point>[|…] runs a subset (by hand, while working on one).
const only = process.env.KILL_MATRIX_ONLY?.split('|');
const selected = POINTS.filter((p) => !only || only.some((o) => p.scenario === o || p.at.includes(o)));
for (const point of selected) {
  t.test(`SIGKILL at ${point.at}`, async (t) => {
    figures.push(await runPoint(t, point));
  });
}

t.teardown(() => {
  const report = process.env.KILL_MATRIX_REPORT;
  if (report) writeFileSync(report, `${JSON.stringify({ stepMs: STEP_MS, planned: selected.length, points: figures }, null, 2)}\n`);
});
