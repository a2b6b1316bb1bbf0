/**
 * What a session machine receives. The runtime stamps every event with
 * `meta`, so a machine reads time and identity only from there and stays
 * deterministic on the primary, its secondaries and in replay.
 */

/** Time and identity the runtime stamps on every event, so machines stay deterministic. */
export interface EventMeta {
  /** Milliseconds since the epoch, from the owner's clock when it accepted the event. */
  readonly time: number;
  /** The command id: unique per command, reused by every retry of it. */
  readonly cmdId: string;
  /** Id of the client that sent it; `timer` for delayed events. */
  readonly client: string;
  /** For a delayed event: the id of the timer that fired (it is disarmed by this event). */
  readonly timer?: string;
}

export interface UserEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** The event a machine receives: the user's event plus `meta`. */
export type StampedEvent = UserEvent & { readonly meta: EventMeta };

/** One committed event as the journal keeps it, and as replay takes it. */
export interface JournaledEvent {
  readonly event: StampedEvent;
  /** The session seq this event produced. */
  readonly seq: number;
}
