import { EventEmitter } from 'node:events';
import { cohortMetrics, type CohortMetrics } from '../../metrics/instruments.js';
import type { Clock } from '../../bus/clock.js';
import { resolveEnvironment, type Environment } from '../../bus/environment.js';
import { encode } from '../../bus/codec.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { cmdSubject, readOnlySubject, readSubject, validateApp } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import {
  CONNECTION_DEFAULTS,
  type ConnectionConfig,
  type ConnectionState,
  type Failure,
} from '../../machines/connection.js';
import type { CommandReply, PatchOperation, ReadReply, UserEvent, VerifyOutcome } from '../../protocol/messages.js';
import { ClientDisconnectedError, NetworkError, fromErrorBody } from '../../protocol/errors.js';
import { commandRequest, DEFAULT_WATCH_LEASE, readRequest } from '../../protocol/requests.js';
import { DEFAULT_SHARD_COUNT, shardOf } from '../../protocol/shard.js';
import { clientInbox } from '../../protocol/clientId.js';
import { recordedShardCount, ShardCountMismatchError } from '../../protocol/clusterSettings.js';
import { bucketName } from '../../protocol/names.js';
import { HEADER, headerText } from '../../protocol/headers.js';
import { BucketNotFoundError, PermissionDeniedError, TimeoutError } from '../../bus/errors.js';
import { Connection } from './connection.js';
import { ClientCounters, type Counter, type CounterOptions } from './counter.js';
import { DEFAULT_CACHE_SIZE, DocumentCache } from './documentCache.js';
import { Patches } from './patches.js';
import { RequestHeaders } from './requestHeaders.js';
import {
  ManySessions,
  type BroadcastOptions,
  type Gathered,
  type QueryOptions,
  type ScatterOptions,
  type ScatterQuery,
} from './scatter.js';
import { Transactions } from './transaction.js';
import { Verifier } from './verify.js';
import { withDeadline } from './deadline.js';

import { checkCallTimeout, checkConnectOptions, DEFAULT_CALL_TIMEOUT, type ConnectOptions } from './connectOptions.js';

export type { ConnectOptions } from './connectOptions.js';
export type { BroadcastOptions, Gathered, QueryOptions, ScatterOptions, ScatterQuery } from './scatter.js';

export interface CallOptions {
  /**
   * This call's deadline in ms (default the connection's `timeout`, 30 000):
   * past it the call fails with TimeoutError (or NetworkError sooner, when
   * the connection gives up), saying how long it waited and, in
   * `ambiguous`, whether a command may have committed.
   */
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
  /**
   * Another session of the same shard, taken into this transaction: its
   * lock is taken at its first step, and its events commit with this
   * transaction's, in the same journal message. A session of another
   * shard throws CrossShardTransactionError.
   */
  session(app: string, id: string): TransactionSession;
  /** True once the transaction can only roll back (the connection was disabled, or the server rolled it back). */
  readonly rollbackOnly: boolean;
}

/** A session taken into a transaction (`tx.session(app, id)`): steps on its working copy. */
export interface TransactionSession {
  readonly app: string;
  readonly id: string;
  /** Applies the event to this session's working copy; resolves with that copy's seq. */
  send(event: UserEvent): Promise<{ seq: number }>;
  /** This session's working copy, this transaction's changes included. */
  read(): Promise<ReadResult>;
}

export interface TransactionResult<T> extends SendResult {
  /** What the callback returned. */
  readonly value: T;
  /** Events committed (as one journal message), of every session it took in. */
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
   * The answer of one of the application's declared queries on this
   * session's document: UnknownQueryError, QueryFailedError, or TimeoutError
   * (never ambiguous) at the deadline.
   */
  query<T = unknown>(name: string, args?: unknown, options?: QueryOptions): Promise<T>;
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
  /**
   * Asks many sessions a named query of their application at once (one
   * message per shard) and gathers what answers by the deadline: each id
   * ends in exactly one of `results`, `errors` or `missing`.
   */
  scatter<T = unknown>(
    app: string,
    ids: Iterable<string>,
    query: ScatterQuery,
    options?: ScatterOptions,
  ): Promise<Gathered<T>>;
  /** Sends each session the event as its own command (de-duplicated like any send); gathered as a scatter is. */
  broadcast(
    app: string,
    ids: Iterable<string>,
    event: UserEvent,
    options?: BroadcastOptions,
  ): Promise<Gathered<SendResult>>;
  /**
   * Verifies every cached and subscribed document now (it also happens by
   * itself after each reconnect). With `timeout`, TimeoutError (never
   * ambiguous) at the deadline; what is verified by then still applies.
   */
  verify(options?: CallOptions): Promise<Verification[]>;
  /** Lets pending calls finish, then closes. */
  close(): Promise<void>;
}

