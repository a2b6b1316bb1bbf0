/**
 * Test-only switches. Most break the runtime on purpose, so a harness can
 * show it finds the bug (a planted fault, as FoundationDB's buggify); each
 * of those gives up a guarantee. `reloadOnPromotion` gives up none, only
 * the speed of a failover, so a bench can measure what promotion from
 * copies saves. Never set outside tests and benches.
 */
export const UNSAFE = Symbol.for('cohort.unsafe');

export interface UnsafeSwitches {
  /** Journal appends go without the expected-sequence fence, and no epoch markers are written: a deposed primary's writes land and count. */
  readonly unfenced?: boolean;
  /**
   * A secondary made primary keeps none of its copies: every session of the
   * shard is loaded from snapshot and journal, as before promotion from
   * copies (`adoptions` stays at 0). Correct, only slower.
   */
  readonly reloadOnPromotion?: boolean;
  /**
   * How long (ms) a shard taken up publishes every patch before only its
   * watched sessions' (default 30 000). Shorter, a watcher whose renewal has
   * not yet reached the new primary misses patches until it does, and then
   * catches up: no patch lost, only later. Lets a test see past the grace.
   */
  readonly takeoverGrace?: number;
}
