import { subjectMatches } from '../names.js';
import type { WireMessage } from './payload.js';

/** One interest registered with the server: a subscription, a request inbox. */
export interface Route {
  readonly id: number;
  /** The connection that owns it, so a connection can be dropped as a whole. */
  readonly client: number;
  readonly subject: string;
  readonly queue: string | undefined;
  deliver(message: WireMessage): void;
}

/**
 * Who gets a message. Plain routes all do; each queue group (grouped by queue
 * name across filters, as nats-server groups them) gets it once. nats-server
 * picks a group member at random; we take turns per queue name instead, so a
 * run replays exactly.
 */
export class Router {
  // Insertion order is subscription order, which makes matching deterministic.
  readonly #routes = new Map<number, Route>();
  readonly #turns = new Map<string, number>();

  add(route: Route): void {
    this.#routes.set(route.id, route);
  }

  remove(id: number): void {
    this.#routes.delete(id);
  }

  removeClient(client: number): void {
    for (const [id, route] of this.#routes) if (route.client === client) this.#routes.delete(id);
  }

  match(subject: string): Route[] {
    const chosen: Route[] = [];
    let groups: Map<string, Route[]> | undefined;
    for (const route of this.#routes.values()) {
      if (!subjectMatches(route.subject, subject)) continue;
      if (route.queue === undefined) {
        chosen.push(route);
        continue;
      }
      groups ??= new Map();
      const members = groups.get(route.queue);
      if (members === undefined) groups.set(route.queue, [route]);
      else members.push(route);
    }
    if (groups !== undefined) {
      for (const [queue, members] of groups) {
        const turn = this.#turns.get(queue) ?? 0;
        this.#turns.set(queue, turn + 1);
        chosen.push(members[turn % members.length]!);
      }
    }
    return chosen;
  }
}
