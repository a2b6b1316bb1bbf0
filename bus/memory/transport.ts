import type { Clock } from '../clock.js';
import { LaneQueue } from './lanes.js';
import { SERVER, verdict, type ConnectionHooks, type Hop, type LinkState, type Network } from './network.js';
import { DeliveryQueue } from './scheduler.js';

/**
 * How what the server decides reaches its connections. `DirectTransport`
 * is the bus contract: one FIFO queue, nothing lost, nothing late.
 * `NetworkTransport` puts a simulated network in between.
 */
export interface Transport {
  /** API calls go through `call` (and may be lost or late) only on a network. */
  readonly networked: boolean;
  /** Nothing can be delivered now and nothing is about to be. */
  readonly idle: boolean;
  /** The delays of the copies of one core message that set out on `hop`: `[]` lost (sender cut off, or the network). */
  copies(hop: Hop): readonly number[];
  /** One copy, onto its receiver after `delay`: `run` on arrival, or `dropped` if its receiver may no longer get it. */
  arrive(hop: Hop, delay: number, data: Uint8Array | undefined, run: () => void, dropped: () => void): void;
  /** A stream entry (or any in-order server-side delivery) to a connection: never lost while it lives. */
  stream(to: number, subject: string, data: Uint8Array | undefined, run: () => void): void;
  /** Resolves once what the server sent `to` so far has arrived (SERVER: everything queued). */
  flush(to: number): Promise<void>;
  /** An API call from `client`: run at the server at most once; the promise never settles if either leg is lost. */
  call<T>(client: number, operation: string, run: () => T): Promise<T>;
  /** Whether what `client` sends now reaches the server. */
  reaches(client: number): boolean;
  open(client: number, hooks: ConnectionHooks | undefined): void;
  close(client: number): void;
}

const AT_ONCE: readonly number[] = Object.freeze([0]);

export class DirectTransport implements Transport {
  readonly networked = false;
  readonly #queue = new DeliveryQueue();

  get idle(): boolean {
    return this.#queue.idle;
  }

  copies(): readonly number[] {
    return AT_ONCE;
  }

  arrive(_hop: Hop, _delay: number, _data: Uint8Array | undefined, run: () => void): void {
    this.#queue.push(run);
  }

  stream(_to: number, _subject: string, _data: Uint8Array | undefined, run: () => void): void {
    this.#queue.push(run);
  }

  flush(): Promise<void> {
    return this.#queue.flush();
  }

  call<T>(_client: number, _operation: string, run: () => T): Promise<T> {
    return new Promise((resolve) => resolve(run()));
  }

  reaches(): boolean {
    return true;
  }

  open(): void {}
  close(): void {}
}

interface Link extends LinkState {
  readonly hooks: ConnectionHooks | undefined;
}

const NOTHING = (): void => undefined;

/**
 * Deliveries across a simulated network: the network decides each hop's
 * fate, each connection has a link state (cut, held, down, dead), and lanes
 * keep each hop in order while the network picks which goes next.
 */
export class NetworkTransport implements Transport {
  readonly networked = true;
  readonly #clock: Clock;
  readonly #network: Network;
  readonly #links = new Map<number, Link>();
  readonly #lanes: LaneQueue;
  /** Per hop: the latest arrival scheduled and how many are still on their way, so a hop stays in order. */
  readonly #transit = new Map<string, { at: number; flying: number }>();

