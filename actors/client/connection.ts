import { EventEmitter } from 'node:events';
import { createActor, type Actor } from 'xstate';
import type { TimerHandle } from '../../bus/clock.js';
import type { Environment } from '../../bus/environment.js';
import { newClientId } from '../../protocol/clientId.js';
import { decode } from '../../bus/codec.js';
import { BusClosedError, BusError, NoRespondersError, TimeoutError } from '../../bus/errors.js';
import { clientSubject } from '../../bus/subjects.js';
import type { Bus, Message, Subscription } from '../../bus/types.js';
import {
  connectionMachine,
  nextDeadline,
  type ConnectionConfig,
  type ConnectionEffect,
  type ConnectionState,
  type Failure,
} from '../../machines/connection.js';
import { parseClientNotice } from '../../protocol/control.js';
import type { ErrorBody } from '../../protocol/messages.js';
import { ClientDisconnectedError, NetworkError, fromErrorBody } from '../../protocol/errors.js';

/** A reply from a worker: the fields every reply has. */
export interface Reply {
  readonly ok: boolean;
  readonly error?: ErrorBody;
  readonly [key: string]: unknown;
}

/** One request as the connection carries it until it has a final answer. */
export interface RequestSpec {
  readonly subject: string;
  /** Sent as is on every attempt, so a command keeps its command id. */
  readonly body: Uint8Array;
  /** For errors: `send DEPOSIT to ledger/alice`. */
  readonly what: string;
  /** `app/id`. */
  readonly session: string;
  /** True when an attempt may change the session: an unanswered one makes the outcome ambiguous. */
  readonly mutates: boolean;
  /** Gives up with TimeoutError after this many ms; without it, after troubledInterval of failures. */
  readonly timeout?: number;
  /** Read-only fallback: where a read goes while the primary does not answer (secondaries). */
  readonly fallback?: string;
}

export interface ConnectionOptions {
  readonly label: string;
  readonly environment: Environment;
  readonly config: ConnectionConfig;
  /** One attempt's share of a request's time: an unanswered attempt is sent again. */
  readonly attemptTimeout: number;
  /** The bus to use, or how to open one (a new connection after DISABLED). */
  readonly bus: Bus | (() => Promise<Bus>);
  /** Turns a reply message into its body (claim-checked bodies are fetched). */
  readonly decodeReply: (m: Message, what: string) => Promise<unknown>;
  readonly cluster: string;
  /** While no primary answers, reads go to secondaries (ZEO read_only_fallback). */
  readonly readOnlyFallback: boolean;
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

interface Pending {
  readonly spec: RequestSpec;
  readonly started: number;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (err: Error) => void;
  /** First failed attempt: the request gives up troubledInterval after it. */
  troubleSince: number | undefined;
  /** An attempt went out and no answer came back: it may have been applied. */
  ambiguous: boolean;
  lastError: Error | undefined;
  inFlight: boolean;
  /** Retry after a retryable answer (moved, locked), on its own short pause. */
  pause: TimerHandle | undefined;
  answeredRetries: number;
  /** Attempts so far; only the latest one's failure counts (an earlier one may still be out after a reconnect). */
  attempts: number;
  settled: boolean;
}

/** Pauses between retries of a request a worker answered "retry" (moved, locked). */
const ANSWERED_RETRY_PAUSES = [5, 10, 20, 40, 50];

/**
 * Hosts the connection machine for one client: forwards the bus's status
 * and every request's outcome to it as events, and carries out what it
 * emits: retry the pending requests, fail them when DISABLED, open a new
 * bus connection after that.
 */
export class Connection extends EventEmitter<ConnectionEvents> {
  readonly #o: ConnectionOptions;
  readonly #actor: Actor<typeof connectionMachine>;
  readonly #pending = new Set<Pending>();
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
  /** Waiting for the last pending request to settle (a graceful close). */
  #idle: (() => void)[] = [];
  #opening = false;

