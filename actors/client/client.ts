import { EventEmitter } from 'node:events';
import type { Clock } from '../../bus/clock.js';
import { resolveEnvironment, type Environment } from '../../bus/environment.js';
import { decode, encode } from '../../bus/codec.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { cmdSubject, eventSubject, readOnlySubject, readSubject, validateApp, validateCluster } from '../../bus/subjects.js';
import type { Bus, KvStore, Subscription } from '../../bus/types.js';
import { CONNECTION_DEFAULTS, type ConnectionState, type Failure } from '../../machines/connection.js';
import type {
  CommandReply,
  PatchMessage,
  PatchOperation,
  ReadReply,
  TxReply,
  UserEvent,
  VerifyOutcome,
  VerifyReply,
} from '../../protocol/messages.js';
import type { RequestSpec } from './attempts.js';
import { Connection } from './connection.js';
import { createCounter, type Counter, type CounterOptions } from './counter.js';
import { DocumentCache } from './documentCache.js';
import {
  CrossShardTransactionError,
  NetworkError,
  TransactionRolledBackError,
  TransactionTimeoutError,
  ClientDisconnectedError,
  fromErrorBody,
} from '../../protocol/errors.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../../protocol/shard.js';
import { commandRequest, readRequest, txRequest, verifyRequest, type TxStep } from '../../protocol/requests.js';

export interface ConnectOptions {
  /** NATS server URL(s); or pass `bus`. */
  nats?: string | string[];
  bus?: Bus;
  cluster: string;
  /** Shown in every server-side log line about this client. */
  label?: string;
  shardCount?: number;
  /**
   * Default per-call timeout in ms: past it a call fails with TimeoutError.
   * Without one (the default) a call fails with NetworkError once the
   * connection has had no answer for `troubledInterval`.
   */
  timeout?: number;
  /**
   * One attempt's share of a call in ms (default 2 000): a request lost with
   * a worker or a NATS node that died is sent again, with the same command
   * id (applied once), instead of waiting out the whole call.
   */
  attemptTimeout?: number;
  /** How long the first connection may take (default 30 000 ms), then ClientDisconnectedError. */
  waitTimeout?: number;
  /** Most time between retries of pending requests in TROUBLE (default 250 ms). */
  reconnectInterval?: number;
  /** How long TROUBLE lasts before the connection is DISABLED and its requests fail (default 10 000 ms). */
  troubledInterval?: number;
  /** While no primary answers, reads go to secondaries, marked stale (default false). */
  readOnlyFallback?: boolean;
  /** Bytes of documents the client cache keeps, least recently used out first (default 20 MB; 0 turns it off). */
  cacheSize?: number;
  /** A cached copy further behind than this many events is dropped and re-read on verification (default 100). */
  invalidationQueueSize?: number;
  /** A transaction still open after this long is aborted and the connection closed (default 30 000 ms). */
  transactionTimeout?: number;
  /** Time, randomness and ids (default the system's): virtual time and seeded ids make a run replay. */
  environment?: Partial<Environment>;
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
  /** True when it may trail the primary: a secondary answered, or the client cache did. */
  readonly stale: boolean;
  /** Who answered. */
  readonly source: 'primary' | 'secondary' | 'cache';
}

export interface ReadCallOptions extends CallOptions {
  /** Read-your-writes: only from a copy at least this fresh (a secondary waits a moment for it). */
  minSeq?: number;
  /** Read-only routing: any copy of the shard may answer, secondaries included. */
  readOnly?: boolean;
  /** While the connection is in trouble, the client cache may answer (marked stale). */
  allowStale?: boolean;
}

/** A change to the document, or (`resync`) a whole new copy after a gap. */
export interface Patch {
  readonly seq: number;
  readonly ops: readonly PatchOperation[];
  readonly setter: string;
  readonly resync?: boolean;
}

export interface TransactionOptions {
  /** Overrides the client's transactionTimeout for this one. */
  timeout?: number;
}

/** Inside `session.transaction(...)`: the session's lock is held; nothing is committed until the callback returns. */
export interface Transaction {
  readonly id: string;
  /** Applies the event to the transaction's working copy (refusals show at once); resolves with that copy's seq. */
  send(event: UserEvent): Promise<{ seq: number }>;
  /** The working copy, this transaction's own changes included. */
  read(): Promise<ReadResult>;
  /** Another session: refused, a transaction commits one session's events as one journal message. */
  session(app: string, id: string): never;
  /** True once the transaction can only roll back (the connection was disabled, or the server rolled it back). */
  readonly rollbackOnly: boolean;
}

