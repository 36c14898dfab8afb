/**
 * `snapvisor`: a thin client of the REST API. `run` takes its world (argv, env, streams, fetch,
 * sleep) as arguments so tests can drive it against a real daemon without a subprocess;
 * main.ts is the entry point that hands it the real ones.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { parseArgs } from 'node:util';
import { databasePath, findConfigFile } from '../config/load.ts';
import { backupFile, databaseFileProblem, inspectDatabaseFile, restoreFile } from '../store/backup.ts';
import { isPostgresUrl, redactUrl } from '../store/location.ts';
import { ApiError, createClient, type Client } from './client.ts';
import { doctor, formatFinding } from './doctor.ts';
import { groupCommand } from './group.ts';
import { kindProblem, listPolicies, planPolicy, runPolicy, type PolicyCliContext } from './policies.ts';
import {
  formatJob,
  formatJobError,
  formatProblem,
  keyValues,
  progressLine,
  renderTree,
  shortTime,
  table,
  type JobJson,
  type SnapshotJson,
  type TreeNodeJson,
} from './format.ts';

export const DEFAULT_URL = 'http://127.0.0.1:7480';
const POLL_MS = 500;
const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export interface CliIo {
  env: Record<string, string | undefined>;
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  /** Where relative paths (files, the configuration, the database) resolve; default process.cwd(). */
  cwd?: string;
}

export const USAGE = `Usage: snapvisor [--url URL] [--token TOKEN] [--json] <command> [options]

Commands:
  targets [name]                              configured targets, or one with its capabilities
  vms [--target T] [--name N]                 VMs
  snapshots <vmId> [--tree] [--all]           a VM's snapshots (--tree draws the chain)
  snapshot <snapshotId>                       one snapshot
  create <vmId> --name N --mode M [--description D] [--option K=V]... [--no-wait]
                                              take a snapshot (modes: memory, crash, quiesced, offline);
                                              --option: one the target declares (e.g. incremental=false
                                              on Azure; true/false and integers are sent typed)
  revert <snapshotId> [--no-wait]             revert the VM to a snapshot
  delete <snapshotId> [--children] [--no-wait]
                                              delete a snapshot (with its subtree)
  delete-all <vmId> [--no-wait]               remove every snapshot of a VM
  consolidate <vmId> [--dry-run] [--no-wait]  consolidate a VM's disk chains
  drift [--target T]                          drift per target: snapshots made or deleted outside
                                              Snapvisor, VMs gone, consolidation needed, orphans
  jobs [--state S] [--vm V] [--kind K] [--policy P]
                                              jobs (--policy: the jobs of a policy's runs)
  job <jobId>                                 one job
  cancel <jobId>                              cancel a job
  job retry <jobId> [--no-wait]               a new job like a failed or cancelled one
  group create --name N --mode M (--vm ID ... | --target T [--pattern GLOB] | --pattern GLOB)
        [--description D] [--no-wait]         snapshot many VMs in one request (a snapshot group);
                                              waits until no member runs, exit 1 unless all made
  group show <groupId>                        a group and its members (state, start, snapshot, job)
  group retry <groupId> [--no-wait]           new create jobs for the failed members of a group
  policies                                    scheduled policies
  policy plan <policyId> [--kind K]           what a run now would do, step by step (K: snapshot,
                                              the default, or consolidate); nothing is done
  policy run <policyId> [--kind K]            run a policy now (its jobs: jobs --policy <policyId>)

Operations (backup through the API; --local, restore and doctor work on this host's files):
  backup <file> [--force] [--local [--config F] [--db PATH]]
                                              online, consistent copy of the database (admin token);
                                              --local copies the database file directly instead
  restore <file> [--config F] [--db PATH]     put a backup in place of the database; refused while
                                              a daemon has it open; the old one is kept beside it
  doctor [--config F] [--timeout SEC]         check config, database, every target and clocks;
                                              exit 0 when nothing needs fixing

Environment: SNAPVISOR_URL (default ${DEFAULT_URL}), SNAPVISOR_TOKEN; SNAPVISOR_CONFIG, SNAPVISOR_DB as for the daemon.
Exit codes: 0 ok, 1 error or failed job, 2 usage error.
`;

class UsageError extends Error {}

