import type { Clock, TimerHandle } from '../../bus/clock.js';
import { encode } from '../../bus/codec.js';
import type { Environment } from '../../bus/environment.js';
import { TimeoutError } from '../../bus/errors.js';
import { scatterSubject, validateApp } from '../../bus/subjects.js';
import type { ErrorBody, UserEvent } from '../../protocol/messages.js';
import { fromErrorBody, InvalidRequestError } from '../../protocol/errors.js';
import { checkLabel } from '../../protocol/requests.js';
import { isQueryName, MAX_SCATTER_IDS, parseScatterReply, scatterRequest } from '../../protocol/scatter.js';
import { shardOf } from '../../protocol/shard.js';
import type { Connection } from './connection.js';

/** A named query the application declares (`defineApplication({ queries })`), and what it is given. */
export interface ScatterQuery {
  readonly query: string;
  readonly args?: unknown;
}

export interface ScatterOptions {
  /** Resolves by then (ms) at the latest; the client's default timeout otherwise. */
  readonly timeout?: number;
  /** Resolves as soon as this many sessions have answered with a value. */
  readonly quorum?: number;
  /** Any copy of each shard may answer (secondaries included): answers may trail the primaries. */
  readonly readOnly?: boolean;
}

/** A named query of one session: `session.query(name, args, options)`. */
export interface QueryOptions {
  /** Fails with TimeoutError (not ambiguous: a query changes nothing) by then (ms); the client's default timeout otherwise. */
  readonly timeout?: number;
  /** Any copy of the session's shard may answer (a secondary's may trail the primary). */
  readonly readOnly?: boolean;
}

export interface BroadcastOptions {
  /** Resolves by then (ms) at the latest; the client's default timeout otherwise. */
  readonly timeout?: number;
}

/**
 * What a call to many sessions gathered: each id asked is in exactly one of
 * the three. `missing`: no outcome by the deadline (a shard that did not
 * answer, an id not reached; for a broadcast, a command that may still have
 * committed: read to know).
 */
export interface Gathered<T> {
  readonly results: Map<string, T>;
  readonly errors: Map<string, Error>;
  readonly missing: string[];
}

/** Commands of one broadcast in flight at once. */
const BROADCAST_IN_FLIGHT = 256;
/** A broadcast's commands give up this much before its deadline, so an ambiguous one is known as such by then. */
const SETTLE_MARGIN = 50;
/** Pause before asking again for sessions that answered "moved" (a failover under way). */
const MOVED_PAUSE = 50;

export interface ScatterHost {
  readonly connection: Connection;
  readonly environment: Environment;
  readonly cluster: string;
  readonly label: string;
  readonly shardCount: number;
  /** The client's default per-call timeout. */
  readonly timeout: () => number;
  /** One command, as `session(app, id).send` sends it. */
  send(app: string, id: string, event: UserEvent, timeout: number): Promise<unknown>;
}

/**
 * Calls to many sessions at once, each with a deadline it never outwaits.
 * A scatter sends one message per shard (split past MAX_SCATTER_IDS ids),
 * answered by whoever holds the shard; a broadcast sends each session its
 * own command, de-duplicated like any send.
 */
export class ManySessions {
  readonly #host: ScatterHost;

  constructor(host: ScatterHost) {
    this.#host = host;
  }

  /** One session's answer to a named query: a scatter of one id, its outcome as a value or that id's typed error. */
  async query<T>(app: string, id: string, q: ScatterQuery, options: QueryOptions = {}): Promise<T> {
    const timeout = this.#deadline('query', options.timeout);
    const g = await this.scatter<T>(app, [id], q, { timeout, ...(options.readOnly === true && { readOnly: true }) });
    if (g.results.has(id)) return g.results.get(id)!;
    const err = g.errors.get(id);
    if (err !== undefined) throw err;
    throw new TimeoutError(`query ${q.query} of ${app}/${id}`, timeout, { ambiguous: false });
  }

