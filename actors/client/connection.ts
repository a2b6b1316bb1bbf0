import { EventEmitter } from 'node:events';
import { createActor, type Actor } from 'xstate';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import type { Environment } from '../../bus/environment.js';
import { newClientId, noticeSubject } from '../../protocol/clientId.js';
import { decode } from '../../bus/codec.js';
import type { Bus, Subscription } from '../../bus/types.js';
import {
  connectionMachine,
  nextDeadline,
  type ConnectionConfig,
  type ConnectionEffect,
  type ConnectionState,
  type Failure,
} from '../../machines/connection.js';
import { parseClientNotice } from '../../protocol/control.js';
import { ClientDisconnectedError } from '../../protocol/errors.js';
import { AuthenticationError, CredentialsError, TlsError } from '../../bus/errors.js';
import { Attempts, type AttemptHost, type Pending, type Reply, type RequestSpec } from './attempts.js';
import { ReplyDecoder } from './replies.js';
import type { Attributes } from '@opentelemetry/api';
import type { CohortMetrics } from '../../metrics/instruments.js';

export interface ConnectionOptions {
  readonly label: string;
  readonly environment: Environment;
  readonly config: ConnectionConfig;
  /** One attempt's share of a request's time: an unanswered attempt is sent again. */
  readonly attemptTimeout: number;
  /** The bus to use, or how to open one (a new connection after DISABLED). */
  readonly bus: Bus | (() => Promise<Bus>);
  readonly cluster: string;
  /** While no primary answers, reads go to secondaries (ZEO read_only_fallback). */
  readonly readOnlyFallback: boolean;
  /** Where its state changes and its requests' retries are counted. */
  readonly metrics: CohortMetrics;
}

export interface ConnectionEvents {
  /** Every change of state, with why. */
  state: [state: ConnectionState, reason: string];
  /** A connection is made: the first, or a new one after DISABLED (possibly on a new bus). */
  connected: [connection: number];
  /** TROUBLE ended: requests flow again (verify caches now). */
  recovered: [afterMs: number];
  /** Every pending request failed; open transactions are rollback-only. */
  disabled: [failure: Failure, reason: string];
  /** Reads are served by secondaries (true) or by primaries again (false). */
  readOnly: [readOnly: boolean];
}

/**
 * Hosts the connection machine for one client: forwards the bus's status
 * and every request's outcome to it as events, and carries out what it
 * emits: retry the pending requests, fail them when DISABLED, open a new
 * bus connection after that. Each request's own attempts are in Attempts.
 */
/** Failures of opening that the same settings repeat: wrong credentials, unreadable files, refused certificates. */
function isFatal(err: unknown): err is Error {
  return err instanceof AuthenticationError || err instanceof CredentialsError || err instanceof TlsError;
}

/** One frozen attribute set per state: a change allocates nothing for its metric. */
const STATE_ATTRIBUTES: Readonly<Record<ConnectionState, Attributes>> = Object.freeze({
  NOT_CONNECTED: Object.freeze({ state: 'NOT_CONNECTED' }),
  CONNECTING: Object.freeze({ state: 'CONNECTING' }),
  NORMAL: Object.freeze({ state: 'NORMAL' }),
  TROUBLE: Object.freeze({ state: 'TROUBLE' }),
  DISABLED: Object.freeze({ state: 'DISABLED' }),
  CLOSED: Object.freeze({ state: 'CLOSED' }),
});

export class Connection extends EventEmitter<ConnectionEvents> {
  readonly #label: string;
  readonly #cluster: string;
  readonly #clock: Clock;
  readonly #newId: () => string;
  readonly #config: ConnectionConfig;
  readonly #attemptTimeout: number;
  /** The bus given, used as it is; or how to open one of our own (closed when DISABLED). */
  readonly #busSource: Bus | (() => Promise<Bus>);
  readonly #actor: Actor<typeof connectionMachine>;
  readonly #attempts: Attempts;
  #bus: Bus | undefined;
  #busStatus: (() => void) | undefined;
  #notices: Subscription | undefined;
  #tick: TimerHandle | undefined;
  #tickAt: number | null = null;
  #state: ConnectionState = 'NOT_CONNECTED';
  #clientId: string;
  #readOnly = false;
  /** Primary reads to poll while reads are served read-only. */
  readonly #probes = new Map<string, Uint8Array>();
  #closing = false;
  #opening = false;

