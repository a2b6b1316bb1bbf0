import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** The bindings cohort puts on child loggers, so every line says whose it is. */
export interface LogBindings {
  cluster?: string;
  worker?: string;
  shard?: number;
  app?: string;
  session?: string;
  /** The client's label, shown in every server-side line about that client. */
  client?: string;
  component?: string;
}

export interface LoggerOptions {
  /** pino level, or 'silent'. Default: COHORT_LOG_LEVEL, else 'silent' under vitest, else 'info'. */
  level?: string;
  /** Where JSON lines go (default stdout). */
  destination?: DestinationStream;
}

function defaultLevel(): string {
  const fromEnv = process.env['COHORT_LOG_LEVEL'];
  if (fromEnv) return fromEnv;
  return process.env['VITEST'] ? 'silent' : 'info';
}

/** Whether the optional pino-pretty is installed. */
function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The file descriptor to print readable lines on: stdout or stderr when it
 * is a terminal and pino-pretty is installed (COHORT_LOG_FORMAT=json keeps
 * JSON); undefined otherwise, so scripts and log collectors get JSON lines.
 */
function prettyFd(destination: DestinationStream | undefined): 1 | 2 | undefined {
  if (process.env['COHORT_LOG_FORMAT'] === 'json') return undefined;
  const fd =
    destination === undefined || destination === process.stdout ? 1 : destination === process.stderr ? 2 : undefined;
  if (fd === undefined || !(fd === 1 ? process.stdout : process.stderr).isTTY) return undefined;
  return prettyInstalled() ? fd : undefined;
}

/** One root logger per process; actors take `child(bindings)` of it. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const opts = { level: options.level ?? defaultLevel(), base: { pid: process.pid } };
  const fd = prettyFd(options.destination);
  if (fd !== undefined)
    return pino(
      opts,
      pino.transport({
        target: 'pino-pretty',
        options: { destination: fd, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      }),
    );
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

export function childLogger(parent: Logger, bindings: LogBindings): Logger {
  return parent.child(bindings);
}
