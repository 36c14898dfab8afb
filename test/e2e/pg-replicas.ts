/**
 * Several real daemons (replicas) on one PostgreSQL database and one VirtualBox simulator lab, for
 * the scale-out e2e tests (replicas, postgres-restart). Each replica is a process started the way
 * `npm start` starts the daemon, with a config file of its own naming the same database and the
 * same simulator. Not a test file.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { createVboxLab, type LabVmSpec, type VboxLab } from '../labs/vboxmanage-sim/lab.ts';
import { api, startDaemon, until, type Daemon } from './daemon.ts';
import { TOKEN } from './vbox-daemon.ts';

export { TOKEN };

/**
 * The job lease of the tests' replicas: short, so a dead replica's jobs are taken over in seconds
 * rather than after the default 30 s (engine.jobLeaseSec; its minimum is 3).
 */
export const JOB_LEASE_SEC = 4;

export interface ReplicaLab {
  dir: string;
  lab: VboxLab;
  databaseUrl: string;
  /** Starts (or starts again) replica `name` on its own config file; the newest process is `replicas.get(name)`. */
  start(name: string): Promise<Daemon>;
  /** The live process of each replica, by name. */
  readonly replicas: Map<string, Daemon>;
  /** Every process started, in order (killed and stopped ones too): their logs together are the run's. */
  readonly all: Array<{ name: string; daemon: Daemon }>;
  /** SIGKILL of every process still running. */
  killAll(): Promise<void>;
}

export interface ReplicaLabOptions {
  dir: string;
  databaseUrl: string;
  vms: LabVmSpec[];
  /** Simulator progress step (10 per long operation). */
  stepMs: number;
  /** Target concurrency: jobs running at once against the lab, across every replica. */
  concurrency: number;
  /** Extra top-level YAML lines for every replica's config. */
  extraConfig?: string[];
  /** engine.jobLeaseSec (default JOB_LEASE_SEC). */
  jobLeaseSec?: number;
  shutdownGraceSec?: number;
}

export function replicaLab(options: ReplicaLabOptions): ReplicaLab {
  const lab = createVboxLab({ dir: path.join(options.dir, 'lab'), vms: options.vms, stepMs: options.stepMs, callLog: true, readCache: true });
  const replicas = new Map<string, Daemon>();
  const all: Array<{ name: string; daemon: Daemon }> = [];
  const configFor = (name: string): { cwd: string; config: string } => {
    const cwd = path.join(options.dir, name);
    mkdirSync(cwd, { recursive: true });
    const config = path.join(cwd, 'snapvisor.yaml');
    writeFileSync(
      config,
      [
        'tokens:',
        '  - { name: e2e, value: env:E2E_TOKEN, scopes: [read, write, admin] }',
        `database: ${JSON.stringify(options.databaseUrl)}`,
        // syncIntervalSec 0: one inventory pass at start, then only the jobs' own calls reach the lab.
        `engine: { workerPollMs: 50, syncIntervalSec: 0, shutdownGraceSec: ${options.shutdownGraceSec ?? 10}, maxAttempts: 10, jobLeaseSec: ${options.jobLeaseSec ?? JOB_LEASE_SEC} }`,
        'scheduler: { enabled: true, jitterSec: 0 }',
        'limits: { queuedPerToken: 100000 }',
        'console: { enabled: false }',
        ...(options.extraConfig ?? []),
        'targets:',
        `  - { name: lab, kind: virtualbox, vboxmanage: ${JSON.stringify(lab.vboxmanage)}, concurrency: ${options.concurrency}, commandTimeoutSec: 120 }`,
        '',
      ].join('\n'),
    );
    return { cwd, config };
  };
  return {
    dir: options.dir,
    lab,
    databaseUrl: options.databaseUrl,
    replicas,
    all,
    async start(name) {
      const { cwd, config } = configFor(name);
      const daemon = await startDaemon({ cwd, env: { SNAPVISOR_CONFIG: config, E2E_TOKEN: TOKEN }, timeoutMs: 60_000 });
      replicas.set(name, daemon);
      all.push({ name, daemon });
      return daemon;
    },
    async killAll() {
      await Promise.all(all.map(({ daemon }) => daemon.kill('SIGKILL')));
    },
  };
}

