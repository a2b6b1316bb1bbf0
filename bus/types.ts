/**
 * The bus: everything cohort needs from NATS, and nothing more. Two
 * implementations keep these semantics: `createNatsBus` (nats.js v3 over a
 * real server) and `createMemoryBus` (in process, on an injectable clock).
 * The contract suite in test/bus/contract.ts is the definition of "same".
 */

/** Text headers, readable in `nats sub`. Names keep their case; values are single-line. */
export type Headers = Readonly<Record<string, string>>;

export interface Message {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: Headers;
  /** Where an answer goes; absent when the sender expects none. */
  readonly reply?: string;
}

export interface Delivery extends Message {
  /**
   * Answers a request. Returns false when the message carried no reply subject, when
   * this connection has closed since (that answer is lost like any dropped reply, and the
   * requester times out; handlers often answer after awaiting, and may outlive the bus),
   * or when the reply subject is not under the bus's reply prefix: a forged reply subject
   * (a journal's, a bucket's) must never receive an answer. Those are counted in
   * `bus.refusedReplies`.
   */
  respond(data: Uint8Array, options?: { headers?: Headers }): boolean;
}

export type MessageHandler = (message: Delivery) => void;

export interface Subscription {
  readonly subject: string;
  readonly queue?: string;
  /** At once: even messages already on their way to this subscriber are dropped. */
  unsubscribe(): void;
  /**
   * Takes no new messages, hands over those already routed to it, then
   * unsubscribes: a request that reached this subscriber is still answered.
   */
  drain(): Promise<void>;
}

export interface PublishOptions {
  headers?: Headers;
  reply?: string;
}

export interface RequestOptions {
  /** Milliseconds; every request has one (gateways never park). */
  timeout: number;
  headers?: Headers;
}

export interface ServerInfo {
  readonly implementation: 'nats' | 'memory';
  /** nats-server version, such as "2.9.10"; the memory bus reports its own baseline. */
  readonly version: string;
  readonly maxPayload: number;
  readonly jetstream: boolean;
  /** How this connection is secured, as of connecting; absent on the memory bus, where nothing crosses a network. */
  readonly security?: ConnectionSecurity;
}

/** What the server said in its INFO about credentials and TLS, and whether this connection is encrypted. */
export interface ConnectionSecurity {
  /** The server asks every client for credentials (`auth_required`): this connection authenticated to get in. */
  readonly authRequired: boolean;
  /** The server accepts TLS connections only (`tls_required`). */
  readonly tlsRequired: boolean;
  /** The server verifies client certificates (`tls_verify`). */
  readonly tlsVerify: boolean;
  /** This connection runs over TLS. */
  readonly encrypted: boolean;
}

/** Server features newer than cohort's baseline (nats-server 2.9.10). */
export type Feature = 'multi-filter-consumers' | 'per-message-ttl' | 'consumer-pause' | 'atomic-batch';

export type BusStatus =
  | { type: 'disconnect' }
  | { type: 'reconnecting' }
  | { type: 'reconnect' }
  | { type: 'close' }
  | { type: 'error'; error: Error }
  /** A subscription handler threw; the bus kept delivering. */
  | { type: 'handler-error'; subject: string; error: unknown };

// ---------------------------------------------------------------- journal

export interface JournalConfig {
  /** Stream name: [A-Za-z0-9_-]+ */
  name: string;
  /** Subjects the stream captures, wildcards allowed. */
  subjects: string[];
  /** Message-id de-duplication window in ms (default 120 000, as NATS). */
  duplicateWindow?: number;
  /** Copies in a NATS cluster (default 1). Ignored by the memory bus. */
  replicas?: number;
  storage?: 'file' | 'memory';
  /** Shown by `nats stream info` / `nats kv status`; set when the store is made here, an existing one's is left as it is. */
  description?: string;
}

export interface AppendOptions {
  /** De-duplication id (`Nats-Msg-Id`). */
  msgId?: string;
  /** Fencing: the subject's last sequence must be this (0: the subject must be empty). */
  expectedLastSubjectSeq?: number;
  headers?: Headers;
  timeout?: number;
}

