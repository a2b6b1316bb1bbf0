import type { Clock } from '../clock.js';
import { TimeoutError } from '../errors.js';
import type { Message } from '../types.js';
import { copyBytes, type WireMessage } from './payload.js';
import type { MemoryServer } from './server.js';

type Settle = (outcome: Message | Error) => void;

export interface OpenRequest {
  readonly reply: string;
  readonly answer: Promise<Message>;
  /** Settles the request with an error unless an answer came first. */
  fail(error: Error): void;
}

/**
 * A connection's requests share one inbox subscription, `_INBOX.c<n>.*`, as
 * nats.js muxes them. Reply subjects are counters, so a run replays exactly.
 */
export class RequestMux {
  readonly #server: MemoryServer;
  readonly #client: number;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #pending = new Map<string, Settle>();
  #route: number | undefined;
  #lostRoute = false;
  #drained = false;
  #next = 1;

  constructor(server: MemoryServer, client: number, clock: Clock, inboxPrefix: string) {
    this.#server = server;
    this.#client = client;
    this.#clock = clock;
    this.#prefix = `${inboxPrefix}.c${client}`;
  }

  /** Arms a reply subject; the first answer wins, else the timeout on the clock. */
  open(subject: string, timeout: number): OpenRequest {
    if (this.#route === undefined && !this.#lostRoute && !this.#drained) this.#route = this.#subscribe();
    const reply = `${this.#prefix}.${this.#next++}`;
    let settle: Settle = () => undefined;
    const answer = new Promise<Message>((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => settle(new TimeoutError(`request ${subject}`, timeout)), timeout);
      settle = (outcome) => {
        if (!this.#pending.delete(reply)) return;
        this.#clock.clearTimeout(timer);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
    });
    this.#pending.set(reply, settle);
    return { reply, answer, fail: (error) => settle(error) };
  }

  /** Routes no new answers; those already queued still arrive. */
  drain(): void {
    if (this.#route !== undefined) this.#server.unsubscribe(this.#route);
    this.#route = undefined;
    this.#drained = true;
  }

  /** The server restarted: the inbox's interest there is gone. */
  lost(): void {
    this.#lostRoute = this.#route !== undefined;
    this.#route = undefined;
  }

  /** Reconnected: the inbox listens again, if it did before. */
  resubscribe(): void {
    if (this.#lostRoute && !this.#drained) this.#route = this.#subscribe();
    this.#lostRoute = false;
  }

  #subscribe(): number {
    return this.#server.subscribe(this.#client, `${this.#prefix}.*`, undefined, (m) => this.#receive(m));
  }

  /** Fails every request still waiting. */
  close(error: Error): void {
    for (const settle of [...this.#pending.values()]) settle(error);
  }

  #receive(message: WireMessage): void {
    this.#pending.get(message.subject)?.({
      subject: message.subject,
      data: copyBytes(message.data),
      headers: message.headers,
      ...(message.reply === undefined ? {} : { reply: message.reply }),
    });
  }
}
