/**
 * What `connect()` takes, and the checks it makes before anything is
 * opened: every bad option is named in a RangeError, so a mistake shows at
 * start and not as a strange failure later.
 */
import { basename } from 'node:path';
import type { NatsAuth, NatsTls } from '../../bus/nats/credentials.js';
import type { Bus } from '../../bus/types.js';
import type { Environment } from '../../bus/environment.js';
import type { MeterProvider } from '@opentelemetry/api';
import { validateCluster } from '../../bus/subjects.js';
import { DEDUP_WINDOW_MS } from '../../protocol/dedup.js';
import { MAX_WATCH_LEASE, MIN_WATCH_LEASE } from '../../protocol/requests.js';

export interface ConnectOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  /** Credentials for `nats` (files are read at connect): as the `nats` CLI takes them. */
  auth?: NatsAuth;
  /** TLS files for `nats`; given (even `{}`), a server without TLS is refused. */
  tls?: NatsTls;
  /**
   * Where workers answer (default `_INBOX`). The client takes its answers in
   * `<replyPrefix>.<label>`, the inbox `cohort auth init` reserves to its user.
   */
  replyPrefix?: string;
  bus?: Bus;
  cluster: string;
  /**
   * Shown in every server-side log line about this client; with per-user
   * permissions, the LABEL of its `client-LABEL` user (default: taken from an
   * `auth.nkey` file named `client-LABEL.nk`, else `client`).
   */
  label?: string;
  shardCount?: number;
  /**
   * Every call's deadline in ms unless the call gives its own `timeout`
   * (default 30 000, at most the de-duplication window): send, read,
   * counter, a transaction's steps, verification. No call waits past it,
   * whatever the cluster does: it fails with TimeoutError, or with
   * NetworkError sooner once the connection has had no answer for
   * `troubledInterval`; either says how long it waited and whether the
   * outcome is ambiguous (a command sent and unanswered may have committed).
   */
  timeout?: number;
  /**
   * One attempt's share of a call in ms (default 2 000): a request lost with
   * a worker or a NATS node that died is sent again, with the same command
   * id (applied once), instead of waiting out the whole call.
   */
  attemptTimeout?: number;
  /** How long the first connection may take (default 30 000 ms), then ClientDisconnectedError. */
  waitTimeout?: number;
  /** Most time between retries of pending requests in TROUBLE (default 250 ms). */
  reconnectInterval?: number;
  /** How long TROUBLE lasts before the connection is DISABLED and its requests fail (default 10 000 ms). */
  troubledInterval?: number;
  /** While no primary answers, reads go to secondaries, marked stale (default false). */
  readOnlyFallback?: boolean;
  /** Bytes of documents the client cache keeps, least recently used out first (default 20 MB; 0 turns it off). */
  cacheSize?: number;
  /** A cached copy further behind than this many events is dropped and re-read on verification (default 100). */
  invalidationQueueSize?: number;
  /**
   * How long a subscription's interest lasts on the worker unless renewed
   * (default 30 000 ms, 1 000 to 60 000): the client renews it at a third
   * of this while subscribed; workers publish a session's patches only
   * while someone's interest runs.
   */
  watchLease?: number;
  /** A transaction still open after this long is aborted and the connection closed (default 30 000 ms). */
  transactionTimeout?: number;
  /** Time, randomness and ids (default the system's): virtual time and seeded ids make a run replay. */
  environment?: Partial<Environment>;
  /**
   * Where its metrics (connection state changes, retries) go: default the
   * global MeterProvider of `@opentelemetry/api` when it connects, a no-op
   * until an SDK is installed.
   */
  meterProvider?: MeterProvider;
}

/**
 * The deadline of a call that names none: a paused worker or a stalled
 * server costs a caller this long at most. Well inside DEDUP_WINDOW_MS, so
 * every retry of a command within it is still recognised as one.
 */
export const DEFAULT_CALL_TIMEOUT = 30_000;

function positive(name: string, v: number | undefined, allowZero = false): void {
  if (v === undefined) return;
  if (!(Number.isFinite(v) && (allowZero ? v >= 0 : v > 0)))
    throw new RangeError(`connect: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
}

/**
 * A call retries a command with the same id until its deadline; past the
 * de-duplication window (DEDUP_WINDOW_MS) a retry would be a new command.
 */
export function withinDedupWindow(name: string, v: number | undefined, most = DEDUP_WINDOW_MS): void {
  if (v !== undefined && v > most)
    throw new RangeError(
      `${name} must be at most ${most} ms (got ${v}): a command is recognised as a retry for ${DEDUP_WINDOW_MS} ms after it commits, so a later retry would apply it again`,
    );
}

/**
 * A call's own deadline: a positive number of ms (NaN or a string would be
 * no deadline at all), and for a command, inside the de-duplication window.
 */
export function checkCallTimeout(name: string, v: number | undefined, most = DEDUP_WINDOW_MS): void {
  if (v === undefined) return;
  if (!(typeof v === 'number' && v > 0 && !Number.isNaN(v)))
    throw new RangeError(`${name} must be a positive number of ms, got ${String(v)}`);
  withinDedupWindow(name, v, most);
}

/** `client-alice.nk`, as `cohort auth init` names a client's seed file, says the label is alice. */
function labelFromSeedFile(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  return /^client-([A-Za-z0-9_-]+)\.nk$/.exec(basename(path))?.[1];
}

/** Throws on the first bad option; returns the label (default `client`). */
export function checkConnectOptions(options: ConnectOptions): string {
  validateCluster(options.cluster);
  if (!options.bus && !options.nats) throw new TypeError('connect needs `nats` (server URLs) or `bus`');
  for (const key of [
    'timeout',
    'attemptTimeout',
    'waitTimeout',
    'reconnectInterval',
    'troubledInterval',
    'transactionTimeout',
    'invalidationQueueSize',
  ] as const) {
    positive(key, options[key]);
  }
  positive('cacheSize', options.cacheSize, true);
  // A retry must reach a worker while it still recognises the command id, or it is applied again.
  withinDedupWindow('connect: timeout', options.timeout);
  withinDedupWindow('connect: troubledInterval', options.troubledInterval, DEDUP_WINDOW_MS / 2);
  const lease = options.watchLease;
  if (lease !== undefined && !(Number.isFinite(lease) && lease >= MIN_WATCH_LEASE && lease <= MAX_WATCH_LEASE))
    throw new RangeError(`connect: watchLease must be ${MIN_WATCH_LEASE} to ${MAX_WATCH_LEASE} ms, got ${lease}`);
  if (options.invalidationQueueSize !== undefined && !Number.isSafeInteger(options.invalidationQueueSize)) {
    throw new RangeError(`connect: invalidationQueueSize must be a whole number, got ${options.invalidationQueueSize}`);
  }
  const label = options.label ?? labelFromSeedFile(options.auth?.nkey) ?? 'client';
  if (
    typeof label !== 'string' ||
    label.length === 0 ||
    label.length > 200 ||
    label.includes('#') ||
    /[\u0000-\u001f\u007f]/.test(label)
  ) {
    throw new RangeError(
      `connect: label must be 1-200 characters without '#' or control characters, got ${JSON.stringify(label)}`,
    );
  }
  return label;
}