  scatter<T>(app: string, ids: Iterable<string>, q: ScatterQuery, options: ScatterOptions = {}): Promise<Gathered<T>> {
    validateApp(app);
    if (!isQueryName(q?.query))
      throw new RangeError(`scatter: query must be a declared query's name, got ${JSON.stringify(q?.query)}`);
    const timeout = this.#deadline('scatter', options.timeout);
    const quorum = options.quorum;
    if (quorum !== undefined && !(Number.isSafeInteger(quorum) && quorum >= 1))
      throw new RangeError(`scatter: quorum must be a whole number >= 1, got ${quorum}`);
    const { order, valid, errors } = checkIds(ids);
    const byShard = new Map<number, string[]>();
    for (const id of valid) {
      const shard = shardOf(app, id, this.#host.shardCount);
      const list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, [id]);
      else list.push(id);
    }
    const run = new Gathering<T>(this.#host.environment.clock, order, errors, timeout, quorum);
    for (const [shard, list] of byShard)
      for (let i = 0; i < list.length; i += MAX_SCATTER_IDS)
        run.track(this.#ask(run, app, shard, list.slice(i, i + MAX_SCATTER_IDS), q, options.readOnly === true));
    return run.done();
  }

  /** One shard's share: asked again (those that moved) until each has an outcome or time runs out. */
  async #ask<T>(
    run: Gathering<T>,
    app: string,
    shard: number,
    ids: string[],
    q: ScatterQuery,
    readOnly: boolean,
  ): Promise<void> {
    const { connection, cluster, label } = this.#host;
    const clock = this.#host.environment.clock;
    let asking = ids;
    while (asking.length > 0 && !run.over) {
      const left = run.left();
      if (left <= 0) return;
      const asked = new Set(asking);
      const subject = scatterSubject(readOnly ? 'ro' : 'read', cluster, shard, app, label);
      const what = `scatter ${q.query} to ${app} on shard ${shard}`;
      const ask = asking;
      let reply;
      try {
        const raw = await connection.request({
          subject,
          body: (client) => encode(scatterRequest(client, q.query, q.args, ask, left)),
          what,
          session: `${app}/(shard ${shard})`,
          mutates: false,
          timeout: left,
          ...(readOnly ? {} : { fallback: scatterSubject('ro', cluster, shard, app, label) }),
        });
        reply = parseScatterReply(raw, asked);
      } catch (err) {
        // Unanswered by the deadline: missing. Any other failure is each id's outcome.
        if (!(err instanceof TimeoutError)) for (const id of asking) run.fail(id, err as Error);
        return;
      }
      if (reply instanceof Error) {
        for (const id of asking) run.fail(id, reply);
        return;
      }
      if (!reply.ok) {
        const err = fromErrorBody(reply.error);
        for (const id of asking) run.fail(id, err);
        return;
      }
      for (const [id, , value] of reply.values) run.answer(id, value as T);
      const again: string[] = [];
      for (const [id, body] of reply.errors) {
        if (body.retryable) again.push(id);
        else run.fail(id, fromErrorBody(body as ErrorBody));
      }
      asking = again;
      if (asking.length > 0) await new Promise<void>((r) => clock.setTimeout(r, Math.min(MOVED_PAUSE, run.left())));
    }
  }

  broadcast(app: string, ids: Iterable<string>, event: UserEvent, options: BroadcastOptions = {}) {
    validateApp(app);
    const timeout = this.#deadline('broadcast', options.timeout);
    const { order, valid, errors } = checkIds(ids);
    const run = new Gathering<unknown>(this.#host.environment.clock, order, errors, timeout, undefined);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < valid.length && !run.over) {
        const id = valid[next++]!;
        const left = run.left() - Math.min(SETTLE_MARGIN, run.left() / 10);
        if (left <= 0) return;
        try {
          run.answer(id, await this.#host.send(app, id, event, left));
        } catch (err) {
          // Never sent, or certainly not applied, by the deadline: missing; anything else (ambiguous too) is its outcome.
          if (!(err instanceof TimeoutError && !err.ambiguous)) run.fail(id, err as Error);
        }
      }
    };
    for (let i = 0; i < Math.min(BROADCAST_IN_FLIGHT, valid.length); i++) run.track(lane());
    return run.done();
  }

  #deadline(what: string, given: number | undefined): number {
    const timeout = given ?? this.#host.timeout();
    if (!(Number.isFinite(timeout) && timeout > 0))
      throw new RangeError(`${what}: timeout must be a positive number of ms, got ${timeout}`);
    return timeout;
  }
}

/** The ids asked, each once in the order given; one that is no session id is an error for that id. */
function checkIds(ids: Iterable<string>): { order: string[]; valid: string[]; errors: Map<string, Error> } {
  const order = new Set<string>();
  const errors = new Map<string, Error>();
  const valid: string[] = [];
  for (const id of ids) {
    const key = String(id);
    if (order.has(key)) continue;
    order.add(key);
    const checked = checkLabel(id, 'session id');
    if (checked instanceof InvalidRequestError) errors.set(key, checked);
    else valid.push(checked);
  }
  return { order: [...order], valid, errors };
}

/** One call's outcomes as they come in, settled once every id has one, at quorum, or at the deadline. */
class Gathering<T> {
  readonly results = new Map<string, T>();
  readonly errors: Map<string, Error>;
  readonly quorum: number | undefined;
  over = false;
  readonly #order: string[];
  readonly #clock: Clock;
  readonly #until: number;
  readonly #timer: TimerHandle;
  #pending = 0;
  #resolve!: (g: Gathered<T>) => void;
  readonly #done: Promise<Gathered<T>>;

  constructor(clock: Clock, order: string[], errors: Map<string, Error>, timeout: number, quorum: number | undefined) {
    this.#order = order;
    this.errors = errors;
    this.quorum = quorum;
    this.#clock = clock;
    this.#until = this.#clock.now() + timeout;
    this.#done = new Promise((resolve) => (this.#resolve = resolve));
    this.#timer = this.#clock.setTimeout(() => this.#finish(), timeout);
    queueMicrotask(() => this.#check());
  }

  /** Ms to the deadline. */
  left(): number {
    return this.#until - this.#clock.now();
  }

  track(work: Promise<unknown>): void {
    this.#pending++;
    void work.finally(() => {
      this.#pending--;
      this.#check();
    });
  }

  answer(id: string, value: T): void {
    if (this.over || this.errors.has(id)) return;
    this.results.set(id, value);
    if (this.quorum !== undefined && this.results.size >= this.quorum) this.#finish();
  }

  fail(id: string, err: Error): void {
    if (this.over || this.results.has(id)) return;
    this.errors.set(id, err);
  }

  done(): Promise<Gathered<T>> {
    return this.#done;
  }

  #check(): void {
    if (this.#pending === 0) this.#finish();
  }

  #finish(): void {
    if (this.over) return;
    this.over = true;
    this.#clock.clearTimeout(this.#timer);
    const missing = this.#order.filter((id) => !this.results.has(id) && !this.errors.has(id));
    this.#resolve({ results: new Map(this.results), errors: new Map(this.errors), missing });
  }
}
