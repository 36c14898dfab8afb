/**
 * KVM over SSH against a real libvirt + QEMU lab (test/labs/kvm/lab.ts), in one script:
 * (a) create + delete of one internal memory snapshot of a running domain through the real daemon's
 *     REST API (started as `npm start` starts it, target = the lab over SSH) vs the same two virsh
 *     commands as a careful operator runs them: `ssh` reusing one OpenSSH ControlMaster connection;
 *     target ratio ≤ 0.7 (issue 15: persistent virsh sessions make it faster than the raw CLI).
 *     Beside it, the same commands each on a new connection (the naive script), and the adapter's
 *     per-command cost with one virsh process per command and through its sessions.
 * (b) the full tree of a domain with 30 snapshots: Snapvisor fresh sync + GET tree vs the naive loop
 *     (one ssh for the list, one ssh per snapshot-dumpxml); target ratio ≤ 0.1.
 * (c) per-command cost: `virsh list` in a new ssh process, over ControlMaster, as one virsh process
 *     on one kept-open connection (providers/shared/ssh.ts) and through a virsh session.
 * Sides alternate within every round so drift on this shared machine does not favour one of them.
 * Rounds can be changed with KVM_BENCH_ROUNDS_A / _B / KVM_BENCH_ITER_C.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createKvmProvider } from '../providers/kvm/index.ts';
import { virshSessionProtocol } from '../providers/kvm/virsh-session.ts';
import { createSessionRunner } from '../providers/shared/session-pool.ts';
import { createSshRunner } from '../providers/shared/ssh.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';
import { api, until, type Daemon } from '../test/e2e/daemon.ts';
import { createKvmLab, type KvmLab } from '../test/labs/kvm/lab.ts';
import { rawSsh, type RawSsh } from './kvm-raw.ts';
import { tracedProvider } from './kvm-trace.ts';
import { apiCreateDeleteCycle, apiSyncAndTree, ms, startSshTargetDaemon, verdict } from './api-jobs.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, timingRow } from './stats.ts';

const ROUNDS_A = Number(process.env.KVM_BENCH_ROUNDS_A ?? 10);
const ROUNDS_B = Number(process.env.KVM_BENCH_ROUNDS_B ?? 5);
const ITER_C = Number(process.env.KVM_BENCH_ITER_C ?? 20);
const TRACE_CYCLES = 3;
const TREE_SNAPSHOTS = 30;
const URI = 'qemu:///system';
const TOKEN = 'kvm-bench-token-5e8d0b6a9f3c';
const TARGET = 'lab';
/** Machine-readable figures of this run, per section (the summary table at the top of BENCHMARKS.md is generated from them). */
const summaries: Record<string, Record<string, unknown>> = {};

const cmd = (argv: readonly string[]) => argv.map((a) => (/^[A-Za-z0-9_.:/=@-]+$/.test(a) ? a : `'${a}'`)).join(' ');

async function seedTree(lab: KvmLab): Promise<void> {
  // A main chain with a side branch every 10 snapshots (revert 3 back, then continue from there).
  const dom = lab.domainName('tree');
  for (let i = 1; i <= TREE_SNAPSHOTS; i++) {
    if (i % 10 === 0) {
      const r = await lab.virsh('snapshot-revert', dom, `s${String(i - 3).padStart(2, '0')}`);
      if (r.code !== 0) throw new Error(`seed revert: ${r.stderr}`);
    }
    const r = await lab.virsh('snapshot-create-as', dom, `s${String(i).padStart(2, '0')}`, '--description', `bench snapshot ${i}`);
    if (r.code !== 0) throw new Error(`seed create s${i}: ${r.stderr}`);
  }
}


