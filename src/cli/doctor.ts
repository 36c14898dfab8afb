/**
 * `snapvisor doctor`: what an operator should fix before (or while) running the daemon, checked
 * locally — it works with the daemon down. Configuration, database (integrity, schema version),
 * then every target through its own adapter's check() (reachability, authentication — an SSH host
 * key mismatch is an authentication failure — and the version the target reports), and clock
 * skew where the target's time can be read. One finding per line; nothing is guessed: what cannot
 * be checked says so.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createRegistry, type TargetSpec } from '../../providers/index.ts';
import type { Logger, TargetHealth } from '../../providers/contract.ts';
import { ConfigError, findConfigFile, loadConfigFile, type ResolvedConfig } from '../config/load.ts';
import { databaseFileProblem, inspectDatabaseFile } from '../store/backup.ts';
import { isPostgresUrl, redactUrl } from '../store/location.ts';
import { lockHolder } from '../store/lock.ts';
import { SCHEMA_VERSION } from '../store/migrations/index.ts';

export type FindingStatus = 'ok' | 'fix' | 'note';

export interface Finding {
  status: FindingStatus;
  /** What was checked: config, database, target <name>, clock <name>. */
  subject: string;
  message: string;
}

export interface DoctorOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** --config; else SNAPVISOR_CONFIG, else ./config/snapvisor.yaml. */
  configFile?: string;
  /** Longest wait for one target's check. */
  timeoutMs: number;
  /** Largest clock difference that is not a finding. */
  maxSkewMs?: number;
  now?: () => number;
}

const DEFAULT_MAX_SKEW_MS = 5_000;

export function formatFinding(f: Finding): string {
  return `${f.status.padEnd(4)} ${f.subject}: ${f.message}\n`;
}

export async function doctor(options: DoctorOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  const file = options.configFile !== undefined ? path.resolve(options.cwd, options.configFile) : findConfigFile(options.env, options.cwd);
  if (file === null) {
    findings.push({
      status: 'fix',
      subject: 'config',
      message: 'no configuration file (SNAPVISOR_CONFIG is not set and ./config/snapvisor.yaml does not exist): the daemon would run the DEMO; write one (see config/snapvisor.example.yaml)',
    });
    return findings;
  }
  let config: ResolvedConfig;
  try {
    config = loadConfigFile(file, options.env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) findings.push({ status: 'fix', subject: 'config', message: `${e.source}: ${p.path ? `${p.path}: ` : ''}${p.message}` });
    return findings;
  }
  findings.push({ status: 'ok', subject: 'config', message: `${file}: ${config.targets.length} target(s), ${config.tokens.length} token(s)` });
  findings.push(isPostgresUrl(config.database) ? await checkPostgres(config.database) : checkDatabase(config));

  const results = await Promise.all(config.targets.map((spec) => checkTarget(spec, options)));
  for (const r of results) findings.push(...r);
  return findings;
}

/** PostgreSQL: reachable, and at which schema version (read only: doctor never migrates). */
async function checkPostgres(url: string): Promise<Finding> {
  const subject = 'database';
  const where = redactUrl(url);
  try {
    // The driver is loaded only for a PostgreSQL database.
    const { readPgSchemaVersion } = await import('../store/pg/db.ts');
    const version = await readPgSchemaVersion(url);
    if (version === null) return { status: 'ok', subject, message: `${where}: reachable, no Snapvisor schema yet: the daemon creates it at start` };
    if (version > SCHEMA_VERSION) return { status: 'fix', subject, message: `${where}: schema version ${version} is newer than this build knows (${SCHEMA_VERSION}): the daemon refuses to start; upgrade Snapvisor` };
    return { status: 'ok', subject, message: `${where}: reachable, schema version ${version}${version === SCHEMA_VERSION ? ' (current)' : `: migrations up to ${SCHEMA_VERSION} are applied at the next start`}` };
  } catch (e) {
    return { status: 'fix', subject, message: `${where}: cannot connect: ${(e as Error).message}` };
  }
}