  constructor(options: ConnectionOptions) {
    super();
    this.#label = options.label;
    this.#cluster = options.cluster;
    this.#clock = options.environment.clock;
    this.#newId = options.environment.newId;
    this.#config = options.config;
    this.#attemptTimeout = options.attemptTimeout;
    this.#busSource = options.bus;
    const host = this.#attemptHost();
    this.#attempts = new Attempts({
      host,
      environment: options.environment,
      replies: new ReplyDecoder({ cluster: options.cluster, source: host, clock: this.#clock }),
      attemptTimeout: options.attemptTimeout,
      troubledInterval: options.config.troubledInterval,
      readOnlyFallback: options.readOnlyFallback,
      retries: options.metrics.retries,
    });
    this.#clientId = newClientId(options.label, this.#newId);
    if (typeof options.bus !== 'function') this.#adopt(options.bus);
    this.#actor = createActor(connectionMachine, { input: { config: options.config, now: this.#clock.now() } });
    this.#actor.on('connected', (e) => this.#onConnected(e.connection));
    this.#actor.on('retry', (e) => this.#retryAll(e.reconnected));
    this.#actor.on('recovered', (e) => this.#onRecovered(e.after));
    this.#actor.on('disabled', (e) => this.#onDisabled(e));
    this.#actor.subscribe((s) => {
      const state = s.value as ConnectionState;
      if (state !== this.#state) {
        this.#state = state;
        options.metrics.connectionStates.add(1, STATE_ATTRIBUTES[state]);
        this.emit('state', state, s.context.reason);
        if (state === 'CONNECTING') this.#open();
      }
      this.#armTick();
    });
    this.#actor.start();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** This connection's id on the servers: the setter of its patches, the owner of its locks. A new connection gets a new one. */
  get clientId(): string {
    return this.#clientId;
  }

  /** Reads are being answered by secondaries because no primary answers. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  get bus(): Bus | undefined {
    return this.#bus;
  }

  /**
   * Connects now (first use); rejects with ClientDisconnectedError after
   * waitTimeout, or at once with the error when the credentials, their files
   * or the TLS certificates are refused.
   */
  async open(): Promise<void> {
    this.#fatal = undefined;
    if (this.#state === 'NORMAL' || this.#state === 'TROUBLE') return;
    const ready = new Promise<void>((resolve, reject) => {
      const onState = (state: ConnectionState): void => {
        if (state === 'NORMAL' || state === 'TROUBLE') done();
      };
      const onDisabled = (failure: Failure, reason: string): void =>
        done(this.#fatal ?? new ClientDisconnectedError(this.#clientId, `${failure}: ${reason}`));
      const done = (err?: Error): void => {
        this.off('state', onState);
        this.off('disabled', onDisabled);
        if (err) reject(err);
        else resolve();
      };
      this.on('state', onState);
      this.on('disabled', onDisabled);
    });
    this.#send({ type: 'CONNECT', now: this.#clock.now() });
    return ready;
  }

  /**
   * Carries one request to a final answer: a reply (ok, or an error the
   * worker says retrying cannot fix), TimeoutError, or NetworkError.
   */
  request(spec: RequestSpec): Promise<Reply> {
    if (this.#closing || this.#state === 'CLOSED')
      return Promise.reject(new ClientDisconnectedError(this.#clientId, 'the client is closed'));
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = this.#attempts.add(spec, resolve, reject);
      switch (this.#state) {
        case 'NOT_CONNECTED':
          this.#send({ type: 'CONNECT', now: this.#clock.now() });
          break;
        case 'NORMAL':
          void this.#attempts.attempt(p);
          break;
        case 'TROUBLE':
          // Queued for the next retry; a read with a fallback need not wait for it.
          if (this.#readOnly && spec.fallback !== undefined) void this.#attempts.attempt(p, true);
          break;
        default:
          break; // CONNECTING, DISABLED: sent once connected
      }
      // Not sent now: the connection's clock wakes at its deadline, whatever the connection does meanwhile.
      if (this.#state !== 'NORMAL' && spec.timeout !== undefined) this.#wakeBy(p.started + spec.timeout);
    });
  }

  /** Disconnected by force (a transaction ran past its timeout): DISABLED now. */
  disconnect(reason: string): void {
    this.#send({ type: 'DISCONNECT', now: this.#clock.now(), reason });
  }

  /** Lets every pending request finish (each is bounded), then closes. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#attempts.size > 0) await this.#attempts.idle();
    this.#send({ type: 'CLOSE', now: this.#clock.now() });
    this.#clearTick();
    this.#notices?.unsubscribe();
    this.#busStatus?.();
    const bus = this.#bus;
    this.#bus = undefined;
    if (bus !== undefined && typeof this.#busSource === 'function') await bus.close();
  }

  /** What the attempts see of this connection, and how they report to its machine; not part of the client's API. */
  #attemptHost(): AttemptHost {
    const connection = this;
    return {
      get bus() {
        return connection.#bus;
      },
      get state() {
        return connection.#state;
      },
      get readOnly() {
        return connection.#readOnly;
      },
      get clientId() {
        return connection.#clientId;
      },
      answered: () => this.#send({ type: 'ANSWERED', now: this.#clock.now() }),
      unanswered: (reason, now) => this.#send({ type: 'UNANSWERED', now, reason }),
      waiting: (deadline) => this.#wakeBy(deadline),
      fallBack: (subject, body, reason, now) => {
        this.#probes.set(subject, body);
        this.#setReadOnly(true);
        this.#send({ type: 'UNANSWERED', now, reason });
      },
    };
  }

  #send(event: Parameters<Actor<typeof connectionMachine>['send']>[0]): void {
    if (this.#actor.getSnapshot().status === 'active') this.#actor.send(event);
  }

  #adopt(bus: Bus): void {
    this.#bus = bus;
    this.#busStatus?.();
    this.#busStatus = bus.onStatus((s) => {
      const now = this.#clock.now();
      if (s.type === 'disconnect') this.#send({ type: 'BUS_DOWN', now, reason: 'the NATS connection dropped' });
      else if (s.type === 'reconnect') this.#send({ type: 'BUS_UP', now });
    });
  }

  /** CONNECTING: a bus of our own is opened (again and again until waitTimeout); a given one is used as it is. */
  #open(): void {
    if (this.#opening) return;
    this.#opening = true;
    void (async () => {
      try {
        while (this.#state === 'CONNECTING') {
          if (this.#bus !== undefined) {
            this.#send({ type: 'BUS_UP', now: this.#clock.now() });
            return;
          }
          const factory = this.#busSource as () => Promise<Bus>;
          try {
            const bus = await factory();
            if (this.#state !== 'CONNECTING') {
              await bus.close();
              return;
            }
            this.#adopt(bus);
          } catch (err) {
            if (isFatal(err)) {
              // The same credentials or certificates fail the same way: say so now, not after waitTimeout.
              this.#fatal = err;
              this.#send({ type: 'DISCONNECT', now: this.#clock.now(), reason: err.message });
              return;
            }
            this.#send({
              type: 'UNANSWERED',
              now: this.#clock.now(),
              reason: err instanceof Error ? err.message : String(err),
            });
            await new Promise<void>((r) => this.#clock.setTimeout(r, this.#config.reconnectInterval));
          }
        }
      } finally {
        this.#opening = false;
      }
    })();
  }

  /** Set when opening failed in a way retrying cannot mend. */
  #fatal: Error | undefined;

  #onConnected(connection: number): void {
    this.#clientId = newClientId(this.#label, this.#newId);
    this.#notices?.unsubscribe();
    const bus = this.#bus;
    if (bus !== undefined) {
      const id = this.#clientId;
      this.#notices = bus.subscribe(noticeSubject(this.#cluster, id), (m) => {
        let notice;
        try {
          notice = parseClientNotice(decode(m.data, { where: `notice to ${id}` }));
        } catch {
          return; // not ours to understand: ignore, keep listening
        }
        if (notice !== undefined && id === this.#clientId) {
          this.#send({
            type: 'DISCONNECT',
            now: this.#clock.now(),
            reason: `disconnected by worker ${notice.by}: ${notice.reason}`,
          });
        }
      });
    }
    // Deferred: the machine is still inside its transition.
    queueMicrotask(() => {
      this.emit('connected', connection);
      this.#retryAll();
    });
  }

  #onRecovered(after: number): void {
    this.#probes.clear();
    this.#setReadOnly(false);
    queueMicrotask(() => {
      this.emit('recovered', after);
      this.#retryAll();
    });
  }

  #onDisabled(e: Extract<ConnectionEffect, { type: 'disabled' }>): void {
    queueMicrotask(() => {
      this.#attempts.failAll(e.failure === 'wait-timeout' ? 'wait-timeout' : 'disabled', e.reason);
      this.#probes.clear();
      this.#setReadOnly(false);
      this.emit('disabled', e.failure, e.reason);
      // A bus of our own is closed: the next request opens a new connection.
      if (typeof this.#busSource === 'function' && this.#bus !== undefined) {
        const bus = this.#bus;
        this.#bus = undefined;
        this.#busStatus?.();
        this.#busStatus = undefined;
        this.#notices?.unsubscribe();
        this.#notices = undefined;
        void bus.close().catch(() => undefined);
      }
      this.#send({ type: 'SETTLED', now: this.#clock.now() });
      if (this.#attempts.size > 0) this.#send({ type: 'CONNECT', now: this.#clock.now() });
    });
  }

  /** `reconnected`: requests in flight went to a server connection that is gone; they are sent again too. */
  #retryAll(reconnected = false): void {
    this.#attempts.retryAll(reconnected);
    const bus = this.#bus;
    if (bus === undefined) return;
    for (const [subject, body] of this.#probes) void this.#probe(bus, subject, body);
  }

  /** Polls a primary while its reads go to secondaries: an answer means read-write is back. */
  async #probe(bus: Bus, subject: string, body: Uint8Array): Promise<void> {
    try {
      await bus.request(subject, body, { timeout: this.#attemptTimeout });
      this.#probes.delete(subject);
      this.#send({ type: 'ANSWERED', now: this.#clock.now() });
    } catch {
      // still no primary; the next retry polls again
    }
  }

  #setReadOnly(on: boolean): void {
    if (this.#readOnly === on) return;
    this.#readOnly = on;
    queueMicrotask(() => this.emit('readOnly', on));
  }

  /** One clock timer, for the machine's next deadline; it fires as a TICK. */
  #armTick(): void {
    const s = this.#actor.getSnapshot();
    const machineAt = s.status === 'active' ? nextDeadline(s.value as ConnectionState, s.context) : null;
    // A request with its own timeout, waiting to be sent, must not outwait it.
    const requestAt = this.#attempts.nextDeadline();
    const at = requestAt === null ? machineAt : Math.min(machineAt ?? Infinity, requestAt);
    if (at === this.#tickAt) return;
    this.#clearTick();
    this.#tickAt = at;
    if (at === null) return;
    this.#tick = this.#clock.setTimeout(
      () => {
        this.#tick = undefined;
        this.#tickAt = null;
        this.#send({ type: 'TICK', now: this.#clock.now() });
        // A TICK that changed nothing still needs the next deadline armed.
        this.#armTick();
        // Requests out of time give up even while others keep the connection NORMAL.
        this.#attempts.expire();
      },
      Math.max(0, at - this.#clock.now()),
    );
  }

  /** The clock wakes by `at`: re-armed only when that is sooner than it would (no scan of every pending request). */
  #wakeBy(at: number): void {
    if (this.#tickAt === null || at < this.#tickAt) this.#armTick();
  }

  #clearTick(): void {
    if (this.#tick !== undefined) this.#clock.clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#tickAt = null;
  }
}
