import { errors, RequestError } from '@nats-io/nats-core';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { BusClosedError, ConnectionError, NoRespondersError, PermissionDeniedError, TimeoutError } from '../errors.js';

/** JetStream API error codes cohort reacts to, beyond those nats.js names. */
export const ApiCodes = {
  ...JetStreamApiCodes,
  StreamNameInUse: 10058,
  StreamSubjectOverlap: 10065,
} as const;

export function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * Maps nats.js failures of a request-shaped operation to cohort's classes.
 * Anything unrecognised is kept as the `cause` of a ConnectionError.
 */
export function translate(err: unknown, operation: string, subject: string, timeoutMs: number): Error {
  // nats.js reports a JetStream call nobody answered (say, while a stream
  // elects its leader) as "JetStream not enabled" caused by no responders:
  // that is a transient NoResponders, not a terminal configuration error.
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e instanceof RequestError && e.isNoResponders()) || e instanceof errors.NoRespondersError) {
      return new NoRespondersError(subject, { cause: err });
    }
  }
  if (err instanceof errors.TimeoutError || (err instanceof RequestError && err.cause instanceof errors.TimeoutError)) {
    return new TimeoutError(`${operation} ${subject}`, timeoutMs, { cause: err });
  }
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof errors.PermissionViolationError)
      return new PermissionDeniedError(e.operation, e.subject, { cause: err });
  }
  if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError) {
    return new BusClosedError(operation);
  }
  if (err instanceof Error && err.name.endsWith('Error') && 'retryable' in err) return err;
  return new ConnectionError(`${operation} ${subject} failed: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}
