/**
 * `npm run bench -- <name>`: runs one benchmark and appends its section to BENCHMARKS.md (or, with
 * BENCH_SECTION_FILE=<path>, writes the section to that file and leaves BENCHMARKS.md alone).
 * Figures are ratios against a baseline measured in the same run (machines here are shared and
 * noisy), plus absolute numbers for context. Benchmarks are never timed tests.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { regenerate } from './summary.ts';

export interface BenchReport {
  title: string;
  /** Markdown body: what was measured, the table, the verdict against the target. */
  markdown: string;
}

const BENCHES: Record<string, () => Promise<BenchReport>> = {
  'tree-api': async () => (await import('./tree-api.ts')).run(),
  'store-scale': async () => (await import('./store-scale.ts')).run(),
  kvm: async () => (await import('./kvm.ts')).run(),
  vmware: async () => (await import('./vmware.ts')).run(),
  hyperv: async () => (await import('./hyperv.ts')).run(),
  'job-overhead': async () => (await import('./job-overhead.ts')).run(),
  azure: async () => (await import('./azure.ts')).run(),
  'claim-queue': async () => (await import('./claim-queue.ts')).run(),
  reliability: async () => (await import('./reliability.ts')).run(),
  'policy-planner': async () => (await import('./policy-planner.ts')).run(),
  scheduler: async () => (await import('./scheduler.ts')).run(),
  'snapshot-group': async () => (await import('./snapshot-group.ts')).run(),
  drift: async () => (await import('./drift.ts')).run(),
  'console-paint': async () => (await import('./console-paint.ts')).run(),
  'scale-out': async () => (await import('./scale-out.ts')).run(),
};

async function main() {
  const name = process.argv[2];
  const bench = name ? BENCHES[name] : undefined;
  if (!bench) {
    process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}>\n`);
    process.exit(2);
  }
  const report = await bench();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const section =
    `\n## ${report.title} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n\n` +
    `Command: \`npm run bench -- ${name}\` · Node ${process.version} · ${os.cpus().length} × ${cpu} · ${Math.round(os.totalmem() / 2 ** 30)} GiB\n\n` +
    `${report.markdown.trim()}\n`;
  // Helper branches hand their section to the lead instead of editing BENCHMARKS.md themselves.
  const elsewhere = process.env.BENCH_SECTION_FILE;
  if (elsewhere) {
    writeFileSync(elsewhere, section);
    process.stdout.write(section);
    process.exit(0);
  }
  const file = new URL('../BENCHMARKS.md', import.meta.url);
  if (!existsSync(file)) writeFileSync(file, '# Benchmarks\n\nEach section is appended by `npm run bench -- <name>`; newest last.\n');
  appendFileSync(file, section);
  // The summary table at the top comes from the recorded sections' bench-summary blocks only.
  regenerate(file);
  process.stdout.write(section);
  process.exit(0);
}

await main();
