import { describe, expect, it } from 'vitest';
import { classify, RETRY_ANSWER_PAUSES, type AttemptFacts } from '../../machines/attempt.js';

/** A command on its first attempt, no timeout of its own, nothing failed yet. */
function facts(over: Partial<AttemptFacts>): AttemptFacts {
  return {
    outcome: 'ok',
    mutates: true,
    unanswered: false,
    inFlight: false,
    paused: false,
    elapsed: 100,
    timeout: undefined,
    troubledFor: undefined,
    troubledInterval: 10_000,
    lastError: undefined,
    answeredRetries: 0,
    canFallBack: false,
    ...over,
  };
}

describe('classify: answered', () => {
  it('settles with the reply when it is ok, or an error retrying cannot fix', () => {
    expect(classify(facts({ outcome: 'ok' }))).toEqual({ action: 'settle' });
    expect(classify(facts({ outcome: 'final' }))).toEqual({ action: 'settle' });
    // However long it took, and however troubled it was: an answer is an answer.
    expect(classify(facts({ outcome: 'ok', elapsed: 50_000, timeout: 1_000, troubledFor: 20_000 }))).toEqual({
      action: 'settle',
    });
  });

  it('fails with the error when the reply cannot be read', () => {
    expect(classify(facts({ outcome: 'unreadable' }))).toEqual({ action: 'fail' });
  });

  it('"retry": this request alone waits a growing pause, its failure noted', () => {
    const pauses = [0, 1, 2, 3, 4, 5, 9].map((answeredRetries) =>
      classify(facts({ outcome: 'retry', error: 'other', answeredRetries })),
    );
    expect(pauses.map((d) => (d.action === 'retry' ? d.pause : d.action))).toEqual([5, 10, 20, 40, 50, 50, 50]);
    expect(RETRY_ANSWER_PAUSES.at(-1)).toBe(50);
    // A "retry" answer says the request was received: it adds no ambiguity, and keeps what there was.
    expect(classify(facts({ outcome: 'retry', error: 'other' }))).toEqual({
      action: 'retry',
      pause: 5,
      failed: { unanswered: false },
    });
    expect(classify(facts({ outcome: 'retry', error: 'other', unanswered: true }))).toEqual({
      action: 'retry',
      pause: 5,
      failed: { unanswered: true },
    });
  });

  it('"retry" past troubledInterval: gives up with that answer, which says more than NetworkError', () => {
    expect(classify(facts({ outcome: 'retry', error: 'other', troubledFor: 10_000 }))).toEqual({
      action: 'give-up',
      error: 'last-error',
      ambiguous: false,
      failed: { unanswered: false },
    });
  });

  it('"retry" past troubledInterval after an unanswered attempt: NetworkError, ambiguous for a command', () => {
    expect(classify(facts({ outcome: 'retry', error: 'other', troubledFor: 10_000, unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
      failed: { unanswered: true },
    });
    // A read changes nothing: never ambiguous, so the worker's answer is passed on.
    expect(
      classify(facts({ outcome: 'retry', error: 'other', troubledFor: 10_000, unanswered: true, mutates: false })),
    ).toMatchObject({
      action: 'give-up',
      error: 'last-error',
      ambiguous: false,
    });
  });

  it('a worker\'s own timeout or no-responders as the "retry" answer says no more than NetworkError', () => {
    for (const error of ['timeout', 'no-responders'] as const) {
      expect(classify(facts({ outcome: 'retry', error, troubledFor: 10_000 }))).toMatchObject({
        action: 'give-up',
        error: 'network',
        ambiguous: false,
      });
    }
  });

  it('"retry" past the caller\'s timeout: TimeoutError', () => {
    expect(classify(facts({ outcome: 'retry', error: 'other', timeout: 100, elapsed: 100 }))).toMatchObject({
      action: 'give-up',
      error: 'timeout',
      ambiguous: false,
    });
  });

  it('the first "retry" starts the trouble clock: with no troubledInterval left it gives up at once', () => {
    expect(classify(facts({ outcome: 'retry', error: 'other', troubledInterval: 0 }))).toMatchObject({
      action: 'give-up',
      error: 'last-error',
    });
  });
});

describe('classify: unanswered', () => {
  it('fails at once on an error retrying cannot fix: a refused bus request, or not a bus error', () => {
    expect(classify(facts({ outcome: 'unanswered', error: 'refused' }))).toEqual({ action: 'fail' });
    expect(classify(facts({ outcome: 'unanswered', error: 'other' }))).toEqual({ action: 'fail' });
  });

  it('reports a connection problem, and notes whether the request may have been applied', () => {
    expect(classify(facts({ outcome: 'unanswered', error: 'timeout' }))).toEqual({
      action: 'report',
      failed: { unanswered: true },
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'closed' }))).toEqual({
      action: 'report',
      failed: { unanswered: true },
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'retryable' }))).toEqual({
      action: 'report',
      failed: { unanswered: true },
    });
    // Nobody got it: certainly not applied (but an earlier unanswered attempt still counts).
    expect(classify(facts({ outcome: 'unanswered', error: 'no-responders' }))).toEqual({
      action: 'report',
      failed: { unanswered: false },
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'no-responders', unanswered: true }))).toEqual({
      action: 'report',
      failed: { unanswered: true },
    });
  });

  it('falls back to read-only when it can, before any time limit', () => {
    expect(
      classify(facts({ outcome: 'unanswered', error: 'no-responders', mutates: false, canFallBack: true })),
    ).toEqual({
      action: 'fall-back',
      failed: { unanswered: false },
    });
    expect(
      classify(
        facts({ outcome: 'unanswered', error: 'timeout', mutates: false, canFallBack: true, troubledFor: 20_000 }),
      ),
    ).toMatchObject({
      action: 'fall-back',
    });
  });

  it("past the caller's timeout: TimeoutError, ambiguous when a command went unanswered", () => {
    expect(classify(facts({ outcome: 'unanswered', error: 'timeout', timeout: 1_000, elapsed: 1_000 }))).toEqual({
      action: 'give-up',
      error: 'timeout',
      ambiguous: true,
      failed: { unanswered: true },
    });
    expect(
      classify(facts({ outcome: 'unanswered', error: 'no-responders', timeout: 1_000, elapsed: 1_200 })),
    ).toMatchObject({
      action: 'give-up',
      error: 'timeout',
      ambiguous: false,
    });
    expect(
      classify(facts({ outcome: 'unanswered', error: 'timeout', timeout: 1_000, elapsed: 1_000, mutates: false })),
    ).toMatchObject({
      action: 'give-up',
      error: 'timeout',
      ambiguous: false,
    });
  });

  it('past troubledInterval: NetworkError, ambiguous when a command may have been applied', () => {
    expect(classify(facts({ outcome: 'unanswered', error: 'timeout', troubledFor: 10_000 }))).toMatchObject({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'no-responders', troubledFor: 10_000 }))).toMatchObject({
      action: 'give-up',
      error: 'network',
      ambiguous: false,
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'timeout', troubledFor: 9_999 }))).toMatchObject({
      action: 'report',
    });
  });

  it('a lost connection on a read past troubledInterval is passed on as it is', () => {
    expect(
      classify(facts({ outcome: 'unanswered', error: 'retryable', troubledFor: 10_000, mutates: false })),
    ).toMatchObject({
      action: 'give-up',
      error: 'last-error',
      ambiguous: false,
    });
    expect(classify(facts({ outcome: 'unanswered', error: 'closed', troubledFor: 10_000 }))).toMatchObject({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
  });
});

