import { createHash, type Hash } from 'node:crypto';

/**
 * A running hash of everything that happened in a simulation, in order:
 * each delivery (kind, ends, subject and the bytes), loss, API call,
 * timer firing, fault and operation. Two runs with the same trace did the
 * same things in the same order at the same virtual times. A listener
 * sees each line as it is added (`cohort simulate --trace`).
 */
export class Trace {
  readonly #hash: Hash = createHash('sha256');
  readonly #listener: ((line: string) => void) | undefined;
  #lines = 0;
  #digest: string | undefined;

  constructor(listener?: (line: string) => void) {
    this.#listener = listener;
  }

  /** Lines added so far. */
  get lines(): number {
    return this.#lines;
  }

  /** Adds a line, and the bytes it is about (hashed, not shown). */
  add(line: string, data?: Uint8Array): void {
    if (this.#digest !== undefined) throw new Error('the trace is finished');
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
