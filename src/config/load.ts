/**
 * Loads, validates and resolves the configuration. Errors name the key and the reason and never
 * contain a secret's value. Secrets are resolved here, once, and never logged.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Value } from 'typebox/value';
import { parseDocument } from 'yaml';
import type { TargetSpec } from '../../providers/index.ts';
import type { WebhookSpec } from '../engine/webhooks.ts';
import { isPostgresUrl } from '../store/location.ts';
import { Config, DEFAULT_DATABASE, type ConfigFile, type Scope } from './schema.ts';

export interface ConfigProblem {
  /** JSON-pointer-like path of the key, e.g. /targets/0/name. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  ${p.path || '/'}: ${p.message}`).join('\n')}`);
  }
}

export interface ResolvedToken {
  name: string;
  sha256: string;
  scopes: Scope[];
}

export interface ResolvedConfig {
  /** Where it came from: a file path, or 'demo'. */
  source: string;
  demo: boolean;
  listen: { host: string; port: number; requestTimeoutSec: number; tls?: { cert: string; key: string } };
  database: string;
  /**
   * Where `database` came from: SNAPVISOR_DB, the file's `database:` key, or the default
   * (./data/snapvisor.db; the demo's too). Only the default's directory is created at start.
   */
  databaseFrom: 'env' | 'config' | 'default';
  logLevel: ConfigFile['logLevel'];
  bodyLimitBytes: number;
  tokens: ResolvedToken[];
  engine: ConfigFile['engine'];
  retention: ConfigFile['retention'];
  limits: ConfigFile['limits'];
  scheduler: ConfigFile['scheduler'];
  console: ConfigFile['console'];
  readiness: ConfigFile['readiness'];
  targets: TargetSpec[];
  /** Secrets resolved; never logged. */
  webhooks: WebhookSpec[];
}

export interface LoadEnv {
  env: NodeJS.ProcessEnv;
  /** Directory that relative paths (database, file: secrets) resolve against: the daemon's working directory. */
  baseDir: string;
}

/** Keys whose string values are secret references, wherever they appear in a target. */
export const SECRET_KEYS: ReadonlySet<string> = new Set(['password', 'privateKey', 'passphrase', 'clientSecret', 'token', 'ca', 'cert', 'key']);

export function resolveSecret(ref: string, where: string, ctx: LoadEnv): string {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const value = ctx.env[name];
    if (value === undefined || value === '') throw new ConfigError(where, [{ path: where, message: `environment variable ${name} is not set` }]);
    return value;
  }
  if (ref.startsWith('file:')) {
    const file = path.resolve(ctx.baseDir, ref.slice(5));
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(where, [{ path: where, message: `cannot read secret file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})` }]);
    }
  }
  return ref;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** Validates a parsed document (from YAML or built in code, like the demo) and resolves it. */
export function resolveConfig(raw: unknown, source: string, ctx: LoadEnv, demo = false): ResolvedConfig {
  const withDefaults = Value.Default(Config, Value.Clone(raw ?? {}));
  const problems = collectProblems(withDefaults);
  if (problems.length > 0) throw new ConfigError(source, problems);
  const file = withDefaults as ConfigFile;

  const names = new Set<string>();
  file.targets.forEach((t, i) => {
    if (names.has(t.name)) problems.push({ path: `/targets/${i}/name`, message: `duplicate target name '${t.name}'` });
    names.add(t.name);
  });
  const tokenNames = new Set<string>();
  file.tokens.forEach((t, i) => {
    if ((t.value === undefined) === (t.sha256 === undefined)) problems.push({ path: `/tokens/${i}`, message: 'give exactly one of value or sha256' });
    if (tokenNames.has(t.name)) problems.push({ path: `/tokens/${i}/name`, message: `duplicate token name '${t.name}'` });
    tokenNames.add(t.name);
  });
  const webhookNames = new Set<string>();
  file.webhooks.forEach((w, i) => {
    if (webhookNames.has(w.name)) problems.push({ path: `/webhooks/${i}/name`, message: `duplicate webhook name '${w.name}'` });
    webhookNames.add(w.name);
    if (!URL.canParse(w.url)) problems.push({ path: `/webhooks/${i}/url`, message: 'not a valid URL' });
  });
  if (problems.length > 0) throw new ConfigError(source, problems);

  const env = ctx.env;
  const port = env.SNAPVISOR_PORT !== undefined ? parsePort(env.SNAPVISOR_PORT, source) : file.listen.port;
  const tls = file.listen.tls && {
    cert: resolveSecret(file.listen.tls.cert, '/listen/tls/cert', ctx),
    key: resolveSecret(file.listen.tls.key, '/listen/tls/key', ctx),
  };
  return {
    source,
    demo,
    listen: { host: env.SNAPVISOR_HOST ?? file.listen.host, port, requestTimeoutSec: file.listen.requestTimeoutSec, ...(tls ? { tls } : {}) },
    database: env.SNAPVISOR_DB ?? resolveDatabase(ctx.baseDir, file.database),
    databaseFrom: env.SNAPVISOR_DB !== undefined ? 'env' : demo || (raw as { database?: unknown } | null)?.database === undefined ? 'default' : 'config',
    logLevel: file.logLevel,
    bodyLimitBytes: file.bodyLimitBytes,
    tokens: resolveTokens(file.tokens, source, ctx),
    engine: file.engine,
    retention: file.retention,
    limits: file.limits,
    scheduler: file.scheduler,
    console: file.console,
    readiness: file.readiness,
    webhooks: resolveWebhooks(file.webhooks, source, ctx),
    targets: file.targets.map((t, i) => {
      const { name, kind, concurrency, ...options } = t as Record<string, unknown> & typeof t;
      return {
        name,
        kind,
        demo,
        concurrency: concurrency ?? 2,
        options: resolveTargetSecrets(options, `/targets/${i}`, ctx),
      };
    }),
  };
}