export interface AppendAck {
  readonly stream: string;
  readonly seq: number;
  /**
   * True when an earlier append with `msgId` is stored (inside the window):
   * nothing new was stored, and `seq` is that one's. An append the bus sent
   * more than once (again after a reconnect; on NATS also when a copy went
   * unanswered) whose earlier copy was stored is that copy: stored, not a
   * duplicate.
   */
  readonly duplicate: boolean;
}

export interface JournalEntry {
  readonly subject: string;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly headers: Headers;
  /** Milliseconds since the epoch (the server's clock, or the memory bus's clock). */
  readonly time: number;
}

export interface ReadOptions {
  /** First stream sequence to return (default 1). */
  fromSeq?: number;
  /** Stop after this many entries. */
  limit?: number;
}

export interface FollowOptions {
  /** First stream sequence to deliver; omitted: only entries stored after follow() resolves. */
  fromSeq?: number;
  /** A handler that throws or rejects; following goes on with the next entry. */
  onError?: (error: unknown, entry: JournalEntry) => void;
}

export interface JournalFollow {
  stop(): void;
}

export interface Journal {
  readonly name: string;
  append(subject: string, data: Uint8Array, options?: AppendOptions): Promise<AppendAck>;
  /**
   * Entries matching `filter` with seq >= fromSeq, in stream order, up to the
   * end of the journal as it was when the read began.
   */
  read(filter: string, options?: ReadOptions): AsyncIterable<JournalEntry>;
  /**
   * A live tail: entries matching `filter` from `fromSeq` (default: only
   * those stored from now on), then every new one as it is stored, in stream
   * order, one at a time (a handler's promise is awaited before the next).
   * Resolves once following has begun.
   */
  follow(
    filter: string,
    options: FollowOptions,
    handler: (entry: JournalEntry) => void | Promise<void>,
  ): Promise<JournalFollow>;
  /** The last sequence stored on exactly this subject; 0 when it has none. */
  lastSeq(subject: string): Promise<number>;
  /**
   * How many entries each subject matching `filter` holds now (subjects
   * without any are absent): one call to list a journal's sessions, where
   * reading every entry would cost the whole stream.
   */
  subjectCounts(filter: string): Promise<Map<string, number>>;
  /** The last entry stored on exactly this subject; null when it has none. */
  last(subject: string): Promise<JournalEntry | null>;
  /** Removes the subject's entries with seq < below. Returns how many went (made again after a dropped connection: how many the last try removed). */
  purge(subject: string, options: { below: number }): Promise<number>;
  /** Deletes the whole stream and its entries. */
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------- key-value

export interface KvConfig {
  /** Bucket name: [A-Za-z0-9_-]+ */
  bucket: string;
  /** Values kept per key (default 1). */
  history?: number;
  replicas?: number;
  storage?: 'file' | 'memory';
  /**
   * False: open the bucket only if it exists (BucketNotFoundError otherwise),
   * for readers whose users may not create streams (default true).
   */
  create?: boolean;
  /** Shown by `nats stream info` / `nats kv status`; set when the store is made here, an existing one's is left as it is. */
  description?: string;
}

export interface KvEntry {
  readonly bucket: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly revision: number;
  readonly operation: 'PUT' | 'DEL' | 'PURGE';
}

export interface KvWatchOptions {
  /** A key or a key pattern with `*` / `>` (default every key). */
  key?: string;
  /**
   * What comes before live updates: `last` (default) the current value of each
   * key, `history` everything kept, `updates` nothing.
   */
  include?: 'last' | 'history' | 'updates';
}

export interface KvWatch {
  stop(): void;
}

export interface KvStore {
  readonly bucket: string;
  /** The current value, or null when the key is absent or deleted. */
  get(key: string): Promise<KvEntry | null>;
  /** Insert if absent (or deleted); KeyExistsError otherwise. Returns the revision. */
  create(key: string, value: Uint8Array): Promise<number>;
  /** Compare-and-set; StaleRevisionError when the key moved on. Returns the new revision. */
  update(key: string, value: Uint8Array, expectedRevision: number): Promise<number>;
  /** Unconditional write. */
  put(key: string, value: Uint8Array): Promise<number>;
  delete(key: string, options?: { expectedRevision?: number }): Promise<void>;
  /** Keys holding a value, in no promised order. */
  keys(filter?: string): Promise<string[]>;
  /**
   * Ordered changes, deletes included. Resolves once the initial values asked
   * for have been handed to `handler`, so any write after it is seen.
   */
  watch(options: KvWatchOptions, handler: (entry: KvEntry) => void): Promise<KvWatch>;
  /** Deletes the bucket and every key in it. */
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------- blobs

export interface BlobConfig {
  bucket: string;
  replicas?: number;
  storage?: 'file' | 'memory';
  /**
   * Milliseconds a blob is kept after it is stored, when the bucket is made
   * here (unset or 0: for ever). An existing bucket asked for 0 must never
   * expire (StreamConfigMismatchError otherwise); asked for an expiry, or
   * nothing, it is taken with whatever expiry it has.
   */
  maxAge?: number;
  /** Shown by `nats stream info` / `nats kv status`; set when the store is made here, an existing one's is left as it is. */
  description?: string;
}

export interface BlobInfo {
  readonly name: string;
  readonly size: number;
}

/** Large bodies stored once and referenced by name (claim-check). */
export interface BlobStore {
  readonly bucket: string;
  put(name: string, data: Uint8Array): Promise<BlobInfo>;
  /** The bytes, or null when no such blob exists. */
  get(name: string): Promise<Uint8Array | null>;
  /** True when something was deleted. */
  delete(name: string): Promise<boolean>;
  /** Deletes the bucket and every blob in it. */
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------- the bus

/** Where requesters take their answers: `_INBOX` unless set, as nats.js's `inboxPrefix`. */
export const DEFAULT_INBOX_PREFIX = '_INBOX';

export interface Bus extends AsyncDisposable {
  readonly server: ServerInfo;
  /** Answers refused since this bus was opened because their reply subject was not under its reply prefix. */
  readonly refusedReplies: number;
  /**
   * Messages dropped because their subject did not match the subscription
   * they arrived on: a JetStream consumer pointed at a subscribed subject by
   * someone who may create consumers. Always 0 on the memory bus.
   */
  readonly strayDeliveries: number;
  /**
   * Messages handed to this bus's subscriptions so far (stray ones too):
   * while it grows, the server can reach this connection.
   */
  readonly received: number;

