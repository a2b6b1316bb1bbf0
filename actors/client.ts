import { randomUUID } from 'node:crypto';
import { systemClock, type Clock } from '../bus/clock.js';
import { decode, encode } from '../bus/codec.js';
import { NoRespondersError, TimeoutError } from '../bus/errors.js';
import { createNatsBus } from '../bus/nats/mod.js';
import { cmdSubject, eventSubject, readOnlySubject, readSubject, validateApp, validateCluster } from '../bus/subjects.js';
import { claimCheckOf, decodeBody } from '../bus/claimCheck.js';
import type { BlobStore, Bus, Message } from '../bus/types.js';
import type { CommandReply, PatchMessage, PatchOperation, ReadReply, UserEvent } from '../machines/protocol.js';
import { fromErrorBody } from './errors.js';
import { DEFAULT_SHARD_COUNT, shardOf } from './shard.js';

export interface ConnectOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  bus?: Bus;
  cluster: string;
  /** Shown in every server-side log line about this client. */
  label?: string;
  shardCount?: number;
  /** Default per-call timeout in ms (default 5 000). */
  timeout?: number;
  /**
   * One attempt's share of it in ms (default 2 000): a request lost with a
   * worker or a NATS node that died is sent again, with the same command id
   * (applied once), instead of waiting out the whole timeout.
   */
  attemptTimeout?: number;
  /** Drives retry pauses (default the system clock). */
  clock?: Clock;
}

export interface CallOptions {
  timeout?: number;
}

export interface SendOptions extends CallOptions {
  /** Compare-and-set: commit only if the session is at this seq (ConflictError otherwise). */
  expectSeq?: number;
}

export interface SendResult {
  /** The session's version this event made (or, for a retry already applied, made earlier). */
  readonly seq: number;
  /** The command had been applied already (a retry): nothing new was journaled. */
  readonly duplicate: boolean;
  /** The member that acknowledged it and the shard's epoch it wrote under: who to ask, and a history to check. */
  readonly by: string;
  readonly epoch: number;
}

export interface ReadResult {
  readonly seq: number;
  readonly state: unknown;
  readonly document: unknown;
  /** True when a secondary answered (read-only routing): the document as of `seq`, which may trail the primary. */
  readonly stale: boolean;
}

export interface ReadCallOptions extends CallOptions {
  /** Read-your-writes: only from a copy at least this fresh (a secondary waits a moment for it). */
  minSeq?: number;
  /** Read-only routing: any copy of the shard may answer, secondaries included. */
  readOnly?: boolean;
}

/** A change to the document, or (`resync`) a whole new copy after a gap. */
export interface Patch {
  readonly seq: number;
  readonly ops: readonly PatchOperation[];
  readonly setter: string;
  readonly resync?: boolean;
}

export interface SessionHandle {
  readonly app: string;
  readonly id: string;
  /** Resolves once the event is committed; retries with the same command id until the timeout. */
  send(event: UserEvent, options?: SendOptions): Promise<SendResult>;
  read(options?: ReadCallOptions): Promise<ReadResult>;
  /** Patches by others (never this client's own), in order; a gap is healed by a re-read. Returns an unsubscribe. */
  subscribe(listener: (patch: Patch) => void): () => void;
}

export interface Client {
  /** Unique per connection: the setter on patches this client causes. */
  readonly id: string;
  readonly label: string;
  session(app: string, id: string): SessionHandle;
  close(): Promise<void>;
}

/**
 * Pauses between retries while nobody owns the shard (a failover, a
 * restart). A planned hand-off takes tens of milliseconds, so they stay
 * short: a client finds the new primary within 50 ms of its arrival, and a
 * no-responders answer costs the server next to nothing.
 */
const RETRY_PAUSES = [5, 10, 20, 40, 50];

class ClientImpl implements Client {
  readonly id: string;
  readonly #subscriptions = new Set<() => void>();
  #blobs: Promise<BlobStore> | undefined;

  constructor(
    readonly bus: Bus,
    readonly ownsBus: boolean,
    readonly cluster: string,
    readonly label: string,
    readonly shardCount: number,
    readonly timeout: number,
    readonly attemptTimeout: number,
    readonly clock: Clock,
  ) {
    this.id = `${label}#${randomUUID().slice(0, 8)}`;
  }

