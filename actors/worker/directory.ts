import { sessionKey } from '../../protocol/names.js';
import type { HostedSession } from './session.js';
import type { Attributes, UpDownCounter } from '@opentelemetry/api';

/**
 * The sessions active on this worker, by `sessionKey`: only the map, as
 * Orleans keeps its ActivationDirectory apart from the Catalog that fills
 * it. A session that finds its copy untrustworthy forgets itself here.
 */
export class SessionDirectory {
  readonly #sessions = new Map<string, HostedSession>();
  /** Sessions in memory by app, kept as the map changes: a metric, not a second directory. */
  readonly #active: UpDownCounter;
  readonly #byApp = new Map<string, Attributes>();

  constructor(active: UpDownCounter) {
    this.#active = active;
  }

  #app(name: string): Attributes {
    let a = this.#byApp.get(name);
    if (a === undefined) this.#byApp.set(name, (a = Object.freeze({ app: name })));
    return a;
  }

  get size(): number {
    return this.#sessions.size;
  }

  get(key: string): HostedSession | undefined {
    return this.#sessions.get(key);
  }

  has(key: string): boolean {
    return this.#sessions.has(key);
  }

  add(key: string, session: HostedSession): void {
    if (!this.#sessions.has(key)) this.#active.add(1, this.#app(session.app.name));
    this.#sessions.set(key, session);
  }

  /** Gone from here; a newer copy under the same key stays. */
  forget(session: HostedSession): void {
    const key = sessionKey(session.app.name, session.id);
    if (this.#sessions.get(key) !== session) return;
    this.#sessions.delete(key);
    this.#active.add(-1, this.#app(session.app.name));
  }

  entries(): IterableIterator<[string, HostedSession]> {
    return this.#sessions.entries();
  }

  values(): IterableIterator<HostedSession> {
    return this.#sessions.values();
  }

  /** Every session and its key, without an iterator result or a pair per session (walks at every heartbeat). */
  forEach(fn: (session: HostedSession, key: string) => void): void {
    this.#sessions.forEach(fn);
  }
}
