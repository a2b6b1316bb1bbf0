import type { Msg } from '@nats-io/nats-core';
import { ConnectionLostError, NoRespondersError, TimeoutError } from '../errors.js';
import type { Link } from './link.js';

/**
 * A JetStream publish that got no answer may have gone to a stream leader
 * that died with it: nothing answers it, ever, while the stream elects a new
 * leader and takes publishes again. Sent again this long after the last
 * copy went out without an answer; safe, since every copy carries the same
 * message id and fence (the server stores one of them).
 */
export const RESEND_AFTER_MS = 500;
/** Between copies while the stream has no leader (no responders), once one copy went unanswered. */
export const NO_LEADER_PAUSE_MS = 50;

export interface Sent {
  readonly reply: Msg;
  /** Copies sent, this one included: above 1, an earlier copy may have been stored. */
  readonly copies: number;
}

/**
 * Sends `send` until one copy is answered, within `timeout` ms: again
 * RESEND_AFTER_MS after the last copy while none has answered, again once
 * the connection is back when it drops, and again every NO_LEADER_PAUSE_MS
 * while the stream has no leader after a copy went unanswered (that one may
 * be stored when a new leader is elected). The first answer of any copy
 * wins. No responders to the first copy fails at once (nothing was stored);
 * past `timeout` it is TimeoutError (a copy may be stored: ambiguous).
 * `send` is given the ms left, for its own timeout.
 */
export function sendUntilAnswered(
  send: (ms: number) => Promise<Msg>,
  link: Link,
  timeout: number,
  what: string,
): Promise<Sent> {
  const deadline = performance.now() + timeout;
  const left = (): number => deadline - performance.now();
  return new Promise<Sent>((resolve, reject) => {
    let copies = 0;
    let out = 0;
    /** A copy went out and was never answered (lost with a leader, or with the connection). */
    let unanswered = false;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: { reply: Msg } | { error: Error }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if ('reply' in outcome) resolve({ reply: outcome.reply, copies });
      else reject(outcome.error);
    };
    const timedOut = (): void => finish({ error: new TimeoutError(what, timeout) });
    /** The next copy after `ms`, unless one is answered first; the deadline ends it. */
    const later = (ms: number): void => {
      clearTimeout(timer);
      if (left() <= 0) return timedOut();
      timer = setTimeout(
        () => {
          if (left() <= 0) return timedOut();
          if (out > 0) unanswered = true;
          sendCopy();
        },
        Math.min(ms, left()),
      );
    };
    const sendCopy = (): void => {
      if (done) return;
      copies++;
      out++;
      send(Math.max(1, Math.ceil(left()))).then(
        (reply) => finish({ reply }),
        (err: unknown) => {
          out--;
          if (done) return;
          if (err instanceof NoRespondersError) {
            // Nobody took the first copy: nothing is stored. After an unanswered one, the stream is electing.
            if (!unanswered) return finish({ error: err });
            later(NO_LEADER_PAUSE_MS);
          } else if (err instanceof ConnectionLostError) {
            // Every copy out went with the connection (their answers with it): one more once it is back.
            unanswered = true;
            if (out > 0) return;
            clearTimeout(timer);
            void link.whenUp(left()).then((up) => {
              if (done) return;
              if (!up) return timedOut();
              sendCopy();
            });
          } else if (err instanceof TimeoutError) {
            if (out === 0) timedOut();
          } else finish({ error: err instanceof Error ? err : new Error(String(err)) });
        },
      );
      later(RESEND_AFTER_MS);
    };
    sendCopy();
  });
}
