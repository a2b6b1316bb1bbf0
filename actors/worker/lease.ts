import type { Logger } from 'pino';
import type { Clock } from '../../bus/clock.js';
import type { MembershipConfig } from '../../machines/membership.js';
import type { View } from '../../machines/view.js';

/**
 * Whether this worker may still acknowledge writes for a shard. A paused or
 * cut-off primary may have been replaced while it could not look; its
 * appends can still succeed on sessions the new primary has not touched,
 * so acknowledging them needs proof (DESIGN.md section 4).
 */
export interface Primacy {
  /** This worker's member id, stamped on what it journals. */
  readonly self: string;
  /** The shard's epoch while the latest view makes this worker its primary; null otherwise. */
  epochOf(shard: number): number | null;
  /** Its heartbeats have reached the server lately: nobody can have taken over. */
  leaseHeld(): boolean;
  /** The view as stored right now still makes this worker primary of `shard` at `epoch`. */
  stillPrimary(shard: number, epoch: number): Promise<boolean>;
}

export interface LeaseOptions {
  /** The member id the views name. */
  readonly self: string;
  readonly config: Pick<MembershipConfig, 'sessionTimeout' | 'heartbeatInterval'>;
  readonly clock: Clock;
  readonly log: Logger;
  /** The latest view this member has seen. */
  view(): View | null;
  /** The view as the store has it now (a read); null when there is none. */
  storedView(): Promise<View | null>;
}

/** Heartbeats sent and not yet seen back: enough for a long stall, bounded for a dead link. */
const MAX_BEATS_IN_FLIGHT = 1_024;

/**
 * One member's lease, fed by its membership host with the heartbeats it
 * sends and the echoes of them it hears. The leader suspects a member only
 * after hearing nothing from it for a session timeout, so while this
 * worker's own heartbeats come back from the server, nobody else can have
 * been made primary of its shards. A write acknowledged inside the lease
 * needs no other proof; outside it (a stall, a cut link) each write is
 * checked against the view as the store has it now, for one session timeout
 * after the heartbeats come back.
 */
export class Lease implements Primacy {
  readonly self: string;
  readonly #config: LeaseOptions['config'];
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #view: () => View | null;
  readonly #storedView: () => Promise<View | null>;
  #beat = 0;
  readonly #sentAt = new Map<number, number>();
  /** When the latest heartbeat the server echoed back was sent. */
  #leaseFrom = 0;
  /** After a lapse, writes are proved against the stored view until then. */
  #provingUntil = 0;
  #lapseNoticed = false;

  constructor({ self, config, clock, log, view, storedView }: LeaseOptions) {
    this.self = self;
    this.#config = config;
    this.#clock = clock;
    this.#log = log;
    this.#view = view;
    this.#storedView = storedView;
  }

  /** A heartbeat goes out now: the number to stamp on it, so its echo can be told apart. */
  sent(): number {
    const beat = ++this.#beat;
    this.#sentAt.set(beat, this.#clock.now());
    if (this.#sentAt.size > MAX_BEATS_IN_FLIGHT) this.#sentAt.delete(this.#sentAt.keys().next().value!);
    return beat;
  }

  /** The server has heartbeat `beat`: the leader cannot count this worker silent from before it was sent. */
  confirm(beat: number, now: number): void {
    const sent = this.#sentAt.get(beat);
    if (sent === undefined) return;
    for (const n of this.#sentAt.keys()) {
      if (n > beat) break;
      this.#sentAt.delete(n);
    }
    if (this.#leaseFrom > 0 && now >= this.#leaseFrom + this.#leaseSpan) {
      this.#noticeLapse(now);
      this.#provingUntil = now + this.#config.sessionTimeout;
    }
    this.#leaseFrom = Math.max(this.#leaseFrom, sent);
    this.#lapseNoticed = false;
  }

  /** Short of the session timeout by a heartbeat (at most a quarter of it): the leader's tick and clock drift. */
  get #leaseSpan(): number {
    const { sessionTimeout, heartbeatInterval } = this.#config;
    return sessionTimeout - Math.min(heartbeatInterval, sessionTimeout / 4);
  }

  leaseHeld(): boolean {
    const now = this.#clock.now();
    if (now >= this.#leaseFrom + this.#leaseSpan) this.#noticeLapse(now);
    return now < this.#leaseFrom + this.#leaseSpan && now >= this.#provingUntil;
  }

  /** Once per lapse: an operator wants to know a primary went unheard long enough to be replaced. */
  #noticeLapse(now: number): void {
    if (this.#lapseNoticed || this.#leaseFrom === 0) return;
    this.#lapseNoticed = true;
    this.#log.warn(
      { unconfirmedMs: Math.round(now - this.#leaseFrom) },
      'lease lapsed (stopped, starved or cut off): writes are proved against the stored view until heartbeats are confirmed again',
    );
  }

  epochOf(shard: number): number | null {
    const s = this.#view()?.shards[shard];
    return s !== undefined && s.primary === this.self && s.state !== 'DEAD' ? s.epoch : null;
  }

  async stillPrimary(shard: number, epoch: number): Promise<boolean> {
    try {
      const s = (await this.#storedView())?.shards[shard];
      return s !== undefined && s.primary === this.self && s.epoch === epoch && s.state !== 'DEAD';
    } catch (err) {
      this.#log.warn({ err, shard }, 'could not read the view to prove a write: refusing it');
      return false;
    }
  }
}
