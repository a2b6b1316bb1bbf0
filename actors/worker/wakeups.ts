import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import type { KvStore } from '../../bus/types.js';
import { parseTimerKey, sessionKey, timerKey } from '../../protocol/names.js';
import { decodeDue, encodeDue } from '../../protocol/timerValue.js';
import type { Application } from './application.js';
import type { WakeupIndex } from './sessionDeps.js';

export interface WakeupsOptions {
  /** The timers bucket: per session with a timer pending, when its earliest falls due. */
  readonly index: KvStore;
  readonly apps: ReadonlyMap<string, Application>;
  readonly clock: Clock;
  readonly log: Logger;
  /** Sessions active now, by key: an active session fires its own timers. */
  readonly active: { has(key: string): boolean };
  /** Activates a dormant session whose timer fell due. */
  wake(app: Application, id: string, shard: number): Promise<unknown>;
}

/**
 * Sessions that sleep with a timer pending are woken when it falls due,
 * even across restarts and failovers: a durable index (the timers bucket)
 * that hosted sessions keep up to date themselves, and a clock timer per
 * dormant session of the shards served here.
 */
export class Wakeups implements WakeupIndex {
  readonly #index: KvStore;
  readonly #apps: ReadonlyMap<string, Application>;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #active: { has(key: string): boolean };
  readonly #wake: WakeupsOptions['wake'];
  /** Dormant sessions by key: the clock timer that wakes each, and its shard. */
  readonly #dormant = new Map<string, { readonly timer: TimerHandle; readonly shard: number }>();
  /** Shards whose sessions are woken here: those served as primary. */
  readonly #served = new Set<number>();
  #stopped = false;

  constructor({ index, apps, clock, log, active, wake }: WakeupsOptions) {
    this.#index = index;
    this.#apps = apps;
    this.#clock = clock;
    this.#log = log;
    this.#active = active;
    this.#wake = wake;
  }

  /** A session's earliest pending timer changed; written before the reply that changed it. */
  async update(shard: number, app: string, id: string, due: number | undefined): Promise<void> {
    const key = timerKey(shard, app, id);
    try {
      if (due === undefined) await this.#index.delete(key);
      else await this.#index.put(key, encodeDue(due));
    } catch (err) {
      // The session still fires while active; only a sleeping one would wake late (on its next message).
      this.#log.warn({ err, key }, 'timer index not updated');
    }
  }

  /** Served from now (subscribed): their sessions may be woken here. */
  serve(shards: Iterable<number>): void {
    for (const shard of shards) this.#served.add(shard);
  }

  /** No longer served (unsubscribed): nothing more of theirs is armed; see `disarm` for what is. */
  unserve(shards: Iterable<number>): void {
    for (const shard of shards) this.#served.delete(shard);
  }

  /** Arms a wake-up for every session of `shards` the index holds a timer for. */
  async arm(shards: ReadonlySet<number>): Promise<void> {
    for (const key of await this.#index.keys()) {
      const parsed = parseTimerKey(key);
      const app = parsed === undefined ? undefined : this.#apps.get(parsed.app);
      if (parsed === undefined || app === undefined || !shards.has(parsed.shard)) continue;
      const due = await this.#dueAt(key);
      if (due !== undefined) this.wakeAt(app, parsed.id, parsed.shard, due);
    }
  }

  /**
   * When the session under `key` wants waking. An entry that is not a time
   * (written by someone else, or damaged) is removed and wakes it now:
   * activated, the session arms its own timers from its snapshot and writes
   * its entry again if it has one pending.
   */
  async #dueAt(key: string): Promise<number | undefined> {
    const now = this.#clock.now();
    try {
      const entry = await this.#index.get(key);
      if (entry === null) return undefined; // deleted since it was listed
      return decodeDue(entry.value, `timer index ${key}`);
    } catch (err) {
      this.#log.warn({ err, key }, 'timer index entry unreadable: the session is woken now to rewrite it');
    }
    // Gone before the session wakes: activated, it writes its entry again if it has a timer pending.
    await this.#index
      .delete(key)
      .catch((err: unknown) => this.#log.warn({ err, key }, 'timer index entry not removed'));
    return now;
  }

  /** Wakes the session at `due`, unless it is active or its shard is not served here. */
  wakeAt(app: Application, id: string, shard: number, due: number): void {
    const key = sessionKey(app.name, id);
    if (this.#active.has(key) || this.#stopped || !this.#served.has(shard)) return;
    this.cancel(key);
    const timer = this.#clock.setTimeout(
      () => {
        this.#dormant.delete(key);
        void this.#wake(app, id, shard).catch((err: unknown) =>
          this.#log.error({ err, app: app.name, session: id }, 'wake-up failed'),
        );
      },
      Math.max(0, due - this.#clock.now()),
    );
    this.#dormant.set(key, { timer, shard });
  }

  /** The session is active again: it fires its own timers. */
  cancel(key: string): void {
    const dormant = this.#dormant.get(key);
    if (dormant === undefined) return;
    this.#clock.clearTimeout(dormant.timer);
    this.#dormant.delete(key);
  }

  /** Clears the wake-ups armed for sessions of `shards` (they are leaving). */
  disarm(shards: ReadonlySet<number>): void {
    for (const [key, dormant] of this.#dormant) if (shards.has(dormant.shard)) this.cancel(key);
  }

  stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#dormant.values()) this.#clock.clearTimeout(timer);
    this.#dormant.clear();
  }
}