function checkDatabase(config: ResolvedConfig): Finding {
  const subject = 'database';
  const file = config.database;
  if (!existsSync(file)) {
    const dir = path.dirname(file);
    if (existsSync(`${file}-wal`)) return { status: 'fix', subject, message: `${file} is missing but its write-ahead log ${file}-wal is there: the daemon refuses to start; put the database file back or restore a backup` };
    if (existsSync(dir)) return { status: 'ok', subject, message: `${file} does not exist yet: the daemon creates it at start` };
    // Only the default data directory is created by the daemon; a configured one must exist.
    return config.databaseFrom === 'default'
      ? { status: 'ok', subject, message: `${file} does not exist yet: the daemon creates it (and ${dir}) at start` }
      : { status: 'fix', subject, message: `the directory ${dir} of ${file} does not exist: the daemon refuses to start; create it or correct the path` };
  }
  let held = '';
  try {
    const lock = lockHolder(file);
    if (lock.held) held = `; in use by ${lock.holder ? `pid ${lock.holder.pid} on ${lock.holder.hostname} (${lock.holder.command}, since ${lock.holder.startedAt})` : 'another process'}`;
  } catch {
    // an unreadable lock file: the daemon says so at start
  }
  try {
    const report = inspectDatabaseFile(file);
    const problem = databaseFileProblem(report);
    if (problem) return { status: 'fix', subject, message: `${file}: ${problem}${report.integrity[0] !== 'ok' ? '; restore the last good backup (snapvisor restore)' : ''}` };
    const version =
      report.schemaVersion === SCHEMA_VERSION
        ? `schema version ${report.schemaVersion} (current)`
        : `schema version ${report.schemaVersion}: migrations up to ${SCHEMA_VERSION} are applied at the next start`;
    return { status: 'ok', subject, message: `${file}: integrity ok, ${version}${held}` };
  } catch (e) {
    return { status: 'fix', subject, message: (e as Error).message };
  }
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

async function checkTarget(spec: TargetSpec, options: DoctorOptions): Promise<Finding[]> {
  const subject = `target ${spec.name} (${spec.kind})`;
  let registry;
  try {
    registry = await createRegistry([spec], { log: quiet });
  } catch (e) {
    return [{ status: 'fix', subject, message: `invalid options: ${(e as Error).message}` }];
  }
  const now = options.now ?? Date.now;
  try {
    const provider = registry.get(spec.name);
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`no answer within ${Math.round(options.timeoutMs / 1000)} s`));
      }, options.timeoutMs);
    });
    const started = now();
    let health: TargetHealth;
    try {
      health = await Promise.race([provider.check({ signal: controller.signal, progress: () => {}, log: quiet }), timeout]);
    } catch (e) {
      return [{ status: 'fix', subject, message: `check failed: ${(e as Error).message}` }];
    } finally {
      clearTimeout(timer);
    }
    const answeredAt = (started + now()) / 2;
    if (!health.reachable) return [{ status: 'fix', subject, message: `unreachable: ${health.message ?? 'no answer'}; check the address, port, firewall and that the service runs` }];
    if (health.authOk === false) {
      return [{ status: 'fix', subject, message: `authentication failed: ${health.message ?? 'refused'}; check the credentials (and the pinned host key or certificate)` }];
    }
    const target: Finding = health.version
      ? { status: 'ok', subject, message: `reachable, authenticated, ${health.version}` }
      : { status: 'fix', subject, message: 'reachable, but it reported no version: the tool it needs may be missing' };
    return [target, clockFinding(spec, health, answeredAt, options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS)];
  } finally {
    await registry.close();
  }
}

function clockFinding(spec: TargetSpec, health: TargetHealth, localMs: number, maxSkewMs: number): Finding {
  const subject = `clock ${spec.name}`;
  if (health.time !== undefined) {
    const remote = Date.parse(health.time);
    if (Number.isNaN(remote)) return { status: 'note', subject, message: `not checkable: the target reported an unreadable time '${health.time}'` };
    const skew = remote - localMs;
    const text = `${(Math.abs(skew) / 1000).toFixed(1)} s ${skew >= 0 ? 'ahead of' : 'behind'} this host`;
    return Math.abs(skew) <= maxSkewMs
      ? { status: 'ok', subject, message: `target's clock is ${text}` }
      : { status: 'fix', subject, message: `target's clock is ${text} (more than ${maxSkewMs / 1000} s): sync both with NTP` };
  }
  if (spec.kind === 'virtualbox' && spec.options['ssh'] === undefined) return { status: 'ok', subject, message: 'local target: same clock as this host' };
  return { status: 'note', subject, message: `not checkable: the ${spec.kind} adapter does not report the target's time` };
}
