import type { Clock } from '../../bus/clock.js';
import {
  ConnectionError,
  ConnectionLostError,
  JetStreamDisabledError,
  NoRespondersError,
  PermissionDeniedError,
  TimeoutError,
} from '../../bus/errors.js';
import { assessHealth, type HealthConfig, type HealthFacts, type UnhealthyReason } from '../../machines/health.js';

/** What sessions tell the monitor of their journal appends. */
export interface CommitHealth {
  appended(): void;
  appendFailed(err: unknown): void;
}

/**
 * Failures of the journal itself: it did not answer, could not be reached,
 * or will not take this worker's appends (its credentials deny them, which
 * another worker's may not). A refusal of one append (a moved fence, a body
 * too large) is the journal working; a closed bus is the worker stopping.
 */
function journalFault(err: unknown): boolean {
  return (
    err instanceof TimeoutError ||
    err instanceof NoRespondersError ||
    err instanceof ConnectionLostError ||
    err instanceof ConnectionError ||
    err instanceof JetStreamDisabledError ||
    err instanceof PermissionDeniedError
  );
}

export interface HealthMonitorOptions {
  readonly config: HealthConfig;
  readonly clock: Clock;
  /** When the longest-running message in any session's mailbox started (null: none running). */
  busySince(): number | null;
  /** The view makes this worker a primary and its lease does not hold. */
  leaseLost(): boolean;
}

/**
 * Gathers one worker's health facts as they happen (appends) and as they are
 * asked for (mailboxes, the lease, sampled at each membership tick), and
 * hands them to assessHealth (machines/health.ts), which decides.
 */
export class HealthMonitor implements CommitHealth {
  readonly #options: HealthMonitorOptions;
  #failing: { count: number; first: number; last: number } | null = null;
  #leaseLostSince: number | null = null;

  constructor(options: HealthMonitorOptions) {
    this.#options = options;
  }

  appended(): void {
    this.#failing = null;
  }

  appendFailed(err: unknown): void {
    if (!journalFault(err)) return;
    const now = this.#options.clock.now();
    const f = this.#failing;
    this.#failing =
      f === null ? { count: 1, first: now, last: now } : { count: f.count + 1, first: f.first, last: now };
  }

  /** The facts as of now (the lease's lapse is timed from the first check that saw it). */
  facts(): HealthFacts {
    const now = this.#options.clock.now();
    if (!this.#options.leaseLost()) this.#leaseLostSince = null;
    else this.#leaseLostSince ??= now;
    return { failing: this.#failing, busySince: this.#options.busySince(), leaseLostSince: this.#leaseLostSince };
  }

  /** What is wrong now at the worker's failure condition; undefined when healthy. */
  check(): UnhealthyReason | undefined {
    return assessHealth(this.facts(), this.#options.config, this.#options.clock.now())?.reason;
  }
}