/** What connect() settled on: every option given or defaulted, checked. */
interface ClientSettings {
  /** The bus to use, or how to open one (again after DISABLED). */
  readonly bus: Bus | (() => Promise<Bus>);
  readonly cluster: string;
  readonly label: string;
  readonly shardCount: number;
  /** Every call's deadline unless it gives its own. */
  readonly timeout: number;
  readonly transactionTimeout: number;
  readonly invalidationQueueSize: number;
  readonly cacheSize: number;
  readonly attemptTimeout: number;
  readonly watchLease: number;
  readonly readOnlyFallback: boolean;
  readonly connection: ConnectionConfig;
  readonly environment: Environment;
  readonly metrics: CohortMetrics;
}

/** The subjects of one session: commands, primary reads, and reads any copy may answer. */
interface SessionSubjects {
  readonly cmd: string;
  readonly read: string;
  readonly readOnly: string;
}

/**
 * Joins the parts: the connection carries requests, the cache keeps
 * documents, patches follow subscriptions, the verifier checks both after a
 * recovery, transactions and counters ride the same connection.
 */
class ClientImpl extends EventEmitter<ClientEvents> implements Client {
  readonly label: string;
  readonly #cluster: string;
  readonly #shardCount: number;
  readonly #timeout: number;
  readonly #newId: () => string;
  readonly #clock: Clock;
  readonly #conn: Connection;
  readonly #cache: DocumentCache;
  /** Every id this client has had: its own patches stay its own across reconnects. */
  readonly #ids = new Set<string>();
  readonly #patches: Patches;
  readonly #verifier: Verifier;
  readonly #transactions: Transactions;
  readonly #counters: ClientCounters;
  readonly #headers = new RequestHeaders();
  readonly #many: ManySessions;