/** `--option K=V`, repeated: true/false and integers are sent as JSON booleans and numbers (the target declares the type). */
export function createOptions(pairs: readonly string[]): Record<string, boolean | number | string> {
  const out: Record<string, boolean | number | string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--option needs NAME=VALUE, got '${pair}'`);
    const value = pair.slice(eq + 1);
    out[pair.slice(0, eq)] = value === 'true' ? true : value === 'false' ? false : /^-?\d{1,15}$/.test(value) ? Number(value) : value;
  }
  return out;
}

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  target: { type: 'string' },
  name: { type: 'string' },
  mode: { type: 'string' },
  description: { type: 'string' },
  option: { type: 'string', multiple: true },
  tree: { type: 'boolean' },
  all: { type: 'boolean' },
  children: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  'no-wait': { type: 'boolean' },
  state: { type: 'string' },
  // Repeated for `group create --vm A --vm B`; `jobs --vm V` takes the last one.
  vm: { type: 'string', multiple: true },
  pattern: { type: 'string' },
  kind: { type: 'string' },
  policy: { type: 'string' },
  force: { type: 'boolean' },
  local: { type: 'boolean' },
  config: { type: 'string' },
  db: { type: 'string' },
  timeout: { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr.write(`error: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [command, ...args] = positionals;
  if (values.help || command === undefined || command === 'help') {
    (command === undefined && !values.help ? io.stderr : io.stdout).write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const client = createClient({
    url: values.url ?? io.env['SNAPVISOR_URL'] ?? DEFAULT_URL,
    token: values.token ?? io.env['SNAPVISOR_TOKEN'],
    fetch: io.fetch,
  });
  const ctx: Context = { client, io, values, args, json: values.json === true };
  try {
    const handler = COMMANDS[command];
    if (!handler) throw new UsageError(`unknown command '${command}'`);
    return await handler(ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof ApiError) {
      if (ctx.json && err.status !== 0) io.stdout.write(JSON.stringify(err.problem, null, 2) + '\n');
      io.stderr.write(formatProblem(err.problem, err.status));
      return 1;
    }
    io.stderr.write(`error: ${(err as Error).message}\n`);
    return 1;
  }
}

interface Context {
  client: Client;
  io: CliIo;
  values: Values;
  args: string[];
  json: boolean;
}

function arg(ctx: Context, index: number, name: string): string {
  const value = ctx.args[index];
  if (value === undefined || value === '') throw new UsageError(`missing <${name}>`);
  return value;
}

function noMoreArgs(ctx: Context, count: number) {
  if (ctx.args.length > count) throw new UsageError(`unexpected argument '${ctx.args[count]}'`);
}

const enc = encodeURIComponent;

const cwdOf = (ctx: Context) => ctx.io.cwd ?? process.cwd();

/** The database file the daemon uses: --db, else as the daemon resolves it (SNAPVISOR_DB, the config's database, the demo's). */
function localDatabase(ctx: Context): string {
  const cwd = cwdOf(ctx);
  if (ctx.values.db !== undefined) return path.resolve(cwd, ctx.values.db);
  const config = ctx.values.config !== undefined ? path.resolve(cwd, ctx.values.config) : findConfigFile(ctx.io.env, cwd);
  const database = databasePath(ctx.io.env, cwd, config);
  if (isPostgresUrl(database)) {
    throw new UsageError(`the database is PostgreSQL (${redactUrl(database)}): back it up and restore it with PostgreSQL's tools (pg_dump, pg_restore, base backups), not snapvisor`);
  }
  return database;
}

function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) search.set(k, v);
  const text = search.toString();
  return text ? `?${text}` : '';
}

function printJson(ctx: Context, body: unknown) {
  ctx.io.stdout.write(JSON.stringify(body, null, 2) + '\n');
}

interface TargetJson {
  name: string;
  kind: string;
  demo: boolean;
  vmCount: number;
  health: { reachable: boolean; version?: string | null; message?: string | null; checkedAt: string | null };
  capabilities: {
    modes: Record<string, { supported: boolean; reason?: string }>;
    revert: boolean;
    deleteChildren: boolean;
    deleteAll: boolean;
    consolidate: boolean;
  };
}

interface DriftJson {
  target: string;
  checkedAt: string | null;
  createdOutside: Array<{ snapshotId: string; name: string; vmName: string; at: string | null }>;
  deletedOutside: Array<{ snapshotId: string; name: string; vmName: string; at: string | null }>;
  vmsGone: Array<{ vmId: string; name: string; goneAt: string }>;
  consolidationNeeded: Array<{ vmId: string; name: string; reason: string; chainDepth: number; maxChainDepth: number | null }>;
  orphans: { supported: boolean; message: string | null; items: Array<{ ref: string; kind: string; reason: string }> | null };
}

