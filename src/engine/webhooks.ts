/**
 * Webhooks: the outbox writer and the delivery loop.
 *
 * The writer subscribes to engine events and stores one outbox row per matching webhook (a failed
 * job, a policy run that ended, a target's drift that changed) in its own small transaction, after
 * the event's own write committed: a job never waits for a receiver. The loop sends due rows (one
 * webhook's rows in order, webhooks side by side), signed (domain/webhook.ts), with a timeout; a
 * network error, timeout, 408, 429 or 5xx is retried with backoff (engine/backoff.ts) until the
 * webhook's giveUpAfterDays, other answers give up at once. Rows are kept (delivered or given up);
 * pending ones are resent after a restart: at least once, receivers dedup by Snapvisor-Delivery.
 * Each round claims its rows (store claimDue) for three delivery timeouts, so with several replicas
 * on one database each row is sent by one of them; a row whose attempt could not start within the
 * first timeout of its claim (a slow receiver ahead of it) is given back for the next round rather
 * than sent when another replica may already hold it.
 * The URL's credentials (sent as Basic auth) and the secret never reach a log or a stored error.
 */
import { Counter, Gauge } from 'prom-client';
import { classifyAnswer, webhookSignature, type DeliveryOutcome, type WebhookEventType } from '../domain/webhook.ts';
import type { NewOutboxRow, OutboxRow } from '../store/index.ts';
import type { EngineEvent } from './api.ts';
import { backoffDelayMs } from './backoff.ts';
import type { Core } from './core.ts';
import { errSummary } from './sync.ts';

export interface WebhookSpec {
  name: string;
  url: string;
  /** HMAC key (already resolved from env:/file:); never logged. */
  secret: string;
  events: WebhookEventType[];
  /** A row still failing this long after it was written is given up (kept, counted). */
  giveUpAfterDays: number;
}

export interface WebhookSettings {
  /** One attempt's limit (connect, send, answer). */
  timeoutMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** Rows read per round. */
  batch: number;
}

export const DEFAULT_WEBHOOK_SETTINGS: WebhookSettings = { timeoutMs: 10_000, backoff: { initialMs: 5_000, maxMs: 30 * 60_000 }, batch: 100 };

export interface Webhooks {
  start(): void;
  /** Stops the loop; an attempt in flight is aborted and stays pending (sent again after a restart). */
  stop(): Promise<void>;
  /** Resolves once a delivery round that started after the call has ended (tests wait on it). */
  round(): Promise<void>;
}

const DAY_MS = 86_400_000;
/** Wake at least this often even with nothing due (a row written by another process, a clock step). */
const MAX_IDLE_MS = 60_000;
/** A round's claim on its rows lasts this many delivery timeouts (one to start, one to send, one to record). */
const CLAIM_TIMEOUTS = 3;

/** The outbox rows an event makes, one per webhook that wants it (none for other events). */
export function outboxRowsFor(event: EngineEvent, webhooks: readonly WebhookSpec[], now: string, newId: () => string): NewOutboxRow[] {
  let type: WebhookEventType;
  let key: string | null;
  let data: unknown;
  if (event.type === 'job' && event.job.state === 'failed') {
    const j = event.job;
    type = 'job.failed';
    key = `job.failed:${j.id}`;
    data = { job: { id: j.id, kind: j.kind, state: j.state, error: j.error, attempts: j.attempts, vmId: j.vmId, snapshotId: j.snapshotId, requestedBy: j.requestedBy, createdAt: j.createdAt, startedAt: j.startedAt, finishedAt: j.finishedAt } };
  } else if (event.type === 'policy-run' && event.run.state !== 'running') {
    type = 'policy.run';
    key = `policy.run:${event.run.id}`;
    data = { run: event.run };
  } else if (event.type === 'drift') {
    type = 'drift.changed';
    key = null;
    data = { target: event.target, summary: event.summary };
  } else {
    return [];
  }
  return webhooks
    .filter((w) => w.events.includes(type))
    .map((w) => {
      const id = newId();
      return { id, webhook: w.name, eventType: type, eventKey: key, createdAt: now, body: JSON.stringify({ id, type, occurredAt: now, ...(data as object) }) };
    });
}