  constructor(clock: Clock, network: Network) {
    this.#clock = clock;
    this.#network = network;
    this.#lanes = new LaneQueue({
      pick: (ready) => network.pick(ready),
      verdict: (to, kind) => verdict(this.#links.get(to), kind),
    });
  }

  get idle(): boolean {
    return this.#lanes.idle;
  }

  open(client: number, hooks: ConnectionHooks | undefined): void {
    this.#links.set(client, { hooks, cut: false, held: false, down: false, dead: false });
  }

  close(client: number): void {
    const link = this.#links.get(client);
    if (link === undefined) return;
    link.dead = true;
    this.#lanes.wake(client);
    this.#links.delete(client);
  }

  reaches(client: number): boolean {
    if (client === SERVER) return true;
    const link = this.#links.get(client);
    return link === undefined || !(link.cut || link.down || link.dead);
  }

  copies(hop: Hop): readonly number[] {
    const delays = this.reaches(hop.from) ? this.#network.transit(hop) : [];
    if (delays.length === 0) this.#network.observe?.({ type: 'drop', hop });
    return delays;
  }

  stream(to: number, subject: string, data: Uint8Array | undefined, run: () => void): void {
    const hop: Hop = { kind: 'stream', from: SERVER, to, subject };
    this.arrive(hop, this.#network.transit(hop)[0] ?? 0, data, run, NOTHING);
  }

  flush(to: number): Promise<void> {
    return new Promise((resolve) => this.stream(to, 'flush', undefined, resolve));
  }

  call<T>(client: number, operation: string, run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const request: Hop = { kind: 'request', from: client, to: SERVER, subject: operation };
      if (!this.reaches(client)) return this.#lost(request, NOTHING);
      const there = this.#network.transit(request);
      if (there.length === 0) return this.#lost(request, NOTHING);
      const execute = (): void => {
        // Cut off (or killed) while on its way: it never got there.
        if (!this.reaches(client)) return this.#lost(request, NOTHING);
        this.#network.observe?.({ type: 'execute', hop: request });
        let outcome: { ok: true; value: T } | { ok: false; error: unknown };
        try {
          outcome = { ok: true, value: run() };
        } catch (error) {
          outcome = { ok: false, error };
        }
        const response: Hop = { kind: 'response', from: SERVER, to: client, subject: operation };
        const back = this.#network.transit(response);
        if (back.length === 0) return this.#lost(response, NOTHING);
        this.arrive(
          response,
          back[0]!,
          undefined,
          () => (outcome.ok ? resolve(outcome.value) : reject(outcome.error)),
          NOTHING,
        );
      };
      this.#after(there[0]!, execute);
    });
  }

  // ------------------------------------------------------------ faults

  /** Partitioned from the server both ways until healed. */
  cut(client: number, cut: boolean): void {
    const link = this.#links.get(client);
    if (link === undefined || link.cut === cut) return;
    link.cut = cut;
    this.#lanes.wake(client);
  }

  /** Its process is paused: deliveries wait until released. */
  hold(client: number, held: boolean): void {
    const link = this.#links.get(client);
    if (link === undefined || link.held === held) return;
    link.held = held;
    this.#lanes.wake(client);
  }

  /** Its process died: everything for it is dropped, and its server-side consumers go. */
  kill(client: number): void {
    const link = this.#links.get(client);
    if (link === undefined || link.dead) return;
    link.dead = true;
    this.#lanes.wake(client);
    link.hooks?.killed();
  }

  /** The server restarted: every live connection is down, and told to reconnect after `after(client)` ms. */
  restart(after: (client: number) => number): void {
    for (const [client, link] of this.#links) {
      if (link.dead) continue;
      link.down = true;
      this.#lanes.wake(client);
      link.hooks?.restarted(after(client));
    }
  }

  /** A connection came back after a restart. */
  rejoin(client: number): void {
    const link = this.#links.get(client);
    if (link === undefined || !link.down) return;
    link.down = false;
    this.#lanes.wake(client);
  }

  // ------------------------------------------------------------ hops

  #lost(hop: Hop, dropped: () => void): void {
    this.#network.observe?.({ type: 'drop', hop });
    dropped();
  }

  #after(delay: number, run: () => void): void {
    if (delay > 0) this.#clock.setTimeout(run, delay);
    else run();
  }

  /** Onto the receiver's lane after `delay`, behind anything still on its way on the same hop unless the network reorders. */
  arrive(hop: Hop, delay: number, data: Uint8Array | undefined, run: () => void, dropped: () => void): void {
    const key = `${hop.from}>${hop.to}`;
    const enqueue = (): void =>
      this.#lanes.push(key, hop.to, {
        kind: hop.kind,
        run: () => {
          this.#network.observe?.({ type: 'deliver', hop, data });
          run();
        },
        dropped: () => this.#lost(hop, dropped),
      });
    const ordered = hop.kind === 'stream' || !this.#network.reorder;
    if (!ordered) return this.#after(delay, enqueue);
    let transit = this.#transit.get(key);
    const at = Math.max(this.#clock.now() + Math.max(0, delay), transit?.at ?? 0);
    if (at <= this.#clock.now() && (transit === undefined || transit.flying === 0)) return enqueue();
    if (transit === undefined) this.#transit.set(key, (transit = { at, flying: 0 }));
    transit.at = at;
    transit.flying++;
    const t = transit;
    this.#clock.setTimeout(() => {
      if (--t.flying === 0) this.#transit.delete(key);
      enqueue();
    }, at - this.#clock.now());
  }
}