describe('classify: waiting requests', () => {
  it("due: sent while the caller's timeout has not passed, whatever the trouble", () => {
    expect(classify(facts({ outcome: 'due' }))).toEqual({ action: 'send' });
    expect(classify(facts({ outcome: 'due', troubledFor: 60_000 }))).toEqual({ action: 'send' });
    expect(classify(facts({ outcome: 'due', timeout: 1_000, elapsed: 999 }))).toEqual({ action: 'send' });
    expect(classify(facts({ outcome: 'due', timeout: 1_000, elapsed: 1_000, unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'timeout',
      ambiguous: true,
    });
  });

  it('idle: waits while in flight, paused, or in time', () => {
    expect(classify(facts({ outcome: 'idle', inFlight: true, timeout: 1_000, elapsed: 5_000 }))).toEqual({
      action: 'wait',
    });
    expect(classify(facts({ outcome: 'idle', paused: true, troubledFor: 20_000 }))).toEqual({ action: 'wait' });
    expect(classify(facts({ outcome: 'idle', troubledFor: 9_999 }))).toEqual({ action: 'wait' });
    // Nothing failed yet: no trouble clock runs.
    expect(classify(facts({ outcome: 'idle', troubledInterval: 0 }))).toEqual({ action: 'wait' });
  });

  it('idle and out of time: gives up with what its last failure calls for', () => {
    expect(classify(facts({ outcome: 'idle', timeout: 1_000, elapsed: 1_000 }))).toEqual({
      action: 'give-up',
      error: 'timeout',
      ambiguous: false,
    });
    expect(classify(facts({ outcome: 'idle', troubledFor: 10_000, lastError: 'other' }))).toEqual({
      action: 'give-up',
      error: 'last-error',
      ambiguous: false,
    });
    expect(classify(facts({ outcome: 'idle', troubledFor: 10_000, lastError: 'timeout', unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
    expect(classify(facts({ outcome: 'idle', troubledFor: 10_000, lastError: 'other', unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
  });
});

describe('classify: the connection gave up', () => {
  it('disabled: NetworkError, ambiguous for a command unanswered or still in flight', () => {
    expect(classify(facts({ outcome: 'disabled' }))).toEqual({ action: 'give-up', error: 'network', ambiguous: false });
    expect(classify(facts({ outcome: 'disabled', inFlight: true }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
    expect(classify(facts({ outcome: 'disabled', unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: true,
    });
    expect(classify(facts({ outcome: 'disabled', inFlight: true, mutates: false }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: false,
    });
    // Never the worker's last answer, nor a TimeoutError: the connection's failure is what they share.
    expect(classify(facts({ outcome: 'disabled', lastError: 'other', timeout: 10, elapsed: 100 }))).toEqual({
      action: 'give-up',
      error: 'network',
      ambiguous: false,
    });
  });

  it('never connected within waitTimeout: ClientDisconnectedError, never ambiguous', () => {
    expect(classify(facts({ outcome: 'wait-timeout', inFlight: true, unanswered: true }))).toEqual({
      action: 'give-up',
      error: 'disconnected',
      ambiguous: false,
    });
  });
});
