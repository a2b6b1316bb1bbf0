/**
 * Test-only switches that break the runtime on purpose, so a harness can
 * show it finds the bug (a planted fault, as FoundationDB's buggify). Never
 * set outside tests: each one gives up a guarantee.
 */
export const UNSAFE = Symbol.for('cohort.unsafe');

export interface UnsafeSwitches {
  /** Journal appends go without the expected-sequence fence, and no epoch markers are written: a deposed primary's writes land and count. */
  readonly unfenced?: boolean;
}
