import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { BusClosedError, ConnectionLostError, NoRespondersError, TimeoutError } from '../errors.js';

interface Pending {
  readonly resolve: (m: Msg) => void;
  readonly reject: (e: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly operation: string;
  readonly subject: string;
}

/**
 * Requests over one wildcard inbox, answered by token. nats.js's own
 * request() settles its promise and then rejects it once more with a new
 * Error after every reply (RequestOne.cancel), and capturing that stack,
 * async frames and all, was the largest single cost of a busy worker. Here
 * an Error is built only when a request fails.
 */
export class ReplyMux {
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #sub: Subscription;
  #next = 0;
  #closed = false;

  constructor(
    readonly nc: NatsConnection,
    inboxPrefix: string,
  ) {
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (_err, msg) => this.#deliver(msg) });
    void this.#sub.closed.then(() => this.close());
  }

  /** Resolves with the first reply; rejects with NoRespondersError, TimeoutError or BusClosedError. */
  request(
    subject: string,
    data: Uint8Array,
    headers: MsgHdrs | undefined,
    timeoutMs: number,
    operation: string,
  ): Promise<Msg> {
    if (this.#closed) return Promise.reject(new BusClosedError(operation));
    const token = (this.#next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(token);
        reject(new TimeoutError(`${operation} ${subject}`, timeoutMs));
      }, timeoutMs);
      this.#pending.set(token, { resolve, reject, timer, operation, subject });
      try {
        this.nc.publish(subject, data, { reply: this.#prefix + token, headers });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(token);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  #deliver(msg: Msg): void {
    const token = msg.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (p === undefined) return; // timed out already
    this.#pending.delete(token);
    clearTimeout(p.timer);
    // The server's no-responders status: an empty message with status 503.
    if (msg.data.length === 0 && msg.headers?.code === 503) p.reject(new NoRespondersError(p.subject));
    else p.resolve(msg);
  }

  /**
   * The server refused to carry requests to `subject` (a permissions
   * violation comes back on its own, not as a reply): fail those waiting
   * for it now rather than at their timeout.
   */
  refuse(subject: string, error: Error): void {
    for (const [token, p] of this.#pending) {
      if (p.subject !== subject) continue;
      this.#pending.delete(token);
      clearTimeout(p.timer);
      p.reject(error);
    }
  }

  /**
   * The connection dropped: whatever is waiting fails now with
   * ConnectionLostError rather than at its timeout, since its answer (if the
   * server got the request at all) went to a socket that is gone.
   */
  lost(): void {
    for (const [token, p] of this.#pending) {
      this.#pending.delete(token);
      clearTimeout(p.timer);
      p.reject(new ConnectionLostError());
    }
  }

  /** Fails whatever is still waiting: no reply can come through a closed connection. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new BusClosedError(p.operation));
    }
    this.#pending.clear();
    if (!this.#sub.isClosed()) this.#sub.unsubscribe();
  }
}
