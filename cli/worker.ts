import { parseArgs, type ParseArgsConfig } from 'node:util';
import {
  type Bus,
  type NatsAuth,
  type NatsTls,
  createLogger,
  createMemoryBus,
  createNatsBus,
  MEMBERSHIP_DEFAULTS,
  MIN_SESSION_TIMEOUT,
  startWorker,
  type Worker,
  WORKER_RECONNECT_INTERVAL,
} from '../index.js';
import { MembershipConfigError, membershipConfig, validateCluster, workerInbox } from '../internal.js';
import { FALLBACK_DIRS, findNatsServerBinary } from '../harness/natsServerBinary.js';
import { startNatsServer } from '../harness/natsServer.js';
import { stopSignal } from './stopSignal.js';
import { CONNECTION_FLAGS, connectionSettings, describeSecurity } from './connectionFlags.js';
import { CliUsageError, loadApplications } from './loadApplications.js';
import { healthConfig, HealthConfigError, type FailureCondition } from '../machines/health.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';

/** The flags of `cohort worker`, as parseArgs takes them (compose.yaml's workers are checked against this table). */
export const WORKER_FLAGS = {
  app: { type: 'string', multiple: true },
  ...CONNECTION_FLAGS,
  cluster: { type: 'string', default: 'demo' },
  zone: { type: 'string' },
  'no-promote': { type: 'boolean', default: false },
  id: { type: 'string' },
  'heartbeat-interval': { type: 'string' },
  'session-timeout': { type: 'string' },
  'storage-replicas': { type: 'string' },
  'reconnect-interval': { type: 'string' },
  'failover-quota': { type: 'string' },
  'failover-window': { type: 'string' },
  'min-members': { type: 'string' },
  'stable-after': { type: 'string' },
  'unstable-after': { type: 'string' },
  'failure-condition': { type: 'string' },
  'health-check-timeout': { type: 'string' },
  'metrics-port': { type: 'string' },
  patches: { type: 'string' },
  'batch-max': { type: 'string' },
  'batch-bytes': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export interface WorkerCliOptions {
  /** Module paths, relative to the current directory; each exports one or more applications. */
  apps: string[];
  /** Server URLs (--nats or NATS_URL); undefined: an embedded nats-server, or the memory bus when none is installed. */
  nats: string[] | undefined;
  /** Credentials and TLS for `nats`. */
  auth: NatsAuth | undefined;
  tls: NatsTls | undefined;
  cluster: string;
  zone: string | undefined;
  promotable: boolean;
  id: string | undefined;
  /** Copies JetStream keeps of the journal, buckets and blobs (3 on a 3-node NATS cluster); undefined: 1. */
  storageReplicas: number | undefined;
  /** Membership heartbeat period in ms; undefined: the worker's default. */
  heartbeatInterval: number | undefined;
  /** Silence after which a worker is dropped and its shards fail over, in ms; undefined: the worker's default. */
  sessionTimeout: number | undefined;
  /** Ms between attempts to reconnect to NATS (plus jitter); undefined: WORKER_RECONNECT_INTERVAL. */
  reconnectInterval: number | undefined;
  /** The safeguards against cascading failover; each undefined: the worker's default. */
  safeguards: SafeguardFlags;
  /** Health beyond heartbeats (machines/health.ts); each undefined: the worker's default. */
  health: { failureCondition?: FailureCondition; healthCheckTimeout?: number };
  /** Where /metrics, /healthz and /readyz are served (0: any free port); undefined: not served. */
  metricsPort: number | undefined;
  /** Which patches it publishes (`always`: every one, for a bare nats sub); undefined: the worker's default, watched. */
  patches: 'always' | 'watched' | undefined;
  /** Group commit's bounds (`--batch-max`, `--batch-bytes`); each undefined: the worker's default. */
  groupCommit: { maxCommands?: number; maxBytes?: number };
}

/** What `--failover-quota`, `--failover-window`, `--min-members`, `--stable-after` and `--unstable-after` gave. */
export interface SafeguardFlags {
  failoverQuota?: number;
  failoverWindow?: number;
  minMembers?: number;
  stableAfter?: number;
  unstableAfter?: number;
}

/** A duration flag's value: a whole number of milliseconds, at least `min`. Undefined when the flag is absent. */
export function parseMilliseconds(flag: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(ms) || ms < min) {
    throw new CliUsageError(
      `--${flag} needs a whole number of milliseconds, at least ${min} (got ${JSON.stringify(value)})`,
    );
  }
  return ms;
}

