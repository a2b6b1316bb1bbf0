import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MIN_SESSION_TIMEOUT, type NatsAuth, type NatsTls, type View } from '../index.js';
import { validateCluster } from '../internal.js';
import { stopSignal } from './stopSignal.js';
import { checkAuthDir } from './authServer.js';
import { CONNECTION_FLAGS, connectionSettings } from './connectionFlags.js';
import { describeExit, startLocalCluster, type LocalCluster } from './localCluster.js';
import { CliUsageError, loadApplications } from './loadApplications.js';
import { checkMembershipTimings, parseMilliseconds } from './worker.js';

export { startLocalCluster, type LocalCluster } from './localCluster.js';

export const UP_FLAGS = {
  workers: { type: 'string' },
  app: { type: 'string', multiple: true },
  ...CONNECTION_FLAGS,
  auth: { type: 'string' },
  cluster: { type: 'string', default: 'demo' },
  'session-timeout': { type: 'string' },
  'heartbeat-interval': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** More would be a stress test of this host, not a local cluster. */
export const MAX_WORKERS = 26;
const DEFAULT_WORKERS = 3;

export interface UpOptions {
  workers: number;
  /** Absolute paths of the modules exporting the applications. */
  apps: string[];
  nats: string[] | undefined;
  /** Credentials and TLS for `nats`, for the workers and the view reader alike. */
  auth: NatsAuth | undefined;
  tls: NatsTls | undefined;
  /** A `cohort auth init` directory (absolute): the embedded server admits only its users. */
  authDir: string | undefined;
  cluster: string;
  heartbeatInterval: number | undefined;
  sessionTimeout: number | undefined;
}

/**
 * The ledger example, next to this module: examples/ledger.ts from source,
 * dist/examples/ledger.js once built, whatever the current directory.
 */
export function defaultApp(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`../examples/ledger${ext}`, import.meta.url));
}

/** `--workers`: a whole number from 1 to MAX_WORKERS. */
export function parseWorkerCount(value: string | undefined): number {
  if (value === undefined) return DEFAULT_WORKERS;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new CliUsageError(`--workers needs a whole number from 1 to ${MAX_WORKERS} (got ${JSON.stringify(value)})`);
  }
  return n;
}

/** The heartbeat to go with a session timeout when only that was given: the default, or less when it would be too long. */
export function heartbeatFor(
  sessionTimeout: number | undefined,
  heartbeatInterval: number | undefined,
): number | undefined {
  if (heartbeatInterval !== undefined || sessionTimeout === undefined) return heartbeatInterval;
  return Math.min(500, Math.floor(sessionTimeout / 4));
}

function nonEmptyAuth(value: string): string {
  if (value.trim() === '') throw new CliUsageError('--auth needs a directory', { showUsage: true });
  return value;
}

