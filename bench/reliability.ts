/**
 * Reliability: the kill matrix (test/e2e/kill-matrix.test.ts) run once through tap, its figures
 * read back from the JSON it writes (KILL_MATRIX_REPORT) and recorded: per point the daemon is
 * SIGKILLed at a simulator-held moment of a job, restarted on the same data directory, and checked
 * for lost jobs, jobs ended twice, duplicate snapshots, a VM power state the job did not promise,
 * a store that disagrees with the hypervisor, and `PRAGMA integrity_check` after the kill and after
 * a clean stop. Targets: every figure 0, integrity ok, every point passing.
 * Then the API fuzz stage (test/integration/api-fuzz.test.ts): 10,000 requests generated from the
 * OpenAPI document, valid and mutated; target: no 5xx, every answer problem+json or schema-valid,
 * integrity ok — its figures read from the comment line the test prints.
 * The times are wall times on a shared machine: context, not a target.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchReport } from './run.ts';
import type { PointFigures } from '../test/e2e/kill-matrix.test.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MATRIX = 'test/e2e/kill-matrix.test.ts';
const FUZZ = 'test/integration/api-fuzz.test.ts';

/** The fuzz file once through tap: pass/fail and the figures of its summary comment. */
function runFuzz(): { passed: boolean; requests: number; seconds: number; seed: number; statuses: string } | null {
  const tap = spawnSync('npx', ['tap', '--reporter=tap', '--timeout=1800', FUZZ], { cwd: ROOT, env: process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const m = /(\d+) requests in ([\d.]+) s \(seed (\d+)\); statuses (.*)$/m.exec(tap.stdout);
  if (!m) return null;
  return { passed: tap.status === 0, requests: Number(m[1]), seconds: Number(m[2]), seed: Number(m[3]), statuses: m[4]!.trim() };
}

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'snapvisor-reliability-'));
  const report = path.join(dir, 'kill-matrix.json');
  try {
    const started = performance.now();
    // A benchmark is not a timed test: on a loaded machine the file may take longer than the suite's per-file limit.
    const tap = spawnSync('npx', ['tap', '--reporter=tap', '--timeout=1800', MATRIX], {
      cwd: ROOT,
      env: { ...process.env, KILL_MATRIX_REPORT: report },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const wallS = (performance.now() - started) / 1000;
    const { stepMs, planned, points } = JSON.parse(readFileSync(report, 'utf8')) as { stepMs: number; planned: number; points: PointFigures[] };
    const fuzz = runFuzz();
    const sum = (k: 'kills' | 'restarts' | 'duplicates' | 'lost' | 'endedTwice' | 'wrongPower' | 'storeDisagrees' | 'jobs') => points.reduce((a, p) => a + p[k], 0);
    const integrityOk = points.every((p) => p.integrityAfterKill === 'ok' && p.integrityAfterStop === 'ok');
    const passed = tap.status === 0;
    const notOk = (tap.stdout.match(/^\s*not ok .*$/gm) ?? []).map((l) => l.trim());
    const ms = points.map((p) => p.ms).sort((a, b) => a - b);
    const medianMs = ms.length === 0 ? 0 : ms[Math.floor(ms.length / 2)]!;
    const summary = {
      bench: 'reliability',
      planned,
      points: points.length,
      kills: sum('kills'),
      restarts: sum('restarts'),
      jobs: sum('jobs'),
      duplicates: sum('duplicates'),
      lost: sum('lost'),
      endedTwice: sum('endedTwice'),
      wrongPower: sum('wrongPower'),
      storeDisagrees: sum('storeDisagrees'),
      integrityOk,
      tapPassed: passed,
      wallS: Number(wallS.toFixed(1)),
      medianPointMs: medianMs,
      fuzz,
      met: fuzz?.passed === true && passed && points.length === planned && integrityOk && sum('duplicates') + sum('lost') + sum('endedTwice') + sum('wrongPower') + sum('storeDisagrees') === 0,
    };
    const rows = points.map(
      (p) =>
        `| ${p.point} | ${p.states.join(', ')} | ${p.duplicates} | ${p.lost} | ${p.endedTwice} | ${p.wrongPower} | ${p.storeDisagrees} | ${p.integrityAfterKill} / ${p.integrityAfterStop} | ${(p.ms / 1000).toFixed(1)} |`,
    );
    return {
      title: 'Reliability: kill matrix (SIGKILL + restart at every step of create, delete, revert, delete-all, offline create) and API fuzz',
      markdown: [
        `Each point: a fresh VirtualBox simulator lab and data directory, a daemon; a simulator fault (hang / stall / hang-after, test/labs/vboxmanage-sim) holds VBoxManage at the named step and records it; the test waits for that record, checks the job is running, SIGKILLs the daemon (and the held VBoxManage client: an operation it left pending completes at the next call, as VBoxSVC would), runs \`PRAGMA integrity_check\` on the file as the kill left it, restarts the daemon on the same directory, waits for every job to end, then checks the hypervisor, the store and the file again after a clean stop. Simulator step ${stepMs} ms per 10 %; the figures come from \`${MATRIX}\` (run by \`npm test\` too).`,
        ...(process.env.KILL_MATRIX_ONLY ? [`Subset run: KILL_MATRIX_ONLY=\`${process.env.KILL_MATRIX_ONLY}\`.`] : []),
        `**${summary.points} of ${planned} points** recorded, ${summary.kills} kills, ${summary.restarts} restarts, ${summary.jobs} jobs: **${summary.duplicates} duplicates, ${summary.lost} lost jobs, ${summary.endedTwice} jobs ended twice, ${summary.wrongPower} VMs in a power state the job did not promise, ${summary.storeDisagrees} store/hypervisor disagreements; integrity ${integrityOk ? 'ok' : '**NOT ok**'} everywhere.** tap: ${passed ? 'all assertions passed' : `**failed** (exit ${tap.status})`}. Wall ${summary.wallS} s for the file (median ${(medianMs / 1000).toFixed(1)} s per point, two daemon starts each, on a shared 2-core machine).`,
        ...(notOk.length > 0 ? ['Failed assertions:', notOk.map((l) => `- \`${l}\``).join('\n')] : []),
        [
          '| point (daemon SIGKILLed …) | job state(s) after restart | duplicates | lost | ended twice | wrong power | store ≠ hypervisor | integrity after kill / after stop | s |',
          '|---|---|---|---|---|---|---|---|---|',
          ...rows,
        ].join('\n'),
        fuzz === null
          ? '**API fuzz**: the test printed no figures (it failed before the end): see its output.'
          : `**API fuzz** (\`${FUZZ}\`, in \`npm test\` too): ${fuzz.requests.toLocaleString('en')} requests generated from the OpenAPI document (valid and mutated) in ${fuzz.seconds} s, seed ${fuzz.seed}: ${fuzz.passed ? '**no 5xx, every answer problem+json or schema-valid, integrity_check ok**' : '**failed**'}. Statuses: ${fuzz.statuses}.`,
        '```json bench-summary\n' + JSON.stringify(summary) + '\n```',
      ].join('\n\n'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