/**
 * The membership timings as startWorker checks them (the same rules), checked
 * here first so a wrong pair is wrong usage (exit code 2) rather than a
 * worker that fails to start; said in flags rather than option names.
 */
export function checkMembershipTimings(
  heartbeatInterval: number | undefined,
  sessionTimeout: number | undefined,
): void {
  try {
    membershipConfig({ heartbeatInterval, sessionTimeout, shardCount: 1 });
  } catch (err) {
    if (!(err instanceof MembershipConfigError)) throw err;
    if (err.option !== 'heartbeatInterval')
      throw new CliUsageError(err.message.replace('sessionTimeout', '--session-timeout'));
    const hb = heartbeatInterval ?? MEMBERSHIP_DEFAULTS.heartbeatInterval;
    const st = sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout;
    throw new CliUsageError(
      `--heartbeat-interval (${hb} ms) must be at most half of --session-timeout (${st} ms)` +
        (heartbeatInterval === undefined ? `; pass --heartbeat-interval ${Math.floor(st / 2)} or less` : ''),
    );
  }
}

/** A count flag's value: a whole number from `min`. Undefined when the flag is absent. */
export function parseCount(flag: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min)
    throw new CliUsageError(`--${flag} needs a whole number, at least ${min} (got ${JSON.stringify(value)})`);
  return n;
}

/** The safeguard flags, each checked on its own (their rules are membershipConfig's: whole numbers from 1). */
export function parseSafeguardFlags(values: {
  'failover-quota'?: string;
  'failover-window'?: string;
  'min-members'?: string;
  'stable-after'?: string;
  'unstable-after'?: string;
}): SafeguardFlags {
  const flags: SafeguardFlags = {
    failoverQuota: parseCount('failover-quota', values['failover-quota']),
    failoverWindow: parseMilliseconds('failover-window', values['failover-window']),
    minMembers: parseCount('min-members', values['min-members']),
    stableAfter: parseMilliseconds('stable-after', values['stable-after']),
    unstableAfter: parseMilliseconds('unstable-after', values['unstable-after']),
  };
  return Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
}

function nonEmpty(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && value.trim() === '')
    throw new CliUsageError(`--${flag} needs a value`, { showUsage: true });
  return value;
}

