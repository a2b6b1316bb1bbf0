/**
 * What a client does with one request after each of its attempts, decided
 * in one place from plain data: the host (actors/client/attempts.ts) maps
 * replies and error classes to these strings, measures the time, and
 * carries out the decision. No clock, no bus, no error classes here.
 */

/** What became of the latest attempt, or why the request is looked at without one. */
export type AttemptOutcome =
  /** Answered: ok. */
  | 'ok'
  /** Answered with an error retrying cannot fix (or with no error at all). */
  | 'final'
  /** Answered "retry" (moved, locked, not enough replicas); `error` is that error's kind. */
  | 'retry'
  /** Answered, but the reply could not be read: the worker is there, the request failed. */
  | 'unreadable'
  /** Sent and not answered; `error` says how. */
  | 'unanswered'
  /** About to be sent (again). */
  | 'due'
  /** The connection's clock ticked while the request waited. */
  | 'idle'
  /** The connection gave up (troubledInterval, forced, closed): every pending request fails. */
  | 'disabled'
  /** The connection was never made within waitTimeout. */
  | 'wait-timeout';

/** An error as the decision sees it. */
export type ErrorKind =
  /** Nobody was subscribed: the request certainly went nowhere. */
  | 'no-responders'
  /** No answer in time: it may have been delivered and applied. */
  | 'timeout'
  /** The bus was closed under it. */
  | 'closed'
  /** Another bus failure that says it may pass (a lost connection). */
  | 'retryable'
  /** A bus failure retrying cannot fix (too large, a bad subject). */
  | 'refused'
  /** Not a bus error: a worker's refusal, or a failure outside the bus. */
  | 'other';

export interface AttemptFacts {
  readonly outcome: AttemptOutcome;
  /** For `retry` and `unanswered`: the kind of the error it ended with. */
  readonly error?: ErrorKind | undefined;
  /** The request may change the session: an unanswered attempt makes its outcome ambiguous. */
  readonly mutates: boolean;
  /** An earlier attempt went out and got no answer: it may have been applied. */
  readonly unanswered: boolean;
  /** An attempt is out now. */
  readonly inFlight: boolean;
  /** Waiting out its own pause after a "retry" answer. */
  readonly paused: boolean;
  /** Ms since the request was made. */
  readonly elapsed: number;
  /** The caller's limit in ms; without one the request gives up after troubledInterval of failures. */
  readonly timeout: number | undefined;
  /** Ms since its first failed attempt; undefined while none has failed. */
  readonly troubledFor: number | undefined;
  readonly troubledInterval: number;
  /** The kind of the last failed attempt's error, if one failed. */
  readonly lastError: ErrorKind | undefined;
  /** "Retry" answers so far: each waits longer, up to the last of RETRY_ANSWER_PAUSES. */
  readonly answeredRetries: number;
  /** A read whose primary did not answer may go to secondaries now (read-only fallback on, not already there). */
  readonly canFallBack: boolean;
}

/**
 * A failed attempt the request carries on with (or gives up on): its error
 * becomes the request's last error, its trouble clock starts if it had not,
 * and `unanswered` is whether any attempt so far went unanswered.
 */
export interface Failed {
  readonly unanswered: boolean;
}

/** The error a request gives up with. */
export type GiveUp =
  /** The caller's timeout passed: TimeoutError. */
  | 'timeout'
  /** No answer for troubledInterval, or the connection gave up: NetworkError. */
  | 'network'
  /** The last failure says more than NetworkError would (a worker's "retry" that never cleared, a lost connection on a read): that error itself. */
  | 'last-error'
  /** Never connected: ClientDisconnectedError. */
  | 'disconnected';

