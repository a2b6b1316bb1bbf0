/**
 * What a client's error says about its command: certainly not committed
 * (`failed`), or perhaps committed (`ambiguous`). Decided from the error's
 * class and its own `ambiguous` field, never from its text; anything not
 * known to be a refusal is ambiguous, so a checker never calls a command
 * absent that may be present.
 */
import {
  ClientDisconnectedError,
  ConflictError,
  CorruptSessionError,
  EncodeError,
  EventRejectedError,
  InvalidRequestError,
  NetworkError,
  NotEnoughReplicasError,
  PayloadTooLargeError,
  SessionLockedError,
  SessionMovedError,
  TimeoutError,
  UnknownApplicationError,
} from '../../internal.js';

export type Outcome = 'ok' | 'failed' | 'ambiguous';

/**
 * Refusals: a worker answered and journaled nothing (an answered retry of a
 * command that had committed is answered `duplicate: true` instead, so an
 * answer of these means no attempt committed), or the client refused before
 * sending (a value the codec cannot carry, a timeout over the window).
 */
const REFUSALS: readonly (abstract new (...args: never[]) => Error)[] = [
  EventRejectedError,
  ConflictError,
  UnknownApplicationError,
  InvalidRequestError,
  NotEnoughReplicasError,
  SessionMovedError,
  SessionLockedError,
  CorruptSessionError,
  ClientDisconnectedError,
  EncodeError,
  PayloadTooLargeError,
  RangeError,
];

/** How a send that threw `error` ended: `failed` only when it certainly was not committed. */
export function sendOutcome(error: unknown): Exclude<Outcome, 'ok'> {
  // The client says so itself: ambiguous when an attempt went out unanswered.
  if (error instanceof TimeoutError || error instanceof NetworkError) return error.ambiguous ? 'ambiguous' : 'failed';
  if (REFUSALS.some((refusal) => error instanceof refusal)) return 'failed';
  return 'ambiguous';
}