interface DriftRow {
  target: string;
  kind: string;
  vm: string;
  item: string;
  detail: string;
}

/** One row per drift item, and one per target whose orphans cannot be listed (said, not hidden). */
function driftRows(d: DriftJson): DriftRow[] {
  const rows: DriftRow[] = [
    ...d.createdOutside.map((s) => ({ target: d.target, kind: 'created-outside', vm: s.vmName, item: s.name, detail: `made ${shortTime(s.at)}` })),
    ...d.deletedOutside.map((s) => ({ target: d.target, kind: 'deleted-outside', vm: s.vmName, item: s.name, detail: `gone ${shortTime(s.at)}` })),
    ...d.vmsGone.map((v) => ({ target: d.target, kind: 'vm-gone', vm: v.name, item: '-', detail: `gone ${shortTime(v.goneAt)}` })),
    ...d.consolidationNeeded.map((c) => ({
      target: d.target,
      kind: 'consolidate',
      vm: c.name,
      item: '-',
      detail: c.reason === 'hypervisor' ? `the hypervisor reports it (depth ${c.chainDepth})` : `chain depth ${c.chainDepth} > ${c.maxChainDepth}`,
    })),
    ...(d.orphans.items ?? []).map((o) => ({ target: d.target, kind: `orphan ${o.kind}`, vm: '-', item: o.ref, detail: o.reason })),
  ];
  if (!d.orphans.supported || d.orphans.items === null) rows.push({ target: d.target, kind: 'orphans', vm: '-', item: '-', detail: d.orphans.message ?? 'not listed' });
  return rows;
}

interface VmJson {
  id: string;
  name: string;
  targetName: string;
  powerState: string;
  snapshotCount: number;
  chainDepth: number;
  consolidationNeeded: boolean;
  goneAt: string | null;
}

const supportedModes = (t: TargetJson) =>
  Object.entries(t.capabilities.modes)
    .filter(([, m]) => m.supported)
    .map(([name]) => name)
    .join(',') || '-';

const health = (t: TargetJson) => (t.health.checkedAt === null ? 'unchecked' : t.health.reachable ? 'ok' : 'unreachable');

async function followJob(ctx: Context, first: JobJson, wait: boolean): Promise<number> {
  const { io } = ctx;
  if (!wait) {
    if (ctx.json) printJson(ctx, first);
    else io.stdout.write(`job ${first.id} ${first.state} (follow it with: snapvisor job ${first.id})\n`);
    return 0;
  }
  const tty = io.stdout.isTTY === true && !ctx.json;
  let job = first;
  let last = '';
  for (;;) {
    if (!ctx.json) {
      const line = progressLine(job, tty);
      if (tty) io.stdout.write(`\r\u001b[2K${line}`);
      else if (line !== last) io.stdout.write(`${line}\n`);
      last = line;
    }
    if (FINAL.has(job.state)) break;
    await io.sleep(POLL_MS);
    job = (await ctx.client.request<JobJson>('GET', `/v1/jobs/${enc(job.id)}`)).body;
  }
  if (tty) io.stdout.write('\n');
  if (ctx.json) printJson(ctx, job);
  if (job.state !== 'succeeded') {
    io.stderr.write(formatJobError(job));
    return 1;
  }
  if (!ctx.json) {
    const made = job.result?.snapshotId ? ` snapshot ${job.result.snapshotId}` : '';
    io.stdout.write(`job ${job.id} succeeded${made}${job.result?.message ? `: ${job.result.message}` : ''}\n`);
  }
  return 0;
}

async function submit(ctx: Context, method: string, path: string, body: unknown): Promise<number> {
  // A fresh key per invocation: harmless, and lets an operator correlate the request in the audit log.
  const { body: job } = await ctx.client.request<JobJson>(method, path, {
    body,
    headers: { 'idempotency-key': randomUUID() },
  });
  return followJob(ctx, job, ctx.values['no-wait'] !== true);
}

