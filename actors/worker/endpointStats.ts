import type { EndpointStats } from '../../protocol/service.js';

/** Nanoseconds in a millisecond: the environment's clock counts ms, ADR-32 stats count ns. */
const NS_PER_MS = 1_000_000;

/**
 * What one micro service endpoint has handled since the service started:
 * requests, errors (the last one's message) and time spent, for `$SRV.STATS`.
 * Time comes from the environment's clock, so it has that clock's
 * resolution (1 ms on the system clock; none on virtual time).
 */
export class EndpointCounter {
  #requests = 0;
  #errors = 0;
  #lastError = '';
  #processingNs = 0;

  record(elapsedMs: number, error?: string): void {
    this.#requests += 1;
    this.#processingNs += Math.max(0, Math.round(elapsedMs * NS_PER_MS));
    if (error !== undefined) {
      this.#errors += 1;
      this.#lastError = error;
    }
  }

  stats(endpoint: { name: string; subject: string; queue_group?: string }): EndpointStats {
    return {
      ...endpoint,
      num_requests: this.#requests,
      num_errors: this.#errors,
      last_error: this.#lastError,
      processing_time: this.#processingNs,
      average_processing_time: this.#requests === 0 ? 0 : Math.trunc(this.#processingNs / this.#requests),
    };
  }
}