/** One sample of a Prometheus metric (the first series whose labels include `labels`), or null. */
export async function metric(d: Daemon, name: string, labels: Record<string, string> = {}): Promise<number | null> {
  const res = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return null;
}

/**
 * The replica that holds the leadership (scheduler and reconciler): the one whose
 * `snapvisor_cluster_leader` gauge is 1, once exactly one of them says so.
 */
export async function leaderOf(replicas: Map<string, Daemon>, timeoutMs = 60_000): Promise<string> {
  return until(
    'exactly one leader',
    async () => {
      const leaders: string[] = [];
      for (const [name, d] of replicas) {
        const v = await metric(d, 'snapvisor_cluster_leader').catch(() => null);
        if (v === 1) leaders.push(name);
      }
      return leaders.length === 1 ? leaders[0] : undefined;
    },
    timeoutMs,
    200,
  );
}

export interface Submission {
  /** Our key for it: the Idempotency-Key. */
  key: string;
  vmId: string;
  body: { name: string; description: string; mode: 'memory' };
}

export interface Accepted {
  key: string;
  jobId: string;
  /** Which replica answered the 202 (the last one tried). */
  replica: string;
}

/**
 * Submits creates spread over the live replicas (round robin), `parallel` at a time. A request
 * that gets no answer (its replica was killed) is sent again, with the same Idempotency-Key, to
 * another replica: the job is made once whether or not the first request got through.
 */
export async function submitSpread(
  live: () => Array<[string, Daemon]>,
  submissions: readonly Submission[],
  parallel: number,
  onAccepted?: (a: Accepted, index: number) => void | Promise<void>,
): Promise<Accepted[]> {
  const accepted: Accepted[] = new Array(submissions.length);
  let next = 0;
  let turn = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < submissions.length) {
        const index = next++;
        const s = submissions[index]!;
        for (let attempt = 0; ; attempt++) {
          const replicas = live();
          if (replicas.length === 0) throw new Error('no live replica to submit to');
          const [name, d] = replicas[turn++ % replicas.length]!;
          let res: Response;
          try {
            res = await fetch(`${d.url}/v1/vms/${s.vmId}/snapshots`, {
              method: 'POST',
              headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'idempotency-key': s.key },
              body: JSON.stringify(s.body),
            });
          } catch (err) {
            // No answer: the replica died or is restarting. Another one gets the same key.
            if (attempt > 50) throw new Error(`submission ${s.key}: no replica answered: ${String(err)}`);
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const body = (await res.json()) as { id?: string; code?: string };
          // 503 while a replica is stopping (or its store is down): another one takes it.
          if (res.status === 503) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          if (res.status !== 202 && res.status !== 200) throw new Error(`submission ${s.key} to ${name}: ${res.status} ${JSON.stringify(body)}`);
          accepted[index] = { key: s.key, jobId: body.id!, replica: name };
          await onAccepted?.(accepted[index]!, index);
          break;
        }
      }
    }),
  );
  return accepted;
}

/** A PostgreSQL client on the replicas' database, for counting rows. */
export async function dbClient(url: string): Promise<pg.Client & { rows<T>(sql: string, params?: unknown[]): Promise<T[]> }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return Object.assign(c, {
    async rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
      return (await c.query(sql, params)).rows as T[];
    },
  });
}

/** The lab's VMs as the API lists them (name → id), once the inventory has all `count` of them. */
export async function vmIds(d: Daemon, count: number): Promise<Map<string, string>> {
  return until(
    `${count} VMs in the inventory`,
    async () => {
      const res = await api<{ items: Array<{ id: string; name: string }> }>(d, TOKEN, 'GET', '/v1/vms?target=lab&limit=500');
      return res.status === 200 && res.body.items.length >= count ? new Map(res.body.items.map((v) => [v.name, v.id])) : undefined;
    },
    120_000,
    200,
  );
}


