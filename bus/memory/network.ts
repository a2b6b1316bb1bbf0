/**
 * A simulated network between a MemoryServer and its connections. Without
 * one (the default) the server delivers everything at once, in one FIFO
 * order, and nothing is ever lost: the bus contract. With one, every message
 * crosses a hop the network decides about (lost, late, duplicated), and
 * ready deliveries are taken in an order it draws: a simulation explores
 * interleavings from a seed.
 *
 * What the server keeps whatever the network says: a stream's entries reach
 * each follower and watcher in order and none is lost (an ordered consumer
 * resumes where it was); an API call (append, kv, blobs) runs at the server
 * at most once, so an append is stored or not, and a lost answer leaves its
 * caller with a TimeoutError although it was stored (ambiguous, as on
 * JetStream); expected-sequence and message-id checks are the stream's own.
 */

/** The server's end of a hop. */
export const SERVER = 0;

/**
 * - `message`: a core message, publisher to subscriber (and a request's answer).
 * - `request` / `response`: the two legs of an API call (append, kv, blobs, opening a stream).
 * - `stream`: a stream entry to a follower or watcher, or a flush's round trip: never lost, never reordered.
 */
export type HopKind = 'message' | 'request' | 'response' | 'stream';

export interface Hop {
  readonly kind: HopKind;
  /** Connection ids, SERVER for the server's end. */
  readonly from: number;
  readonly to: number;
  /** The message's subject, or the API operation (`append`, `kv put`, ...). */
  readonly subject: string;
}

export type NetworkEvent =
  | { readonly type: 'deliver'; readonly hop: Hop; readonly data: Uint8Array | undefined }
  /** Lost: the network dropped it, or an end was cut off, down or dead. */
  | { readonly type: 'drop'; readonly hop: Hop }
  /** An API call reached the server and ran there. */
  | { readonly type: 'execute'; readonly hop: Hop };

export interface Network {
  /**
   * The delay in virtual ms of each copy of one message that arrives: `[]`
   * lost, `[0]` at once, two entries duplicated. For `stream` hops only the
   * first is used and `[]` counts as `[0]`; `request` and `response` hops
   * take the first copy only.
   */
  transit(hop: Hop): readonly number[];
  /** Which of `ready` (>= 1) hops with deliveries waiting goes next: an index below `ready`. */
  pick(ready: number): number;
  /**
   * Whether a later message may overtake an earlier one between the same two
   * ends. False keeps each hop first-in first-out, as a TCP connection does.
   * Stream hops are always kept in order.
   */
  readonly reorder: boolean;
  /** Told of every delivery, loss and API call, in the order they happen. */
  observe?(event: NetworkEvent): void;
}

/** One connection as the server sees it; a connection is reachable when none of these hold. */
export interface LinkState {
  /** Partitioned: nothing crosses between it and the server. */
  cut: boolean;
  /** Its process is paused: what reaches it waits until it runs again. */
  held: boolean;
  /** The server restarted and the connection has not come back yet. */
  down: boolean;
  /** Its process died: nothing more reaches it or comes from it. */
  dead: boolean;
}

/** What a queued delivery does now: run, wait for its connection, or go nowhere. */
export type LinkVerdict = 'run' | 'wait' | 'drop';

/**
 * A message or API answer is lost while its connection is unreachable; a
 * stream entry or a flush waits for it (an ordered consumer picks up where
 * it was); a paused process takes everything late, a dead one nothing.
 */
export function verdict(link: LinkState | undefined, kind: HopKind): LinkVerdict {
  if (link === undefined) return 'run';
  if (link.dead) return 'drop';
  if (link.cut || link.down) return kind === 'stream' ? 'wait' : 'drop';
  return link.held ? 'wait' : 'run';
}

/** What a connection does when the server it is on restarts or it is killed (the memory bus's side). */
export interface ConnectionHooks {
  /** The server lost every core subscription: reconnect after `after` ms, as nats.js does. */
  restarted(after: number): void;
  /** The process died: stop everything server-side at once, telling nobody. */
  killed(): void;
}