/** The arguments after `up`. Throws parseArgs' own errors for unknown flags, CliUsageError for bad values. */
export function parseUpArgs(args: string[]): UpOptions {
  const { values } = parseArgs({ args, options: UP_FLAGS, strict: true, allowPositionals: false });
  const workers = parseWorkerCount(values.workers);
  const apps = (values.app ?? []).map((a) => {
    if (a.trim() === '') throw new CliUsageError('--app needs a value', { showUsage: true });
    return resolve(process.cwd(), a);
  });
  const { servers: nats, auth, tls } = connectionSettings(values);
  if (nats === undefined && (auth !== undefined || tls !== undefined))
    throw new CliUsageError('credentials and TLS flags need --nats (or NATS_URL): the embedded server has no users');
  if (values.auth !== undefined && (auth !== undefined || tls !== undefined))
    throw new CliUsageError('--auth DIR gives every process its credentials: not together with credentials flags');
  try {
    validateCluster(values.cluster);
  } catch (err) {
    throw new CliUsageError(
      `--cluster ${JSON.stringify(values.cluster)}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const sessionTimeout = parseMilliseconds('session-timeout', values['session-timeout'], MIN_SESSION_TIMEOUT);
  const heartbeatInterval = heartbeatFor(
    sessionTimeout,
    parseMilliseconds('heartbeat-interval', values['heartbeat-interval']),
  );
  checkMembershipTimings(heartbeatInterval, sessionTimeout);
  return {
    workers,
    apps: apps.length > 0 ? apps : [defaultApp()],
    nats,
    auth,
    tls,
    authDir: values.auth === undefined ? undefined : resolve(process.cwd(), nonEmptyAuth(values.auth)),
    cluster: values.cluster,
    heartbeatInterval,
    sessionTimeout,
  };
}

/** Shards each member is primary of (ACTIVE, or PENDING while it hands them off). */
export function primariesByMember(view: View): Map<string, number> {
  const counts = new Map<string, number>(view.members.map((m) => [m.id, 0]));
  for (const s of view.shards) if (s.primary !== null) counts.set(s.primary, (counts.get(s.primary) ?? 0) + 1);
  return counts;
}

/**
 * The safeguards in force, for people: `failover halted since ...`, each
 * held member and why, how many of its shards go unserved, `unstable since
 * ...`. Nothing when none is (a view of an ordinary cluster reads as before).
 */
export function safeguardNotes(view: View): string[] {
  const g = view.safeguards;
  const at = (ms: number): string => new Date(ms).toISOString();
  const held = g.held.map((h) => {
    const shards = view.shards.filter((s) => s.primary === h.member).length;
    return `${h.member} silent, held (${h.reason}): ${shards} shards unserved`;
  });
  return [
    ...(g.failoverHalted !== null
      ? [`automatic failover halted since ${at(g.failoverHalted)} (cohort reset-failover resumes it)`]
      : []),
    ...held,
    ...(g.unstable !== null ? [`membership unstable since ${at(g.unstable)}: no rebalancing`] : []),
  ];
}

/** `view 4: 3 members, leader w1 | w1 (a) 86 shards, w2 (b) 85 shards, w3 (c) 85 shards` and what is in motion. */
export function describeView(view: View): string {
  const counts = primariesByMember(view);
  const members = view.members.map((m) => `${m.id} (${m.zone}) ${counts.get(m.id) ?? 0} shards`).join(', ');
  const pending = view.shards.filter((s) => s.state === 'PENDING').length;
  const dead = view.shards.filter((s) => s.state === 'DEAD').length;
  const notes = [
    ...(view.transitional ? ['transitional: survivors only, shards not yet reassigned'] : []),
    ...(pending > 0 ? [`${pending} shards handing off`] : []),
    ...(dead > 0
      ? [`${dead} shards DEAD (no primary${view.transitional ? ' until the next view' : ': no promotable member'})`]
      : []),
    ...(view.possibleDataLoss.length > 0 ? [`possible data loss on ${view.possibleDataLoss.length} shards`] : []),
    ...safeguardNotes(view),
  ];
  const n = view.members.length;
  return `view ${view.viewId}: ${n} member${n === 1 ? '' : 's'}, leader ${view.leader || '-'} | ${members || 'none'}${notes.length ? ` | ${notes.join('; ')}` : ''}`;
}

export interface RunUpOptions extends UpOptions {
  write: (line: string) => void;
  warn: (line: string) => void;
}

/**
 * `cohort up`: a local cluster until SIGINT or SIGTERM, with a status line
 * per view and every worker's lines prefixed with its id. Resolves to the
 * exit code (0 once everything stopped; 1 if a worker had to be killed).
 */
export async function runUp(options: RunUpOptions): Promise<number> {
  const { write, warn } = options;
  // Wrong modules are wrong usage (exit code 2), found before anything starts.
  const applications = await loadApplications(options.apps);
  if (options.authDir !== undefined) await checkAuthDir(options.authDir, options.cluster, ['worker', 'admin']);
  const signal = stopSignal(warn, 'exiting now, killing what is left');
  try {
    let cluster: LocalCluster;
    try {
      cluster = await startLocalCluster({
        ...options,
        write,
        onLine: (w, line) => write(`[${w.id}] ${line}`),
        onWarn: (w, line) => warn(`[${w.id}] ${line}`),
        onUnexpectedExit: (w, exit) =>
          write(
            `worker ${w.id} exited unexpectedly (${describeExit(exit)}); the others take over its shards once it is dropped from the view`,
          ),
      });
    } catch (err) {
      warn(`cannot start the cluster: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
    if (cluster.transport === 'nats')
      write(`worker pids: ${cluster.workers.map((w) => `${w.id} ${w.pid}`).join(', ')}`);
    const unsubscribe = cluster.views.subscribe((view) => write(describeView(view)));
    if (cluster.views.latest !== null) write(describeView(cluster.views.latest));
    const names = applications.map((a) => a.name).join(', ');
    const n = `${cluster.workers.length} worker${cluster.workers.length === 1 ? '' : 's'}`;
    if (cluster.url !== undefined && options.authDir !== undefined) {
      const dir = options.authDir;
      write(`cluster ${cluster.cluster} up: ${n} serving ${names} at ${cluster.url}, only for the users of ${dir}`);
      write(
        `clients: connect({ nats: '${cluster.url}', cluster: '${cluster.cluster}', auth: { nkey: '${dir}/client-LABEL.nk' } }) ` +
          `(cohort auth add-client LABEL --out ${dir} makes one); more workers: cohort worker --nats ${cluster.url} ` +
          `--cluster ${cluster.cluster} --nkey ${dir}/worker.nk --app FILE`,
      );
    } else if (cluster.url !== undefined) {
      write(`cluster ${cluster.cluster} up: ${n} serving ${names} at ${cluster.url}`);
      write(
        `clients: connect({ nats: '${cluster.url}', cluster: '${cluster.cluster}' }); more workers: cohort worker --nats ${cluster.url} --cluster ${cluster.cluster} --app FILE`,
      );
    } else {
      write(`cluster ${cluster.cluster} up: ${n} serving ${names} on the in-memory bus, in this process`);
    }
    write('SIGINT (Ctrl-C) or SIGTERM stops it');

    const received = await signal.received;
    const running = cluster.workers.filter((w) => w.exit === null);
    write(
      `${received}: stopping ${running.length} worker${running.length === 1 ? '' : 's'}${cluster.url !== undefined && options.nats === undefined ? ' and the nats-server' : ''} (a second signal exits at once)`,
    );
    const { forced } = await cluster.stop();
    unsubscribe();
    if (forced.length > 0) {
      warn(`did not stop in time, killed: ${forced.join(', ')}`);
      return 1;
    }
    write('stopped');
    return 0;
  } finally {
    signal.dispose();
  }
}
