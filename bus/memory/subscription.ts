import type { Delivery, Headers, MessageHandler, Subscription } from '../types.js';
import { runHandler } from './context.js';
import { copyBytes, type WireMessage } from './payload.js';
import type { MemoryServer } from './server.js';

/** The connection side a subscription answers through and reports to. */
export interface SubscriptionOwner {
  readonly server: MemoryServer;
  readonly client: number;
  publish(subject: string, data: Uint8Array, options: { headers?: Headers }): void;
  /** True once the owning connection has closed: answers can no longer go out. */
  closed(): boolean;
  /** `<replyPrefix>.`: answers go only under it. */
  readonly inbox: string;
  /** An answer whose reply subject was not under `inbox` was refused. */
  refusedReply(): void;
  /** A message reached one of its subscriptions. */
  received(): void;
  reportHandlerError(subject: string, error: unknown): void;
  forget(subscription: MemorySubscription): void;
}

export class MemorySubscription implements Subscription {
  readonly subject: string;
  readonly queue?: string;
  readonly #owner: SubscriptionOwner;
  readonly #handler: MessageHandler;
  /** Its interest on the server; undefined while a restarted server has lost it. */
  #route: number | undefined;
  #state: 'active' | 'draining' | 'closed' = 'active';

  constructor(owner: SubscriptionOwner, subject: string, queue: string | undefined, handler: MessageHandler) {
    this.subject = subject;
    if (queue !== undefined) this.queue = queue;
    this.#owner = owner;
    this.#handler = handler;
    this.#route = this.#register();
  }

  #register(): number {
    return this.#owner.server.subscribe(this.#owner.client, this.subject, this.queue, (message) =>
      this.#deliver(message),
    );
  }

  /** The server restarted: its interest there is gone. */
  lost(): void {
    this.#route = undefined;
  }

  /** Reconnected: registers its interest again, as nats.js does on reconnect. */
  resubscribe(): void {
    if (this.#state === 'active' && this.#route === undefined) this.#route = this.#register();
  }

  /** Nothing more reaches the handler, not even messages already queued for it. */
  unsubscribe(): void {
    if (this.#state === 'closed') return;
    if (this.#state === 'active' && this.#route !== undefined) this.#owner.server.unsubscribe(this.#route);
    this.#state = 'closed';
    this.#owner.forget(this);
  }

  /** Takes no new messages but still hands over the queued ones, then closes. */
  async drain(): Promise<void> {
    if (this.#state !== 'active') return;
    const { server, client } = this.#owner;
    const route = this.#route;
    if (route !== undefined) server.unsubscribe(route);
    this.#state = 'draining';
    if (server.networked) {
      // Messages routed to it before it let go are still on their way: they are handed over too.
      if (route !== undefined) await server.drained(route);
      await server.flush(client);
    } else await server.flush();
    this.unsubscribe();
  }

  #deliver(message: WireMessage): void {
    if (this.#state === 'closed') return;
    this.#owner.received();
    const { reply } = message;
    const delivery: Delivery = {
      subject: message.subject,
      data: copyBytes(message.data),
      headers: message.headers,
      ...(reply === undefined ? {} : { reply }),
      respond: (data, options = {}) => {
        if (reply === undefined || this.#owner.closed()) return false;
        if (!reply.startsWith(this.#owner.inbox)) {
          this.#owner.refusedReply();
          return false;
        }
        this.#owner.publish(reply, data, options);
        return true;
      },
    };
    runHandler(
      () => this.#handler(delivery),
      (error) => this.#owner.reportHandlerError(message.subject, error),
    );
  }
}
