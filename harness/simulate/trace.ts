import { createHash, type Hash } from 'node:crypto';

/**
 * A running hash of everything that happened in a simulation, in order:
 * each delivery (kind, ends, subject and the bytes), loss, API call,
 * timer firing, fault and operation, each line stamped with the virtual
 * ms since the run began. Two runs with the same trace did the same things
 * in the same order at the same virtual times. A listener sees each line
 * as it is added (`cohort simulate --trace`).
 */
export class Trace {
  readonly #hash: Hash = createHash('sha256');
  readonly #listener: ((line: string) => void) | undefined;
  readonly #elapsed: () => number;
  #lines = 0;
  #digest: string | undefined;

  /** `elapsed`: virtual ms since the run began. */
  constructor(elapsed: () => number, listener?: (line: string) => void) {
    this.#elapsed = elapsed;
    this.#listener = listener;
  }

  /** Lines added so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Adds a line, stamped with the time, and the bytes it is about (hashed, not shown). */
  add(text: string, data?: Uint8Array): void {
    if (this.#digest !== undefined) throw new Error('the trace is finished');
    const line = `${this.#elapsed()} ${text}`;
    this.#hash.update(line);
    this.#hash.update('\n');
    if (data !== undefined && data.length > 0) this.#hash.update(data);
    this.#lines++;
    this.#listener?.(line);
  }

  /** The hash of every line so far, hex; nothing can be added after. */
  digest(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
}
