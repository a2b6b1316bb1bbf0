/**
 * The errors a worker answers with, and their wire form: one class per
 * failure mode, each saying its retry policy (`retryable`), rebuilt on the
 * client as the same class. Application errors extend CohortError, not
 * BusError: a refused event is not a transport failure.
 */
import {
  CohortError,
  ConnectionLostError,
  DecodeError,
  NoRespondersError,
  PayloadTooLargeError,
  TimeoutError,
} from '../bus/errors.js';
import type { ErrorBody } from './messages.js';

/** The machine does not accept this event in its current state; nothing was journaled. */
export class EventRejectedError extends CohortError {
  constructor(
    readonly eventType: string,
    readonly state: unknown,
    /** Why, when the machine took the event but the document it made cannot be kept (a forbidden key, a value the codec refuses). */
    readonly reason?: string,
  ) {
    super(
      reason === undefined
        ? `event ${eventType} is not accepted in state ${JSON.stringify(state)}`
        : `event ${eventType} in state ${JSON.stringify(state)} is refused: ${reason}`,
    );
  }
}

/** `expectSeq` was given and the session has moved on. */
export class ConflictError extends CohortError {
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`expected the session at seq ${expected}, it is at ${actual}`);
  }
}

export class UnknownApplicationError extends CohortError {
  constructor(readonly app: string) {
    super(`no application named ${JSON.stringify(app)} is served here`);
  }
}