export interface TransactionResult<T> extends SendResult {
  /** What the callback returned. */
  readonly value: T;
  /** Events committed (as one journal message). */
  readonly events: number;
}

export interface SessionHandle {
  readonly app: string;
  readonly id: string;
  /** Resolves once the event is committed; retries with the same command id until it has an answer or gives up. */
  send(event: UserEvent, options?: SendOptions): Promise<SendResult>;
  read(options?: ReadCallOptions): Promise<ReadResult>;
  /** The client cache's copy, without asking anyone (undefined when not cached). */
  cached(): ReadResult | undefined;
  /** Patches by others (never this client's own), in order; a gap is healed by a re-read. Returns an unsubscribe. */
  subscribe(listener: (patch: Patch) => void): () => void;
  /**
   * Takes the session's exclusive lock, runs `fn`, and commits every event
   * it sent as one journal message; if `fn` throws, nothing is committed.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<TransactionResult<T>>;
}

/** How one cached or subscribed document fared in verification after a reconnect (ZEO). */
export interface Verification {
  readonly app: string;
  readonly id: string;
  readonly outcome: VerifyOutcome;
  /** The client's seq before, and the seq it holds now. */
  readonly from: number;
  readonly to: number;
}

export interface ClientEvents {
  state: [state: ConnectionState, reason: string];
  /** One per cached or subscribed session after each reconnect. */
  verified: [verification: Verification];
  /** Every pending request failed; open transactions became rollback-only. */
  disabled: [failure: Failure, reason: string];
  /** Reads are answered by secondaries (true) or by primaries again (false). */
  readOnly: [readOnly: boolean];
}

export interface Client {
  /** This connection's id on the servers (the setter on patches it causes); a new connection gets a new one. */
  readonly id: string;
  readonly label: string;
  /** NOT_CONNECTED, CONNECTING, NORMAL, TROUBLE, DISABLED or CLOSED. */
  readonly state: ConnectionState;
  /** Reads are being answered by secondaries (read-only fallback). */
  readonly readOnly: boolean;
  on<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  once<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  off<K extends keyof ClientEvents>(event: K, listener: (...args: ClientEvents[K]) => void): this;
  session(app: string, id: string): SessionHandle;
  /** Unique increasing ids from a cluster-wide counter, reserved in blocks (ECP $Increment). */
  counter(name: string, options?: CounterOptions): Counter;
  /** Verifies every cached and subscribed document now (it also happens by itself after each reconnect). */
  verify(): Promise<Verification[]>;
  /** Lets pending calls finish, then closes. */
  close(): Promise<void>;
}

/** One subscribed session: the seq its listeners have seen, and what is held while a re-read heals a gap. */
interface Watch {
  readonly app: string;
  readonly id: string;
  readonly listeners: Set<(p: Patch) => void>;
  /** On the bus of the connection it was made on; a new connection subscribes again. */
  sub: Pick<Subscription, 'unsubscribe'>;
  bus: Bus | undefined;
  last: number | undefined;
  resyncing: boolean;
  held: PatchMessage[];
}

class ClientImpl extends EventEmitter<ClientEvents> implements Client {
  readonly #conn: Connection;
  readonly #watches = new Map<string, Watch>();
  readonly #cache: DocumentCache;
  /** Every id this client has had: its own patches stay its own across reconnects. */
  readonly #ids = new Set<string>();
  readonly #counters = new Map<string, { bus: Bus; counter: Counter }>();
  #verifying: Promise<Verification[]> | undefined;

