import { ApiCodes, apiCode } from './errors.js';

/** How often a create refused as clashing with one being made is made again, and the first pause. */
const TRIES = 6;
const PAUSE_MS = 50;

/**
 * Makes a stream-backed store that another connection may be making at the
 * same moment (workers starting together). nats-server 2.9 may refuse the
 * second create as a subject overlap or a name in use while the first one is
 * still being made; a moment later the same create finds the store there. A
 * real clash with another stream is still refused, after about 1.5 s.
 */
export async function createAlongside<T>(make: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await make();
    } catch (err) {
      const code = apiCode(err);
      const clash = code === ApiCodes.StreamSubjectOverlap || code === ApiCodes.StreamNameInUse;
      if (!clash || attempt >= TRIES) throw err;
      await new Promise((resolve) => setTimeout(resolve, PAUSE_MS * attempt));
    }
  }
}
