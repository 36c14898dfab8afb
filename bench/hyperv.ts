/**
 * Hyper-V over SSH against the Hyper-V lab (test/labs/hyperv: a real sshd, real PowerShell 7.6 as
 * the host's `powershell`, the lab's Hyper-V module), in one script:
 * (a) create + delete of one checkpoint of a running VM through the real daemon's REST API (started
 *     as `npm start` starts it, target = the lab over SSH) vs the same two cmdlets as a careful
 *     operator sends them: `ssh host powershell -NoProfile -NonInteractive -EncodedCommand <b64>`,
 *     each over one kept-open OpenSSH ControlMaster connection; target ratio ≤ 1.2.
 * (b) the full tree of a VM with 30 checkpoints: Snapvisor fresh sync + GET tree vs the naive loop
 *     (one ssh for the checkpoint names, then one ssh per checkpoint for its parent); target ≤ 0.3.
 * (c) issue 15's measure: the cost of a call through a persistent PowerShell host vs one
 *     `powershell -EncodedCommand` process per call (the adapter's one-shot transport), both over
 *     one kept-open SSH connection; target ≤ 0.3 for a call that does nothing (the per-call
 *     overhead), and the same for the adapter's checkpoint listing (the per-command cost).
 * Sides alternate within every round so drift on this shared machine does not favour one of them.
 * Rounds can be changed with HV_BENCH_ROUNDS_A / HV_BENCH_ROUNDS_B / HV_BENCH_ITER_C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { scriptRequest } from '../providers/hyperv/scripts.ts';
import { encodeScript, powershellEncoding, type PowerShellRequest } from '../providers/shared/command-encoding.ts';
import { powershellHostProtocol } from '../providers/shared/powershell-host.ts';
import { createSessionRunner } from '../providers/shared/session-pool.ts';
import { createSshRunner } from '../providers/shared/ssh.ts';
import { silentLogger } from '../test/fixtures/fake-provider.ts';
import { api, until, type Daemon } from '../test/e2e/daemon.ts';
import { createHyperVLab, type HyperVLab } from '../test/labs/hyperv/lab.ts';
import { rawSsh, type RawSsh } from './kvm-raw.ts';
import { apiCreateDeleteCycle, apiSyncAndTree, ms, startSshTargetDaemon, verdict } from './api-jobs.ts';
import type { BenchReport } from './run.ts';
import { fmt, median, timingRow } from './stats.ts';

const ROUNDS_A = Number(process.env.HV_BENCH_ROUNDS_A ?? 7);
const ROUNDS_B = Number(process.env.HV_BENCH_ROUNDS_B ?? 3);
const ITER_C = Number(process.env.HV_BENCH_ITER_C ?? 15);
const TREE_CHECKPOINTS = 30;
const TOKEN = 'hv-bench-token-5e8d0b6a9f3c';
const TARGET = 'lab';
const summaries: Record<string, Record<string, unknown>> = {};

const spread = (xs: number[]) => `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
const range = (xs: number[]) => [Number(Math.min(...xs).toFixed(2)), Number(Math.max(...xs).toFixed(2))];

/** The raw side's command: what an operator pastes, a script encoded as -EncodedCommand wants it. */
const encoded = (script: string) => ['powershell', '-NoProfile', '-NonInteractive', '-EncodedCommand', encodeScript(script)];


