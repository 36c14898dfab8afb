/** `snapvisor policies`, `policy plan <id>`, `policy run <id>`: REST calls and their tables. */
import type { Client } from './client.ts';
import { printable, table } from './format.ts';

export interface PolicyCliContext {
  client: Client;
  write(text: string): void;
  json: boolean;
  kind: string | undefined;
}

interface PolicyJson {
  id: string;
  name: string;
  schedule: string;
  timezone: string;
  mode: string;
  enabled: boolean;
  selector: { vms?: string[]; targets?: string[]; namePattern?: string };
  retention: { keepLast: number; keepHourly?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; maxAge?: string };
}

interface PlanJson {
  policyId: string;
  kind: string;
  at: string;
  steps: Array<{ vmId: string; vmName: string; targetName: string; action: string; snapshotId?: string; snapshotName?: string; reason: string }>;
}

interface RunJson {
  id: string;
  policyId: string;
  kind: string;
  state: string;
  message: string | null;
}

const enc = encodeURIComponent;

/** Why a kind is refused, or null (the API would say the same, less plainly). */
export function kindProblem(kind: string | undefined): string | null {
  return kind === undefined || kind === 'snapshot' || kind === 'consolidate' ? null : `--kind must be snapshot or consolidate, not '${kind}'`;
}

const selectorText = (s: PolicyJson['selector']) =>
  [s.targets ? `targets=${s.targets.join(',')}` : null, s.namePattern !== undefined ? `name=${s.namePattern}` : null, s.vms ? `vms=${s.vms.length}` : null]
    .filter(Boolean)
    .join(' ');

const retentionText = (r: PolicyJson['retention']) =>
  [
    `last ${r.keepLast}`,
    r.keepHourly ? `hourly ${r.keepHourly}` : null,
    r.keepDaily ? `daily ${r.keepDaily}` : null,
    r.keepWeekly ? `weekly ${r.keepWeekly}` : null,
    r.keepMonthly ? `monthly ${r.keepMonthly}` : null,
    r.maxAge ? `max ${r.maxAge}` : null,
  ]
    .filter(Boolean)
    .join(', ');

export async function listPolicies(ctx: PolicyCliContext): Promise<number> {
  const { body } = await ctx.client.request<{ items: PolicyJson[] }>('GET', '/v1/policies');
  if (ctx.json) return ctx.write(JSON.stringify(body, null, 2) + '\n'), 0;
  ctx.write(
    table(body.items, [
      { header: 'ID', value: (p) => p.id },
      { header: 'NAME', value: (p) => printable(p.name) },
      { header: 'SCHEDULE', value: (p) => `${p.schedule} ${p.timezone}` },
      { header: 'MODE', value: (p) => p.mode },
      { header: 'ENABLED', value: (p) => (p.enabled ? 'yes' : 'no') },
      { header: 'SELECTOR', value: (p) => printable(selectorText(p.selector)) },
      { header: 'KEEP', value: (p) => printable(retentionText(p.retention)) },
    ]),
  );
  return 0;
}

export async function planPolicy(ctx: PolicyCliContext, id: string): Promise<number> {
  const kind = ctx.kind ?? 'snapshot';
  const { body } = await ctx.client.request<PlanJson>('GET', `/v1/policies/${enc(id)}/plan?kind=${enc(kind)}`);
  if (ctx.json) return ctx.write(JSON.stringify(body, null, 2) + '\n'), 0;
  if (body.steps.length === 0) {
    ctx.write(`nothing to do (${kind} plan at ${body.at})\n`);
    return 0;
  }
  ctx.write(
    table(body.steps, [
      { header: 'VM', value: (s) => printable(s.vmName) },
      { header: 'TARGET', value: (s) => printable(s.targetName) },
      { header: 'ACTION', value: (s) => s.action },
      { header: 'SNAPSHOT', value: (s) => printable(s.snapshotName ?? s.snapshotId ?? '') },
      { header: 'REASON', value: (s) => printable(s.reason) },
    ]),
  );
  return 0;
}

export async function runPolicy(ctx: PolicyCliContext, id: string): Promise<number> {
  const kind = ctx.kind ?? 'snapshot';
  const { body } = await ctx.client.request<RunJson>('POST', `/v1/policies/${enc(id)}/run?kind=${enc(kind)}`);
  if (ctx.json) return ctx.write(JSON.stringify(body, null, 2) + '\n'), 0;
  ctx.write(
    `run ${body.id} ${body.state}${body.message ? `: ${printable(body.message)}` : ''}\n` +
      (body.state === 'skipped' ? '' : `its jobs: snapvisor jobs --policy ${body.policyId}\n`),
  );
  return body.state === 'skipped' ? 1 : 0;
}
