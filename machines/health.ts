/**
 * A worker's own health, beyond what heartbeats tell (after SQL Server
 * Always On's failure-condition levels and health-check timeout): a worker
 * that still heartbeats but cannot do its work should hand its shards to one
 * that can, rather than keep them and fail every command. Pure: the worker's
 * health monitor gathers the facts, this decides.
 *
 * Levels, each including the ones below:
 * - 1: silence only. Heartbeats and hearing decide (the session timeout,
 *   the deaf step-down); health never steps a worker down.
 * - 2: unresponsive. A session's mailbox has been on one message for the
 *   health-check timeout: its sessions wait behind something that does not
 *   end.
 * - 3 (default): errors. Also: journal appends keep failing (at least two,
 *   none succeeding since, the first a health-check timeout ago, the latest
 *   within one), or the lease has been lost for a health-check timeout while
 *   the view makes this worker a primary.
 */

export type FailureCondition = 1 | 2 | 3;

export interface HealthConfig {
  readonly failureCondition: FailureCondition;
  /** How long a fault must last before it counts (ms). */
  readonly healthCheckTimeout: number;
}

/**
 * 10 s: longer than an append's own timeout (5 s) twice over, so one slow
 * JetStream election is not a fault, and short beside the minutes an
 * operator would take to notice.
 */
export const HEALTH_DEFAULTS: HealthConfig = { failureCondition: 3, healthCheckTimeout: 10_000 };

export type UnhealthyReason = 'unresponsive' | 'commits-failing' | 'lease-lost';

export interface HealthFacts {
  /** Journal appends failing since the last one that succeeded (null: none failing). */
  readonly failing: { readonly count: number; readonly first: number; readonly last: number } | null;
  /** When the longest-running message in any session's mailbox started (null: none running). */
  readonly busySince: number | null;
  /** Since when the lease has not held while the view makes this worker a primary (null: held, or primary of nothing). */
  readonly leaseLostSince: number | null;
}

export interface Unhealthy {
  readonly reason: UnhealthyReason;
  /** Since when the fault has lasted: the time it began, as the facts give it. */
  readonly since: number;
}

/** The fault that makes this worker unhealthy at `now`, at its failure condition; null when healthy. */
export function assessHealth(facts: HealthFacts, config: HealthConfig, now: number): Unhealthy | null {
  const t = config.healthCheckTimeout;
  if (config.failureCondition >= 2 && facts.busySince !== null && now - facts.busySince >= t)
    return { reason: 'unresponsive', since: facts.busySince };
  if (config.failureCondition < 3) return null;
  const f = facts.failing;
  if (f !== null && f.count >= 2 && now - f.first >= t && now - f.last < t)
    return { reason: 'commits-failing', since: f.first };
  if (facts.leaseLostSince !== null && now - facts.leaseLostSince >= t)
    return { reason: 'lease-lost', since: facts.leaseLostSince };
  return null;
}

/** A health setting that cannot work. Still a RangeError to whoever catches one. */
export class HealthConfigError extends RangeError {
  constructor(
    readonly option: 'failureCondition' | 'healthCheckTimeout',
    message: string,
  ) {
    super(message);
  }
}

/** Checks the settings (startWorker and the command line both come here), defaults filled in. */
export function healthConfig(
  settings: { readonly failureCondition?: number; readonly healthCheckTimeout?: number },
  sessionTimeout: number,
): HealthConfig {
  const failureCondition = settings.failureCondition ?? HEALTH_DEFAULTS.failureCondition;
  if (failureCondition !== 1 && failureCondition !== 2 && failureCondition !== 3)
    throw new HealthConfigError('failureCondition', `failureCondition must be 1, 2 or 3 (got ${failureCondition})`);
  const healthCheckTimeout =
    settings.healthCheckTimeout ?? Math.max(HEALTH_DEFAULTS.healthCheckTimeout, sessionTimeout);
  // Shorter than a session timeout, a worker would step down over a fault the cluster rides out anyway.
  if (!(Number.isSafeInteger(healthCheckTimeout) && healthCheckTimeout >= sessionTimeout)) {
    throw new HealthConfigError(
      'healthCheckTimeout',
      `healthCheckTimeout must be a whole number of ms, at least the session timeout (${sessionTimeout}) (got ${healthCheckTimeout})`,
    );
  }
  return { failureCondition, healthCheckTimeout };
}
