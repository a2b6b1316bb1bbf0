import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { Msg, NatsConnection } from '@nats-io/nats-core';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { errors } from '@nats-io/nats-core';
import { NatsConnectionImpl } from '@nats-io/nats-core/internal';
import {
  AuthenticationError,
  BusClosedError,
  JetStreamDisabledError,
  PayloadTooLargeError,
  PermissionDeniedError,
  UnsupportedFeatureError,
} from '../errors.js';
import { compareVersions, MINIMUM_SERVER_VERSION, requireFeature, serverSupports } from '../features.js';
import { subjectMatcher } from '../filters.js';
import { validateName, validateSubject } from '../names.js';
import { DEFAULT_INBOX_PREFIX } from '../types.js';
import type {
  BlobConfig,
  BlobStore,
  Bus,
  BusStatus,
  Delivery,
  Feature,
  Headers,
  Journal,
  JournalConfig,
  KvConfig,
  KvStore,
  Message,
  MessageHandler,
  PublishOptions,
  RequestOptions,
  ServerInfo,
  Subscription,
} from '../types.js';
import { openNatsBlobs } from './blobs.js';
import { resolveSecurity, type NatsAuth, type NatsTls } from './credentials.js';
import { headersOf, packHeaders, type PackedHeaders } from './headers.js';
import { openNatsJournal } from './journal.js';
import { openNatsKv } from './kv.js';
import { tlsFailure, tlsFailureBehindTimeout } from './tls.js';
import { translate } from './errors.js';
import { Link } from './link.js';
import { ReplyMux } from './replies.js';

export interface NatsBusOptions extends Pick<
  NodeConnectionOptions,
  | 'name'
  | 'authenticator'
  | 'maxReconnectAttempts'
  | 'reconnectTimeWait'
  | 'pingInterval'
  | 'waitOnFirstConnect'
  | 'noAsyncTraces'
> {
  servers: string | string[];
  /** Connect timeout in ms (default 5 000). */
  timeout?: number;
  /** Timeout of JetStream API calls and appends in ms (default 5 000). */
  apiTimeout?: number;
  /** Credentials, as the `nats` CLI takes them (files are read at connect). */
  auth?: NatsAuth;
  /** TLS files; given (even `{}`), the connection refuses a server without TLS. */
  tls?: NatsTls;
  /** Where this bus takes answers to its requests (default `replyPrefix`); with per-user permissions, the user's own. */
  inboxPrefix?: string;
  /**
   * The only place this bus sends answers to (default `_INBOX`, as nats.js):
   * every process of a cluster uses the same, and each one's inbox lies under it.
   */
  replyPrefix?: string;
  /**
   * After the connection drops, each reconnect attempt waits this many ms
   * plus a random jitter of up to 1.5 times as much (so processes that lost
   * the same server do not all come back at once). Default: nats.js's own
   * (2 s plus up to 100 ms; 1 s with TLS). Workers use 100 (100-250 ms).
   */
  reconnectInterval?: number;
}

/** A message off the wire; headers are converted only when someone looks. */
class NatsDelivery implements Delivery {
  #headers: Headers | undefined;
  constructor(
    readonly msg: Msg,
    readonly owner: NatsBus,
  ) {}
  get subject(): string {
    return this.msg.subject;
  }
  get data(): Uint8Array {
    return this.msg.data;
  }
  get reply(): string | undefined {
    return this.msg.reply || undefined;
  }
  get headers(): Headers {
    return (this.#headers ??= headersOf(this.msg));
  }
  respond(data: Uint8Array, options?: { headers?: Headers }): boolean {
    if (!this.msg.reply) return false;
    if (!this.msg.reply.startsWith(this.owner.inbox)) {
      this.owner.refusedReplies++;
      return false;
    }
    const headers = packHeaders(options?.headers)?.headers;
    const nc = this.owner.nc;
    if (nc.isClosed() || nc.isDraining()) return false;
    return this.msg.respond(data, headers ? { headers } : undefined);
  }
}

class NatsBus implements Bus {
  readonly server: ServerInfo;
  refusedReplies = 0;
  strayDeliveries = 0;
  received = 0;
  /** `<replyPrefix>.`: answers go only under it. */
  readonly inbox: string;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #listeners = new Set<(s: BusStatus) => void>();
  readonly #replies: ReplyMux;
  /** Up or down, as the connection's status says: calls out when it drops fail at once. */
  readonly link = new Link();
  #closing: Promise<void> | undefined;

