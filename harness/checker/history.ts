/**
 * A history: every operation clients made, with when it was invoked and
 * when it completed on one clock, and how it ended. The simulator and the
 * real-process runner return one (`result.history`); `HistoryRecorder`
 * makes one from any workload that talks to a cohort `Client`.
 *
 * Command ids. A send is tied to the journal by its command id, which the
 * client draws from its environment's `newId()` as the first thing `send`
 * does, before it awaits anything. The recorder's `environment()` wraps
 * that function: a client connected with it has every send's command id
 * recorded (`cmdId`). A client connected without it records none; the
 * checker then ties an acknowledged send by (session, seq) and any other
 * send by its event's content (see attribution.ts).
 *
 * Only `send` and `read` are recorded; `transaction`, `subscribe` and
 * `cached` pass through unrecorded, so a transaction's journaled events
 * are reported as sent by nobody (`no-phantom`): keep them out of a
 * checked workload, or record them yourself.
 */
import type {
  Client,
  Environment,
  ReadCallOptions,
  ReadResult,
  SendOptions,
  SendResult,
  SessionHandle,
  UserEvent,
} from '../../internal.js';
import { systemEnvironment } from '../../internal.js';
import { sendOutcome, type Outcome } from './outcome.js';

export type { Outcome } from './outcome.js';

export interface Operation {
  /** The workload's name for the client (its label by default). */
  readonly client: string;
  readonly app: string;
  /** The session's id within its application. */
  readonly session: string;
  readonly kind: 'send' | 'read';
  /** What a send sent; absent for reads. */
  readonly event?: UserEvent;
  /** A send's command id, when known: the journal's `meta.cmdId` of its event. */
  readonly cmdId?: string;
  /** The client's connection id when it was invoked (the journal's `meta.client`). */
  readonly connection?: string;
  /** On the history's clock (virtual time in a simulation). */
  readonly invokedAt: number;
  readonly completedAt: number;
  /** `failed`: certainly not committed; `ambiguous`: it may have been (a send only; a failed read changes nothing). */
  readonly outcome: Outcome;
  /** An acknowledged send's seq, or the seq a read reflects. */
  readonly seq?: number;
  /** A send's reply: the command was applied before (a retry). */
  readonly duplicate?: boolean;
  /** A send's reply: the member that acknowledged it, at its shard's epoch. */
  readonly by?: string;
  readonly epoch?: number;
  /** A read's document and the machine's state value. */
  readonly document?: unknown;
  readonly state?: unknown;
  /** A read from a copy that may trail the primary: a secondary, or the client's cache. */
  readonly stale?: boolean;
  readonly source?: ReadResult['source'];
  /** The error's class name, when it failed or is ambiguous. */
  readonly error?: string;
}

export function isAcknowledged(op: Operation): op is Operation & { readonly seq: number } {
  return op.kind === 'send' && op.outcome === 'ok' && op.seq !== undefined;
}

/** Records operations as clients complete them, on the clock it is given. */
export class HistoryRecorder {
  readonly #ops: Operation[] = [];
  readonly #now: () => number;
  /** Ids drawn while a send is being invoked; undefined otherwise. */
  #drawn: string[] | undefined;

  constructor(options: { readonly now?: () => number } = {}) {
    this.#now = options.now ?? (() => performance.now());
  }

  /** Every operation so far, in the order they completed. */
  get operations(): readonly Operation[] {
    return this.#ops;
  }

  /** Adds an operation made elsewhere (a simulator's own client). */
  record(op: Operation): void {
    this.#ops.push(op);
  }

  /**
   * An environment for `connect()` whose `newId()` lets the recorder see
   * each send's command id. Pass what the client would have had otherwise.
   */
  environment(base: Partial<Environment> = {}): Partial<Environment> {
    const newId = base.newId ?? systemEnvironment.newId;
    return {
      ...base,
      newId: () => {
        const id = newId();
        this.#drawn?.push(id);
        return id;
      },
    };
  }

  /** The same client, its sessions' `send` and `read` recorded; `name` is the history's name for it (its label). */
  wrap(client: Client, name: string = client.label): Client {
    const recorder = this;
    return new Proxy(client, {
      get(target, key) {
        if (key === 'session') return (app: string, id: string) => recorder.#session(target, name, app, id);
        // Read on the client itself: its getters use private fields a proxy does not have.
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  #session(client: Client, name: string, app: string, id: string): SessionHandle {
    const inner = client.session(app, id);
    return {
      ...inner,
      app,
      id,
      send: (event, options) => this.#send(client, name, inner, event, options),
      read: (options) => this.#read(client, name, inner, options),
    };
  }

  async #send(
    client: Client,
    name: string,
    inner: SessionHandle,
    event: UserEvent,
    options: SendOptions | undefined,
  ): Promise<SendResult> {
    const connection = client.id;
    const invokedAt = this.#now();
    // The client draws the command id synchronously, before its first await: the first id drawn is it.
    this.#drawn = [];
    let pending: Promise<SendResult>;
    let cmdId: string | undefined;
    try {
      pending = inner.send(event, options);
    } finally {
      cmdId = this.#drawn[0];
      this.#drawn = undefined;
    }
    const base = {
      client: name,
      app: inner.app,
      session: inner.id,
      kind: 'send' as const,
      event,
      ...(cmdId === undefined ? {} : { cmdId }),
      connection,
    };
    try {
      const reply = await pending;
      this.#ops.push({ ...base, invokedAt, completedAt: this.#now(), outcome: 'ok', ...reply });
      return reply;
    } catch (err) {
      this.#ops.push({ ...base, invokedAt, completedAt: this.#now(), outcome: sendOutcome(err), error: nameOf(err) });
      throw err;
    }
  }

  async #read(
    client: Client,
    name: string,
    inner: SessionHandle,
    options: ReadCallOptions | undefined,
  ): Promise<ReadResult> {
    const base = { client: name, app: inner.app, session: inner.id, kind: 'read' as const, connection: client.id };
    const invokedAt = this.#now();
    try {
      const r = await inner.read(options);
      this.#ops.push({
        ...base,
        invokedAt,
        completedAt: this.#now(),
        outcome: 'ok',
        seq: r.seq,
        document: r.document,
        state: r.state,
        stale: r.stale,
        source: r.source,
      });
      return r;
    } catch (err) {
      this.#ops.push({ ...base, invokedAt, completedAt: this.#now(), outcome: 'failed', error: nameOf(err) });
      throw err;
    }
  }
}

function nameOf(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}
