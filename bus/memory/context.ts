import type { MemoryServer } from './server.js';

/** What a journal, kv or blob handle needs from the connection that opened it. */
export interface ClientContext {
  readonly server: MemoryServer;
  /** This connection's number on the server. */
  readonly client: number;
  /**
   * Runs `run` at the server: at once, returning its value, without a
   * network; on one, as an API call that may be lost or late: TimeoutError
   * after `timeout` ms (default the bus's API timeout) on the connection's clock.
   */
  call<T>(operation: string, run: () => T, timeout?: number): T | Promise<T>;
  /** A stream entry (follow, watch) for this connection: after what the server sent it before. */
  deliver(subject: string, data: Uint8Array, task: () => void): void;
  /** Resolves once what the server sent this connection so far has arrived. */
  flush(): Promise<void>;
  /** Throws BusClosedError once the connection is closing. */
  assertOpen(operation: string): void;
  /** Runs `stop` when the connection closes; returns a canceller. */
  onClose(stop: () => void): () => void;
  /** A user callback threw: tell the status listeners, keep delivering. */
  reportHandlerError(subject: string, error: unknown): void;
}

/** Calls a user handler; a throw (or a rejected promise from an async one) is reported, never propagated. */
export function runHandler(run: () => unknown, report: (error: unknown) => void): void {
  try {
    const result = run();
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, report);
    }
  } catch (error) {
    report(error);
  }
}

/** `next(value)` at once for a value, after it for a promise: a call keeps its timing when no network is in between. */
export function andThen<T, R>(value: T | Promise<T>, next: (value: T) => R): R | Promise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}