  constructor(
    bus: Bus | (() => Promise<Bus>),
    readonly cluster: string,
    readonly label: string,
    readonly shardCount: number,
    readonly timeout: number | undefined,
    readonly transactionTimeout: number,
    readonly invalidationQueueSize: number,
    cacheSize: number,
    attemptTimeout: number,
    readOnlyFallback: boolean,
    config: { waitTimeout: number; reconnectInterval: number; troubledInterval: number },
    readonly environment: Environment,
  ) {
    super();
    this.#cache = new DocumentCache({ cacheSize });
    this.#conn = new Connection({
      label,
      environment,
      config,
      attemptTimeout,
      bus,
      cluster,
      readOnlyFallback,
    });
    this.#conn.on('state', (state, reason) => {
      if (state === 'NORMAL') this.#ids.add(this.#conn.clientId);
      this.emit('state', state, reason);
    });
    this.#conn.on('recovered', () => void this.verify().catch(() => undefined));
    this.#conn.on('connected', (n) => {
      if (n === 1) return;
      // A new connection (after DISABLED): patches subscribed again, on its bus, and the cache verified.
      this.#resubscribe();
      void this.verify().catch(() => undefined);
    });
    this.#conn.on('disabled', (failure, reason) => this.emit('disabled', failure, reason));
    this.#conn.on('readOnly', (on) => this.emit('readOnly', on));
  }

  get id(): string {
    return this.#conn.clientId;
  }

  get state(): ConnectionState {
    return this.#conn.state;
  }

  get readOnly(): boolean {
    return this.#conn.readOnly;
  }

  async open(): Promise<void> {
    await this.#conn.open();
    this.#ids.add(this.#conn.clientId);
  }

  session(app: string, id: string): SessionHandle {
    validateApp(app);
    const shard = shardOf(app, id, this.shardCount);
    const cmd = cmdSubject(this.cluster, shard, app, id);
    const read = readSubject(this.cluster, shard, app, id);
    const readOnly = readOnlySubject(this.cluster, shard, app, id);
    const session = `${app}/${id}`;
    return {
      app,
      id,
      send: async (event, options = {}) => {
        const body = encode(commandRequest(event, this.environment.newId(), this.id, options.expectSeq));
        const reply = (await this.#request({ subject: cmd, body, what: `send ${event.type} to ${session}`, session, mutates: true, timeout: options.timeout ?? this.timeout })) as CommandReply;
        if (!reply.ok) throw fromErrorBody(reply.error);
        return { seq: reply.seq, duplicate: reply.duplicate === true, by: reply.by ?? '', epoch: reply.epoch ?? 0 };
      },
      read: (options = {}) => this.#read(app, id, { cmd, read, readOnly }, options),
      cached: () => {
        const c = this.#cache.peek(app, id);
        return c === undefined ? undefined : { ...c, stale: true, source: 'cache' };
      },
      subscribe: (listener) => this.#subscribe(app, id, listener),
      transaction: (fn, options = {}) => this.#transaction(app, id, shard, cmd, fn, options),
    };
  }

  #request(spec: Omit<RequestSpec, 'timeout'> & { timeout: number | undefined }): Promise<unknown> {
    const { timeout, ...rest } = spec;
    return this.#conn.request(timeout === undefined ? rest : { ...rest, timeout });
  }

  async #read(app: string, id: string, subjects: { cmd: string; read: string; readOnly: string }, options: ReadCallOptions): Promise<ReadResult> {
    const session = `${app}/${id}`;
    const cached = options.allowStale === true ? this.#cache.peek(app, id) : undefined;
    const troubled = this.#conn.state !== 'NORMAL' && this.#conn.state !== 'CONNECTING';
    if (cached !== undefined && troubled && !this.#conn.readOnly) return { ...cached, stale: true, source: 'cache' };
    const body = encode(readRequest(this.id, options.minSeq));
    let reply: ReadReply;
    try {
      reply = (await this.#request({
        subject: options.readOnly === true ? subjects.readOnly : subjects.read,
        body,
        what: `read ${session}`,
        session,
        mutates: false,
        timeout: options.timeout ?? this.timeout,
        ...(options.readOnly === true ? {} : { fallback: subjects.readOnly }),
      })) as ReadReply;
    } catch (err) {
      const fallback = options.allowStale === true ? this.#cache.peek(app, id) : undefined;
      if (fallback !== undefined && (err instanceof NetworkError || err instanceof ClientDisconnectedError)) return { ...fallback, stale: true, source: 'cache' };
      throw err;
    }
    if (!reply.ok) throw fromErrorBody(reply.error);
    const stale = reply.stale === true;
    if (!stale) this.#cache.set(app, id, { seq: reply.seq, document: reply.document, state: reply.state });
    return { seq: reply.seq, state: reply.state, document: reply.document, stale, source: stale ? 'secondary' : 'primary' };
  }

  // ------------------------------------------------------------ patches

  #subscribe(app: string, id: string, listener: (p: Patch) => void): () => void {
    const key = `${app}/${id}`;
    let w = this.#watches.get(key);
    if (w === undefined) {
      const bus = this.#conn.bus;
      const watch: Watch = {
        app,
        id,
        listeners: new Set(),
        last: this.#cache.peek(app, id)?.seq,
        resyncing: false,
        held: [],
        bus,
        sub: { unsubscribe: () => undefined },
      };
      // Not connected now (after DISABLED): it subscribes when the next connection is made.
      if (bus !== undefined) watch.sub = this.#listen(bus, watch);
      else void this.open().catch(() => undefined);
      w = watch;
      this.#watches.set(key, w);
    }
    const watch = w;
    watch.listeners.add(listener);
    return () => {
      watch.listeners.delete(listener);
      if (watch.listeners.size > 0) return;
      watch.sub.unsubscribe();
      if (this.#watches.get(key) === watch) this.#watches.delete(key);
    };
  }

  #listen(bus: Bus, watch: Watch): Subscription {
    const subject = eventSubject(this.cluster, watch.app, watch.id);
    return bus.subscribe(subject, (m) => {
      let p: PatchMessage;
      try {
        p = decode(m.data, { where: `patch on ${subject}` }) as PatchMessage;
      } catch {
        return; // not a patch of ours: ignore it, keep listening
      }
      this.#onPatch(watch, p);
    });
  }

  #resubscribe(): void {
    const bus = this.#conn.bus;
    if (bus === undefined) return;
    for (const w of this.#watches.values()) {
      if (w.bus === bus) continue;
      try {
        w.sub.unsubscribe();
      } catch {
        // its bus is closed already
      }
      w.bus = bus;
      w.sub = this.#listen(bus, w);
    }
  }

  #onPatch(w: Watch, p: PatchMessage): void {
    if (typeof p?.seq !== 'number' || typeof p.prev !== 'number' || !Array.isArray(p.ops)) return;
    if (w.resyncing) {
      w.held.push(p);
      return;
    }
    if (w.last !== undefined && p.prev !== w.last && p.seq > w.last) {
      w.held.push(p);
      this.#resync(w);
      return;
    }
    this.#deliver(w, p);
  }

  #deliver(w: Watch, p: PatchMessage): void {
    if (w.last !== undefined && p.seq <= w.last) return;
    w.last = p.seq;
    this.#patchCache(w.app, w.id, p);
    if (this.#ids.has(p.setter)) return;
    for (const l of w.listeners) l({ seq: p.seq, ops: p.ops, setter: p.setter });
  }

  /** A cached copy a patch cannot bring forward is dropped: the next read or verification fetches it whole. */
  #patchCache(app: string, id: string, p: PatchMessage): void {
    const outcome = this.#cache.applyPatch(app, id, p);
    if (outcome === 'gap' || outcome === 'failed') this.#cache.delete(app, id);
  }

  #resync(w: Watch): void {
    w.resyncing = true;
    this.session(w.app, w.id)
      .read()
      .then(
        (r) => this.#replaceWith(w, r.seq, r.document),
        () => {
          w.resyncing = false; // the next patch finds the gap again and retries
        },
      );
  }

  /** A whole new copy: listeners get it as one `resync` patch, then anything newer that was held. */
  #replaceWith(w: Watch, seq: number, document: unknown): void {
    w.last = seq;
    for (const l of w.listeners) l({ seq, ops: [{ op: 'replace', path: '', value: document }], setter: '', resync: true });
    const later = w.held.filter((p) => p.seq > seq).sort((a, b) => a.seq - b.seq);
    w.held = [];
    w.resyncing = false;
    for (const p of later) this.#deliver(w, p);
  }

  // ------------------------------------------------------------ verification

  verify(): Promise<Verification[]> {
    this.#verifying ??= this.#verifyAll().finally(() => (this.#verifying = undefined));
    return this.#verifying;
  }

  async #verifyAll(): Promise<Verification[]> {
    const targets = new Map<string, { app: string; id: string; since: number }>();
    for (const e of this.#cache.entries()) targets.set(`${e.app}/${e.id}`, { app: e.app, id: e.id, since: e.seq });
    for (const [key, w] of this.#watches) {
      if (w.last !== undefined && !targets.has(key)) targets.set(key, { app: w.app, id: w.id, since: w.last });
    }
    const out = await Promise.all([...targets.values()].map((t) => this.#verifyOne(t.app, t.id, t.since).catch(() => undefined)));
    return out.filter((v): v is Verification => v !== undefined);
  }

  async #verifyOne(app: string, id: string, since: number): Promise<Verification> {
    const session = `${app}/${id}`;
    const shard = shardOf(app, id, this.shardCount);
    const reply = (await this.#request({
      subject: readSubject(this.cluster, shard, app, id),
      body: encode(verifyRequest(this.id, since, this.invalidationQueueSize)),
      what: `verify ${session}`,
      session,
      mutates: false,
      timeout: this.timeout,
    })) as VerifyReply;
    if (!reply.ok) throw fromErrorBody(reply.error);
    const w = this.#watches.get(session);
    switch (reply.outcome) {
      case 'up-to-date':
        break;
      case 'replayed':
        for (const p of reply.patches ?? []) {
          if (w !== undefined) this.#onPatch(w, p);
          else this.#patchCache(app, id, p);
        }
        break;
      case 'cleared':
      case 'newer-than-server':
        // The copy here cannot be brought forward (or is ahead of a server that lost writes): replace it.
        this.#cache.set(app, id, { seq: reply.seq, document: reply.document, state: reply.state }, { force: true });
        if (w !== undefined) this.#replaceWith(w, reply.seq, reply.document);
        break;
    }
    const v: Verification = { app, id, outcome: reply.outcome, from: since, to: reply.seq };
    this.emit('verified', v);
    return v;
  }

  // ------------------------------------------------------------ transactions

  async #transaction<T>(
    app: string,
    id: string,
    shard: number,
    cmd: string,
    fn: (tx: Transaction) => Promise<T>,
    options: TransactionOptions,
  ): Promise<TransactionResult<T>> {
    const session = `${app}/${id}`;
    const txId = this.environment.newId();
    const timeout = options.timeout ?? this.transactionTimeout;
    if (!(Number.isFinite(timeout) && timeout > 0)) throw new RangeError(`transaction timeout must be a positive number of ms, got ${timeout}`);
    const client = this.id;
    const started = this.environment.clock.now();
    let rollback: Error | undefined;
    let steps = 0;
    const onDisabled = (_f: Failure, reason: string): void => {
      rollback ??= new NetworkError(`transaction ${txId} on ${session}`, session, this.environment.clock.now() - started, false, `rolled back: the connection was disabled (${reason})`);
    };
    this.#conn.on('disabled', onDisabled);
    const step = async (op: TxStep, mutates = false): Promise<Extract<TxReply, { ok: true }>> => {
      if (rollback !== undefined) throw rollback;
      const remaining = timeout - (this.environment.clock.now() - started);
      const body = encode(txRequest(txId, client, op));
      const reply = (await this.#request({ subject: cmd, body, what: `transaction ${op.op} on ${session}`, session, mutates, timeout: Math.max(1, remaining) })) as TxReply;
      if (reply.ok) return reply;
      const err = fromErrorBody(reply.error);
      if (err instanceof TransactionRolledBackError) {
        rollback = new NetworkError(`transaction ${txId} on ${session}`, session, this.environment.clock.now() - started, false, `rolled back by the server (${err.reason})`, { cause: err });
        throw rollback;
      }
      throw err;
    };
    const tx: Transaction = {
      id: txId,
      send: async (event) => {
        const r = await step({ op: 'send', step: steps, event });
        steps++;
        return { seq: r.seq };
      },
      read: async () => {
        const r = (await step({ op: 'read' })) as unknown as ReadReply;
        if (!r.ok) throw fromErrorBody(r.error);
        return { seq: r.seq, state: r.state, document: r.document, stale: false, source: 'primary' };
      },
      session: (otherApp, otherId) => {
        throw new CrossShardTransactionError(session, shard, `${otherApp}/${otherId}`, shardOf(otherApp, otherId, this.shardCount));
      },
      get rollbackOnly() {
        return rollback !== undefined;
      },
    };
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    try {
      await step({ op: 'begin', timeout });
      const expired = new Promise<never>((_, reject) => {
        timer = this.environment.clock.setTimeout(() => reject(new TransactionTimeoutError(txId, timeout)), Math.max(0, timeout - (this.environment.clock.now() - started)));
      });
      let value: T;
      try {
        value = await Promise.race([fn(tx), expired]);
      } catch (err) {
        await this.#abort(cmd, txId, client, session);
        if (err instanceof TransactionTimeoutError) this.#conn.disconnect(`transaction ${txId} ran past its ${timeout} ms timeout`);
        throw err;
      }
      if (rollback !== undefined) {
        await this.#abort(cmd, txId, client, session);
        throw rollback;
      }
      const r = await step({ op: 'commit', steps }, true);
      return { value, seq: r.seq, duplicate: r.duplicate === true, by: r.by ?? '', epoch: r.epoch ?? 0, events: steps };
    } finally {
      if (timer !== undefined) this.environment.clock.clearTimeout(timer);
      this.#conn.off('disabled', onDisabled);
    }
  }

  /** Best effort: the lock's lease frees it anyway. */
  async #abort(cmd: string, txId: string, client: string, session: string): Promise<void> {
    const body = encode(txRequest(txId, client, { op: 'abort' }));
    await this.#conn.request({ subject: cmd, body, what: `transaction abort on ${session}`, session, mutates: false, timeout: 2_000 }).catch(() => undefined);
  }

  // ------------------------------------------------------------ counters

  counter(name: string, options: CounterOptions = {}): Counter {
    const key = `${name}\u0000${options.block ?? ''}\u0000${options.consecutive === true}`;
    const client = this;
    let kv: { bus: Bus; store: Promise<KvStore> } | undefined;
    let counter: { bus: Bus; counter: Counter } | undefined = this.#counters.get(key);
    return {
      name,
      async next(): Promise<number> {
        const bus = client.#conn.bus ?? (await client.open().then(() => client.#conn.bus));
        if (bus === undefined) throw new ClientDisconnectedError(client.id, 'no connection for the counter');
        if (counter?.bus !== bus) {
          if (kv?.bus !== bus) kv = { bus, store: bus.kv({ bucket: `cohort_${client.cluster}_counters` }) };
          counter = { bus, counter: createCounter(await kv.store, name, options) };
          client.#counters.set(key, counter);
        }
        return counter.counter.next();
      },
    };
  }

  // ------------------------------------------------------------ lifecycle

  async close(): Promise<void> {
    await this.#conn.close();
    for (const w of this.#watches.values()) w.sub.unsubscribe();
    this.#watches.clear();
  }
}

