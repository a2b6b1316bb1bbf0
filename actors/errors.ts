import { BusError, DecodeError, NoRespondersError, PayloadTooLargeError, TimeoutError } from '../bus/errors.js';
import type { ErrorBody } from '../machines/protocol.js';

/** The machine does not accept this event in its current state; nothing was journaled. */
export class EventRejectedError extends BusError {
  constructor(
    readonly eventType: string,
    readonly state: unknown,
  ) {
    super(`event ${eventType} is not accepted in state ${JSON.stringify(state)}`);
  }
}

/** `expectSeq` was given and the session has moved on. */
export class ConflictError extends BusError {
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`expected the session at seq ${expected}, it is at ${actual}`);
  }
}

export class UnknownApplicationError extends BusError {
  constructor(readonly app: string) {
    super(`no application named ${JSON.stringify(app)} is served here`);
  }
}

/** This worker's copy was stale or it no longer owns the session; the same command may be retried. */
export class SessionMovedError extends BusError {
  override readonly retryable = true;
  constructor(
    readonly app: string,
    readonly id: string,
  ) {
    super(`session ${app}/${id} moved or was stale here; retry`);
  }
}

/**
 * Commit level `replicas` with fewer synchronized secondaries than the
 * application requires (Always On's REQUIRED_SYNCHRONIZED_SECONDARIES_TO_COMMIT):
 * refused before anything is journaled, rather than silently less safe.
 */
export class NotEnoughReplicasError extends BusError {
  constructor(
    readonly app: string,
    readonly shard: number,
    readonly required: number,
    readonly synchronized: number,
  ) {
    super(`${app}: shard ${shard} has ${synchronized} synchronized secondaries, ${required} required to commit`);
  }
}

/** A command or read that is not of the protocol's shape. */
export class InvalidRequestError extends BusError {
  constructor(readonly reason: string) {
    super(`invalid request: ${reason}`);
  }
}

type Rebuild = (body: ErrorBody) => Error;
const d = (body: ErrorBody, key: string): unknown => body.details?.[key];

/** Error classes a worker may answer with, rebuilt on the client from their wire form. */
const REBUILD: Record<string, Rebuild> = {
  EventRejectedError: (b) => new EventRejectedError(String(d(b, 'eventType')), d(b, 'state')),
  ConflictError: (b) => new ConflictError(Number(d(b, 'expected')), Number(d(b, 'actual'))),
  UnknownApplicationError: (b) => new UnknownApplicationError(String(d(b, 'app'))),
  SessionMovedError: (b) => new SessionMovedError(String(d(b, 'app')), String(d(b, 'id'))),
  InvalidRequestError: (b) => new InvalidRequestError(String(d(b, 'reason'))),
  NotEnoughReplicasError: (b) =>
    new NotEnoughReplicasError(String(d(b, 'app')), Number(d(b, 'shard')), Number(d(b, 'required')), Number(d(b, 'synchronized'))),
  DecodeError: (b) => new DecodeError(String(d(b, 'where')), String(d(b, 'reason'))),
  PayloadTooLargeError: (b) => new PayloadTooLargeError(Number(d(b, 'size')), Number(d(b, 'limit')), String(d(b, 'where'))),
  TimeoutError: (b) => new TimeoutError(String(d(b, 'operation')), Number(d(b, 'timeoutMs'))),
  NoRespondersError: (b) => new NoRespondersError(String(d(b, 'subject'))),
};

/** The wire form of an error: its class name, message, retry policy and its own fields. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof Error) {
    const details: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(err)) {
      if (k !== 'retryable' && k !== 'cause' && (v === null || ['string', 'number', 'boolean'].includes(typeof v) || typeof v === 'object')) {
        details[k] = v;
      }
    }
    return { name: err.name, message: err.message, retryable: err instanceof BusError ? err.retryable : false, details };
  }
  return { name: 'Error', message: String(err), retryable: false };
}

export function fromErrorBody(body: ErrorBody): Error {
  const rebuild = REBUILD[body.name];
  if (rebuild) return rebuild(body);
  const e = new Error(body.message);
  e.name = body.name;
  return e;
}
