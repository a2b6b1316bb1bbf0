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

/** One root logger per process; actors take `child(bindings)` of it. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const opts = { level: options.level ?? defaultLevel(), base: { pid: process.pid } };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}

export function childLogger(parent: Logger, bindings: LogBindings): Logger {
  return parent.child(bindings);
}
