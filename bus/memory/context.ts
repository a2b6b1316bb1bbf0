import type { MemoryServer } from './server.js';

/** What a journal, kv or blob handle needs from the connection that opened it. */
export interface ClientContext {
  readonly server: MemoryServer;
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