export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-kvm-bench-'));
  // QEMU runs as libvirt-qemu and must traverse to the lab's disks; the key files inside stay 0600.
  chmodSync(dir, 0o755);
  let lab: KvmLab | undefined;
  let daemon: Daemon | undefined;
  let mux: RawSsh | undefined;
  try {
    const setupStart = performance.now();
    lab = await createKvmLab({ dir: path.join(dir, 'lab'), domains: [{ name: 'live', running: true }, { name: 'tree', running: false }] });
    await seedTree(lab);
    const raw = rawSsh(dir, lab.ssh);
    mux = rawSsh(dir, lab.ssh, { controlMaster: true });
    daemon = await startSshTargetDaemon(dir, lab.ssh, { name: TARGET, options: `kind: kvm, uri: ${JSON.stringify(URI)}, commandTimeoutSec: 120` }, TOKEN);
    const live = lab.domainName('live');
    const tree = lab.domainName('tree');
    const vmIds = await until(
      'first inventory sync',
      async () => {
        const vms = await api<{ items: Array<{ id: string; name: string }> }>(daemon!, TOKEN, 'GET', `/v1/vms?target=${TARGET}&limit=500`);
        const l = vms.body.items.find((v) => v.name === live)?.id;
        const t = vms.body.items.find((v) => v.name === tree)?.id;
        return l && t ? { live: l, tree: t, targetVms: vms.body.items.length } : undefined;
      },
      120_000,
      200,
    );
    const setupSeconds = ms(setupStart) / 1000;

    const a = await sectionA(daemon, raw, mux, lab, live, vmIds.live);
    const b = await sectionB(daemon, raw, lab, tree, vmIds.tree);
    const c = await sectionC(raw, mux, lab);
    const vmsNow = await api<{ items: unknown[] }>(daemon, TOKEN, 'GET', `/v1/vms?target=${TARGET}&limit=500`);

    return {
      title: 'KVM over SSH (real libvirt + QEMU lab): Snapvisor vs raw `ssh … virsh`',
      markdown: [
        `Lab: test/labs/kvm/lab.ts (libvirt ${'qemu:///system'}, QEMU TCG — no /dev/kvm — 64 MiB domains with one 16 MiB qcow2, sshd on 127.0.0.1 as user \`snaplab\`); set up with ${TREE_SNAPSHOTS} seeded snapshots and the daemon ready in ${fmt(setupSeconds, 1)} s. The daemon is the real one (\`scripts/start.mjs\`, what \`npm start\` runs), configured with one \`kind: kvm\` target reaching the lab over SSH (pinned host key, key file), periodic sync off, worker poll 50 ms. The target's libvirtd is the machine's only one and is shared with other test labs, so a target sync sees every domain on it (${vmIds.targetVms} at start, ${vmsNow.body.items.length} at the end).`,
        a,
        b,
        c,
        '```json bench-summary\n' + JSON.stringify({ bench: 'kvm', ...summaries }) + '\n```',
      ].join('\n\n'),
    };
  } finally {
    if (mux) await mux.close();
    if (daemon) await daemon.kill('SIGTERM');
    if (lab) await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

// (a) -------------------------------------------------------------------------------------------

async function sectionA(daemon: Daemon, fresh: RawSsh, raw: RawSsh, lab: KvmLab, dom: string, vmId: string): Promise<string> {
  const snapvisorCycle = (name: string) => apiCreateDeleteCycle(daemon, TOKEN, vmId, name);

  const cycleOf = (side: RawSsh) => async (name: string) => {
    const c = await side.run(['virsh', '-c', URI, 'snapshot-create-as', dom, name]);
    const d = await side.run(['virsh', '-c', URI, 'snapshot-delete', dom, name]);
    return { createMs: c.ms, deleteMs: d.ms, total: c.ms + d.ms };
  };
  const rawCycle = cycleOf(raw);
  const freshCycle = cycleOf(fresh);
  type Cycle = Awaited<ReturnType<typeof rawCycle>>;
  // One unrecorded cycle each: the daemon's SSH connection, the ControlMaster connection and QEMU's
  // first savevm are one-off costs.
  await snapvisorCycle('sv-warmup');
  await rawCycle('raw-warmup');
  await freshCycle('fresh-warmup');

  const rows: Array<{ round: number; sv: Awaited<ReturnType<typeof snapvisorCycle>>; raw: Cycle; fresh: Cycle }> = [];
  for (let round = 1; round <= ROUNDS_A; round++) {
    // The three sides in a rotating order, so drift and warm caches do not favour one.
    const sides = [
      async () => ({ sv: await snapvisorCycle(`sv-${round}`) }),
      async () => ({ raw: await rawCycle(`raw-${round}`) }),
      async () => ({ fresh: await freshCycle(`fresh-${round}`) }),
    ];
    const got: { sv?: Awaited<ReturnType<typeof snapvisorCycle>>; raw?: Cycle; fresh?: Cycle } = {};
    for (let i = 0; i < sides.length; i++) Object.assign(got, await sides[(i + round) % sides.length]!());
    rows.push({ round, sv: got.sv!, raw: got.raw!, fresh: got.fresh! });
  }
  // Where the time goes: the same adapter calls, in process, each remote command timed — one virsh
  // process per command (before issue 15) and through persistent sessions (now), cycles alternating.
  const traces = { oneShot: tracedProvider(lab.ssh, URI, { sessions: false }), session: tracedProvider(lab.ssh, URI, { sessions: true }) };
  const traced: Record<keyof typeof traces, Array<{ createMs: number; deleteMs: number }>> = { oneShot: [], session: [] };
  try {
    for (const [side, trace] of Object.entries(traces)) {
      await trace.cycle(lab.domainUuid('live'), `trace-${side}-warmup`);
      trace.calls.length = 0;
    }
    for (let i = 1; i <= TRACE_CYCLES; i++) {
      for (const side of (i % 2 ? ['oneShot', 'session'] : ['session', 'oneShot']) as Array<keyof typeof traces>) {
        traced[side].push(await traces[side].cycle(lab.domainUuid('live'), `trace-${side}-${i}`));
      }
    }
  } finally {
    await Promise.all(Object.values(traces).map((x) => x.close()));
  }
  const byCommand = new Map<string, Record<keyof typeof traces, number[]>>();
  for (const side of Object.keys(traces) as Array<keyof typeof traces>) {
    for (const c of traces[side].calls) {
      const key = `${c.op}: ${c.command}`;
      const entry = byCommand.get(key) ?? { oneShot: [], session: [] };
      entry[side].push(c.ms);
      byCommand.set(key, entry);
    }
  }
  const med = (xs: number[]) => (xs.length ? fmt(median(xs), 0) : '–');
  const cycleMs = (side: keyof typeof traces) => median(traced[side].map((t) => t.createMs + t.deleteMs));
  const perCall = (side: keyof typeof traces) => median(traces[side].calls.filter((c) => c.command !== 'snapshot-create-as' && c.command !== 'snapshot-delete').map((c) => c.ms));
  const traceTable = [
    '| job: remote command | calls per cycle | median ms per call, one virsh process per command | median ms per call, through a session |',
    '|---|---|---|---|',
    ...[...byCommand].map(([k, v]) => `| ${k} | ${fmt(v.session.length / TRACE_CYCLES, 1)} | ${med(v.oneShot)} | ${med(v.session)} |`),
    `| **adapter create + delete, total per cycle** | ${fmt(traces.session.calls.length / TRACE_CYCLES, 1)} | **${fmt(cycleMs('oneShot'), 0)}** | **${fmt(cycleMs('session'), 0)}** |`,
  ].join('\n');
  summaries.perCommand = { readOneShotMs: Math.round(perCall('oneShot')), readSessionMs: Math.round(perCall('session')), cycleOneShotMs: Math.round(cycleMs('oneShot')), cycleSessionMs: Math.round(cycleMs('session')) };

  const svMed = median(rows.map((r) => r.sv.total));
  const rawMed = median(rows.map((r) => r.raw.total));
  const freshMed = median(rows.map((r) => r.fresh.total));
  const ratios = rows.map((r) => r.sv.total / r.raw.total);
  const freshRatios = rows.map((r) => r.sv.total / r.fresh.total);
  const ratio = median(ratios);
  const freshRatio = median(freshRatios);
  const spread = (xs: number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
  const m = (f: (r: (typeof rows)[number]) => number) => fmt(median(rows.map(f)), 0);
  const table = [
    '| round | Snapvisor create + delete (ms) | raw over one ControlMaster connection (ms) | **ratio** | raw, new connection per command (ms) | ratio |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.round} | ${fmt(r.sv.createMs, 0)} + ${fmt(r.sv.deleteMs, 0)} = ${fmt(r.sv.total, 0)} | ${fmt(r.raw.createMs, 0)} + ${fmt(r.raw.deleteMs, 0)} = ${fmt(r.raw.total, 0)} | ${fmt(r.sv.total / r.raw.total)} | ${fmt(r.fresh.createMs, 0)} + ${fmt(r.fresh.deleteMs, 0)} = ${fmt(r.fresh.total, 0)} | ${fmt(r.sv.total / r.fresh.total)} |`,
    ),
    `| **median** | **${fmt(svMed, 0)}** | **${fmt(rawMed, 0)}** | **${fmt(ratio)}** | ${fmt(freshMed, 0)} | ${fmt(freshRatio)} |`,
  ].join('\n');
  const ok = ratio <= 0.7;
  summaries.a = {
    ratioVsControlMaster: Number(ratio.toFixed(2)),
    ratioVsControlMasterRange: [Number(Math.min(...ratios).toFixed(2)), Number(Math.max(...ratios).toFixed(2))],
    ratioVsNewConnection: Number(freshRatio.toFixed(2)),
    ratioVsNewConnectionRange: [Number(Math.min(...freshRatios).toFixed(2)), Number(Math.max(...freshRatios).toFixed(2))],
    target: '<= 0.7 (vs ControlMaster)',
    met: ok,
  };
  return [
    `### (a) Create + delete one internal memory snapshot of a running domain (${ROUNDS_A} rounds, the three sides in rotating order, after one warm-up cycle each)`,
    `Snapvisor: \`POST /v1/vms/{id}/snapshots?wait=60\` \`{"name":"sv-N","mode":"memory"}\` then \`DELETE /v1/snapshots/{id}?wait=60\`, each answered 200 with the succeeded job (time = HTTP request to response, client in this process). Raw, as a careful operator runs it — every command an \`ssh\` process multiplexed over one OpenSSH master connection (opened by the warm-up cycle and kept open by ControlPersist):\n\n    ${cmd(raw.argv(['virsh', '-c', URI, 'snapshot-create-as', '<dom>', 'raw-N']))}\n    ${cmd(raw.argv(['virsh', '-c', URI, 'snapshot-delete', '<dom>', 'raw-N']))}\n\nBeside it, the naive script: the same commands without the three ControlMaster options, each on a new connection (handshake and authentication per command).`,
    table,
    `**Median ratio Snapvisor/raw over ControlMaster ${fmt(ratio)}** (rounds ${spread(ratios)}; target ≤ 0.7: ${verdict(ok)}); against a new connection per command ${fmt(freshRatio)} (rounds ${spread(freshRatios)}). Where Snapvisor's time goes (medians per cycle): ${m((r) => r.sv.inWorker)} ms inside the two jobs, ${m((r) => r.sv.queued)} ms queued before a worker took them, the rest (${m((r) => r.sv.total - r.sv.inWorker - r.sv.queued)} ms) HTTP, SQLite and job bookkeeping. Inside the jobs the adapter's reads and writes (below) go to a few long-lived \`virsh\` processes on the host, kept on the daemon's one SSH connection (persistent sessions, providers/kvm/virsh-session.ts): no process start and no new libvirt connection per command, which is what each raw command pays; the store is then updated from what the adapter answered. The snapshot commands themselves are a small part of either side on this 64 MiB guest.`,
    `The adapter's remote commands for one cycle, driven in process over one pooled connection, with one virsh process per command (\`sessions: false\`, as before persistent sessions) and through sessions (the default), cycles alternating (${TRACE_CYCLES} each after a warm-up, same domain). Median per read command: **${fmt(perCall('oneShot'), 0)} ms before, ${fmt(perCall('session'), 0)} ms now**.`,
    traceTable,
  ].join('\n\n');
}

// (b) -------------------------------------------------------------------------------------------

async function sectionB(daemon: Daemon, raw: RawSsh, lab: KvmLab, dom: string, vmId: string): Promise<string> {
  const snapvisorRead = () => apiSyncAndTree(daemon, TOKEN, TARGET, vmId, TREE_SNAPSHOTS);

  const rawRead = async () => {
    const t0 = performance.now();
    const list = await raw.run(['virsh', '-c', URI, 'snapshot-list', dom, '--name']);
    const names = list.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    let parents = 0;
    for (const name of names) {
      const x = await raw.run(['virsh', '-c', URI, 'snapshot-dumpxml', dom, name]);
      if (x.stdout.includes('<parent>')) parents++;
    }
    if (names.length !== TREE_SNAPSHOTS || parents !== TREE_SNAPSHOTS - 1) throw new Error(`raw loop read ${names.length} snapshots, ${parents} with a parent`);
    return { total: ms(t0) };
  };
  // Context: the adapter's listSnapshots alone over its own pooled connection (no daemon, no other VMs).
  const provider = createKvmProvider('bench-direct', { uri: URI, ssh: lab.ssh }, { log: silentLogger() });
  const ctx = { signal: new AbortController().signal, log: silentLogger(), progress: () => {} };
  const uuid = lab.domainUuid('tree');
  const directRead = async () => {
    const t0 = performance.now();
    const snaps = await provider.listSnapshots(uuid, ctx as Parameters<typeof provider.listSnapshots>[1]);
    if (snaps.length !== TREE_SNAPSHOTS) throw new Error(`listSnapshots returned ${snaps.length}`);
    return ms(t0);
  };
  await snapvisorRead();
  await directRead();

  const rows: Array<{ round: number; sv: Awaited<ReturnType<typeof snapvisorRead>>; raw: number; direct: number }> = [];
  try {
    for (let round = 1; round <= ROUNDS_B; round++) {
      let sv;
      let rw;
      if (round % 2) {
        sv = await snapvisorRead();
        rw = (await rawRead()).total;
      } else {
        rw = (await rawRead()).total;
        sv = await snapvisorRead();
      }
      rows.push({ round, sv, raw: rw, direct: await directRead() });
    }
  } finally {
    await provider.close();
  }
  const ratio = median(rows.map((r) => r.sv.total / r.raw));
  const directRatio = median(rows.map((r) => r.direct / r.raw));
  const bRatios = rows.map((r) => r.sv.total / r.raw);
  summaries.b = { ratio: Number(ratio.toFixed(2)), ratioRange: [Number(Math.min(...bRatios).toFixed(2)), Number(Math.max(...bRatios).toFixed(2))], adapterRatio: Number(directRatio.toFixed(2)), target: '<= 0.1', met: ratio <= 0.1 };
  const table = [
    '| round | Snapvisor sync + GET tree (ms) | raw loop, 31 ssh processes (ms) | ratio | adapter listSnapshots alone (ms) | ratio |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.round} | ${fmt(r.sv.syncMs, 0)} + ${fmt(r.sv.getMs, 0)} = ${fmt(r.sv.total, 0)} | ${fmt(r.raw, 0)} | ${fmt(r.sv.total / r.raw)} | ${fmt(r.direct, 0)} | ${fmt(r.direct / r.raw)} |`),
    `| **median** | **${fmt(median(rows.map((r) => r.sv.total)), 0)}** | **${fmt(median(rows.map((r) => r.raw)), 0)}** | **${fmt(ratio)}** | ${fmt(median(rows.map((r) => r.direct)), 0)} | ${fmt(directRatio)} |`,
  ].join('\n');
  return [
    `### (b) Full tree of a domain with ${TREE_SNAPSHOTS} snapshots (${ROUNDS_B} alternating rounds, after one warm-up each)`,
    `Measured: the **API path** — \`POST /v1/targets/${TARGET}/sync\` (health check, every domain's inventory, every domain's snapshots: \`snapshot-list --name\`, \`snapshot-dumpxml\` per snapshot 4 at a time, \`snapshot-current\`, through the daemon's virsh sessions on its one SSH connection) then \`GET /v1/vms/{id}/snapshots?view=tree\`, checked to hold ${TREE_SNAPSHOTS} snapshots. For context, the adapter's \`listSnapshots\` of that one domain called directly over its own pooled connection. The tree is a chain with a side branch every 10 snapshots (a shut-off domain, seeded as root with \`virsh snapshot-create-as\`). Raw, sequentially:\n\n    ${cmd(raw.argv(['virsh', '-c', URI, 'snapshot-list', '<dom>', '--name']))}\n    ${cmd(raw.argv(['virsh', '-c', URI, 'snapshot-dumpxml', '<dom>', '<name>']))}   # once per snapshot`,
    table,
    `**Median ratio ${fmt(ratio)}** (target ≤ 0.1: ${verdict(ratio <= 0.1)}); the adapter alone ${fmt(directRatio)}. The sync also re-reads the other domains on the host, which the raw loop does not.`,
  ].join('\n\n');
}

// (c) -------------------------------------------------------------------------------------------

async function sectionC(raw: RawSsh, mux: RawSsh, lab: KvmLab): Promise<string> {
  const log = silentLogger();
  const runner = createSshRunner(lab.ssh, { log });
  // A session pool of one on a connection of its own: every timed call goes through the same virsh.
  const sessions = createSessionRunner({ protocol: virshSessionProtocol(URI), open: (c, o) => runner.openStream(c, o), oneShot: runner, log, size: 1 });
  const argv = ['virsh', '-c', URI, 'list'];
  const pooled: number[] = [];
  const session: number[] = [];
  const fresh: number[] = [];
  const muxed: number[] = [];
  let connectMs = NaN;
  let sessionOpenMs = NaN;
  const timed = async (into: number[], r: { run: typeof runner.run }) => {
    const t = performance.now();
    const res = await r.run(argv, {});
    if (res.exitCode !== 0) throw new Error(`virsh list: exit ${res.exitCode}`);
    into.push(ms(t));
  };
  try {
    const t0 = performance.now();
    const first = await runner.run(argv, {});
    connectMs = ms(t0);
    if (first.exitCode !== 0) throw new Error(`virsh list over the pooled connection: exit ${first.exitCode}`);
    const t1 = performance.now();
    await sessions.run(argv, {});
    sessionOpenMs = ms(t1);
    await raw.run(argv);
    await mux.run(argv);
    for (let i = 0; i < ITER_C; i++) {
      const sides = [
        async () => muxed.push((await mux.run(argv)).ms),
        async () => fresh.push((await raw.run(argv)).ms),
        () => timed(pooled, runner),
        () => timed(session, sessions),
      ];
      for (let k = 0; k < sides.length; k++) await sides[(k + i) % sides.length]!();
    }
    if (sessions.stats().session !== ITER_C + 1) throw new Error(`only ${sessions.stats().session} of ${ITER_C + 1} calls went through the session`);
  } finally {
    await sessions.close();
    await runner.close();
  }
  const freshMed = median(fresh);
  const pooledMed = median(pooled);
  const sessionMed = median(session);
  summaries.c = { newConnectionMs: Math.round(freshMed), controlMasterMs: Math.round(median(muxed)), pooledMs: Math.round(pooledMed), sessionMs: Number(sessionMed.toFixed(1)), pooledVsNew: Number((pooledMed / freshMed).toFixed(2)) };
  const table = [
    '| transport | runs | median (ms) | min / max (ms) |',
    '|---|---|---|---|',
    timingRow('new `ssh` process per command', fresh),
    timingRow('`ssh` process per command over one ControlMaster connection', muxed),
    timingRow('one kept-open connection, a virsh process per command (createSshRunner, a channel each)', pooled),
    timingRow('one kept-open connection, one running virsh (a persistent session)', session),
  ].join('\n');
  return [
    `### (c) Per-command cost: \`virsh list\` ${ITER_C}× each, the four sides in rotating order`,
    `Raw: \`${cmd(raw.argv(argv))}\`; ControlMaster: \`${cmd(mux.argv(argv))}\`. Pooled: \`runner.run(['virsh', '-c', '${URI}', 'list'])\` on one createSshRunner connection (providers/shared/ssh.ts), opened before the timed runs (the first call, connect + auth + command, took ${fmt(connectMs, 0)} ms). Session: the same call through a virsh session on that connection (providers/shared/session-pool.ts; opening it and its hello took ${fmt(sessionOpenMs, 0)} ms, once).`,
    table,
    `**Pooled/new-process ratio ${fmt(pooledMed / freshMed)}**: ${fmt(freshMed - pooledMed, 0)} ms per command is the ssh process, TCP connect, key exchange and authentication; of what remains (${fmt(pooledMed, 0)} ms), a session saves all but ${fmt(sessionMed, 1)} ms: virsh starting and connecting to libvirtd.`,
  ].join('\n\n');
}
