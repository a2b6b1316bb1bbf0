import type { Clock } from '../clock.js';
import {
  BucketNotFoundError,
  BusClosedError,
  ConnectionLostError,
  NoRespondersError,
  TimeoutError,
} from '../errors.js';
import { MINIMUM_SERVER_VERSION, requireFeature, serverSupports } from '../features.js';
import { validateName, validateSubject } from '../names.js';
import type {
  BlobConfig,
  BlobStore,
  Bus,
  BusStatus,
  Feature,
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
import { MemoryBlobStore } from './blobs.js';
import type { ClientContext } from './context.js';
import { MemoryJournal } from './journal.js';
import { kvStreamSettings, MemoryKv } from './kv.js';
import { checkPayload, copyBytes, normalizeHeaders } from './payload.js';
import { RequestMux } from './requests.js';
import type { MemoryServer } from './server.js';
import { DEFAULT_DUPLICATE_WINDOW, type MemoryStream } from './stream.js';
import { checkMaxAge, checkStream, type StreamNeeds } from '../streamConfig.js';
import { MemorySubscription, type SubscriptionOwner } from './subscription.js';
import type { WireMessage } from './payload.js';

/** An API call out: `attempt` numbers its sends, so the answer to one abandoned at a drop is ignored. */
interface OutCall {
  attempt: number;
  dropped(): void;
}

/** Calls safe to make twice (reads; an append, by its message id), sent again after a reconnect as the nats bus does. */
const REPEATED_ON_RECONNECT = new Set([
  'append',
  'last sequence',
  'last entry',
  'read',
  'purge',
  'kv get',
  'blob put',
  'blob get',
  'blob delete',
]);
/** Writes out when the connection drops fail at once, as on the nats bus: their caller decides. */
const FAILED_ON_DROP = new Set(['kv create', 'kv update', 'kv put', 'kv delete']);

/** A JetStream API call's default timeout on a simulated network, as nats.js's (5 s). */
export const DEFAULT_API_TIMEOUT = 5_000;

/**
 * One connection to a MemoryServer. Everything a handler sees arrives through
 * the server's delivery queue, never inside the call that caused it.
 */
export class MemoryBus implements Bus {
  readonly server: ServerInfo;
  readonly #host: MemoryServer;
  readonly #client: number;
  readonly #requests: RequestMux;
  readonly #subscriptions = new Set<MemorySubscription>();
  readonly #listeners = new Set<(status: BusStatus) => void>();
  readonly #closers = new Set<() => void>();
  readonly #owner: SubscriptionOwner;
  readonly #context: ClientContext;
  readonly #clock: Clock;
  readonly #apiTimeout: number;
  #closing: Promise<void> | undefined;
  /** While draining only publish still works (handlers may answer), as in nats.js. */
  #state: 'open' | 'draining' | 'closed' = 'open';
  /** API calls out on the network, for a restart to settle. */
  readonly #out = new Set<OutCall>();
  /** After a server restart, until reconnected: what it sends waits, as nats.js buffers it. */
  #reconnecting = false;
  /** Which restart it is reconnecting from: a later one supersedes an earlier one's reconnect. */
  #restarts = 0;
  readonly #waiting: Array<() => void> = [];

  refusedReplies = 0;
  readonly strayDeliveries = 0;
  received = 0;

  /** This connection's number on its server (what a simulation cuts off, holds or kills). */
  get connection(): number {
    return this.#client;
  }

  /**
   * `clock` times this connection's requests (and, on a simulated network,
   * its API calls, after `apiTimeout` ms); the server's clock stamps what it stores.
   */
  constructor(host: MemoryServer, clock: Clock, inboxPrefix: string, replyPrefix: string, apiTimeout: number) {
    this.#host = host;
    this.#clock = clock;
    this.#apiTimeout = apiTimeout;
    this.#client = host.connect({
      restarted: (after) => this.#restarted(after),
      killed: () => this.#killed(),
    });
    this.#requests = new RequestMux(host, this.#client, clock, inboxPrefix);
    this.server = Object.freeze({
      implementation: 'memory',
      version: MINIMUM_SERVER_VERSION,
      maxPayload: host.maxPayload,
      jetstream: true,
    });
    const report = (subject: string, error: unknown): void => this.#emit({ type: 'handler-error', subject, error });
    this.#owner = {
      server: host,
      client: this.#client,
      publish: (subject, data, options) => this.publish(subject, data, options),
      closed: () => this.#state === 'closed',
      inbox: `${replyPrefix}.`,
      refusedReply: () => void this.refusedReplies++,
      received: () => void this.received++,
      reportHandlerError: report,
      forget: (subscription) => this.#subscriptions.delete(subscription),
    };
    const client = this.#client;
    this.#context = {
      server: host,
      client,
      call: (operation, run, timeout) => this.#call(operation, run, timeout ?? this.#apiTimeout),
      deliver: (subject, data, task) => host.enqueue(task, client, subject, data),
      flush: () => (host.networked ? host.flush(client) : host.flush()),
      assertOpen: (operation) => this.#assertOpen(operation),
      onClose: (stop) => {
        this.#closers.add(stop);
        return () => this.#closers.delete(stop);
      },
      reportHandlerError: report,
    };
  }

  publish(subject: string, data: Uint8Array, options: PublishOptions = {}): void {
    if (this.#state === 'closed') throw new BusClosedError('publish');
    validateSubject(subject, { wildcards: false });
    const { reply } = options;
    if (reply !== undefined) validateSubject(reply, { wildcards: false, kind: 'reply subject' });
    const headers = normalizeHeaders(options.headers);
    checkPayload(data, headers, this.#host.maxPayload, `publish to ${subject}`);
    this.#send({ subject, data: copyBytes(data), headers, ...(reply === undefined ? {} : { reply }) });
  }

  /** To the server now, or once reconnected; `routed` is told how many took it (-1: it went nowhere). */
  #send(message: WireMessage, routed?: (count: number) => void): void {
    const send = (): void => {
      const count = this.#host.publish(message, this.#client);
      routed?.(count);
    };
    if (this.#reconnecting) this.#waiting.push(send);
    else send();
  }

  subscribe(subject: string, handler: MessageHandler, options: { queue?: string } = {}): Subscription {
    this.#assertOpen('subscribe');
    validateSubject(subject, { wildcards: true });
    if (options.queue !== undefined) validateName('queue', options.queue);
    const subscription = new MemorySubscription(this.#owner, subject, options.queue, handler);
    this.#subscriptions.add(subscription);
    return subscription;
  }

  async request(subject: string, data: Uint8Array, options: RequestOptions): Promise<Message> {
    this.#assertOpen('request');
    validateSubject(subject, { wildcards: false });
    const headers = normalizeHeaders(options.headers);
    const { timeout } = options;
    if (!Number.isFinite(timeout) || timeout < 1)
      throw new RangeError(`request timeout must be >= 1 ms, got ${timeout}`);
    checkPayload(data, headers, this.#host.maxPayload, `request to ${subject}`);
    const { reply, answer, fail } = this.#requests.open(subject, timeout);
    // Whether anyone listens is decided when the server routes it (-1: it never got there).
    this.#send({ subject, data: copyBytes(data), headers, reply }, (routed) => {
      if (routed === 0) fail(new NoRespondersError(subject));
    });
    return answer;
  }

  async flush(): Promise<void> {
    this.#assertOpen('flush');
    await this.#context.flush();
  }

  /** An existing stream is checked as on NATS (streamConfig.ts), and never reconfigured. */
  async journal(config: JournalConfig): Promise<Journal> {
    this.#assertOpen('journal');
    validateName('journal', config.name);
    const window = config.duplicateWindow ?? 0;
    if (!Number.isFinite(window) || window < 0) throw new RangeError(`duplicateWindow must be >= 0, got ${window}`);
    // nats-server: no subjects means the stream's name; a zero window means the default.
    const subjects = config.subjects.length > 0 ? [...config.subjects] : [config.name];
    const duplicateWindow = window === 0 ? DEFAULT_DUPLICATE_WINDOW : window;
    return this.#call(
      'stream create',
      () => {
        const existing = this.#host.stream(config.name);
        if (existing !== undefined) {
          refuseMismatch(existing, {
            subjects: { exactly: subjects },
            duplicateWindow,
            ...ANY_COPIES,
            keepForever: true,
          });
          return new MemoryJournal(this.#context, existing);
        }
        const stream = this.#host.openStream({
          name: config.name,
          subjects,
          duplicateWindow,
          maxPerSubject: 0,
          ...(config.description !== undefined && { description: config.description }),
        });
        return new MemoryJournal(this.#context, stream);
      },
      this.#apiTimeout,
    );
  }

  async kv(config: KvConfig): Promise<KvStore> {
    this.#assertOpen('kv');
    validateName('bucket', config.bucket);
    const history = config.history ?? 1;
    if (!Number.isSafeInteger(history) || history < 1) throw new RangeError(`history must be >= 1, got ${history}`);
    const settings = kvStreamSettings(config.bucket, history, config.description);
    return this.#call(
      'bucket create',
      () => {
        const existing = this.#host.stream(settings.name);
        if (existing === undefined && config.create === false) throw new BucketNotFoundError(config.bucket);
        if (existing !== undefined)
          refuseMismatch(existing, {
            subjects: { including: settings.subjects },
            perSubject: history,
            ...ANY_COPIES,
            keepForever: true,
          });
        const stream = existing ?? this.#host.openStream(settings);
        return new MemoryKv(this.#context, config.bucket, stream);
      },
      this.#apiTimeout,
    );
  }

  async blobs(config: BlobConfig): Promise<BlobStore> {
    this.#assertOpen('blobs');
    validateName('bucket', config.bucket);
    const maxAge = checkMaxAge(config.maxAge);
    return this.#call(
      'object store create',
      () => {
        const bucket = this.#host.blobBucket(config.bucket, maxAge, config.description);
        const { name, subjects } = this.#host.stream(`OBJ_${config.bucket}`)!.settings;
        const mismatch = checkStream(
          { name, subjects, maxAge: bucket.maxAge },
          { subjects: { including: subjects }, ...ANY_COPIES, keepForever: config.maxAge === 0 },
        );
        if (mismatch !== undefined) throw mismatch;
        return new MemoryBlobStore(this.#context, config.bucket, bucket);
      },
      this.#apiTimeout,
    );
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
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // Like nats.js's drain: no new messages, the queued ones still handled, then gone.
  async #shutdown(): Promise<void> {
    this.#state = 'draining';
    for (const subscription of this.#subscriptions) void subscription.drain();
    this.#requests.drain();
    await this.#context.flush();
    this.#state = 'closed';
    for (const subscription of [...this.#subscriptions]) subscription.unsubscribe();
    for (const stop of [...this.#closers]) stop();
    this.#host.disconnect(this.#client);
    this.#requests.close(new BusClosedError('request'));
    this.#emit({ type: 'close' });
  }

  /**
   * At the server, at once; on a simulated network as a call that may be
   * lost (TimeoutError) or late. Out when the server restarts, it is what
   * the nats bus does with a call out when its connection drops: a
   * repeatable one is sent again after the reconnect, a write fails at
   * once with ConnectionLostError, anything else waits out its timeout.
   */
  #call<T>(operation: string, run: () => T, timeout: number): T | Promise<T> {
    if (!this.#host.networked) return run();
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = this.#clock.setTimeout(() => {
        settled = true;
        this.#out.delete(out);
        reject(new TimeoutError(operation, timeout));
      }, timeout);
      const settle =
        <V>(then: (v: V) => void, attempt: number) =>
        (v: V): void => {
          if (settled || attempt !== out.attempt) return;
          settled = true;
          this.#out.delete(out);
          this.#clock.clearTimeout(timer);
          then(v);
        };
      const send = (): void => {
        const attempt = ++out.attempt;
        void this.#host.call(this.#client, operation, run).then(settle(resolve, attempt), settle(reject, attempt));
      };
      const out: OutCall = {
        attempt: 0,
        dropped: () => {
          if (settled) return;
          if (REPEATED_ON_RECONNECT.has(operation)) {
            out.attempt++;
            this.#waiting.push(send);
          } else if (FAILED_ON_DROP.has(operation)) settle(reject, out.attempt)(new ConnectionLostError());
        },
      };
      this.#out.add(out);
      if (this.#reconnecting) this.#waiting.push(send);
      else send();
    });
  }

  // The server restarted: its interest there is gone now; the connection notices, then reconnects, on its own clock.
  #restarted(after: number): void {
    const restart = ++this.#restarts;
    for (const subscription of this.#subscriptions) subscription.lost();
    this.#requests.lost();
    this.#clock.setTimeout(() => {
      if (this.#state === 'closed' || restart !== this.#restarts || this.#reconnecting) return;
      this.#reconnecting = true;
      for (const out of [...this.#out]) out.dropped();
      this.#emit({ type: 'disconnect' });
      this.#emit({ type: 'reconnecting' });
    }, 0);
    this.#clock.setTimeout(() => {
      if (this.#state === 'closed' || restart !== this.#restarts) return;
      this.#host.rejoin(this.#client);
      for (const subscription of this.#subscriptions) subscription.resubscribe();
      this.#requests.resubscribe();
      this.#reconnecting = false;
      this.#emit({ type: 'reconnect' });
      for (const send of this.#waiting.splice(0)) send();
    }, after);
  }

  // The process died: its server-side consumers go; nobody is told, nothing settles.
  #killed(): void {
    this.#state = 'closed';
    for (const stop of [...this.#closers]) stop();
  }

  #assertOpen(operation: string): void {
    if (this.#state !== 'open') throw new BusClosedError(operation);
  }

  #emit(status: BusStatus): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(status);
      } catch {
        // A status listener has nobody to report to; it must not stop the others.
      }
    }
  }
}

/** The memory bus keeps one copy, in memory: storage and replicas are not settings it has. */
const ANY_COPIES = { replicas: 1, storage: 'memory' } as const;

/** What a memory stream has of a stream's settings: its subjects, duplicate window and per-subject limit. */
function refuseMismatch(stream: MemoryStream, needs: StreamNeeds): void {
  const { name, subjects, duplicateWindow, maxPerSubject } = stream.settings;
  const mismatch = checkStream({ name, subjects, duplicateWindow, maxMsgsPerSubject: maxPerSubject }, needs);
  if (mismatch !== undefined) throw mismatch;
}