export type AttemptDecision =
  /** Resolve with the reply as it came. */
  | { readonly action: 'settle' }
  /** Reject with the error the attempt ended with. */
  | { readonly action: 'fail' }
  /** Send it: there is time left. */
  | { readonly action: 'send' }
  /** Nothing now: it waits for its answer, its pause, or the connection's next retry. */
  | { readonly action: 'wait' }
  /** Answered "retry": this request alone is sent again after `pause` ms. */
  | { readonly action: 'retry'; readonly pause: number; readonly failed: Failed }
  /** No primary answers the read: send it to the secondaries now, and poll the primary. */
  | { readonly action: 'fall-back'; readonly failed: Failed }
  /** Unanswered: tell the connection, which goes to TROUBLE and sends everything pending again. */
  | { readonly action: 'report'; readonly failed: Failed }
  /** Done trying. `ambiguous`: a command may have been applied; read the session to know. */
  | { readonly action: 'give-up'; readonly error: GiveUp; readonly ambiguous: boolean; readonly failed?: Failed };

/** Pauses between retries of a request a worker answered "retry": a hand-off or a lock lasts moments. */
export const RETRY_ANSWER_PAUSES: readonly number[] = [5, 10, 20, 40, 50];

// Shared answers: the hot path (an ok reply) allocates nothing.
const SETTLE: AttemptDecision = { action: 'settle' };
const FAIL: AttemptDecision = { action: 'fail' };
const SEND: AttemptDecision = { action: 'send' };
const WAIT: AttemptDecision = { action: 'wait' };

export function classify(facts: AttemptFacts): AttemptDecision {
  switch (facts.outcome) {
    case 'ok':
    case 'final':
      return SETTLE;
    case 'unreadable':
      return FAIL;
    case 'retry': {
      const failed = { unanswered: facts.unanswered };
      if (outOfTime(facts, true)) return giveUp(facts, failed, facts.error ?? 'other');
      const pause = RETRY_ANSWER_PAUSES[Math.min(facts.answeredRetries, RETRY_ANSWER_PAUSES.length - 1)]!;
      return { action: 'retry', pause, failed };
    }
    case 'unanswered': {
      const error = facts.error ?? 'other';
      // Not a connection problem (too large, a bad subject, not the bus): retrying cannot help.
      if (error === 'refused' || error === 'other') return FAIL;
      // No responders: nobody got it. Anything else: it may have been delivered and applied.
      const failed = { unanswered: facts.unanswered || error !== 'no-responders' };
      if (facts.canFallBack) return { action: 'fall-back', failed };
      if (outOfTime(facts, true)) return giveUp(facts, failed, error);
      return { action: 'report', failed };
    }
    case 'due':
      return timedOut(facts) ? giveUp(facts, undefined, facts.lastError) : SEND;
    case 'idle':
      if (facts.inFlight || facts.paused || !outOfTime(facts, false)) return WAIT;
      return giveUp(facts, undefined, facts.lastError);
    case 'disabled':
      // One in flight when the connection gave up may have been applied too.
      return { action: 'give-up', error: 'network', ambiguous: facts.mutates && (facts.unanswered || facts.inFlight) };
    case 'wait-timeout':
      return { action: 'give-up', error: 'disconnected', ambiguous: false };
  }
}

function timedOut(facts: AttemptFacts): boolean {
  return facts.timeout !== undefined && facts.elapsed >= facts.timeout;
}

/** `failing`: this attempt failed, so the trouble clock runs from now if it was not running. */
function outOfTime(facts: AttemptFacts, failing: boolean): boolean {
  if (timedOut(facts)) return true;
  const troubledFor = facts.troubledFor ?? (failing ? 0 : undefined);
  return troubledFor !== undefined && troubledFor >= facts.troubledInterval;
}

/** TimeoutError for the caller's timeout; else the last "retry" answer, if it says more; else NetworkError. */
function giveUp(facts: AttemptFacts, failed: Failed | undefined, lastError: ErrorKind | undefined): AttemptDecision {
  const ambiguous = facts.mutates && (failed?.unanswered ?? facts.unanswered);
  if (timedOut(facts)) return { action: 'give-up', error: 'timeout', ambiguous, failed };
  // A bare "no answer" says no more than NetworkError; an ambiguous command must say it may have been applied.
  if (lastError !== undefined && lastError !== 'timeout' && lastError !== 'no-responders' && !ambiguous) {
    return { action: 'give-up', error: 'last-error', ambiguous, failed };
  }
  return { action: 'give-up', error: 'network', ambiguous, failed };
}
