import type { Hop, Network, NetworkEvent } from '../../internal.js';
import type { Faults } from './faults.js';
import type { Trace } from './trace.js';

const AT_ONCE: readonly number[] = Object.freeze([0]);
const LOST: readonly number[] = Object.freeze([]);

export interface SimNetworkOptions {
  readonly faults: Faults;
  /** The network's own seeded stream of draws. */
  readonly random: () => number;
  readonly trace: Trace;
  /** A connection's process, for the trace (0 is the server). */
  readonly nameOf: (connection: number) => string;
}

/**
 * The memory server's network in a simulation: each message's fate (lost,
 * late, doubled) and which ready delivery goes next are drawn from the
 * seed; every delivery, loss and API call goes into the trace. It starts
 * calm (the cluster forms undisturbed); `disturb()` turns the message
 * faults on, `calm()` off again (the run's heal); the interleaving is drawn
 * throughout.
 */
export class SimNetwork implements Network {
  readonly reorder: boolean;
  readonly #random: () => number;
  readonly #trace: Trace;
  readonly #nameOf: (connection: number) => string;
  readonly #faults: Faults;
  #drop = 0;
  #duplicate = 0;
  #min = 0;
  #max = 0;
  /** Deliveries, losses and API calls so far. */
  readonly counts = { deliver: 0, drop: 0, execute: 0, duplicate: 0 };

  constructor({ faults, random, trace, nameOf }: SimNetworkOptions) {
    this.reorder = faults.reorder === true;
    this.#random = random;
    this.#trace = trace;
    this.#nameOf = nameOf;
    this.#faults = faults;
  }

  /** Messages are lost, late and doubled as the faults say, from now on. */
  disturb(): void {
    this.#drop = this.#faults.drop ?? 0;
    this.#duplicate = this.#faults.duplicate ?? 0;
    [this.#min, this.#max] = this.#faults.delay ?? [0, 0];
  }

  /** No more losses, delays or copies: messages arrive at once from now on. */
  calm(): void {
    this.#drop = 0;
    this.#duplicate = 0;
    this.#min = this.#max = 0;
  }

  /**
   * A test's say over single messages, asked before the seed is: the delays
   * of its copies as `transit` returns them, or undefined to leave it to the
   * draw. Given the sender's and receiver's names (`w1`, `server`).
   */
  script: ((hop: Hop, from: string, to: string) => readonly number[] | undefined) | undefined;

  transit(hop: Hop): readonly number[] {
    const scripted = this.script?.(hop, this.#nameOf(hop.from), this.#nameOf(hop.to));
    if (scripted !== undefined) return scripted;
    if (hop.kind === 'stream') return this.#max === 0 ? AT_ONCE : [this.#delay()];
    if (this.#drop > 0 && this.#random() < this.#drop) return LOST;
    if (this.#max === 0 && this.#duplicate === 0) return AT_ONCE;
    const first = this.#delay();
    if (hop.kind === 'message' && this.#duplicate > 0 && this.#random() < this.#duplicate) {
      this.counts.duplicate++;
      return [first, first + this.#delay()];
    }
    return [first];
  }

  pick(ready: number): number {
    return Math.floor(this.#random() * ready);
  }

  observe(event: NetworkEvent): void {
    this.counts[event.type]++;
    const { hop } = event;
    const line = `${event.type} ${hop.kind} ${this.#nameOf(hop.from)}>${this.#nameOf(hop.to)} ${hop.subject}`;
    this.#trace.add(line, event.type === 'deliver' ? event.data : undefined);
  }

  #delay(): number {
    return this.#min === this.#max ? this.#min : this.#min + Math.floor(this.#random() * (this.#max - this.#min + 1));
  }
}