  session(app: string, id: string): SessionHandle {
    validateApp(app);
    const shard = shardOf(app, id, this.shardCount);
    const cmd = cmdSubject(this.cluster, shard, app, id);
    const read = readSubject(this.cluster, shard, app, id);
    const readOnly = readOnlySubject(this.cluster, shard, app, id);
    const evt = eventSubject(this.cluster, app, id);
    return {
      app,
      id,
      send: async (event, options = {}) => {
        const body = encode({ event, cmdId: randomUUID(), client: this.id, ...(options.expectSeq === undefined ? {} : { expectSeq: options.expectSeq }) });
        const reply = (await this.#call(cmd, body, options.timeout ?? this.timeout, `send ${event.type} to ${app}/${id}`)) as CommandReply;
        if (!reply.ok) throw fromErrorBody(reply.error);
        return { seq: reply.seq, duplicate: reply.duplicate === true, by: reply.by ?? '', epoch: reply.epoch ?? 0 };
      },
      read: async (options = {}) => {
        const body = encode({ client: this.id, ...(options.minSeq === undefined ? {} : { minSeq: options.minSeq }) });
        const subject = options.readOnly === true ? readOnly : read;
        const reply = (await this.#call(subject, body, options.timeout ?? this.timeout, `read ${app}/${id}`)) as ReadReply;
        if (!reply.ok) throw fromErrorBody(reply.error);
        return { seq: reply.seq, state: reply.state, document: reply.document, stale: reply.stale === true };
      },
      subscribe: (listener) => this.#subscribe(evt, listener, () => this.session(app, id).read()),
    };
  }

  /**
   * One request, retried with the same body (so the same command id) while
   * nobody answers, an attempt goes unanswered, or the answer says "retry",
   * until `timeout` runs out.
   */
  async #call(subject: string, body: Uint8Array, timeout: number, what: string): Promise<CommandReply | ReadReply> {
    const deadline = this.clock.now() + timeout;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - this.clock.now();
      if (remaining <= 0) throw new TimeoutError(what, timeout);
      try {
        const m = await this.bus.request(subject, body, { timeout: Math.min(remaining, this.attemptTimeout) });
        const reply = (await this.#decodeReply(m, what)) as CommandReply | ReadReply;
        if (reply.ok || !reply.error.retryable) return reply;
      } catch (err) {
        if (err instanceof TimeoutError) {
          if (deadline - this.clock.now() <= 0) throw new TimeoutError(what, timeout, { cause: err });
          continue; // unanswered: maybe lost with its responder; the same command id again
        }
        if (!(err instanceof NoRespondersError)) throw err;
      }
      await this.#pause(Math.min(RETRY_PAUSES[Math.min(attempt, RETRY_PAUSES.length - 1)]!, Math.max(0, deadline - this.clock.now())));
    }
  }

  /** Most replies are inline; a large document comes by claim-check, fetched and then deleted. */
  async #decodeReply(m: Message, what: string): Promise<unknown> {
    const name = claimCheckOf(m.headers);
    if (name === undefined) return decode(m.data, { where: `reply to ${what}` });
    this.#blobs ??= this.bus.blobs({ bucket: `cohort_${this.cluster}_blobs` });
    const blobs = await this.#blobs;
    const value = await decodeBody(m.data, m.headers, { blobs, where: `reply to ${what}` });
    void blobs.delete(name).catch(() => undefined);
    return value;
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  #subscribe(subject: string, listener: (p: Patch) => void, reread: () => Promise<ReadResult>): () => void {
    let last: number | undefined;
    let resyncing = false;
    let held: PatchMessage[] = [];
    const deliver = (p: PatchMessage): void => {
      if (last !== undefined && p.seq <= last) return;
      last = p.seq;
      if (p.setter !== this.id) listener({ seq: p.seq, ops: p.ops, setter: p.setter });
    };
    const resync = (): void => {
      resyncing = true;
      reread().then(
        (r) => {
          last = r.seq;
          listener({ seq: r.seq, ops: [{ op: 'replace', path: '', value: r.document }], setter: '', resync: true });
          const later = held.filter((p) => p.seq > r.seq).sort((a, b) => a.seq - b.seq);
          held = [];
          resyncing = false;
          for (const p of later) deliver(p);
        },
        () => {
          resyncing = false; // the next patch finds the gap again and retries
        },
      );
    };
    const sub = this.bus.subscribe(subject, (m) => {
      let p: PatchMessage;
      try {
        p = decode(m.data, { where: `patch on ${subject}` }) as PatchMessage;
      } catch {
        return; // not a patch of ours: ignore it, keep listening
      }
      if (resyncing) {
        held.push(p);
        return;
      }
      if (last !== undefined && p.prev !== last && p.seq > last) {
        held.push(p);
        resync();
        return;
      }
      deliver(p);
    });
    const stop = (): void => {
      sub.unsubscribe();
      this.#subscriptions.delete(stop);
    };
    this.#subscriptions.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    for (const stop of [...this.#subscriptions]) stop();
    if (this.ownsBus) await this.bus.close();
  }
}

/** A client of a cohort cluster. */
export async function connect(options: ConnectOptions): Promise<Client> {
  validateCluster(options.cluster);
  if (!options.bus && !options.nats) throw new TypeError('connect needs `nats` (server URLs) or `bus`');
  for (const key of ['timeout', 'attemptTimeout'] as const) {
    const v = options[key];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`connect: ${key} must be a positive number of ms, got ${v}`);
  }
  const label = options.label ?? 'client';
  const bus = options.bus ?? (await createNatsBus({ servers: options.nats!, name: `cohort-client-${label}` }));
  return new ClientImpl(
    bus,
    options.bus === undefined,
    options.cluster,
    label,
    options.shardCount ?? DEFAULT_SHARD_COUNT,
    options.timeout ?? 5_000,
    options.attemptTimeout ?? 2_000,
    options.clock ?? systemClock,
  );
}