export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-hv-bench-'));
  let lab: HyperVLab | undefined;
  let daemon: Daemon | undefined;
  let mux: RawSsh | undefined;
  try {
    const setupStart = performance.now();
    // mergeMs 0: a removal's merge is over before the next cycle, on both sides alike.
    lab = await createHyperVLab({ dir: path.join(dir, 'lab'), vms: [{ name: 'live', state: 'Running' }, { name: 'tree', state: 'Off' }], mergeMs: 0 });
    const seeded = await lab.pwsh(
      `$ErrorActionPreference = 'Stop'\nforeach ($i in 1..${TREE_CHECKPOINTS}) { Checkpoint-VM -Name tree -SnapshotName ('c{0:D2}' -f $i) }\n@(Get-VMSnapshot -VMName tree).Count`,
    );
    if (seeded.exitCode !== 0 || seeded.stdout.trim() !== String(TREE_CHECKPOINTS)) throw new Error(`seeding the tree failed: ${seeded.stdout} ${seeded.stderr}`);
    mux = rawSsh(dir, lab.ssh, { controlMaster: true });
    daemon = await startSshTargetDaemon(dir, lab.ssh, { name: TARGET, options: `kind: hyperv, commandTimeoutSec: 120` }, TOKEN);
    const vmIds = await until(
      'first inventory sync',
      async () => {
        const vms = await api<{ items: Array<{ id: string; name: string }> }>(daemon!, TOKEN, 'GET', `/v1/vms?target=${TARGET}&limit=500`);
        const live = vms.body.items.find((v) => v.name === 'live')?.id;
        const tree = vms.body.items.find((v) => v.name === 'tree')?.id;
        return live && tree ? { live, tree } : undefined;
      },
      120_000,
      200,
    );
    const setupSeconds = ms(setupStart) / 1000;
    const a = await sectionA(daemon, mux, vmIds.live);
    const b = await sectionB(daemon, mux, vmIds.tree);
    const c = await sectionC(lab);
    return {
      title: 'Hyper-V over SSH (PowerShell 7.6 lab): Snapvisor vs raw `ssh … powershell -EncodedCommand`',
      markdown: [
        `Lab: test/labs/hyperv (sshd on 127.0.0.1, the lab user's \`powershell\` = real PowerShell 7.6.10 with the lab's Hyper-V module; merges take 0 ms so neither side waits for one); set up with ${TREE_CHECKPOINTS} seeded checkpoints and the daemon ready in ${fmt(setupSeconds, 1)} s. The daemon is the real one (\`scripts/start.mjs\`, what \`npm start\` runs), one \`kind: hyperv\` target reaching the lab over SSH (pinned host key, key file), persistent PowerShell hosts on (\`sessions\`, the default), periodic sync off, worker poll 50 ms. Every PowerShell start on this machine costs about 0.7–1.5 s: the raw side pays it for every command, the daemon once per session host.`,
        a,
        b,
        c,
        '```json bench-summary\n' + JSON.stringify({ bench: 'hyperv', ...summaries }) + '\n```',
      ].join('\n\n'),
    };
  } finally {
    if (mux) await mux.close();
    if (daemon) await daemon.kill('SIGTERM');
    if (lab) await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function sectionA(daemon: Daemon, raw: RawSsh, vmId: string): Promise<string> {
  const snapvisorCycle = (name: string) => apiCreateDeleteCycle(daemon, TOKEN, vmId, name);

  const rawCycle = async (name: string) => {
    const c = await raw.run(encoded(`$ErrorActionPreference = 'Stop'; Checkpoint-VM -Name live -SnapshotName ${name}`));
    const d = await raw.run(encoded(`$ErrorActionPreference = 'Stop'; Remove-VMSnapshot -VMName live -Name ${name} -Confirm:$false`));
    return { createMs: c.ms, deleteMs: d.ms, total: c.ms + d.ms };
  };
  await snapvisorCycle('sv-warmup');
  await rawCycle('raw-warmup');
  const rows: Array<{ round: number; sv: Awaited<ReturnType<typeof snapvisorCycle>>; raw: Awaited<ReturnType<typeof rawCycle>> }> = [];
  for (let round = 1; round <= ROUNDS_A; round++) {
    if (round % 2) {
      const sv = await snapvisorCycle(`sv-${round}`);
      rows.push({ round, sv, raw: await rawCycle(`raw-${round}`) });
    } else {
      const rw = await rawCycle(`raw-${round}`);
      rows.push({ round, sv: await snapvisorCycle(`sv-${round}`), raw: rw });
    }
  }
  const ratios = rows.map((r) => r.sv.total / r.raw.total);
  const ratio = median(ratios);
  const ok = ratio <= 1.2;
  summaries.a = { ratio: Number(ratio.toFixed(2)), ratioRange: range(ratios), target: '<= 1.2', met: ok };
  const table = [
    '| round | Snapvisor create + delete (ms) | raw over one ControlMaster connection (ms) | **ratio** |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.round} | ${fmt(r.sv.createMs, 0)} + ${fmt(r.sv.deleteMs, 0)} = ${fmt(r.sv.total, 0)} | ${fmt(r.raw.createMs, 0)} + ${fmt(r.raw.deleteMs, 0)} = ${fmt(r.raw.total, 0)} | ${fmt(r.sv.total / r.raw.total)} |`),
    `| **median** | **${fmt(median(rows.map((r) => r.sv.total)), 0)}** | **${fmt(median(rows.map((r) => r.raw.total)), 0)}** | **${fmt(ratio)}** |`,
  ].join('\n');
  return [
    `### (a) Create + delete one checkpoint of a running VM (${ROUNDS_A} alternating rounds, after one warm-up cycle each)`,
    `Snapvisor: \`POST /v1/vms/{id}/snapshots?wait=60\` \`{"name":"sv-N","mode":"memory"}\` then \`DELETE /v1/snapshots/{id}?wait=60\`, each answered 200 with the succeeded job (time = HTTP request to response). Inside the jobs: one PowerShell call each (create: find the VM by Id, look for the job's marker, set the checkpoint type and notes, Checkpoint-VM, put them back, answer the checkpoint; delete: find the checkpoint by Id, Remove-VMSnapshot), sent to a PowerShell host kept running on the daemon's pooled SSH connection. Raw, as a careful operator sends them — each an \`ssh\` process multiplexed over one OpenSSH master connection:\n\n    ssh … powershell -NoProfile -NonInteractive -EncodedCommand <"Checkpoint-VM -Name live -SnapshotName raw-N">\n    ssh … powershell -NoProfile -NonInteractive -EncodedCommand <"Remove-VMSnapshot -VMName live -Name raw-N -Confirm:$false">`,
    table,
    `**Median ratio ${fmt(ratio)}** (rounds ${spread(ratios)}; target ≤ 1.2: ${verdict(ok)}). Median time inside the two jobs: ${fmt(median(rows.map((r) => r.sv.inWorker)), 0)} ms; the rest is HTTP, SQLite and job bookkeeping.`,
  ].join('\n\n');
}

async function sectionB(daemon: Daemon, raw: RawSsh, vmId: string): Promise<string> {
  const snapvisorRead = () => apiSyncAndTree(daemon, TOKEN, TARGET, vmId, TREE_CHECKPOINTS);

  const rawRead = async () => {
    const t0 = performance.now();
    const list = await raw.run(encoded("$ErrorActionPreference = 'Stop'; Get-VMSnapshot -VMName tree | ForEach-Object { $_.Id.ToString() }"));
    const ids = list.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    let parents = 0;
    for (const id of ids) {
      const one = await raw.run(encoded(`$ErrorActionPreference = 'Stop'; Get-VMSnapshot -Id ${id} | Select-Object Name, ParentSnapshotId | ConvertTo-Json -Compress`));
      if ((JSON.parse(one.stdout) as { ParentSnapshotId: unknown }).ParentSnapshotId) parents++;
    }
    if (ids.length !== TREE_CHECKPOINTS || parents !== TREE_CHECKPOINTS - 1) throw new Error(`raw loop read ${ids.length} checkpoints, ${parents} with a parent`);
    return ms(t0);
  };
  await snapvisorRead();
  const rows: Array<{ round: number; sv: Awaited<ReturnType<typeof snapvisorRead>>; raw: number }> = [];
  for (let round = 1; round <= ROUNDS_B; round++) {
    if (round % 2) {
      const sv = await snapvisorRead();
      rows.push({ round, sv, raw: await rawRead() });
    } else {
      const rw = await rawRead();
      rows.push({ round, sv: await snapvisorRead(), raw: rw });
    }
  }
  const ratios = rows.map((r) => r.sv.total / r.raw);
  const ratio = median(ratios);
  summaries.b = { ratio: Number(ratio.toFixed(2)), ratioRange: range(ratios), target: '<= 0.3', met: ratio <= 0.3 };
  const table = [
    `| round | Snapvisor sync + GET tree (ms) | raw loop, ${TREE_CHECKPOINTS + 1} ssh processes (ms) | ratio |`,
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.round} | ${fmt(r.sv.syncMs, 0)} + ${fmt(r.sv.getMs, 0)} = ${fmt(r.sv.total, 0)} | ${fmt(r.raw, 0)} | ${fmt(r.sv.total / r.raw)} |`),
    `| **median** | **${fmt(median(rows.map((r) => r.sv.total)), 0)}** | **${fmt(median(rows.map((r) => r.raw)), 0)}** | **${fmt(ratio)}** |`,
  ].join('\n');
  return [
    `### (b) Full tree of a VM with ${TREE_CHECKPOINTS} checkpoints (${ROUNDS_B} alternating rounds, after one warm-up)`,
    `Snapvisor: \`POST /v1/targets/${TARGET}/sync\` (health check, then every VM with its drives and its whole checkpoint list in one PowerShell call) then \`GET /v1/vms/{id}/snapshots?view=tree\`, checked to hold ${TREE_CHECKPOINTS} checkpoints. Raw, over the same ControlMaster connection: one \`Get-VMSnapshot -VMName tree\` for the Ids, then \`Get-VMSnapshot -Id <id> | Select-Object Name, ParentSnapshotId | ConvertTo-Json\` once per checkpoint.`,
    table,
    `**Median ratio ${fmt(ratio)}** (rounds ${spread(ratios)}; target ≤ 0.3: ${verdict(ratio <= 0.3)}).`,
  ].join('\n\n');
}

