import { createRequire } from 'node:module';
import type { NatsAuth, NatsTls } from '../index.js';
/**
 * A worker of a local cluster as `cohort up`, `cohort demo` and the tests
 * handle it, whether it is a process of its own or hosted in this one on
 * the memory bus: both kinds answer to the same kill, pause and exit.
 */

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface LocalWorker {
  /** Its worker id, which is also its member id in the view (w1, w2, ...). */
  readonly id: string;
  readonly zone: string;
  /** Its process id; undefined for a worker hosted in this process (memory bus). */
  readonly pid: number | undefined;
  /** Null while it runs. */
  readonly exit: WorkerExit | null;
  readonly exited: Promise<WorkerExit>;
  /** True once kill() was called (its end is then expected). */
  readonly killed: boolean;
  /**
   * SIGTERM: a clean stop (its shards are handed off first). SIGKILL: a crash;
   * on the memory bus, its connection is closed without a word.
   */
  kill(signal: 'SIGTERM' | 'SIGKILL'): void;
  /** SIGSTOP: frozen, its connection left open, as a long GC pause or a stopped VM. Worker processes only. */
  pause(): void;
  /** SIGCONT: it runs on from where it was, with whatever queued up meanwhile. */
  resume(): void;
}

/** What every worker of the cluster is started with, and where what it says goes. */
export interface WorkerSettings {
  /** Modules exporting the applications, as absolute paths. */
  apps: string[];
  cluster: string;
  heartbeatInterval?: number | undefined;
  sessionTimeout?: number | undefined;
  /** At most this many members dropped for silence per failover window (`--failover-quota`); undefined: the worker's default, 3. Worker processes only. */
  failoverQuota?: number | undefined;
  /** Copies JetStream keeps of the journal, buckets and blobs (3 on a 3-node NATS cluster); undefined: the worker's default, 1. Worker processes only. */
  storageReplicas?: number | undefined;
  /** A `cohort auth init` directory: worker processes connect as its worker user (`worker.nk`). */
  authDir?: string | undefined;
  /** Otherwise, credentials and TLS every worker process connects with. */
  auth?: NatsAuth | undefined;
  tls?: NatsTls | undefined;
  /** A line a worker printed (stdout). */
  onLine?(worker: LocalWorker, line: string): void;
  /** A log line a worker wrote at warn or above (stderr), made readable. */
  onWarn?(worker: LocalWorker, line: string): void;
  /** A worker ended that was neither killed nor stopped by stop(). */
  onUnexpectedExit?(worker: LocalWorker, exit: WorkerExit): void;
}

/** A worker as the cluster holds it. */
export interface Hosted {
  readonly worker: LocalWorker;
  /** Resolves once it serves; rejects when it ends first. */
  readonly ready: Promise<void>;
  /** For the exit hook: kill at once, synchronously. */
  killNow(): void;
}

/** a, b, c, ... z, then a2, b2, ... */
export function zoneOf(index: number): string {
  const letter = String.fromCharCode(97 + (index % 26));
  return index < 26 ? letter : `${letter}${Math.floor(index / 26) + 1}`;
}

/** `{"level":40,"msg":"...","err":{...}}` from pino becomes `warn: ... (TypeError: ...)`; other text stays as it is. */
/** pino-pretty's own formatter when it is installed (optional): time, level, bindings and message, as in a terminal. */
const prettify: ((line: string) => string) | undefined = (() => {
  try {
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as {
      prettyFactory: (o: Record<string, unknown>) => (line: string) => string;
    };
    return prettyFactory({
      colorize: process.stdout.isTTY === true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
    });
  } catch {
    return undefined;
  }
})();

export function readableLogLine(line: string): string {
  if (prettify !== undefined && line.startsWith('{')) {
    try {
      JSON.parse(line);
      return prettify(line).trimEnd();
    } catch {
      // Not a JSON log line: as it is, below.
    }
  }
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || typeof (entry as { msg?: unknown }).msg !== 'string') return line;
  const e = entry as { level?: number; msg: string; err?: { type?: string; message?: string } };
  const level =
    e.level === undefined ? 'log' : e.level >= 60 ? 'fatal' : e.level >= 50 ? 'error' : e.level >= 40 ? 'warn' : 'info';
  const err = e.err?.message === undefined ? '' : ` (${e.err.type ?? 'Error'}: ${e.err.message})`;
  return `${level}: ${e.msg}${err}`;
}

export function describeExit(exit: WorkerExit): string {
  return exit.signal !== null
    ? `killed by ${exit.signal}`
    : exit.code === null
      ? 'could not start'
      : `exit code ${exit.code}`;
}
