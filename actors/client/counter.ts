import type { Clock, TimerHandle } from '../../bus/clock.js';
import { CohortError, KeyExistsError, StaleRevisionError, TimeoutError } from '../../bus/errors.js';
import { escapeToken } from '../../bus/subjects.js';
import type { Bus, KvStore } from '../../bus/types.js';
import { ClientDisconnectedError } from '../../protocol/errors.js';
import { bucketName, storeDescription } from '../../protocol/names.js';
import { checkCallTimeout } from './connectOptions.js';
import { withDeadline } from './deadline.js';

/**
 * ECP `$Increment` counters: ids unique across every client and increasing
 * per client, with one compare-and-set per block of ids instead of a round
 * trip per id.
 *
 * The key is the counter's name escaped with escapeToken, so any name is a
 * valid key. Its value is the high-water mark (the last id reserved by
 * anyone) as decimal ASCII, so `nats kv get <bucket> <key>` shows it as a
 * number and an operator can raise it with `nats kv put`. Lowering it, or
 * deleting the key, hands out ids again: never do that while ids are in use.
 *
 * A client that dies with part of a block unused leaves a gap; `consecutive`
 * reserves one id per compare-and-set so none is ever skipped.
 */
export interface Counter {
  readonly name: string;
  /**
   * The next id. With a `timeout` (a client's counter always has one: the
   * counter's, else the connection's) it fails with TimeoutError at the
   * deadline, never ambiguous: no id was handed out, and the caller's place
   * in line is given up, so a consecutive counter skips none. (A standalone
   * createCounter has no clock and takes none.)
   */
  next(options?: CounterCallOptions): Promise<number>;
}

export interface CounterCallOptions {
  /** This call's deadline in ms. */
  timeout?: number;
}

/** One wait in line, bounded: `ms` on `clock`, then `error()` (the client's counters use it; next() alone waits unbounded). */
interface Deadline {
  readonly clock: Clock;
  readonly ms: number;
  readonly error: () => Error;
}

export interface CounterOptions {
  /** Every next()'s deadline in ms unless the call gives its own (default the connection's `timeout`). */
  timeout?: number;
  /** Ids reserved per compare-and-set (default 100). */
  block?: number;
  /** One id per compare-and-set: no gaps, one round trip per id. */
  consecutive?: boolean;
}

export const DEFAULT_COUNTER_BLOCK = 100;

/** The counter's stored value is not a decimal non-negative integer; nothing was overwritten. */
export class CorruptCounterError extends CohortError {
  constructor(
    readonly bucket: string,
    readonly key: string,
    /** The stored bytes as text (invalid UTF-8 replaced), for the message and the operator. */
    readonly value: string,
  ) {
    super(
      `counter ${bucket}/${key} holds ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}, not a decimal non-negative integer`,
    );
  }
}

/** The next block would pass Number.MAX_SAFE_INTEGER; no id above it is handed out. */
export class CounterExhaustedError extends CohortError {
  constructor(
    readonly bucket: string,
    readonly key: string,
    readonly highWater: number,
  ) {
    super(`counter ${bucket}/${key} is at ${highWater}: another block would pass Number.MAX_SAFE_INTEGER`);
  }
}

export function createCounter(
  kv: KvStore,
  name: string,
  options: CounterOptions = {},
): Counter & { within(deadline: Deadline | undefined): Promise<number> } {
  const block = blockOf(options);
  if (typeof name !== 'string') throw new TypeError(`counter name must be a string, got ${typeof name}`);
  if (name.length === 0) throw new RangeError('counter name must not be empty');
  const key = escapeToken(name, 'counter name');

  // Ids cursor..limit are reserved and not yet handed out.
  let cursor = 1;
  let limit = 0;
  // The entry as this client last wrote it: the next reservation tries it
  // without a read, and reads only when someone else moved it on.
  let known: { highWater: number; revision: number } | null = null;
  let reserving = false;
  // Callers in call order: later callers never overtake earlier ones, so each
  // client's ids increase in the order next() was called.
  const waiters: { resolve(id: number): void; reject(error: unknown): void }[] = [];

  /** Waits in line, giving up its place at the deadline. */
  function wait(deadline: Deadline | undefined): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const waiter = {
        resolve(id: number): void {
          if (timer !== undefined) deadline!.clock.clearTimeout(timer);
          resolve(id);
        },
        reject(error: unknown): void {
          if (timer !== undefined) deadline!.clock.clearTimeout(timer);
          reject(error);
        },
      };
      if (deadline !== undefined && deadline.ms !== Infinity)
        timer = deadline.clock.setTimeout(
          () => {
            const at = waiters.indexOf(waiter);
            if (at >= 0) waiters.splice(at, 1);
            reject(deadline.error());
          },
          Math.max(0, deadline.ms),
        );
      waiters.push(waiter);
      pump();
    });
  }

  async function reserve(): Promise<void> {
    for (;;) {
      if (known === null) {
        const entry = await kv.get(key);
        if (entry === null) {
          try {
            const revision = await kv.create(key, ascii(block));
            known = { highWater: block, revision };
            [cursor, limit] = [1, block];
            return;
          } catch (error) {
            if (error instanceof KeyExistsError) continue;
            throw error;
          }
        }
        known = { highWater: parse(kv.bucket, key, entry.value), revision: entry.revision };
      }
      const { highWater, revision } = known;
      const next = highWater + block;
      if (!Number.isSafeInteger(next)) throw new CounterExhaustedError(kv.bucket, key, highWater);
      try {
        known = { highWater: next, revision: await kv.update(key, ascii(next), revision) };
        [cursor, limit] = [highWater + 1, next];
        return;
      } catch (error) {
        known = null;
        if (error instanceof StaleRevisionError) continue;
        throw error;
      }
    }
  }

  function pump(): void {
    if (reserving) return;
    while (waiters.length > 0 && cursor <= limit) waiters.shift()!.resolve(cursor++);
    if (waiters.length === 0) return;
    reserving = true;
    reserve().then(
      () => {
        reserving = false;
        pump();
      },
      (error: unknown) => {
        reserving = false;
        // Everyone waiting waited on this reservation; the next call tries afresh.
        for (const waiter of waiters.splice(0)) waiter.reject(error);
      },
    );
  }

  const handle = {
    name,
    next(): Promise<number> {
      return handle.within(undefined);
    },
    /** next() that gives up its place in line at the deadline. */
    within(deadline: Deadline | undefined): Promise<number> {
      if (waiters.length === 0 && cursor <= limit) return Promise.resolve(cursor++);
      return wait(deadline);
    },
  };
  return handle;
}