function positive(name: string, v: number | undefined, allowZero = false): void {
  if (v === undefined) return;
  if (!(Number.isFinite(v) && (allowZero ? v >= 0 : v > 0))) throw new RangeError(`connect: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
}

/** A client of a cohort cluster. Resolves once connected; ClientDisconnectedError after waitTimeout. */
export async function connect(options: ConnectOptions): Promise<Client> {
  validateCluster(options.cluster);
  if (!options.bus && !options.nats) throw new TypeError('connect needs `nats` (server URLs) or `bus`');
  for (const key of ['timeout', 'attemptTimeout', 'waitTimeout', 'reconnectInterval', 'troubledInterval', 'transactionTimeout', 'invalidationQueueSize'] as const) {
    positive(key, options[key]);
  }
  positive('cacheSize', options.cacheSize, true);
  if (options.invalidationQueueSize !== undefined && !Number.isSafeInteger(options.invalidationQueueSize)) {
    throw new RangeError(`connect: invalidationQueueSize must be a whole number, got ${options.invalidationQueueSize}`);
  }
  const label = options.label ?? 'client';
  if (typeof label !== 'string' || label.length === 0 || label.length > 200 || label.includes('#')) {
    throw new RangeError(`connect: label must be 1-200 characters without '#', got ${JSON.stringify(label)}`);
  }
  const config = {
    waitTimeout: options.waitTimeout ?? CONNECTION_DEFAULTS.waitTimeout,
    reconnectInterval: options.reconnectInterval ?? CONNECTION_DEFAULTS.reconnectInterval,
    troubledInterval: options.troubledInterval ?? CONNECTION_DEFAULTS.troubledInterval,
  };
  const bus =
    options.bus ??
    (() =>
      createNatsBus({
        servers: options.nats!,
        name: `cohort-client-${label}`,
        reconnectTimeWait: config.reconnectInterval,
        timeout: Math.min(config.waitTimeout, 5_000),
      }));
  const client = new ClientImpl(
    bus,
    options.cluster,
    label,
    options.shardCount ?? DEFAULT_SHARD_COUNT,
    options.timeout,
    options.transactionTimeout ?? 30_000,
    options.invalidationQueueSize ?? 100,
    options.cacheSize ?? 20 * 1024 * 1024,
    options.attemptTimeout ?? 2_000,
    options.readOnlyFallback === true,
    config,
    resolveEnvironment(options.environment),
  );
  await client.open();
  return client;
}
