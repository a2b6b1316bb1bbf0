import { errors, RequestError } from '@nats-io/nats-core';
import { ApiCodes, apiCode } from './errors.js';

/** How often a create refused as clashing with one being made is made again, and the first pause. */
const TRIES = 6;
const PAUSE_MS = 50;

/** An API call nobody answered in time. */
function unanswered(err: unknown): boolean {
  return (
    err instanceof errors.TimeoutError || (err instanceof RequestError && err.cause instanceof errors.TimeoutError)
  );
}

/**
 * Makes a stream-backed store that another connection may be making at the
 * same moment (workers starting together). nats-server 2.9 may refuse the
 * second create as a subject overlap or a name in use while the first one is
 * still being made, and on a cluster may leave it unanswered (it times out);
 * a moment later the same create finds the store there. A real clash with
 * another stream is still refused, after about 1.5 s.
 */
export async function createAlongside<T>(make: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await make();
    } catch (err) {
      const code = apiCode(err);
      const clash = code === ApiCodes.StreamSubjectOverlap || code === ApiCodes.StreamNameInUse || unanswered(err);
      if (!clash || attempt >= TRIES) throw err;
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS * attempt));
    }
  }
}
