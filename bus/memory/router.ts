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

/** A level of the subject tree: literal tokens, `*`, and routes that end here or with `>` here. */
interface Level {
  readonly literal: Map<string, Level>;
  star: Level | undefined;
  /** Routes whose subject ends at this level. */
  readonly here: Set<Route>;
  /** Routes whose next token is `>`: they take any one or more further tokens. */
  readonly tail: Set<Route>;
}

function level(): Level {
  return { literal: new Map(), star: undefined, here: new Set(), tail: new Set() };
}

/**
 * Who gets a message, found in a token tree (as nats-server's sublist) so a
 * publish costs the subject's depth, not the number of subscriptions. Plain
 * routes all get it; each queue group (grouped by queue name across
 * filters, as nats-server groups them) gets it once. nats-server picks a
 * member at random; we take turns per queue name, so a run replays exactly.
 */
export class Router {
  readonly #root = level();
  readonly #routes = new Map<number, { route: Route; set: Set<Route> }>();
  readonly #turns = new Map<string, number>();

  add(route: Route): void {
    let at = this.#root;
    const tokens = route.subject.split('.');
    let set: Set<Route> = at.here;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === '>') {
        set = at.tail;
        break;
      }
      let next = t === '*' ? at.star : at.literal.get(t);
      if (next === undefined) {
        next = level();
        if (t === '*') at.star = next;
        else at.literal.set(t, next);
      }
      at = next;
      set = at.here;
    }
    set.add(route);
    this.#routes.set(route.id, { route, set });
  }

  remove(id: number): void {
    const entry = this.#routes.get(id);
    if (entry === undefined) return;
    entry.set.delete(entry.route);
    this.#routes.delete(id);
  }

  /** Every route of every connection (a server restart); queue turns go on where they were. */
  clear(): void {
    for (const id of [...this.#routes.keys()]) this.remove(id);
  }

  removeClient(client: number): void {
    for (const [id, { route }] of this.#routes) if (route.client === client) this.remove(id);
  }

  match(subject: string): Route[] {
    const found: Route[] = [];
    collect(this.#root, subject.split('.'), 0, found);
    // Subscription order, so delivery order and queue turns replay exactly.
    found.sort((a, b) => a.id - b.id);
    const chosen: Route[] = [];
    let groups: Map<string, Route[]> | undefined;
    for (const route of found) {
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

function collect(at: Level, tokens: readonly string[], i: number, out: Route[]): void {
  if (i === tokens.length) {
    for (const r of at.here) out.push(r);
    return;
  }
  for (const r of at.tail) out.push(r);
  const literal = at.literal.get(tokens[i]!);
  if (literal !== undefined) collect(literal, tokens, i + 1, out);
  if (at.star !== undefined) collect(at.star, tokens, i + 1, out);
}