  /** Fire and forget. Throws PayloadTooLargeError / InvalidNameError synchronously. */
  publish(subject: string, data: Uint8Array, options?: PublishOptions): void;
  subscribe(subject: string, handler: MessageHandler, options?: { queue?: string }): Subscription;
  /** NoRespondersError when nobody listens, TimeoutError when nobody answers in time. */
  request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Message>;
  /** Resolves once everything published and subscribed so far has reached the server. */
  flush(): Promise<void>;

  /**
   * Opens the journal stream, creating it when absent. One already there is
   * checked, never changed: a setting that would lose entries or
   * de-duplication (streamConfig.ts) is a StreamConfigMismatchError.
   */
  journal(config: JournalConfig): Promise<Journal>;
  /** Opens the key-value bucket, creating it when absent; one already there is checked as a journal is. */
  kv(config: KvConfig): Promise<KvStore>;
  /** Opens the blob bucket, creating it when absent; one already there is checked as a journal is. */
  blobs(config: BlobConfig): Promise<BlobStore>;

  supports(feature: Feature): boolean;
  /** Throws UnsupportedFeatureError when the server lacks `feature`. */
  require(feature: Feature): void;

  /** Connection lifecycle as data, for the connection actor. Returns an unsubscribe. */
  onStatus(listener: (status: BusStatus) => void): () => void;
  /** Drains subscriptions and closes. Idempotent. */
  close(): Promise<void>;
}