  constructor(
    readonly nc: NatsConnection,
    jsm: JetStreamManager,
    readonly apiTimeout: number,
    inboxPrefix: string,
    replyPrefix: string,
  ) {
    const info = nc.info!;
    this.server = {
      implementation: 'nats',
      version: info.version,
      maxPayload: info.max_payload,
      jetstream: info.jetstream === true,
      security: {
        authRequired: info.auth_required === true,
        tlsRequired: info.tls_required === true,
        tlsVerify: info.tls_verify === true,
        // The socket knows; nats.js refuses a plain connection to a server that requires TLS, so that is the fallback.
        encrypted: nc instanceof NatsConnectionImpl ? nc.protocol.transport.isEncrypted() : info.tls_required === true,
      },
    };
    this.#jsm = jsm;
    this.#js = jetstream(nc, { timeout: apiTimeout });
    this.inbox = `${replyPrefix}.`;
    this.#replies = new ReplyMux(nc, inboxPrefix);
    void this.#forwardStatus();
  }

  async #forwardStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.link.down();
          this.#replies.lost();
          this.#emit({ type: s.type });
          break;
        case 'reconnect':
          this.link.restored();
          this.#emit({ type: s.type });
          break;
        case 'reconnecting':
          this.#emit({ type: s.type });
          break;
        case 'error':
          if (s.error instanceof errors.PermissionViolationError && s.error.operation === 'publish')
            this.#replies.refuse(
              s.error.subject,
              new PermissionDeniedError('publish', s.error.subject, { cause: s.error }),
            );
          this.#emit({ type: 'error', error: s.error });
          break;
      }
    }
  }

  #emit(status: BusStatus): void {
    for (const l of this.#listeners) l(status);
  }

  #checkOpen(operation: string): void {
    if (this.#closing !== undefined || this.nc.isClosed()) throw new BusClosedError(operation);
  }

  /** The headers checked and encoded; PayloadTooLargeError when they and the body pass max_payload. */
  #pack(data: Uint8Array, headers: Headers | undefined, where: string): PackedHeaders | undefined {
    const block = packHeaders(headers);
    const size = data.length + (block?.size ?? 0);
    if (size > this.server.maxPayload) throw new PayloadTooLargeError(size, this.server.maxPayload, where);
    return block?.headers;
  }

  publish(subject: string, data: Uint8Array, options?: PublishOptions): void {
    this.#checkOpen('publish');
    validateSubject(subject, { wildcards: false });
    if (options?.reply !== undefined) validateSubject(options.reply, { wildcards: false, kind: 'reply subject' });
    const headers = this.#pack(data, options?.headers, `publish ${subject}`);
    if (headers === undefined && options?.reply === undefined) this.nc.publish(subject, data);
    else this.nc.publish(subject, data, { headers, reply: options?.reply });
  }

  subscribe(subject: string, handler: MessageHandler, options?: { queue?: string }): Subscription {
    this.#checkOpen('subscribe');
    validateSubject(subject, { wildcards: true });
    if (options?.queue !== undefined) validateName('queue group', options.queue);
    const matches = subjectMatcher(subject);
    const sub = this.nc.subscribe(subject, {
      queue: options?.queue,
      callback: (err, msg) => {
        if (err) {
          this.#emit({ type: 'error', error: err });
          return;
        }
        this.received++;
        if (!matches(msg.subject)) {
          this.strayDeliveries++;
          return;
        }
        try {
          handler(new NatsDelivery(msg, this));
        } catch (error) {
          this.#emit({ type: 'handler-error', subject: msg.subject, error });
        }
      },
    });
    return {
      subject,
      queue: options?.queue,
      unsubscribe: () => sub.unsubscribe(),
      drain: async () => {
        if (sub.isClosed() || this.nc.isClosed()) return;
        await sub.drain().catch((err: unknown) => {
          if (!this.nc.isClosed()) throw translate(err, 'drain', subject, this.apiTimeout);
        });
      },
    };
  }

  async request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Message> {
    this.#checkOpen('request');
    validateSubject(subject, { wildcards: false });
    const headers = this.#pack(data, options.headers, `request ${subject}`);
    try {
      const m = await this.#replies.request(subject, data, headers, options.timeout, 'request');
      return { subject: m.subject, data: m.data, headers: headersOf(m) };
    } catch (err) {
      throw translate(err, 'request', subject, options.timeout);
    }
  }

  async flush(): Promise<void> {
    this.#checkOpen('flush');
    await this.nc.flush();
  }

  async journal(config: JournalConfig): Promise<Journal> {
    this.#checkOpen('journal');
    return openNatsJournal(
      this.#js,
      this.#jsm,
      config,
      this.server.maxPayload,
      this.apiTimeout,
      this.#replies,
      this.link,
    );
  }

  async kv(config: KvConfig): Promise<KvStore> {
    this.#checkOpen('kv');
    return openNatsKv(this.#js, config, this.server.maxPayload, this.link);
  }

  async blobs(config: BlobConfig): Promise<BlobStore> {
    this.#checkOpen('blobs');
    return openNatsBlobs(this.#js, config, this.link);
  }

  supports(feature: Feature): boolean {
    return serverSupports(this.server.version, feature);
  }

  require(feature: Feature): void {
    requireFeature(this.server.version, feature);
  }

  onStatus(listener: (status: BusStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.nc.isClosed()) {
        await this.nc.drain().catch(() => this.nc.close());
      }
      this.#replies.close();
      this.#emit({ type: 'close' });
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Connects to NATS and checks the server can carry cohort: at least
 * nats-server 2.9.10, with JetStream enabled.
 */
export async function createNatsBus(options: NatsBusOptions): Promise<Bus> {
  const {
    apiTimeout = 5_000,
    replyPrefix = DEFAULT_INBOX_PREFIX,
    auth,
    tls,
    reconnectInterval,
    ...connectOptions
  } = options;
  if (reconnectInterval !== undefined && !(Number.isFinite(reconnectInterval) && reconnectInterval > 0))
    throw new RangeError(`reconnectInterval must be a number of ms above 0 (got ${reconnectInterval})`);
  const reconnect =
    reconnectInterval === undefined
      ? {}
      : {
          reconnectTimeWait: reconnectInterval,
          reconnectJitter: reconnectInterval * 1.5,
          reconnectJitterTLS: reconnectInterval * 1.5,
        };
  const inboxPrefix = options.inboxPrefix ?? replyPrefix;
  validateSubject(replyPrefix, { wildcards: false, kind: 'reply prefix' });
  validateSubject(inboxPrefix, { wildcards: false, kind: 'inbox prefix' });
  const security = await resolveSecurity(auth, tls);
  // noAsyncTraces: nats.js otherwise builds two Error objects (for stack traces) per request,
  // a third of the CPU of a busy worker; our errors carry subject and operation instead.
  let nc: NatsConnection;
  try {
    nc = await connect({
      timeout: 5_000,
      maxReconnectAttempts: -1,
      noAsyncTraces: true,
      ...security,
      ...reconnect,
      ...connectOptions,
      inboxPrefix,
    });
  } catch (err) {
    if (
      err instanceof errors.AuthorizationError ||
      (err as Error | undefined)?.cause instanceof errors.AuthorizationError
    )
      throw new AuthenticationError(String(options.servers), { cause: err });
    const tlsError =
      tlsFailure(err, String(options.servers)) ??
      (err instanceof errors.TimeoutError
        ? await tlsFailureBehindTimeout(options.servers, tls, String(options.servers))
        : undefined);
    throw tlsError ?? err;
  }
  try {
    const version = nc.info?.version ?? '0.0.0';
    if (compareVersions(version, MINIMUM_SERVER_VERSION) < 0) {
      throw new UnsupportedFeatureError('cohort', version, MINIMUM_SERVER_VERSION);
    }
    if (nc.info?.jetstream !== true) {
      throw new JetStreamDisabledError(nc.getServer());
    }
    const jsm = await jetstreamManager(nc, { timeout: apiTimeout });
    return new NatsBus(nc, jsm, apiTimeout, inboxPrefix, replyPrefix);
  } catch (err) {
    await nc.close();
    throw err;
  }
}