/** This worker's copy was stale or it no longer owns the session; the same command may be retried. */
export class SessionMovedError extends CohortError {
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
export class NotEnoughReplicasError extends CohortError {
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
export class InvalidRequestError extends CohortError {
  constructor(readonly reason: string) {
    super(`invalid request: ${reason}`);
  }
}

/** Another client holds the session's transaction lock; retried (same command id) until it is released or the call's time runs out. */
export class SessionLockedError extends CohortError {
  override readonly retryable = true;
  constructor(
    readonly app: string,
    readonly id: string,
    /** Label of the client holding it. */
    readonly holder: string,
  ) {
    super(`session ${app}/${id} is locked by a transaction of ${holder}`);
  }
}

/** Why a transaction was rolled back without its client asking. */
export type RollbackReason = 'timeout' | 'recovery-wait' | 'forced' | 'failover' | 'lock-order' | 'unknown';

/**
 * The transaction is gone: its lease ran out, its client was silent beyond
 * recoveryWait or was disconnected by force, it was open on a primary the
 * shard has moved away from since (`failover`: its lock and working copy
 * lived in that primary's memory; a planned move waits for it a while, up
 * to the worker's handoffTransactionWait, a crash cannot), it reached for
 * another session out of lock order while that session's lock was held
 * (`lock-order`: waiting could deadlock two transactions), or (`unknown`)
 * this primary never had it. Nothing of it was committed.
 */
export class TransactionRolledBackError extends CohortError {
  constructor(
    readonly txId: string,
    readonly reason: RollbackReason,
  ) {
    super(`transaction ${txId} was rolled back (${reason}); nothing of it was committed`);
  }
}

/** The connection was closed on this client: it never connected within waitTimeout, or a worker disconnected it by force. */
export class ClientDisconnectedError extends CohortError {
  constructor(
    readonly client: string,
    readonly reason: string,
  ) {
    super(`client ${client} is disconnected: ${reason}`);
  }
}

/**
 * The connection gave up on a request (DISABLED after troubledInterval, or
 * closed under it). `ambiguous` is true when the command was sent and may
 * have committed: read the session to find out; false when it certainly did
 * not (never sent, or a read).
 */
export class NetworkError extends CohortError {
  /** `app/id` of the session it was for. */
  readonly session: string;
  /** How long the connection kept trying, in ms. */
  readonly triedMs: number;
  readonly ambiguous: boolean;
  readonly reason: string;
  constructor(
    readonly operation: string,
    facts: { readonly session: string; readonly triedMs: number; readonly ambiguous: boolean; readonly reason: string },
    options?: ErrorOptions,
  ) {
    const { session, triedMs, ambiguous, reason } = facts;
    super(
      `${operation}: ${reason} after trying for ${triedMs} ms; ${ambiguous ? 'it may have committed (ambiguous): read the session to know' : 'it was not committed'}`,
      options,
    );
    this.session = session;
    this.triedMs = triedMs;
    this.ambiguous = ambiguous;
    this.reason = reason;
  }
}

/**
 * What the store holds for this session cannot be read (a journal entry or
 * snapshot damaged, or written by someone who should not have): the session
 * is refused, with where it broke, and every other session serves on.
 */
export class CorruptSessionError extends CohortError {
  constructor(
    /** `app/id`. */
    readonly session: string,
    /** The journal's stream sequence of the entry that broke it (0: the snapshot). */
    readonly journalSeq: number,
    readonly reason: string,
  ) {
    super(
      `session ${session} cannot be loaded: ${journalSeq === 0 ? 'its snapshot' : `journal entry ${journalSeq}`} ${reason}`,
    );
  }
}

/**
 * A transaction commits as one journal message on its shard, so it takes in
 * sessions of its own shard only.
 */
export class CrossShardTransactionError extends CohortError {
  constructor(
    readonly session: string,
    readonly shard: number,
    readonly other: string,
    readonly otherShard: number,
  ) {
    super(
      `transaction on ${session} (shard ${shard}) cannot touch ${other} (shard ${otherShard}): transactions across shards are not supported`,
    );
  }
}

/** The transaction ran past transactionTimeout: it was aborted and the connection closed. */
export class TransactionTimeoutError extends CohortError {
  constructor(
    readonly txId: string,
    readonly timeoutMs: number,
  ) {
    super(`transaction ${txId} ran past its ${timeoutMs} ms timeout: aborted, and the connection closed`);
  }
}

/** A client holds as many watches on this worker as it may: a new one is refused until one ends or lapses. */
export class TooManyWatchesError extends CohortError {
  constructor(
    readonly client: string,
    readonly limit: number,
  ) {
    super(`client ${client} already watches ${limit} sessions on this worker, the most it may`);
  }
}

/** The application declares no query of this name: answered for each session asked, nothing else fails. */
export class UnknownQueryError extends CohortError {
  constructor(
    readonly app: string,
    readonly query: string,
  ) {
    super(`application ${app} declares no query named ${JSON.stringify(query)}`);
  }
}

/** The query threw on this session's document, or answered what cannot be sent: that session's answer only. */
export class QueryFailedError extends CohortError {
  constructor(
    /** `app/id`. */
    readonly session: string,
    readonly query: string,
    readonly reason: string,
  ) {
    super(`query ${query} on ${session} failed: ${reason}`);
  }
}

type Rebuild = (body: ErrorBody) => Error;
const d = (body: ErrorBody, key: string): unknown => body.details?.[key];

/** Error classes a worker may answer with, rebuilt on the client from their wire form. */
const REBUILD: Record<string, Rebuild> = {
  EventRejectedError: (b) =>
    new EventRejectedError(
      String(d(b, 'eventType')),
      d(b, 'state'),
      d(b, 'reason') === undefined ? undefined : String(d(b, 'reason')),
    ),
  ConflictError: (b) => new ConflictError(Number(d(b, 'expected')), Number(d(b, 'actual'))),
  UnknownApplicationError: (b) => new UnknownApplicationError(String(d(b, 'app'))),
  SessionMovedError: (b) => new SessionMovedError(String(d(b, 'app')), String(d(b, 'id'))),
  InvalidRequestError: (b) => new InvalidRequestError(String(d(b, 'reason'))),
  NotEnoughReplicasError: (b) =>
    new NotEnoughReplicasError(
      String(d(b, 'app')),
      Number(d(b, 'shard')),
      Number(d(b, 'required')),
      Number(d(b, 'synchronized')),
    ),
  DecodeError: (b) => new DecodeError(String(d(b, 'where')), String(d(b, 'reason'))),
  PayloadTooLargeError: (b) =>
    new PayloadTooLargeError(Number(d(b, 'size')), Number(d(b, 'limit')), String(d(b, 'where'))),
  TimeoutError: (b) => new TimeoutError(String(d(b, 'operation')), Number(d(b, 'timeoutMs'))),
  NoRespondersError: (b) => new NoRespondersError(String(d(b, 'subject'))),
  ConnectionLostError: () => new ConnectionLostError(),
  SessionLockedError: (b) => new SessionLockedError(String(d(b, 'app')), String(d(b, 'id')), String(d(b, 'holder'))),
  TransactionRolledBackError: (b) =>
    new TransactionRolledBackError(String(d(b, 'txId')), String(d(b, 'reason')) as RollbackReason),
  CorruptSessionError: (b) =>
    new CorruptSessionError(String(d(b, 'session')), Number(d(b, 'journalSeq')), String(d(b, 'reason'))),
  ClientDisconnectedError: (b) => new ClientDisconnectedError(String(d(b, 'client')), String(d(b, 'reason'))),
  TooManyWatchesError: (b) => new TooManyWatchesError(String(d(b, 'client')), Number(d(b, 'limit'))),
  UnknownQueryError: (b) => new UnknownQueryError(String(d(b, 'app')), String(d(b, 'query'))),
  QueryFailedError: (b) => new QueryFailedError(String(d(b, 'session')), String(d(b, 'query')), String(d(b, 'reason'))),
};

/** The wire form of an error: its class name, message, retry policy and its own fields. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof Error) {
    const details: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(err)) {
      if (
        k !== 'retryable' &&
        k !== 'cause' &&
        (v === null || ['string', 'number', 'boolean'].includes(typeof v) || typeof v === 'object')
      ) {
        details[k] = v;
      }
    }
    return {
      name: err.name,
      message: err.message,
      retryable: err instanceof CohortError ? err.retryable : false,
      details,
    };
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

/** The reply for a refusal: the error in its wire form. */
export function refuse(err: unknown): { readonly ok: false; readonly error: ErrorBody } {
  return { ok: false, error: toErrorBody(err) };
}
