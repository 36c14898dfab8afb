/**
 * The configuration file's shape (YAML), as TypeBox: the same object validates the file and types
 * the code; config/snapvisor.schema.json (`npm run config:schema`) is this object with each target
 * block typed by its adapter's options schema (src/config/targets.ts).
 * Names follow DESIGN.md's configuration sketch.
 */
import { Type, type Static } from 'typebox';
import { PROVIDER_KINDS } from '../../providers/contract.ts';
import { WEBHOOK_EVENTS } from '../domain/webhook.ts';

/** A secret is given as `env:NAME`, `file:/path`, or (discouraged) literally. */
export const SecretRef = Type.String({
  minLength: 1,
  description: 'env:NAME reads an environment variable, file:/path reads a file (trailing newline dropped); anything else is the literal value (discouraged).',
});

/** Where the database lives when the configuration does not say (relative to the daemon's working directory). */
export const DEFAULT_DATABASE = './data/snapvisor.db';

export const SCOPES = ['read', 'write', 'admin'] as const;
export const Scope = Type.Union(SCOPES.map((s) => Type.Literal(s)));
export type Scope = (typeof SCOPES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export const LogLevel = Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)));
export type LogLevel = (typeof LOG_LEVELS)[number];

export const TokenConfig = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$', description: 'Who this token is: recorded on jobs and in the audit log.' }),
    value: Type.Optional(SecretRef),
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'Lower-case hex SHA-256 of the token, so the file holds no secret.' })),
    scopes: Type.Array(Scope, { minItems: 1, uniqueItems: true }),
  },
  { additionalProperties: false },
);

export const TargetName = Type.String({
  pattern: '^[a-z0-9][a-z0-9._-]{0,62}$',
  description: 'Lower-case letters, digits, dot, dash, underscore; used in URLs.',
});

/**
 * The fields every target has. Kind-specific options sit beside them and are validated by the
 * adapter's own schema (providers/<kind>/options.ts) when the registry is built; the JSON schema
 * for editors checks them too (src/config/targets.ts).
 */
export const TargetConfig = Type.Object(
  {
    name: TargetName,
    kind: Type.Union(PROVIDER_KINDS.map((k) => Type.Literal(k))),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'Most jobs running against this target at once.' })),
  },
  { additionalProperties: true },
);

export const ListenConfig = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 7480 }),
    tls: Type.Optional(Type.Object({ cert: SecretRef, key: SecretRef }, { additionalProperties: false })),
    requestTimeoutSec: Type.Integer({
      minimum: 1,
      maximum: 3600,
      default: 30,
      description: 'Longest a request may take to arrive, headers and body; a slower one gets 408 and its connection is closed.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const EngineConfig = Type.Object(
  {
    workerPollMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 250 }),
    jobTimeoutSec: Type.Integer({ minimum: 1, maximum: 86_400, default: 1800 }),
    maxAttempts: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
    syncIntervalSec: Type.Integer({ minimum: 0, maximum: 86_400, default: 60, description: '0 turns periodic inventory sync off.' }),
    shutdownGraceSec: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 30,
      description:
        'On SIGTERM/SIGINT, how long running jobs may go on; then their calls are aborted and they are left for recovery at the next start. The process is gone at most 2 s after it. A service manager must wait longer than this before killing.',
    }),
    jobLeaseSec: Type.Integer({
      minimum: 3,
      maximum: 3600,
      default: 30,
      description:
        'How long a running job stays held by the daemon that claimed it without news from it; the daemon renews it every third of this. With several daemons on one PostgreSQL database, a job whose daemon stopped renewing (it died, or lost the database) is recovered by another one after this long, which first asks the hypervisor what was done (a create by its marker). Longer: slower failover; shorter: a daemon stalled this long may see its jobs taken over. Leases are compared across daemons: keep their clocks in sync (NTP). SQLite (one daemon): recovery happens at the next start, as before.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const RetentionConfig = Type.Object(
  {
    auditDays: Type.Integer({ minimum: 1, maximum: 36_500, default: 90, description: 'Audit log entries older than this are deleted (in the background: shortly after start, then hourly).' }),
    jobsDays: Type.Integer({
      minimum: 1,
      maximum: 36_500,
      default: 90,
      description:
        'Finished jobs (succeeded, failed, cancelled) that ended longer ago than this are deleted with their idempotency keys; queued and running jobs never are. Snapshots keep the id of the job that made them.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const LimitsConfig = Type.Object(
  {
    queuedPerToken: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 1000,
      description:
        'Most queued (not yet started) jobs one token may have; a submission beyond it is refused with 429 SNAPVISOR_ERR_QUEUE_FULL and Retry-After, and nothing is stored.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const ConsoleConfig = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Serve the web console at /ui (static files only; it signs in with an API token like any client). false: /ui and / are 404.',
    }),
  },
  { additionalProperties: false, default: {} },
);

export const SchedulerConfig = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'false: policies run only when asked (POST /v1/policies/{id}/run); no scheduled or catch-up runs.' }),
    jitterSec: Type.Integer({
      minimum: 0,
      maximum: 3600,
      default: 30,
      description:
        "Each policy fires a fixed delay in [0, jitterSec) after its cron slots (from a hash of its id), so policies on the same schedule do not all start at once; the run's scheduledFor stays the slot. 0: no jitter.",
    }),
  },
  { additionalProperties: false, default: {} },
);
export const WebhookConfig = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$', description: 'Names the webhook in logs, metrics and the outbox.' }),
    url: Type.String({
      minLength: 1,
      pattern: '^https?://',
      description: 'Where deliveries are POSTed (http or https). Credentials in it (https://user:pass@host/…) are sent as Basic auth and never logged.',
    }),
    secret: SecretRef,
    events: Type.Array(Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e))), {
      minItems: 1,
      uniqueItems: true,
      description: 'job.failed: a job ended failed; policy.run: a policy run ended (or was skipped); drift.changed: a target\'s drift changed after an inventory pass.',
    }),
    giveUpAfterDays: Type.Integer({ minimum: 1, maximum: 365, default: 3, description: 'A delivery still failing (network, timeout, 408, 429, 5xx) this long after its event is given up; the row is kept.' }),
  },
  { additionalProperties: false },
);
export type WebhookConfigFile = Static<typeof WebhookConfig>;

export const READINESS_MODES = ['all', 'any'] as const;
export type ReadinessMode = (typeof READINESS_MODES)[number];

export const Config = Type.Object(
  {
    listen: ListenConfig,
    database: Type.String({ minLength: 1, default: DEFAULT_DATABASE }),
    logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)), { default: 'info', description: 'Changed at run time by PUT /v1/admin/log-level (not written back here).' }),
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 65536 }),
    tokens: Type.Array(TokenConfig, { minItems: 1 }),
    engine: EngineConfig,
    retention: RetentionConfig,
    limits: LimitsConfig,
    scheduler: SchedulerConfig,
    console: ConsoleConfig,
    readiness: Type.Union(READINESS_MODES.map((m) => Type.Literal(m)), {
      default: 'all',
      description:
        "When /readyz answers 200: all — once every target's latest inventory pass (VMs and snapshot trees) succeeded; any — once at least one target's did. An unreachable target makes it 503 under all, naming the target and why. No targets: ready once started.",
    }),
    targets: Type.Array(TargetConfig, { default: [] }),
    webhooks: Type.Array(WebhookConfig, {
      default: [],
      description: 'Signed JSON POSTs of failed jobs, policy runs and drift changes, from a persisted outbox (README: Webhooks). Changed by a restart, not a reload.',
    }),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof Config>;
export type TokenConfigFile = Static<typeof TokenConfig>;