  constructor(settings: ClientSettings) {
    super();
    const { cluster, environment } = settings;
    this.label = settings.label;
    this.#cluster = cluster;
    this.#shardCount = settings.shardCount;
    this.#timeout = settings.timeout;
    this.#newId = environment.newId;
    this.#clock = environment.clock;
    this.#cache = new DocumentCache({ cacheSize: settings.cacheSize });
    this.#conn = new Connection({
      label: settings.label,
      environment,
      config: settings.connection,
      attemptTimeout: settings.attemptTimeout,
      bus: settings.bus,
      cluster,
      readOnlyFallback: settings.readOnlyFallback,
      metrics: settings.metrics,
    });
    const connect = (): Promise<void> => this.open();
    this.#patches = new Patches({
      cluster,
      connection: this.#conn,
      cache: this.#cache,
      ownIds: this.#ids,
      connect,
      read: (app, id) => this.session(app, id).read(),
      catchUp: (app, id, since) => this.#verifier.ask(app, id, since),
      clock: environment.clock,
      shardCount: settings.shardCount,
      lease: settings.watchLease,
      attemptTimeout: settings.attemptTimeout,
    });
    this.#verifier = new Verifier({
      cluster,
      shardCount: settings.shardCount,
      timeout: settings.timeout,
      invalidationQueueSize: settings.invalidationQueueSize,
      connection: this.#conn,
      cache: this.#cache,
      patches: this.#patches,
      onVerified: (v) => this.emit('verified', v),
    });
    this.#transactions = new Transactions({
      connection: this.#conn,
      environment,
      shardCount: settings.shardCount,
      transactionTimeout: settings.transactionTimeout,
      callTimeout: settings.timeout,
    });
    this.#counters = new ClientCounters({
      cluster,
      connection: this.#conn,
      connect,
      clock: environment.clock,
      timeout: settings.timeout,
    });
    this.#many = new ManySessions({
      connection: this.#conn,
      environment,
      cluster,
      label: settings.label,
      shardCount: settings.shardCount,
      timeout: () => this.#timeout,
      send: (app, id, event, timeout) => this.session(app, id).send(event, { timeout }),
    });
    this.#conn.on('state', (state, reason) => {
      if (state === 'NORMAL') this.#ids.add(this.#conn.clientId);
      this.emit('state', state, reason);
    });
    this.#conn.on('recovered', () => {
      // The worker may have let a watch lapse while it could not hear this client.
      this.#patches.renewAll();
      void this.verify().catch(() => undefined);
    });
    this.#conn.on('connected', (n) => {
      if (n === 1) return;
      // A new connection (after DISABLED): patches subscribed again, on its bus, and the cache verified.
      this.#patches.resubscribe();
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

  /** The bus of the current connection; undefined while there is none. */
  get bus(): Bus | undefined {
    return this.#conn.bus;
  }

  session(app: string, id: string): SessionHandle {
    validateApp(app);
    const shard = shardOf(app, id, this.#shardCount);
    const cmd = cmdSubject(this.#cluster, shard, app, id, this.label);
    const read = readSubject(this.#cluster, shard, app, id, this.label);
    const readOnly = readOnlySubject(this.#cluster, shard, app, id, this.label);
    const session = `${app}/${id}`;
    return {
      app,
      id,
      send: async (event, options = {}) => {
        checkCallTimeout('send: timeout', options.timeout);
        const command = this.#newId();
        // Encoded now, so an event the codec cannot carry fails here; again only under a new connection's id.
        const body = once(this.id, (client) => encode(commandRequest(event, command, client, options.expectSeq)));
        const type = typeof event.type === 'string' ? headerText(event.type) : '';
        const reply = (await this.#conn.request({
          subject: cmd,
          body,
          headers: (client) => ({
            [HEADER.event]: type,
            [HEADER.client]: this.#headers.client(client),
            [HEADER.command]: command,
          }),
          what: `send ${event.type} to ${session}`,
          session,
          mutates: true,
          timeout: options.timeout ?? this.#timeout,
        })) as CommandReply;
        if (!reply.ok) throw fromErrorBody(reply.error);
        return { seq: reply.seq, duplicate: reply.duplicate === true, by: reply.by ?? '', epoch: reply.epoch ?? 0 };
      },
      read: (options = {}) => this.#read(app, id, { cmd, read, readOnly }, options),
      cached: () => {
        const c = this.#cache.peek(app, id);
        return c === undefined ? undefined : { ...c, stale: true, source: 'cache' };
      },
      subscribe: (listener) => this.#patches.subscribe(app, id, listener),
      query: <T>(name: string, args?: unknown, options?: QueryOptions) =>
        this.#many.query<T>(app, id, args === undefined ? { query: name } : { query: name, args }, options),
      transaction: (fn, options = {}) => this.#transactions.run({ app, id, shard, cmd }, fn, options),
    };
  }

  /** From the primary (or a secondary, read-only); from the cache when allowed and the connection is in trouble. */
  async #read(app: string, id: string, subjects: SessionSubjects, options: ReadCallOptions): Promise<ReadResult> {
    const session = `${app}/${id}`;
    checkCallTimeout('read: timeout', options.timeout, Infinity);
    const cached = options.allowStale === true ? this.#cache.peek(app, id) : undefined;
    const troubled = this.#conn.state !== 'NORMAL' && this.#conn.state !== 'CONNECTING';
    if (cached !== undefined && troubled && !this.#conn.readOnly) return { ...cached, stale: true, source: 'cache' };
    const body = once(this.id, (client) => encode(readRequest(client, options.minSeq)));
    let reply: ReadReply;
    try {
      reply = (await this.#conn.request({
        subject: options.readOnly === true ? subjects.readOnly : subjects.read,
        body,
        headers: this.#headers.read,
        what: `read ${session}`,
        session,
        mutates: false,
        timeout: options.timeout ?? this.#timeout,
        ...(options.readOnly === true ? {} : { fallback: subjects.readOnly }),
      })) as ReadReply;
    } catch (err) {
      const fallback = options.allowStale === true ? this.#cache.peek(app, id) : undefined;
      // At its deadline too: a stale copy now is what allowStale asked for, rather than an error.
      if (
        fallback !== undefined &&
        (err instanceof NetworkError || err instanceof ClientDisconnectedError || err instanceof TimeoutError)
      )
        return { ...fallback, stale: true, source: 'cache' };
      throw err;
    }
    if (!reply.ok) throw fromErrorBody(reply.error);
    const stale = reply.stale === true;
    if (!stale) this.#cache.set(app, id, { seq: reply.seq, document: reply.document, state: reply.state });
    return {
      seq: reply.seq,
      state: reply.state,
      document: reply.document,
      stale,
      source: stale ? 'secondary' : 'primary',
    };
  }

  scatter<T = unknown>(
    app: string,
    ids: Iterable<string>,
    query: ScatterQuery,
    options?: ScatterOptions,
  ): Promise<Gathered<T>> {
    return this.#many.scatter<T>(app, ids, query, options);
  }

  broadcast(
    app: string,
    ids: Iterable<string>,
    event: UserEvent,
    options?: BroadcastOptions,
  ): Promise<Gathered<SendResult>> {
    return this.#many.broadcast(app, ids, event, options) as Promise<Gathered<SendResult>>;
  }

  async verify(options: CallOptions = {}): Promise<Verification[]> {
    const { timeout } = options;
    checkCallTimeout('verify: timeout', timeout);
    const running = this.#verifier.verify();
    // Its requests have the connection's deadline; a shorter one of the caller's bounds the wait, not the work.
    if (timeout === undefined) return running;
    return withDeadline(running, this.#clock, timeout, () => new TimeoutError('verify', timeout, { ambiguous: false }));
  }

  counter(name: string, options: CounterOptions = {}): Counter {
    return this.#counters.handle(name, options);
  }

  async close(): Promise<void> {
    await this.#conn.close();
    this.#patches.close();
  }
}

