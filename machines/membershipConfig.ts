import { MEMBERSHIP_DEFAULTS, MIN_SESSION_TIMEOUT, type MembershipConfig } from './membership.js';

/** The membership timings a worker may be given; absent ones take MEMBERSHIP_DEFAULTS. */
export interface MembershipSettings {
  readonly heartbeatInterval?: number;
  readonly sessionTimeout?: number;
  readonly replicas?: number;
  readonly maxConcurrentMoves?: number;
  readonly failoverQuota?: number;
  readonly failoverWindow?: number;
  readonly minMembers?: number;
  readonly stableAfter?: number;
  readonly unstableAfter?: number;
  readonly shardCount: number;
}

/** Every setting MembershipConfigError can name. */
export type MembershipOption = Exclude<keyof MembershipSettings, 'shardCount'>;

/**
 * A setting that breaks a membership rule. Still a RangeError to whoever
 * catches one; `option` lets a caller with its own names for the settings
 * (the command line's flags) say it in those.
 */
export class MembershipConfigError extends RangeError {
  constructor(
    readonly option: MembershipOption,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The membership rules, written once: startWorker and the command line both
 * check through here. Returns the whole config, defaults filled in.
 */
export function membershipConfig(settings: MembershipSettings): MembershipConfig {
  const heartbeatInterval = settings.heartbeatInterval ?? MEMBERSHIP_DEFAULTS.heartbeatInterval;
  const sessionTimeout = settings.sessionTimeout ?? MEMBERSHIP_DEFAULTS.sessionTimeout;
  const replicas = settings.replicas ?? MEMBERSHIP_DEFAULTS.replicas;
  const maxConcurrentMoves = settings.maxConcurrentMoves ?? MEMBERSHIP_DEFAULTS.maxConcurrentMoves;
  if (!(sessionTimeout >= MIN_SESSION_TIMEOUT)) {
    throw new MembershipConfigError(
      'sessionTimeout',
      `sessionTimeout must be at least ${MIN_SESSION_TIMEOUT} ms (got ${sessionTimeout}): shorter would suspect healthy workers`,
    );
  }
  if (!(heartbeatInterval > 0 && heartbeatInterval * 2 <= sessionTimeout)) {
    throw new MembershipConfigError(
      'heartbeatInterval',
      `heartbeatInterval must be > 0 and at most half of sessionTimeout (got ${heartbeatInterval} and ${sessionTimeout})`,
    );
  }
  if (!Number.isInteger(replicas) || replicas < 0)
    throw new MembershipConfigError('replicas', `replicas must be a whole number >= 0 (got ${replicas})`);
  if (!Number.isInteger(maxConcurrentMoves) || maxConcurrentMoves < 1) {
    throw new MembershipConfigError(
      'maxConcurrentMoves',
      `maxConcurrentMoves must be a whole number >= 1 (got ${maxConcurrentMoves})`,
    );
  }
  const whole = (option: MembershipOption, least: number, unbounded: boolean): number => {
    const n = settings[option] ?? MEMBERSHIP_DEFAULTS[option];
    if ((Number.isSafeInteger(n) && n >= least) || (unbounded && n === Infinity)) return n;
    throw new MembershipConfigError(
      option,
      `${option} must be a whole number >= ${least}${unbounded ? ' or Infinity' : ''} (got ${n})`,
    );
  };
  return {
    heartbeatInterval,
    sessionTimeout,
    replicas,
    shardCount: settings.shardCount,
    maxConcurrentMoves,
    failoverQuota: whole('failoverQuota', 1, true),
    failoverWindow: whole('failoverWindow', 1, false),
    minMembers: whole('minMembers', 1, false),
    stableAfter: whole('stableAfter', 1, false),
    unstableAfter: whole('unstableAfter', 1, true),
  };
}