  constructor(options: ConnectionOptions) {
    super();
    this.#o = options;
    this.#clientId = newClientId(options.label, options.environment.newId);
    if (typeof options.bus !== 'function') this.#adopt(options.bus);
    this.#actor = createActor(connectionMachine, { input: { config: options.config, now: options.environment.clock.now() } });
    this.#actor.on('connected', (e) => this.#onConnected(e.connection));
    this.#actor.on('retry', (e) => this.#retryAll(e.reconnected));
    this.#actor.on('recovered', (e) => this.#onRecovered(e.after));
    this.#actor.on('disabled', (e) => this.#onDisabled(e));
    this.#actor.subscribe((s) => {
      const state = s.value as ConnectionState;
      if (state !== this.#state) {
        this.#state = state;
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

  /** Connects now (first use); rejects with ClientDisconnectedError after waitTimeout. */
  async open(): Promise<void> {
    if (this.#state === 'NORMAL' || this.#state === 'TROUBLE') return;
    const ready = new Promise<void>((resolve, reject) => {
      const onState = (state: ConnectionState): void => {
        if (state === 'NORMAL' || state === 'TROUBLE') done();
      };
      const onDisabled = (failure: Failure, reason: string): void => done(new ClientDisconnectedError(this.#clientId, `${failure}: ${reason}`));
      const done = (err?: Error): void => {
        this.off('state', onState);
        this.off('disabled', onDisabled);
        if (err) reject(err);
        else resolve();
      };
      this.on('state', onState);
      this.on('disabled', onDisabled);
    });
    this.#send({ type: 'CONNECT', now: this.#o.environment.clock.now() });
    return ready;
  }

  /**
   * Carries one request to a final answer: a reply (ok, or an error the
   * worker says retrying cannot fix), TimeoutError, or NetworkError.
   */
  request(spec: RequestSpec): Promise<Reply> {
    if (this.#closing || this.#state === 'CLOSED') return Promise.reject(new ClientDisconnectedError(this.#clientId, 'the client is closed'));
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = {
        spec,
        started: this.#o.environment.clock.now(),
        resolve,
        reject,
        troubleSince: undefined,
        ambiguous: false,
        lastError: undefined,
        inFlight: false,
        pause: undefined,
        answeredRetries: 0,
        attempts: 0,
        settled: false,
      };
      this.#pending.add(p);
      switch (this.#state) {
        case 'NOT_CONNECTED':
          this.#send({ type: 'CONNECT', now: this.#o.environment.clock.now() });
          break;
        case 'NORMAL':
          void this.#attempt(p);
          break;
        case 'TROUBLE':
          // Queued for the next retry; a read with a fallback need not wait for it.
          if (this.#readOnly && spec.fallback !== undefined) void this.#attempt(p, true);
          break;
        default:
          break; // CONNECTING, DISABLED: sent once connected
      }
    });
  }

  /** Disconnected by force (a transaction ran past its timeout): DISABLED now. */
  disconnect(reason: string): void {
    this.#send({ type: 'DISCONNECT', now: this.#o.environment.clock.now(), reason });
  }

  /** Lets every pending request finish (each is bounded), then closes. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#pending.size > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
    this.#send({ type: 'CLOSE', now: this.#o.environment.clock.now() });
    this.#clearTick();
    this.#notices?.unsubscribe();
    this.#busStatus?.();
    const bus = this.#bus;
    this.#bus = undefined;
    if (bus !== undefined && typeof this.#o.bus === 'function') await bus.close();
  }

  #send(event: Parameters<Actor<typeof connectionMachine>['send']>[0]): void {
    if (this.#actor.getSnapshot().status === 'active') this.#actor.send(event);
  }

  #adopt(bus: Bus): void {
    this.#bus = bus;
    this.#busStatus?.();
    this.#busStatus = bus.onStatus((s) => {
      const now = this.#o.environment.clock.now();
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
            this.#send({ type: 'BUS_UP', now: this.#o.environment.clock.now() });
            return;
          }
          const factory = this.#o.bus as () => Promise<Bus>;
          try {
            const bus = await factory();
            if (this.#state !== 'CONNECTING') {
              await bus.close();
              return;
            }
            this.#adopt(bus);
          } catch (err) {
            this.#send({ type: 'UNANSWERED', now: this.#o.environment.clock.now(), reason: err instanceof Error ? err.message : String(err) });
            await new Promise<void>((r) => this.#o.environment.clock.setTimeout(r, this.#o.config.reconnectInterval));
          }
        }
      } finally {
        this.#opening = false;
      }
    })();
  }

  #onConnected(connection: number): void {
    this.#clientId = newClientId(this.#o.label, this.#o.environment.newId);
    this.#notices?.unsubscribe();
    const bus = this.#bus;
    if (bus !== undefined) {
      const id = this.#clientId;
      this.#notices = bus.subscribe(clientSubject(this.#o.cluster, id), (m) => {
        let notice;
        try {
          notice = parseClientNotice(decode(m.data, { where: `notice to ${id}` }));
        } catch {
          return; // not ours to understand: ignore, keep listening
        }
        if (notice !== undefined && id === this.#clientId) {
          this.#send({ type: 'DISCONNECT', now: this.#o.environment.clock.now(), reason: `disconnected by worker ${notice.by}: ${notice.reason}` });
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
      const now = this.#o.environment.clock.now();
      for (const p of [...this.#pending]) {
        const err =
          e.failure === 'wait-timeout'
            ? new ClientDisconnectedError(this.#clientId, e.reason)
            : new NetworkError(p.spec.what, p.spec.session, now - p.started, p.spec.mutates && (p.ambiguous || p.inFlight), e.reason, { cause: p.lastError });
        this.#settle(p, err);
      }
      this.#probes.clear();
      this.#setReadOnly(false);
      this.emit('disabled', e.failure, e.reason);
      // A bus of our own is closed: the next request opens a new connection.
      if (typeof this.#o.bus === 'function' && this.#bus !== undefined) {
        const bus = this.#bus;
        this.#bus = undefined;
        this.#busStatus?.();
        this.#busStatus = undefined;
        this.#notices?.unsubscribe();
        this.#notices = undefined;
        void bus.close().catch(() => undefined);
      }
      this.#send({ type: 'SETTLED', now: this.#o.environment.clock.now() });
      if (this.#pending.size > 0) this.#send({ type: 'CONNECT', now: this.#o.environment.clock.now() });
    });
  }

  /** `reconnected`: requests in flight went to a server connection that is gone; nats.js would let them wait out their timeout. */
  #retryAll(reconnected = false): void {
    for (const p of [...this.#pending]) {
      if ((reconnected || !p.inFlight) && p.pause === undefined && !p.settled) void this.#attempt(p, this.#readOnly && p.spec.fallback !== undefined);
    }
    const bus = this.#bus;
    if (bus === undefined) return;
    for (const [subject, body] of this.#probes) void this.#probe(bus, subject, body);
  }

  /** Polls a primary while its reads go to secondaries: an answer means read-write is back. */
  async #probe(bus: Bus, subject: string, body: Uint8Array): Promise<void> {
    try {
      await bus.request(subject, body, { timeout: this.#o.attemptTimeout });
      this.#probes.delete(subject);
      this.#send({ type: 'ANSWERED', now: this.#o.environment.clock.now() });
    } catch {
      // still no primary; the next retry polls again
    }
  }

  async #attempt(p: Pending, fallback = false): Promise<void> {
    const bus = this.#bus;
    if (bus === undefined || p.settled) return;
    const now = this.#o.environment.clock.now();
    const remaining = p.spec.timeout === undefined ? Infinity : p.started + p.spec.timeout - now;
    if (remaining <= 0) return this.#giveUp(p);
    const subject = fallback ? p.spec.fallback! : p.spec.subject;
    const attempt = ++p.attempts;
    p.inFlight = true;
    let m: Message;
    try {
      m = await bus.request(subject, p.spec.body, { timeout: Math.min(remaining, this.#o.attemptTimeout) });
    } catch (err) {
      if (p.settled || attempt !== p.attempts) return; // a later attempt speaks for it
      p.inFlight = false;
      return this.#unanswered(p, err, fallback);
    }
    if (attempt === p.attempts) p.inFlight = false;
    if (p.settled) return;
    let reply: Reply;
    try {
      reply = (await this.#o.decodeReply(m, p.spec.what)) as Reply;
    } catch (err) {
      // An answer we cannot read: the worker is there, the request failed.
      this.#send({ type: 'ANSWERED', now: this.#o.environment.clock.now() });
      return this.#settle(p, err instanceof Error ? err : new Error(String(err)));
    }
    // In NORMAL an answer changes nothing: spare the machine a transition per request.
    if (!fallback && this.#state !== 'NORMAL') this.#send({ type: 'ANSWERED', now: this.#o.environment.clock.now() });
    if (reply.ok || reply.error === undefined || !reply.error.retryable) return this.#settle(p, reply);
    // Answered "retry" (moved, locked, not enough replicas): this request alone waits a moment.
    p.lastError = fromErrorBody(reply.error);
    p.troubleSince ??= this.#o.environment.clock.now();
    if (this.#outOfTime(p)) return this.#giveUp(p);
    const pause = ANSWERED_RETRY_PAUSES[Math.min(p.answeredRetries++, ANSWERED_RETRY_PAUSES.length - 1)]!;
    p.pause = this.#o.environment.clock.setTimeout(() => {
      p.pause = undefined;
      if (this.#state === 'NORMAL' || (this.#state === 'TROUBLE' && this.#readOnly)) void this.#attempt(p);
    }, pause);
  }

  #unanswered(p: Pending, err: unknown, fallback: boolean): void {
    const noResponders = err instanceof NoRespondersError;
    // Not a connection problem (too large, a bad subject): retrying cannot help.
    if (!(err instanceof BusError)) return this.#settle(p, err instanceof Error ? err : new Error(String(err)));
    if (!(noResponders || err.retryable || err instanceof BusClosedError)) return this.#settle(p, err);
    // No responders: nobody got it. Anything else: it may have been delivered and applied.
    if (!noResponders) p.ambiguous = true;
    p.lastError = err;
    const now = this.#o.environment.clock.now();
    p.troubleSince ??= now;
    if (!fallback && p.spec.fallback !== undefined && this.#o.readOnlyFallback) {
      // Read-only fallback: answer from a secondary now, and keep polling the primary.
      this.#probes.set(p.spec.subject, p.spec.body);
      this.#setReadOnly(true);
      this.#send({ type: 'UNANSWERED', now, reason: err.message });
      void this.#attempt(p, true);
      return;
    }
    if (this.#outOfTime(p)) return this.#giveUp(p);
    this.#send({ type: 'UNANSWERED', now, reason: err.message });
  }

  #outOfTime(p: Pending): boolean {
    const now = this.#o.environment.clock.now();
    if (p.spec.timeout !== undefined && now - p.started >= p.spec.timeout) return true;
    return p.troubleSince !== undefined && now - p.troubleSince >= this.#o.config.troubledInterval;
  }

  /** A request out of time: TimeoutError for an explicit timeout, else the worker's last "retry" answer, else NetworkError. */
  #giveUp(p: Pending): void {
    const now = this.#o.environment.clock.now();
    const ambiguous = p.spec.mutates && p.ambiguous;
    if (p.spec.timeout !== undefined && now - p.started >= p.spec.timeout) {
      return this.#settle(p, new TimeoutError(p.spec.what, p.spec.timeout, { cause: p.lastError, ambiguous }));
    }
    if (p.lastError !== undefined && !(p.lastError instanceof TimeoutError) && !(p.lastError instanceof NoRespondersError) && !ambiguous) {
      return this.#settle(p, p.lastError);
    }
    this.#settle(p, new NetworkError(p.spec.what, p.spec.session, now - p.started, ambiguous, `no answer for troubledInterval (${this.#o.config.troubledInterval} ms)`, { cause: p.lastError }));
  }

  #settle(p: Pending, outcome: Reply | Error): void {
    if (p.settled) return;
    p.settled = true;
    this.#pending.delete(p);
    if (p.pause !== undefined) this.#o.environment.clock.clearTimeout(p.pause);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
    if (this.#pending.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #setReadOnly(on: boolean): void {
    if (this.#readOnly === on) return;
    this.#readOnly = on;
    queueMicrotask(() => this.emit('readOnly', on));
  }

  /** One clock timer, for the machine's next deadline; it fires as a TICK. */
  #armTick(): void {
    const s = this.#actor.getSnapshot();
    let at = s.status === 'active' ? nextDeadline(s.value as ConnectionState, s.context) : null;
    // A request with its own timeout, waiting to be sent, must not outwait it.
    for (const p of this.#pending) {
      if (p.spec.timeout !== undefined && !p.inFlight) at = Math.min(at ?? Infinity, p.started + p.spec.timeout);
    }
    if (at === this.#tickAt) return;
    this.#clearTick();
    this.#tickAt = at;
    if (at === null) return;
    this.#tick = this.#o.environment.clock.setTimeout(() => {
      this.#tick = undefined;
      this.#tickAt = null;
      this.#send({ type: 'TICK', now: this.#o.environment.clock.now() });
      // A TICK that changed nothing still needs the next deadline armed.
      this.#armTick();
      // Requests out of time give up even while others keep the connection NORMAL.
      for (const p of [...this.#pending]) if (!p.inFlight && p.pause === undefined && this.#outOfTime(p)) this.#giveUp(p);
    }, Math.max(0, at - this.#o.environment.clock.now()));
  }

  #clearTick(): void {
    if (this.#tick !== undefined) this.#o.environment.clock.clearTimeout(this.#tick);
    this.#tick = undefined;
    this.#tickAt = null;
  }
}