/** A request body for `clientId`, encoded at once, and anew for another id (the request outlived its connection). */
function once(clientId: string, encodeFor: (clientId: string) => Uint8Array): (clientId: string) => Uint8Array {
  const first = encodeFor(clientId);
  return (id) => (id === clientId ? first : encodeFor(id));
}

/** A client of a cohort cluster. Resolves once connected; ClientDisconnectedError after waitTimeout. */
export async function connect(options: ConnectOptions): Promise<Client> {
  const label = checkConnectOptions(options);
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
        auth: options.auth,
        tls: options.tls,
        replyPrefix: options.replyPrefix,
        inboxPrefix: clientInbox(label, options.replyPrefix),
        name: `cohort-client-${label}`,
        reconnectTimeWait: config.reconnectInterval,
        timeout: Math.min(config.waitTimeout, 5_000),
      }));
  const client = new ClientImpl({
    bus,
    cluster: options.cluster,
    label,
    shardCount: options.shardCount ?? DEFAULT_SHARD_COUNT,
    timeout: options.timeout ?? DEFAULT_CALL_TIMEOUT,
    transactionTimeout: options.transactionTimeout ?? 30_000,
    invalidationQueueSize: options.invalidationQueueSize ?? 100,
    cacheSize: options.cacheSize ?? DEFAULT_CACHE_SIZE,
    attemptTimeout: options.attemptTimeout ?? 2_000,
    watchLease: options.watchLease ?? DEFAULT_WATCH_LEASE,
    readOnlyFallback: options.readOnlyFallback === true,
    connection: config,
    environment: resolveEnvironment(options.environment),
    metrics: cohortMetrics(options.meterProvider),
  });
  await client.open();
  try {
    await checkShardCount(client.bus, options.cluster, options.shardCount ?? DEFAULT_SHARD_COUNT);
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}

/**
 * Refuses a client configured with another shard count than the cluster's
 * (its commands would go to shards that are not their sessions'). Only read,
 * never created: before any worker has recorded it, or where this user may
 * not read it, the workers still refuse each mis-sharded command.
 */
async function checkShardCount(bus: Bus | undefined, cluster: string, configured: number): Promise<void> {
  if (bus === undefined) return;
  let recorded: number | undefined;
  try {
    const kv = await bus.kv({ bucket: bucketName(cluster, 'cluster'), create: false });
    recorded = await recordedShardCount(kv, cluster);
  } catch (err) {
    if (err instanceof BucketNotFoundError || err instanceof PermissionDeniedError) return;
    throw err;
  }
  if (recorded !== undefined && recorded !== configured)
    throw new ShardCountMismatchError(cluster, configured, recorded);
}
