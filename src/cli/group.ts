/**
 * `snapvisor group create|show|retry`: snapshot groups (POST/GET /v1/snapshot-groups). Create and
 * retry follow the group until no member is running (unless --no-wait) and exit 1 unless it ended
 * succeeded, printing the members table either way.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from './client.ts';
import { keyValues, shortTime, table } from './format.ts';

export interface GroupMemberJson {
  vmId: string;
  vmName: string;
  target: string;
  jobId: string;
  state: string;
  snapshotId: string | null;
  startedAt: string | null;
  error: { kind: string; message: string } | null;
}

export interface GroupJson {
  id: string;
  name: string;
  mode: string;
  state: string;
  createdAt: string;
  finishedAt: string | null;
  spreadMs: number | null;
  members: GroupMemberJson[];
}

export interface GroupContext {
  client: Client;
  io: { stdout: { write(text: string): unknown }; stderr: { write(text: string): unknown }; sleep: (ms: number) => Promise<void> };
  values: { name?: string | undefined; mode?: string | undefined; description?: string | undefined; vm?: string[] | undefined; target?: string | undefined; pattern?: string | undefined; 'no-wait'?: boolean | undefined };
  args: string[];
  json: boolean;
  /** Thrown for a usage error (exit 2 with the usage text). */
  usage(message: string): Error;
}

const POLL_MS = 500;

/** The group as a readable block: its summary, then one row per member. */
export function formatGroup(g: GroupJson): string {
  const counts = new Map<string, number>();
  for (const m of g.members) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  const summary = keyValues([
    ['group', g.id],
    ['name', g.name],
    ['mode', g.mode],
    ['state', g.state],
    ['members', [...counts].map(([s, n]) => `${n} ${s}`).join(', ')],
    ['created', shortTime(g.createdAt)],
    ['finished', shortTime(g.finishedAt)],
    ['spread', g.spreadMs === null ? '-' : `${(g.spreadMs / 1000).toFixed(3)} s (first to last start)`],
  ]);
  const rows = table(g.members, [
    { header: 'VM', value: (m) => m.vmName },
    { header: 'TARGET', value: (m) => m.target },
    { header: 'STATE', value: (m) => m.state },
    { header: 'STARTED', value: (m) => shortTime(m.startedAt) },
    { header: 'SNAPSHOT', value: (m) => m.snapshotId ?? '-' },
    { header: 'JOB', value: (m) => m.jobId },
    { header: 'ERROR', value: (m) => (m.error ? `${m.error.kind}: ${m.error.message}` : '') },
  ]);
  return `${summary}\n${rows}`;
}

async function follow(ctx: GroupContext, first: GroupJson, wait: boolean): Promise<number> {
  let group = first;
  while (wait && group.state === 'running') {
    await ctx.io.sleep(POLL_MS);
    group = (await ctx.client.request<GroupJson>('GET', `/v1/snapshot-groups/${encodeURIComponent(group.id)}`)).body;
  }
  ctx.io.stdout.write(ctx.json ? `${JSON.stringify(group, null, 2)}\n` : formatGroup(group));
  if (!wait || group.state === 'succeeded') return 0;
  if (!ctx.json) ctx.io.stderr.write(`group ${group.id} ended ${group.state}${group.state === 'partial' ? ` (complete it with: snapvisor group retry ${group.id})` : ''}\n`);
  return 1;
}

export async function groupCommand(ctx: GroupContext): Promise<number> {
  const [sub, id, extra] = ctx.args;
  const wait = ctx.values['no-wait'] !== true;
  const needId = () => {
    if (id === undefined || id === '') throw ctx.usage(`group ${sub ?? ''} needs <groupId>`);
    if (extra !== undefined) throw ctx.usage(`unexpected argument '${extra}'`);
    return encodeURIComponent(id);
  };
  switch (sub) {
    case 'create': {
      if (id !== undefined) throw ctx.usage(`unexpected argument '${id}'`);
      const { name, mode, description, vm, target, pattern } = ctx.values;
      if (!name || !mode) throw ctx.usage('group create needs --name and --mode');
      const byVm = vm !== undefined && vm.length > 0;
      const bySelector = target !== undefined || pattern !== undefined;
      if (byVm === bySelector) throw ctx.usage('group create needs either --vm ID (repeated) or --target T and/or --pattern GLOB');
      const body = {
        name,
        mode,
        ...(description === undefined ? {} : { description }),
        ...(byVm ? { vms: vm } : { selector: { ...(target === undefined ? {} : { targets: [target] }), ...(pattern === undefined ? {} : { namePattern: pattern }) } }),
      };
      const { body: group } = await ctx.client.request<GroupJson>('POST', '/v1/snapshot-groups', { body, headers: { 'idempotency-key': randomUUID() } });
      return follow(ctx, group, wait);
    }
    case 'show': {
      const { body: group } = await ctx.client.request<GroupJson>('GET', `/v1/snapshot-groups/${needId()}`);
      return follow(ctx, group, false);
    }
    case 'retry': {
      const { body } = await ctx.client.request<{ group: GroupJson }>('POST', `/v1/snapshot-groups/${needId()}/retry`);
      return follow(ctx, body.group, wait);
    }
    default:
      throw ctx.usage(sub === undefined ? 'group needs a subcommand: create, show or retry' : `unknown group subcommand '${sub}'`);
  }
}