async function sectionC(lab: HyperVLab): Promise<string> {
  const log = silentLogger();
  // The adapter's two transports on one connection: one-shot (a PowerShell process per call, the
  // script on stdin) and a pool of one PowerShell host, so every timed call goes to the same host.
  const runner = createSshRunner(lab.ssh, { log, encoding: powershellEncoding({ provider: 'hyperv', scriptOn: 'stdin' }) });
  const sessions = createSessionRunner({ protocol: powershellHostProtocol({ provider: 'hyperv' }), open: (c, o) => runner.openStream(c, o), oneShot: runner, log, size: 1 });
  const requests: Record<'empty' | 'list', PowerShellRequest> = {
    // Nothing but the protocol: what remains is the per-call overhead.
    empty: { script: "[Console]::Out.WriteLine('##snapvisor-result null')" },
    // The adapter's own read of a VM and its 30 checkpoints (scripts/checkpoints.ps1 with common.ps1).
    list: scriptRequest('checkpoints', { vmId: lab.vmId('tree'), mergeWaitMs: 0 }),
  };
  const times = { empty: { oneShot: [] as number[], session: [] as number[] }, list: { oneShot: [] as number[], session: [] as number[] } };
  const timed = async (what: 'empty' | 'list', side: 'oneShot' | 'session') => {
    const t = performance.now();
    const res = await (side === 'oneShot' ? runner : sessions).run(requests[what], { timeoutMs: 120_000 });
    if (res.exitCode !== 0 || !res.stdout.includes('##snapvisor-result ')) throw new Error(`${what} (${side}): exit ${res.exitCode}: ${res.stdout.slice(0, 200)} ${res.stderr.slice(0, 500)}`);
    times[what][side].push(ms(t));
  };
  let connectMs = NaN;
  let openMs = NaN;
  try {
    const t0 = performance.now();
    await runner.run(requests.empty, { timeoutMs: 120_000 });
    connectMs = ms(t0);
    const t1 = performance.now();
    await sessions.run(requests.empty, { timeoutMs: 120_000 });
    openMs = ms(t1);
    // One unrecorded call each: the Hyper-V module's first import in the host, the script's first parse.
    await sessions.run(requests.list, { timeoutMs: 120_000 });
    await runner.run(requests.list, { timeoutMs: 120_000 });
    for (let i = 0; i < ITER_C; i++) {
      const sides = [() => timed('empty', 'oneShot'), () => timed('empty', 'session'), () => timed('list', 'oneShot'), () => timed('list', 'session')];
      for (let k = 0; k < sides.length; k++) await sides[(k + i) % sides.length]!();
    }
    if (sessions.stats().session !== 2 * ITER_C + 2) throw new Error(`only ${sessions.stats().session} of ${2 * ITER_C + 2} calls went through the host`);
  } finally {
    await sessions.close();
    await runner.close();
  }
  const med = (xs: number[]) => median(xs);
  const ratio = med(times.empty.session) / med(times.empty.oneShot);
  const listRatio = med(times.list.session) / med(times.list.oneShot);
  const ok = ratio <= 0.3;
  summaries.c = {
    ratio: Number(ratio.toFixed(3)),
    target: '<= 0.3',
    met: ok,
    emptyOneShotMs: Math.round(med(times.empty.oneShot)),
    emptySessionMs: Number(med(times.empty.session).toFixed(1)),
    listRatio: Number(listRatio.toFixed(3)),
    listOneShotMs: Math.round(med(times.list.oneShot)),
    listSessionMs: Number(med(times.list.session).toFixed(1)),
  };
  const table = [
    '| call | runs | median (ms) | min / max (ms) |',
    '|---|---|---|---|',
    timingRow('empty script, one PowerShell process per call', times.empty.oneShot),
    timingRow('empty script, through the PowerShell host', times.empty.session),
    timingRow('checkpoint list of a 30-checkpoint VM, one PowerShell process per call', times.list.oneShot),
    timingRow('checkpoint list of a 30-checkpoint VM, through the PowerShell host', times.list.session),
  ].join('\n');
  return [
    `### (c) Per-call cost: a PowerShell host vs one \`powershell -EncodedCommand\` per call (${ITER_C} runs each, the four in rotating order)`,
    `Both on one kept-open SSH connection (createSshRunner, providers/shared/ssh.ts; its first call, connect + auth + a PowerShell, took ${fmt(connectMs, 0)} ms). One-shot: the adapter's encoding, a PowerShell process per call with the script and its parameters on stdin. Host: the same requests through a session pool of one (providers/shared/session-pool.ts + powershell-host.ts; starting the host and its hello took ${fmt(openMs, 0)} ms, once). The empty script writes one result line and nothing else, so its time is the per-call overhead; the checkpoint list is the adapter's own \`checkpoints\` script (common.ps1 + Get-VM + Get-VMSnapshot of 30 checkpoints, as JSON).`,
    table,
    `**Per-call overhead ratio ${fmt(ratio, 3)}** (host / one-shot, target ≤ 0.3: ${verdict(ok)}): ${fmt(med(times.empty.oneShot), 0)} → ${fmt(med(times.empty.session), 1)} ms per call. The adapter's checkpoint list: ${fmt(med(times.list.oneShot), 0)} → ${fmt(med(times.list.session), 1)} ms (ratio ${fmt(listRatio, 3)}).`,
  ].join('\n\n');
}