const COMMANDS: Record<string, (ctx: Context) => Promise<number>> = {
  group: (ctx) => groupCommand({ ...ctx, usage: (message) => new UsageError(message) }),

  async targets(ctx) {
    noMoreArgs(ctx, 1);
    const name = ctx.args[0];
    if (name !== undefined) {
      const { body: t } = await ctx.client.request<TargetJson>('GET', `/v1/targets/${enc(name)}`);
      if (ctx.json) return printJson(ctx, t), 0;
      const entries: Array<[string, string]> = [
        ['name', t.name + (t.demo ? ' (demo)' : '')],
        ['kind', t.kind],
        ['health', `${health(t)}${t.health.version ? `, version ${t.health.version}` : ''}${t.health.message ? `: ${t.health.message}` : ''}`],
        ['checked', t.health.checkedAt ?? '-'],
        ['vms', String(t.vmCount)],
        ['revert', String(t.capabilities.revert)],
        ['delete children', String(t.capabilities.deleteChildren)],
        ['delete all', String(t.capabilities.deleteAll)],
        ['consolidate', String(t.capabilities.consolidate)],
      ];
      for (const [mode, support] of Object.entries(t.capabilities.modes)) {
        entries.push([`mode ${mode}`, support.supported ? 'yes' : `no — ${support.reason ?? 'unsupported'}`]);
      }
      ctx.io.stdout.write(keyValues(entries));
      return 0;
    }
    const { body } = await ctx.client.request<{ items: TargetJson[] }>('GET', '/v1/targets');
    if (ctx.json) return printJson(ctx, body), 0;
    ctx.io.stdout.write(
      table(body.items, [
        { header: 'NAME', value: (t) => t.name + (t.demo ? ' (demo)' : '') },
        { header: 'KIND', value: (t) => t.kind },
        { header: 'HEALTH', value: health },
        { header: 'VMS', value: (t) => String(t.vmCount), right: true },
        { header: 'MODES', value: supportedModes },
      ]),
    );
    return 0;
  },

  async vms(ctx) {
    noMoreArgs(ctx, 0);
    const items: VmJson[] = [];
    let cursor: string | undefined;
    // Follow the pages: the CLI shows everything the filter matches.
    do {
      const { body } = await ctx.client.request<{ items: VmJson[]; next: string | null }>(
        'GET',
        `/v1/vms${query({ target: ctx.values.target, name: ctx.values.name, limit: '1000', cursor })}`,
      );
      items.push(...body.items);
      cursor = body.next ?? undefined;
    } while (cursor !== undefined);
    if (ctx.json) return printJson(ctx, { items }), 0;
    ctx.io.stdout.write(
      table(items, [
        { header: 'ID', value: (v) => v.id },
        { header: 'NAME', value: (v) => v.name },
        { header: 'TARGET', value: (v) => v.targetName },
        { header: 'POWER', value: (v) => (v.goneAt ? 'gone' : v.powerState) },
        { header: 'SNAPSHOTS', value: (v) => String(v.snapshotCount), right: true },
        { header: 'DEPTH', value: (v) => String(v.chainDepth), right: true },
        { header: 'CONSOLIDATE', value: (v) => (v.consolidationNeeded ? 'needed' : '-') },
      ]),
    );
    return 0;
  },

  async snapshots(ctx) {
    const vmId = arg(ctx, 0, 'vmId');
    noMoreArgs(ctx, 1);
    if (ctx.values.tree) {
      const { body } = await ctx.client.request<{ roots: TreeNodeJson[] }>('GET', `/v1/vms/${enc(vmId)}/snapshots?view=tree`);
      if (ctx.json) return printJson(ctx, body), 0;
      ctx.io.stdout.write(renderTree(body.roots));
      return 0;
    }
    const { body } = await ctx.client.request<{ items: SnapshotJson[] }>(
      'GET',
      `/v1/vms/${enc(vmId)}/snapshots${query({ includeGone: ctx.values.all ? 'true' : undefined })}`,
    );
    if (ctx.json) return printJson(ctx, body), 0;
    ctx.io.stdout.write(
      table(body.items, [
        { header: 'ID', value: (s) => s.id },
        { header: 'NAME', value: (s) => s.name },
        { header: 'MODE', value: (s) => s.mode ?? '-' },
        { header: 'OWNER', value: (s) => s.owner },
        { header: 'STATE', value: (s) => s.state },
        { header: 'CREATED', value: (s) => shortTime(s.createdAt) },
        { header: 'CURRENT', value: (s) => (s.current ? '*' : '') },
      ]),
    );
    return 0;
  },

  async snapshot(ctx) {
    const id = arg(ctx, 0, 'snapshotId');
    noMoreArgs(ctx, 1);
    const { body: s } = await ctx.client.request<SnapshotJson & { vmId: string; description: string; jobId: string | null }>('GET', `/v1/snapshots/${enc(id)}`);
    if (ctx.json) return printJson(ctx, s), 0;
    ctx.io.stdout.write(
      keyValues([
        ['id', s.id],
        ['name', s.name],
        ['description', s.description || '-'],
        ['vm', s.vmId],
        ['parent', s.parentId ?? '-'],
        ['mode', s.mode ?? '-'],
        ['owner', s.owner],
        ['state', s.state],
        ['current', s.current ? 'yes' : 'no'],
        ['created', s.createdAt ?? '-'],
        ['job', s.jobId ?? '-'],
      ]),
    );
    return 0;
  },

  async create(ctx) {
    const vmId = arg(ctx, 0, 'vmId');
    noMoreArgs(ctx, 1);
    const { name, mode, description, option } = ctx.values;
    if (name === undefined) throw new UsageError('create needs --name');
    if (mode === undefined) throw new UsageError('create needs --mode (memory, crash, quiesced or offline)');
    const options = createOptions(option ?? []);
    return submit(ctx, 'POST', `/v1/vms/${enc(vmId)}/snapshots`, {
      name,
      mode,
      ...(description === undefined ? {} : { description }),
      ...(Object.keys(options).length === 0 ? {} : { options }),
    });
  },

  async revert(ctx) {
    const id = arg(ctx, 0, 'snapshotId');
    noMoreArgs(ctx, 1);
    return submit(ctx, 'POST', `/v1/snapshots/${enc(id)}/revert`, undefined);
  },

  async delete(ctx) {
    const id = arg(ctx, 0, 'snapshotId');
    noMoreArgs(ctx, 1);
    return submit(ctx, 'DELETE', `/v1/snapshots/${enc(id)}${query({ children: ctx.values.children ? 'true' : undefined })}`, undefined);
  },

  async 'delete-all'(ctx) {
    const vmId = arg(ctx, 0, 'vmId');
    noMoreArgs(ctx, 1);
    return submit(ctx, 'DELETE', `/v1/vms/${enc(vmId)}/snapshots`, undefined);
  },

  async consolidate(ctx) {
    const vmId = arg(ctx, 0, 'vmId');
    noMoreArgs(ctx, 1);
    return submit(ctx, 'POST', `/v1/vms/${enc(vmId)}/consolidate`, { dryRun: ctx.values['dry-run'] === true });
  },

  async drift(ctx) {
    noMoreArgs(ctx, 0);
    const { body } = await ctx.client.request<{ items: DriftJson[] }>('GET', `/v1/drift${query({ target: ctx.values.target })}`);
    if (ctx.json) return printJson(ctx, body), 0;
    const rows = body.items.flatMap(driftRows);
    ctx.io.stdout.write(
      table(rows, [
        { header: 'TARGET', value: (r) => r.target },
        { header: 'KIND', value: (r) => r.kind },
        { header: 'VM', value: (r) => r.vm },
        { header: 'ITEM', value: (r) => r.item },
        { header: 'DETAIL', value: (r) => r.detail },
      ]),
    );
    return 0;
  },

  async jobs(ctx) {
    noMoreArgs(ctx, 0);
    const { body } = await ctx.client.request<{ items: JobJson[]; next: string | null }>(
      'GET',
      `/v1/jobs${query({ state: ctx.values.state, vm: ctx.values.vm?.at(-1), kind: ctx.values.kind, policy: ctx.values.policy })}`,
    );
    if (ctx.json) return printJson(ctx, body), 0;
    ctx.io.stdout.write(
      table(body.items, [
        { header: 'ID', value: (j) => j.id },
        { header: 'KIND', value: (j) => j.kind },
        { header: 'STATE', value: (j) => j.state },
        { header: 'PROGRESS', value: (j) => `${Math.floor(j.progress)}%`, right: true },
        { header: 'VM', value: (j) => j.vmId },
        { header: 'BY', value: (j) => j.requestedBy },
        { header: 'CREATED', value: (j) => shortTime(j.createdAt) },
        { header: 'ERROR', value: (j) => (j.error ? `${j.error.kind}: ${j.error.message}` : '') },
      ]),
    );
    if (body.next) ctx.io.stdout.write('(more jobs: narrow with --state, --vm or --kind)\n');
    return 0;
  },

  async job(ctx) {
    // Job ids are UUIDs, so `job retry <id>` cannot be mistaken for `job <id>`.
    if (ctx.args[0] === 'retry') {
      const failed = arg(ctx, 1, 'jobId');
      noMoreArgs(ctx, 2);
      return submit(ctx, 'POST', `/v1/jobs/${enc(failed)}/retry`, undefined);
    }
    const id = arg(ctx, 0, 'jobId');
    noMoreArgs(ctx, 1);
    const { body } = await ctx.client.request<JobJson>('GET', `/v1/jobs/${enc(id)}`);
    if (ctx.json) return printJson(ctx, body), 0;
    ctx.io.stdout.write(formatJob(body));
    return 0;
  },

  async backup(ctx) {
    const file = path.resolve(cwdOf(ctx), arg(ctx, 0, 'file'));
    noMoreArgs(ctx, 1);
    if (existsSync(file) && ctx.values.force !== true) {
      ctx.io.stderr.write(`error: ${file} already exists (--force replaces it)\n`);
      return 1;
    }
    // Written next to the destination, checked, then renamed: the file is never half a backup.
    const part = `${file}.part-${process.pid}`;
    rmSync(part, { force: true });
    try {
      let bytes: number;
      let schemaVersion: number;
      if (ctx.values.local) {
        ({ bytes, schemaVersion } = await backupFile(localDatabase(ctx), part));
      } else {
        const response = await ctx.client.send('POST', '/v1/admin/backup', { body: {}, headers: { accept: 'application/vnd.sqlite3, application/problem+json' } });
        if (!response.body) throw new Error('the daemon sent an empty backup');
        await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(part, { flags: 'wx', mode: 0o600 }));
        const report = inspectDatabaseFile(part);
        const problem = databaseFileProblem(report);
        if (problem) throw new Error(`the backup received is not usable: ${problem}`);
        ({ bytes, schemaVersion } = report);
      }
      renameSync(part, file);
      if (ctx.json) printJson(ctx, { file, bytes, schemaVersion });
      else ctx.io.stdout.write(`backup written to ${file} (${bytes} bytes, schema version ${schemaVersion}, integrity ok)\n`);
      return 0;
    } finally {
      rmSync(part, { force: true });
    }
  },

  async restore(ctx) {
    const file = path.resolve(cwdOf(ctx), arg(ctx, 0, 'file'));
    noMoreArgs(ctx, 1);
    const report = await restoreFile(file, localDatabase(ctx));
    if (ctx.json) return printJson(ctx, report), 0;
    ctx.io.stdout.write(
      `restored ${file} into ${report.database} (schema version ${report.schemaVersion})\n` +
        (report.previous ? `the replaced database is kept as ${report.previous}\n` : '') +
        'start the daemon: jobs that were queued or running when the backup was taken are recovered at start\n',
    );
    return 0;
  },

  async doctor(ctx) {
    noMoreArgs(ctx, 0);
    const seconds = ctx.values.timeout === undefined ? 15 : Number(ctx.values.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds, not '${ctx.values.timeout}'`);
    const findings = await doctor({
      env: ctx.io.env,
      cwd: cwdOf(ctx),
      timeoutMs: seconds * 1000,
      ...(ctx.values.config === undefined ? {} : { configFile: ctx.values.config }),
    });
    if (ctx.json) printJson(ctx, { findings });
    else for (const f of findings) ctx.io.stdout.write(formatFinding(f));
    return findings.some((f) => f.status === 'fix') ? 1 : 0;
  },

  async cancel(ctx) {
    const id = arg(ctx, 0, 'jobId');
    noMoreArgs(ctx, 1);
    const { body } = await ctx.client.request<JobJson>('POST', `/v1/jobs/${enc(id)}/cancel`);
    if (ctx.json) return printJson(ctx, body), 0;
    ctx.io.stdout.write(`job ${body.id} ${body.state}\n`);
    return 0;
  },

  async policies(ctx) {
    noMoreArgs(ctx, 0);
    return listPolicies(policyContext(ctx));
  },

  async policy(ctx) {
    const sub = arg(ctx, 0, 'plan|run');
    const id = arg(ctx, 1, 'policyId');
    noMoreArgs(ctx, 2);
    const problem = kindProblem(ctx.values.kind);
    if (problem) throw new UsageError(problem);
    if (sub === 'plan') return planPolicy(policyContext(ctx), id);
    if (sub === 'run') return runPolicy(policyContext(ctx), id);
    throw new UsageError(`unknown policy command '${sub}' (plan or run)`);
  },
};

function policyContext(ctx: Context): PolicyCliContext {
  return { client: ctx.client, write: (text) => ctx.io.stdout.write(text), json: ctx.json, kind: ctx.values.kind };
}