/** The arguments after `worker`. Throws parseArgs' own errors for unknown flags, CliUsageError for bad values. */
export function parseWorkerArgs(args: string[]): WorkerCliOptions {
  const { values } = parseArgs({ args, options: WORKER_FLAGS, strict: true, allowPositionals: false });
  const apps = values.app ?? [];
  if (apps.length === 0)
    throw new CliUsageError('needs --app FILE (a module exporting applications)', { showUsage: true });
  for (const app of apps) nonEmpty('app', app);
  const { servers: nats, auth, tls } = connectionSettings(values);
  if (nats === undefined && (auth !== undefined || tls !== undefined))
    throw new CliUsageError('credentials and TLS flags need --nats (or NATS_URL): the embedded server has no users');
  try {
    validateCluster(values.cluster);
  } catch (err) {
    throw new CliUsageError(
      `--cluster ${JSON.stringify(values.cluster)}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const heartbeatInterval = parseMilliseconds('heartbeat-interval', values['heartbeat-interval']);
  const sessionTimeout = parseMilliseconds('session-timeout', values['session-timeout'], MIN_SESSION_TIMEOUT);
  checkMembershipTimings(heartbeatInterval, sessionTimeout);
  const storage = values['storage-replicas'];
  const storageReplicas = storage === undefined ? undefined : Number(storage);
  if (
    storageReplicas !== undefined &&
    !(Number.isInteger(storageReplicas) && storageReplicas >= 1 && storageReplicas <= 5)
  ) {
    throw new CliUsageError(`--storage-replicas needs a whole number from 1 to 5 (got ${JSON.stringify(storage)})`);
  }
  return {
    storageReplicas,
    apps,
    nats,
    auth,
    tls,
    cluster: values.cluster,
    zone: nonEmpty('zone', values.zone),
    promotable: !values['no-promote'],
    id: nonEmpty('id', values.id),
    heartbeatInterval,
    sessionTimeout,
    reconnectInterval: parseMilliseconds('reconnect-interval', values['reconnect-interval']),
    safeguards: parseSafeguardFlags(values),
    health: parseHealthFlags(values['failure-condition'], values['health-check-timeout'], sessionTimeout),
    metricsPort: parsePort('metrics-port', values['metrics-port']),
    patches: parsePatches(values.patches),
    groupCommit: {
      ...optionalCount('batch-max', values['batch-max'], 'maxCommands'),
      ...optionalCount('batch-bytes', values['batch-bytes'], 'maxBytes'),
    },
  };
}

/** A whole number of at least 1 for group commit's bound `key`; {} when the flag is absent. */
function optionalCount<K extends string>(flag: string, value: string | undefined, key: K): { [P in K]?: number } {
  if (value === undefined) return {};
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(Number.isSafeInteger(n) && n >= 1))
    throw new CliUsageError(`--${flag} needs a whole number of at least 1 (got ${JSON.stringify(value)})`);
  return { [key]: n } as { [P in K]?: number };
}

/** `--patches`: watched (the default) or always. */
function parsePatches(value: string | undefined): 'always' | 'watched' | undefined {
  if (value === undefined || value === 'always' || value === 'watched') return value;
  throw new CliUsageError(`--patches needs watched or always (got ${JSON.stringify(value)})`);
}

/** A TCP port flag: 0 (any free port) to 65535. Undefined when the flag is absent. */
export function parsePort(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(Number.isInteger(port) && port <= 65535))
    throw new CliUsageError(
      `--${flag} needs a port number from 0 (any free port) to 65535 (got ${JSON.stringify(value)})`,
    );
  return port;
}

/** `--failure-condition` and `--health-check-timeout`, by healthConfig's rules, said in flags. */
function parseHealthFlags(
  level: string | undefined,
  timeout: string | undefined,
  sessionTimeout: number | undefined,
): WorkerCliOptions['health'] {
  const failureCondition = level === undefined ? undefined : Number(level.trim());
  if (level !== undefined && !/^[123]$/.test(level.trim()))
    throw new CliUsageError(`--failure-condition needs 1, 2 or 3 (got ${JSON.stringify(level)})`);
  const healthCheckTimeout = parseMilliseconds('health-check-timeout', timeout);
  try {
    healthConfig({ failureCondition, healthCheckTimeout }, sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout);
  } catch (err) {
    if (!(err instanceof HealthConfigError)) throw err;
    throw new CliUsageError(
      `--health-check-timeout (${healthCheckTimeout} ms) must be at least --session-timeout (${sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout} ms)`,
    );
  }
  return {
    ...(failureCondition !== undefined && { failureCondition: failureCondition as FailureCondition }),
    ...(healthCheckTimeout !== undefined && { healthCheckTimeout }),
  };
}

export interface RunWorkerOptions extends WorkerCliOptions {
  /** Lines for the user (stdout). */
  write: (line: string) => void;
  /** Lines about trouble (stderr). */
  warn: (line: string) => void;
}

interface Target {
  bus: Bus;
  /** Where the worker serves, for the "serving" line. */
  where: string;
  dispose(): Promise<void>;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

async function openTarget(options: RunWorkerOptions): Promise<Target> {
  const name = `cohort-worker${options.id === undefined ? '' : `-${options.id}`}`;
  if (options.nats !== undefined) {
    const bus = await createNatsBus({
      servers: options.nats,
      name,
      auth: options.auth,
      tls: options.tls,
      inboxPrefix: workerInbox(),
      reconnectInterval: options.reconnectInterval ?? WORKER_RECONNECT_INTERVAL,
    });
    return { bus, where: options.nats.join(','), dispose: () => bus.close() };
  }
  if (findNatsServerBinary() === null) {
    const env = process.env['NATS_SERVER_BIN'];
    options.write(
      env
        ? `no --nats given, and NATS_SERVER_BIN=${env} is not an executable nats-server.`
        : `no --nats given, and no nats-server on PATH or in ${FALLBACK_DIRS.join(', ')}.`,
    );
    options.write(
      'Serving on the in-memory bus, in this process: this worker is alone (no other worker or client can reach it). ' +
        'Install nats-server (apt-get install nats-server) or pass --nats to form a cluster.',
    );
    const bus = createMemoryBus();
    return { bus, where: 'the in-memory bus', dispose: () => bus.close() };
  }
  const server = await startNatsServer();
  let bus: Bus;
  try {
    bus = await createNatsBus({ servers: server.url, name });
  } catch (err) {
    await server[Symbol.asyncDispose]();
    throw err;
  }
  options.write(
    `no --nats given: started an embedded nats-server ${bus.server.version} at ${server.url} ` +
      '(JetStream in a temporary directory, removed when this worker stops).',
  );
  options.write(`Other workers on this host can join it with --nats ${server.url} --cluster ${options.cluster}`);
  return {
    bus,
    where: server.url,
    dispose: async () => {
      await bus.close();
      await server[Symbol.asyncDispose]();
    },
  };
}

/**
 * `cohort worker`: hosts the applications the --app modules export until
 * SIGINT or SIGTERM, then stops the worker (every session passivated, its
 * snapshot written). Resolves to the exit code; throws CliUsageError for a
 * wrong --app.
 */
export async function runWorker(options: RunWorkerOptions): Promise<number> {
  const signal = stopSignal(options.warn);
  try {
    const applications = await loadApplications(options.apps);
    let target: Target;
    try {
      target = await openTarget(options);
    } catch (err) {
      const where = options.nats === undefined ? 'an embedded nats-server' : options.nats.join(',');
      options.warn(`cannot connect to ${where}: ${describe(err)}`);
      return 1;
    }
    let metrics: MetricsServer | undefined;
    // The probes look at the worker through this: none yet (starting), or one stopping.
    let running: Worker | undefined;
    let stopping = false;
    if (options.metricsPort !== undefined) {
      try {
        metrics = await startMetricsServer({
          port: options.metricsPort,
          health: () =>
            running === undefined || stopping
              ? { ok: false, reason: stopping ? 'stopping' : 'starting' }
              : { ok: true, reason: `worker ${running.id} running` },
          readiness: () => {
            if (running === undefined) return { ok: false, reason: 'starting' };
            const r = running.readiness();
            return { ok: r.ready, reason: r.reason };
          },
        });
      } catch (err) {
        options.warn(`cannot serve metrics on port ${options.metricsPort}: ${describe(err)}`);
        await target.dispose();
        return 1;
      }
    }
    let worker: Worker;
    try {
      worker = await startWorker({
        bus: target.bus,
        cluster: options.cluster,
        applications,
        ...(options.id !== undefined && { id: options.id }),
        ...(options.zone !== undefined && { zone: options.zone }),
        promotable: options.promotable,
        // With credentials, the server reserves each client user its inbox: hold clients to theirs.
        clients: { ownInbox: options.auth !== undefined },
        ...(options.storageReplicas !== undefined && { storageReplicas: options.storageReplicas }),
        ...(options.heartbeatInterval !== undefined && { heartbeatInterval: options.heartbeatInterval }),
        ...(options.sessionTimeout !== undefined && { sessionTimeout: options.sessionTimeout }),
        ...options.safeguards,
        ...options.health,
        ...(options.patches !== undefined && { patches: options.patches }),
        groupCommit: options.groupCommit,
        // Runtime logs (pino JSON) go to stderr; stdout carries the lines above, for people and scripts.
        logger: createLogger({ destination: process.stderr }),
        ...(metrics !== undefined && { meterProvider: metrics.meterProvider }),
      });
    } catch (err) {
      options.warn(`cannot start the worker: ${describe(err)}`);
      await metrics?.close();
      await target.dispose();
      return 1;
    }
    running = worker;
    const names = applications.map((a) => a.name).join(', ');
    const extras = [
      `cluster ${options.cluster}`,
      ...(options.zone === undefined ? [] : [`zone ${options.zone}`]),
      ...(options.promotable ? [] : ['not promotable']),
      ...(options.auth === undefined && options.tls === undefined ? [] : [describeSecurity(options)]),
      ...(metrics === undefined ? [] : [`metrics on port ${metrics.port}: /metrics /healthz /readyz`]),
    ];
    options.write(`worker ${worker.id} serving ${names} on ${target.where} (${extras.join(', ')})`);

    const received = await Promise.race([signal.received, worker.drained.then(() => 'drain' as const)]);
    options.write(
      received === 'drain'
        ? `drained by an operator: worker ${worker.id} hands its shards off and stops`
        : `${received}: stopping worker ${worker.id} (a second signal exits at once)`,
    );
    stopping = true;
    try {
      await worker.stop();
    } catch (err) {
      options.warn(`worker ${worker.id} did not stop cleanly: ${describe(err)}`);
      await metrics?.close().catch(() => {});
      await target.dispose().catch(() => {});
      return 1;
    }
    await metrics?.close();
    await target.dispose();
    options.write(`worker ${worker.id} stopped`);
    return 0;
  } finally {
    signal.dispose();
  }
}
