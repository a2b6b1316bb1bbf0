import { expect } from 'vitest';
import { TimeoutError } from '../index.js';

/** A call's outcome, and how long it took to settle (ms, on whatever clock the test reads). */
export interface Timed {
  readonly error: unknown;
  readonly waited: number;
}

/**
 * The call failed at its deadline with TimeoutError: not before it (less
 * `early`, for a wall clock's rounding), not more than `slack` after, saying
 * how long it waited and whether it is ambiguous.
 */
export function expectDeadline(
  outcome: Timed,
  deadline: number,
  ambiguous: boolean,
  { early = 0, slack }: { early?: number; slack: number },
): TimeoutError {
  expect(outcome.error).toBeInstanceOf(TimeoutError);
  const err = outcome.error as TimeoutError;
  expect(outcome.waited).toBeGreaterThanOrEqual(deadline - early);
  expect(outcome.waited).toBeLessThanOrEqual(deadline + slack);
  expect(err.ambiguous).toBe(ambiguous);
  expect(err.message).toContain(`timed out after ${deadline} ms`);
  expect(err.message).toMatch(ambiguous ? /may have committed: ambiguous/ : /not ambiguous: nothing was committed/);
  return err;
}