export function createWebhooks(core: Core, specs: readonly WebhookSpec[], settings: WebhookSettings = DEFAULT_WEBHOOK_SETTINGS): Webhooks {
  const log = core.log.child({ component: 'webhooks' });
  const byName = new Map(specs.map((s) => [s.name, s]));
  const deliveries = new Counter({
    name: 'snapvisor_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome: delivered, retry (will be sent again), failed (given up: refused by the receiver or too old)',
    labelNames: ['webhook', 'result'] as const,
    registers: [core.metrics.registry],
  });
  new Gauge({
    name: 'snapvisor_webhook_outbox_pending',
    help: 'Webhook outbox rows neither delivered nor given up',
    labelNames: ['webhook'] as const,
    registers: [core.metrics.registry],
    async collect() {
      const pending = await core.store.webhooks.pendingByWebhook();
      for (const name of new Set([...byName.keys(), ...pending.keys()])) this.set({ webhook: name }, pending.get(name) ?? 0);
    },
  });
  for (const name of byName.keys()) for (const result of ['delivered', 'retry', 'failed']) deliveries.inc({ webhook: name, result }, 0);

  const stopping = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let started = false;
  const waiters: Array<() => void> = [];

  const unsubscribe = core.events.subscribeLocal((event) => {
    if (specs.length === 0) return;
    const rows = outboxRowsFor(event, specs, core.iso(), core.newId);
    if (rows.length === 0) return;
    // Its own transaction, after the event's write; a failure here is logged, never the job's.
    core.store.webhooks.enqueue(rows).then(
      (n) => n > 0 && kick(),
      (err: unknown) => log.error({ err: errSummary(err), event: rows[0]!.eventType }, 'webhook outbox write failed'),
    );
  });

  const schedule = (delayMs: number) => {
    if (stopping.signal.aborted || !started) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      kick();
    }, Math.max(0, Math.min(delayMs, MAX_IDLE_MS)));
    timer.unref?.();
  };

  function kick(): void {
    if (!started || stopping.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = pass()
      .catch((err: unknown) => log.error({ err: errSummary(err) }, 'webhook delivery round failed'))
      .finally(async () => {
        running = null;
        for (const w of waiters.splice(0)) w();
        if (again) {
          again = false;
          kick();
          return;
        }
        const next = await core.store.webhooks.nextDueAt().catch(() => null);
        schedule(next === null ? MAX_IDLE_MS : Date.parse(next) - core.now().getTime());
      });
  }

  async function pass(): Promise<void> {
    const claimedAt = core.now().getTime();
    // An attempt started by `startBy` ends (its timeout) one timeout before the claim does: its
    // outcome is written while no other replica can have claimed the row again.
    const claimedUntil = new Date(claimedAt + CLAIM_TIMEOUTS * settings.timeoutMs).toISOString();
    const startBy = claimedAt + settings.timeoutMs;
    const due = await core.store.webhooks.claimDue(new Date(claimedAt).toISOString(), settings.batch, claimedUntil);
    const groups = new Map<string, OutboxRow[]>();
    for (const row of due) groups.set(row.webhook, [...(groups.get(row.webhook) ?? []), row]);
    /** Claimed, not attempted (stopping, or too late in the claim): due again as they were. */
    const unsent: OutboxRow[] = [];
    await Promise.all(
      [...groups].map(async ([name, rows]) => {
        const spec = byName.get(name);
        for (const row of rows) {
          if (stopping.signal.aborted || core.now().getTime() > startBy) {
            unsent.push(row);
            continue;
          }
          if (!spec) {
            // Written for a webhook since removed from the configuration: nobody to send it to.
            await core.store.webhooks.givenUp(row.id, row.attempts, core.iso(), 'the webhook is no longer configured');
            deliveries.inc({ webhook: name, result: 'failed' });
            continue;
          }
          if (!(await deliver(spec, row))) unsent.push(row);
        }
      }),
    );
    for (const row of unsent) {
      await core.store.webhooks
        .release(row.id, claimedUntil, row.nextAttemptAt)
        .catch((err: unknown) => log.warn({ err: errSummary(err), delivery: row.id }, 'could not give a claimed webhook row back; it is due again when its claim ends'));
    }
    if (due.length === settings.batch || (unsent.length > 0 && !stopping.signal.aborted)) again = true;
  }

  /** One attempt; false when the stop cut it short (the row is then given back as it was). */
  async function deliver(spec: WebhookSpec, row: OutboxRow): Promise<boolean> {
    const attempts = row.attempts + 1;
    const { outcome, error } = await send(spec, row);
    if (stopping.signal.aborted && outcome !== 'delivered') return false;
    const now = core.now();
    if (outcome === 'delivered') {
      await core.store.webhooks.delivered(row.id, attempts, now.toISOString());
      deliveries.inc({ webhook: spec.name, result: 'delivered' });
      return true;
    }
    const tooOld = now.getTime() - Date.parse(row.createdAt) >= spec.giveUpAfterDays * DAY_MS;
    if (outcome === 'give-up' || tooOld) {
      const why = outcome === 'give-up' ? error : `${error}; given up after ${spec.giveUpAfterDays} day(s) of attempts`;
      await core.store.webhooks.givenUp(row.id, attempts, now.toISOString(), why);
      deliveries.inc({ webhook: spec.name, result: 'failed' });
      log.warn({ webhook: spec.name, delivery: row.id, event: row.eventType, attempts, error: why }, 'webhook delivery given up');
      return true;
    }
    const delayMs = backoffDelayMs(attempts, settings.backoff);
    await core.store.webhooks.retryAt(row.id, attempts, new Date(now.getTime() + delayMs).toISOString(), error);
    deliveries.inc({ webhook: spec.name, result: 'retry' });
    log.info({ webhook: spec.name, delivery: row.id, event: row.eventType, attempts, error, retryInMs: delayMs }, 'webhook delivery failed; will retry');
    return true;
  }

  async function send(spec: WebhookSpec, row: OutboxRow): Promise<{ outcome: DeliveryOutcome; error: string }> {
    const url = new URL(spec.url);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'snapvisor-webhooks',
      'snapvisor-event': row.eventType,
      'snapvisor-delivery': row.id,
    };
    if (url.username !== '' || url.password !== '') {
      // fetch refuses credentials in the URL; they travel as Basic auth and the URL is never logged.
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    const timestamp = Math.floor(core.now().getTime() / 1000);
    headers['snapvisor-timestamp'] = String(timestamp);
    headers['snapvisor-signature'] = webhookSignature(spec.secret, timestamp, row.body);
    const timeout = AbortSignal.timeout(settings.timeoutMs);
    try {
      const res = await fetch(url, { method: 'POST', headers, body: row.body, redirect: 'manual', signal: AbortSignal.any([stopping.signal, timeout]) });
      await res.body?.cancel().catch(() => {});
      const outcome = classifyAnswer(res.status);
      return { outcome, error: outcome === 'delivered' ? '' : `the receiver answered HTTP ${res.status}` };
    } catch (err) {
      if (timeout.aborted) return { outcome: 'retry', error: `no answer within ${settings.timeoutMs / 1000} s` };
      // Only the error's code, never its message: undici's may carry the address.
      const cause = (err as { cause?: { code?: unknown } }).cause;
      const code = typeof cause?.code === 'string' ? cause.code : err instanceof Error ? err.name : 'error';
      return { outcome: 'retry', error: `could not reach the receiver (${code})` };
    }
  }

  return {
    start() {
      if (started || specs.length === 0) {
        // Without webhooks nothing is written, but rows left by an earlier configuration stay as they are.
        return;
      }
      started = true;
      kick();
    },
    async stop() {
      unsubscribe();
      stopping.abort();
      if (timer) clearTimeout(timer);
      timer = null;
      await running;
    },
    async round() {
      if (!started) return;
      while (running) await running;
      const done = new Promise<void>((resolve) => waiters.push(resolve));
      kick();
      await done;
    },
  };
}