/**
 * A bearer token shorter than this is refused at start: it could be guessed or brute-forced.
 * A token given as sha256 cannot be measured; its owner answers for it.
 */
export const MIN_TOKEN_LENGTH = 24;

function resolveTokens(tokens: ConfigFile['tokens'], source: string, ctx: LoadEnv): ResolvedToken[] {
  const problems: ConfigProblem[] = [];
  const resolved = tokens.map((t, i) => {
    if (t.sha256 !== undefined) return { name: t.name, sha256: t.sha256, scopes: [...t.scopes] };
    const where = `/tokens/${i}/value`;
    const value = resolveSecret(t.value!, where, ctx);
    // The length is a count of characters (code points), and the value itself is never shown.
    const length = [...value].length;
    if (length < MIN_TOKEN_LENGTH) problems.push({ path: where, message: `token '${t.name}' is ${length} characters long; at least ${MIN_TOKEN_LENGTH} are required` });
    return { name: t.name, sha256: sha256Hex(value), scopes: [...t.scopes] };
  });
  if (problems.length > 0) throw new ConfigError(source, problems);
  return resolved;
}

/** A webhook secret shorter than this is refused at start, like a short token: a weak HMAC key. */
export const MIN_WEBHOOK_SECRET_LENGTH = 24;

function resolveWebhooks(webhooks: ConfigFile['webhooks'], source: string, ctx: LoadEnv): WebhookSpec[] {
  const problems: ConfigProblem[] = [];
  const resolved = webhooks.map((w, i) => {
    const where = `/webhooks/${i}/secret`;
    const secret = resolveSecret(w.secret, where, ctx);
    const length = [...secret].length;
    if (length < MIN_WEBHOOK_SECRET_LENGTH) problems.push({ path: where, message: `the secret of webhook '${w.name}' is ${length} characters long; at least ${MIN_WEBHOOK_SECRET_LENGTH} are required` });
    return { name: w.name, url: w.url, secret, events: [...w.events], giveUpAfterDays: w.giveUpAfterDays };
  });
  if (problems.length > 0) throw new ConfigError(source, problems);
  return resolved;
}

function resolveTargetSecrets(options: Record<string, unknown>, where: string, ctx: LoadEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (typeof value === 'string' && SECRET_KEYS.has(key)) out[key] = resolveSecret(value, `${where}/${key}`, ctx);
    else if (value !== null && typeof value === 'object' && !Array.isArray(value)) out[key] = resolveTargetSecrets(value as Record<string, unknown>, `${where}/${key}`, ctx);
    else out[key] = value;
  }
  return out;
}

function parsePort(text: string, source: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(source, [{ path: 'SNAPVISOR_PORT', message: `not a port number: '${text}'` }]);
  return port;
}

function collectProblems(value: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const e of Value.Errors(Config, value)) {
    // TypeBox reports an extra key twice (the boolean sub-schema and the object); keep the readable one.
    if (e.keyword === 'boolean') continue;
    const params = e.params as { additionalProperties?: string[]; allowedValues?: unknown[] };
    const message =
      e.keyword === 'additionalProperties' && params.additionalProperties
        ? `unknown key(s): ${params.additionalProperties.join(', ')}`
        : e.message;
    problems.push({ path: e.instancePath, message });
  }
  return problems;
}

/** Reads a YAML file. YAML syntax errors are reported with line and column. */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [{ path: '', message: `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '', message: e.message.split('\n')[0] ?? e.message })));
  }
  return resolveConfig(doc.toJS(), file, { env, baseDir: process.cwd() });
}

/** The config file to use: SNAPVISOR_CONFIG, else ./config/snapvisor.yaml when present, else none (demo). */
export function findConfigFile(env: NodeJS.ProcessEnv, cwd: string): string | null {
  if (env.SNAPVISOR_CONFIG) return path.resolve(cwd, env.SNAPVISOR_CONFIG);
  const local = path.resolve(cwd, 'config/snapvisor.yaml');
  return existsSync(local) ? local : null;
}

/**
 * The database file the daemon would use with this environment, without resolving any secret:
 * what `snapvisor backup --local` and `snapvisor restore` need, run from the daemon's working
 * directory (relative paths resolve against it, as the daemon's do). No config file: the demo's.
 */
export function databasePath(env: NodeJS.ProcessEnv, cwd: string, configFile: string | null = findConfigFile(env, cwd)): string {
  if (env.SNAPVISOR_DB) return resolveDatabase(cwd, env.SNAPVISOR_DB);
  if (configFile === null) return path.resolve(cwd, DEFAULT_DATABASE);
  let text: string;
  try {
    text = readFileSync(configFile, 'utf8');
  } catch (e) {
    throw new ConfigError(configFile, [{ path: '', message: `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})` }]);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(configFile, [{ path: '', message: doc.errors[0]!.message.split('\n')[0] ?? 'YAML error' }]);
  const database = (doc.toJS() as { database?: unknown } | null)?.database ?? DEFAULT_DATABASE;
  if (typeof database !== 'string' || database === '') throw new ConfigError(configFile, [{ path: '/database', message: 'must be a non-empty string' }]);
  return resolveDatabase(cwd, database);
}

/** A database setting as the daemon uses it: a PostgreSQL URL as written, a file path resolved against `baseDir`. */
function resolveDatabase(baseDir: string, database: string): string {
  return isPostgresUrl(database) ? database : path.resolve(baseDir, database);
}