/**
 * A replica's /v1/events stream, read into job events as they come. The stream has no replay, so
 * a test awaits `opened` (the replica has subscribed it: headers are written right after) before
 * causing the events it looks for. Opening is retried: under load a kept-alive socket the server
 * has just closed makes a fetch fail without the replica being at fault.
 */
export function watchJobEvents(d: Daemon, openWithinMs = 30_000): { jobs: Array<{ id: string; state: string }>; opened: Promise<void>; endedByServer(): boolean; close(): void } {
  const controller = new AbortController();
  const jobs: Array<{ id: string; state: string }> = [];
  let endedByServer = false;
  let markOpened!: () => void;
  let failOpening!: (err: Error) => void;
  const opened = new Promise<void>((resolve, reject) => {
    markOpened = resolve;
    failOpening = reject;
  });
  void (async () => {
    const deadline = Date.now() + openWithinMs;
    let res: Response | undefined;
    for (let lastError = ''; !res; ) {
      if (controller.signal.aborted) return;
      if (Date.now() > deadline) return failOpening(new Error(`the event stream of ${d.url} did not open: ${lastError}`));
      try {
        const r = await fetch(`${d.url}/v1/events`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: controller.signal });
        if (r.status === 200 && r.body) res = r;
        else {
          lastError = `HTTP ${r.status}`;
          await r.body?.cancel();
        }
      } catch (err) {
        lastError = err instanceof Error ? err.message : String(err);
      }
      if (!res) await new Promise((r) => setTimeout(r, 200));
    }
    markOpened();
    try {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!/^event: job$/m.test(block)) continue;
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (data) jobs.push(JSON.parse(data) as { id: string; state: string });
        }
      }
      endedByServer = true;
    } catch {
      // closed (or the replica went away): the test looks at what arrived
    }
  })();
  return { jobs, opened, endedByServer: () => endedByServer, close: () => controller.abort() };
}

/**
 * Submits creates one after another on `parallel` lanes until `stop()` says so: each submission is
 * sent, with its Idempotency-Key, to the next replica until one accepts it — through outages (no
 * answer, 5xx) — so every key submitted ends up accepted exactly once.
 */
export function submitContinuously(
  live: () => Array<[string, Daemon]>,
  make: (i: number) => Submission,
  parallel: number,
): { accepted: Map<string, string>; refusals: () => number; refusalStatuses: () => Map<number, number>; stop(): Promise<void> } {
  const accepted = new Map<string, string>();
  let stopped = false;
  let next = 0;
  let turn = 0;
  let refusals = 0;
  /** Answers other than 2xx, by status (0: no answer at all). */
  const refusalStatuses = new Map<number, number>();
  const lanes = Array.from({ length: parallel }, async () => {
    while (!stopped) {
      const s = make(next++);
      for (;;) {
        const replicas = live();
        const [, d] = replicas[turn++ % Math.max(1, replicas.length)] ?? [];
        let status = 0;
        let body: { id?: string } = {};
        if (d) {
          try {
            const res = await fetch(`${d.url}/v1/vms/${s.vmId}/snapshots`, {
              method: 'POST',
              headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'idempotency-key': s.key },
              body: JSON.stringify(s.body),
            });
            status = res.status;
            body = (await res.json().catch(() => ({}))) as { id?: string };
          } catch {
            status = 0;
          }
        }
        if (status === 202 || status === 200) {
          accepted.set(s.key, body.id!);
          break;
        }
        if (status !== 0 && status < 500) throw new Error(`submission ${s.key}: ${status} ${JSON.stringify(body)}`);
        refusals++;
        refusalStatuses.set(status, (refusalStatuses.get(status) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  return {
    accepted,
    refusals: () => refusals,
    refusalStatuses: () => refusalStatuses,
    async stop() {
      stopped = true;
      await Promise.all(lanes);
    },
  };
}