function blockOf(options: CounterOptions): number {
  if (options.consecutive !== undefined && typeof options.consecutive !== 'boolean') {
    throw new TypeError(`counter option consecutive must be a boolean, got ${typeof options.consecutive}`);
  }
  const { block } = options;
  if (block !== undefined) {
    if (typeof block !== 'number') throw new TypeError(`counter option block must be a number, got ${typeof block}`);
    if (!Number.isSafeInteger(block) || block < 1)
      throw new RangeError(`counter option block must be a positive safe integer, got ${block}`);
  }
  if (options.consecutive) {
    if (block !== undefined && block !== 1)
      throw new RangeError(`a consecutive counter takes one id per reservation, not a block of ${block}`);
    return 1;
  }
  return block ?? DEFAULT_COUNTER_BLOCK;
}

const DECIMAL = /^[0-9]{1,16}$/;

function parse(bucket: string, key: string, bytes: Uint8Array): number {
  const text = new TextDecoder().decode(bytes);
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new CorruptCounterError(bucket, key, text);
  return value;
}

function ascii(value: number): Uint8Array {
  return new TextEncoder().encode(String(value));
}

/** What a client's counters need of its connection: the bus of the moment, and a way to connect. */
export interface CounterConnection {
  readonly bus: Bus | undefined;
  readonly clientId: string;
}

export interface ClientCountersOptions {
  readonly cluster: string;
  readonly connection: CounterConnection;
  /** Connects when there is no bus (before the first connection, or after DISABLED). */
  readonly connect: () => Promise<void>;
  /** The client's clock: deadlines run on it. */
  readonly clock: Clock;
  /** The connection's call deadline, for counters and calls that give none. */
  readonly timeout: number;
}

/**
 * `client.counter(...)`: handles that follow the client's connection. A
 * counter is made on the bus of the moment and again on a new one; the
 * same name and options share one counter, so its reserved block is shared.
 */
export class ClientCounters {
  readonly #counters = new Map<string, { bus: Bus; counter: ReturnType<typeof createCounter> }>();
  readonly #bucket: string;
  readonly #description: string;
  readonly #connection: CounterConnection;
  readonly #connect: () => Promise<void>;
  readonly #clock: Clock;
  readonly #timeout: number;

  constructor(options: ClientCountersOptions) {
    this.#bucket = bucketName(options.cluster, 'counters');
    this.#description = storeDescription(options.cluster, 'counters');
    this.#connection = options.connection;
    this.#connect = options.connect;
    this.#clock = options.clock;
    this.#timeout = options.timeout;
  }

  handle(name: string, options: CounterOptions = {}): Counter {
    const key = `${name}\u0000${options.block ?? ''}\u0000${options.consecutive === true}`;
    const counters = this.#counters;
    const bucket = this.#bucket;
    const description = this.#description;
    const connection = this.#connection;
    const connect = this.#connect;
    const clock = this.#clock;
    checkCallTimeout('counter option timeout', options.timeout, Infinity);
    const fallback = options.timeout ?? this.#timeout;
    let kv: { bus: Bus; store: Promise<KvStore> } | undefined;
    let counter: { bus: Bus; counter: ReturnType<typeof createCounter> } | undefined = counters.get(key);
    /** A counter on the bus of the moment: connecting first if need be. */
    const ready = async (): Promise<ReturnType<typeof createCounter>> => {
      const bus = connection.bus ?? (await connect().then(() => connection.bus));
      if (bus === undefined) throw new ClientDisconnectedError(connection.clientId, 'no connection for the counter');
      if (counter?.bus !== bus) {
        if (kv?.bus !== bus) kv = { bus, store: bus.kv({ bucket, description }) };
        const store = await kv.store;
        if (counter?.bus !== bus) {
          counter = { bus, counter: createCounter(store, name, options) };
          counters.set(key, counter);
        }
      }
      return counter.counter;
    };
    return {
      name,
      async next(call: CounterCallOptions = {}): Promise<number> {
        checkCallTimeout('counter next: timeout', call.timeout, Infinity);
        const timeout = call.timeout ?? fallback;
        const started = clock.now();
        const error = (): Error => new TimeoutError(`counter ${name}: next`, timeout, { ambiguous: false });
        const current = counter?.bus !== undefined && counter.bus === connection.bus ? counter.counter : undefined;
        // Connecting and opening the bucket count against the deadline too.
        const c = current ?? (await withDeadline(ready(), clock, timeout, error));
        return c.within({ clock, ms: started + timeout - clock.now(), error });
      },
    };
  }
}
