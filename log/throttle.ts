import type { Logger } from 'pino';
import type { Clock } from '../bus/clock.js';

/**
 * A warning that anyone on the bus can provoke (junk heartbeats, forged
 * requests) is logged at most once per `everyMs` of the clock, with how
 * many were dropped since: a flood costs a count, not a log line each.
 */
export function throttledWarn(
  log: Logger,
  clock: Clock,
  everyMs: number,
): (fields: Record<string, unknown>, message: string) => void {
  let since = 0;
  let loggedAt: number | undefined;
  return (fields, message) => {
    since++;
    const now = clock.now();
    if (loggedAt !== undefined && now - loggedAt < everyMs) return;
    log.warn({ ...fields, ignored: since }, message);
    loggedAt = now;
    since = 0;
  };
}
