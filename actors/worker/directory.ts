import { sessionKey } from '../../protocol/names.js';
import type { HostedSession } from './session.js';

/**
 * The sessions active on this worker, by `sessionKey`: only the map, as
 * Orleans keeps its ActivationDirectory apart from the Catalog that fills
 * it. A session that finds its copy untrustworthy forgets itself here.
 */
export class SessionDirectory {
  readonly #sessions = new Map<string, HostedSession>();

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
    this.#sessions.set(key, session);
  }

  /** Gone from here; a newer copy under the same key stays. */
  forget(session: HostedSession): void {
    const key = sessionKey(session.app.name, session.id);
    if (this.#sessions.get(key) === session) this.#sessions.delete(key);
  }

  entries(): IterableIterator<[string, HostedSession]> {
    return this.#sessions.entries();
  }

  values(): IterableIterator<HostedSession> {
    return this.#sessions.values();
  }
}
