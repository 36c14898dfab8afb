/**
 * The daemon's output: pino log lines and the demo banner, on stdout.
 *
 * Format: JSON lines when stdout is not a terminal (a log collector, a pipe, the tests), readable
 * coloured lines (pino-pretty, loaded only then) on a terminal; `SNAPVISOR_LOG_FORMAT=json|pretty`
 * overrides the guess.
 *
 * Logging never takes the daemon down. stdout can fail under it (EPIPE when the reader went away:
 * `npm start | head`, a collector restarting): every failed write is counted in /metrics
 * (`snapvisor_log_write_errors_total`), the first one is reported on stderr (if that still works),
 * and the daemon goes on. After EPIPE nothing more is tried on stdout (a closed pipe never opens
 * again): lines are dropped and counted (`snapvisor_log_lines_dropped_total`); after another error
 * the writer retries with a bounded buffer, dropping what does not fit.
 *
 * The level is the root logger's; every child (engine, providers, Fastify and its requests)
 * inherits it through pino's prototype chain, so `setLevel` changes all of them at once.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { Counter, Registry } from 'prom-client';
import type { LogLevel } from './config/schema.ts';
import { REDACT } from './log-redaction.ts';

export interface DaemonOutput {
  /** The root logger (children inherit its level). */
  log: Logger;
  format: 'json' | 'pretty';
  /** The current level of every logger of the daemon. */
  level(): LogLevel;
  setLevel(level: LogLevel): { previous: LogLevel; level: LogLevel };
  /** Writes text as it is (the demo banner), with the same error handling as the log lines. */
  print(text: string): void;
  /** Write errors and dropped lines, for /metrics. */
  metrics: Registry;
}

export interface OutputOptions {
  level: LogLevel;
  env?: NodeJS.ProcessEnv;
  /** Default: fd 1 (stdout). */
  fd?: number;
  /** Default: whether stdout is a terminal. */
  isTTY?: boolean;
  /** Where the one notice about a failing stdout goes; default stderr, itself allowed to fail. */
  notice?: (line: string) => void;
}

/** Bytes kept for a destination that fails with something else than EPIPE; more is dropped. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export async function createOutput(options: OutputOptions): Promise<DaemonOutput> {
  const env = options.env ?? process.env;
  const fd = options.fd ?? 1;
  const notice = options.notice ?? writeStderr;
  const metrics = new Registry();
  const writeErrors = new Counter({
    name: 'snapvisor_log_write_errors_total',
    help: 'Failed writes of log lines or other daemon output to stdout (e.g. EPIPE: the reader went away)',
    labelNames: ['code'] as const,
    registers: [metrics],
  });
  const dropped = new Counter({
    name: 'snapvisor_log_lines_dropped_total',
    help: 'Log lines and other output not written because stdout failed',
    registers: [metrics],
  });
  writeErrors.inc({ code: 'EPIPE' }, 0);

  let noticed = false;
  let broken = false;
  const onError = (err: NodeJS.ErrnoException) => {
    const code = err.code ?? 'unknown';
    writeErrors.inc({ code });
    if (code === 'EPIPE') broken = true;
    if (!noticed) {
      noticed = true;
      notice(`snapvisor: cannot write to stdout (${code}: ${err.message}); going on, failed writes are counted in snapvisor_log_write_errors_total\n`);
    }
  };

  const dest = pino.destination({ dest: fd, sync: true, maxLength: MAX_BUFFERED });
  dest.on('error', onError);
  dest.on('drop', () => dropped.inc());
  // Anything else that writes to process.stdout (a library's console.log) fails the same way, and
  // a closed stderr must not take the daemon down either.
  process.stdout.on('error', onError);
  process.stderr.on('error', () => {});
  /** What pino and the banner write to: the destination, or nothing once stdout is gone. */
  const sink: DestinationStream = {
    write(line: string) {
      if (broken) dropped.inc();
      else dest.write(line);
    },
  };

  const wanted = env.SNAPVISOR_LOG_FORMAT;
  let format: DaemonOutput['format'] = wanted === 'pretty' || wanted === 'json' ? wanted : (options.isTTY ?? process.stdout.isTTY === true) ? 'pretty' : 'json';
  let stream: DestinationStream = sink;
  if (format === 'pretty') {
    try {
      const { prettyFactory } = await import('pino-pretty');
      // The formatter alone, in this thread: the line goes to the same sink as a JSON one would.
      const prettify = prettyFactory({ colorize: options.isTTY ?? process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
      stream = { write: (line: string) => sink.write(prettify(line)) };
    } catch (err) {
      // An install without it (pruned by hand) still runs, in JSON.
      format = 'json';
      notice(`snapvisor: readable log lines need pino-pretty (${(err as Error).message}); writing JSON lines\n`);
    }
  }

  const log = pino({ level: options.level, redact: REDACT }, stream);
  return {
    log,
    format,
    level: () => log.level as LogLevel,
    setLevel(level) {
      const previous = log.level as LogLevel;
      log.level = level;
      return { previous, level };
    },
    print(text) {
      sink.write(text);
    },
    metrics,
  };
}

function writeStderr(line: string): void {
  try {
    process.stderr.write(line, () => {});
  } catch {
    // stderr is gone too: nothing left to tell
  }
}
