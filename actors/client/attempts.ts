import type { TimerHandle } from '../../bus/clock.js';
import type { Attributes, Counter } from '@opentelemetry/api';
import type { Environment } from '../../bus/environment.js';
import { BusClosedError, BusError, NoRespondersError, TimeoutError } from '../../bus/errors.js';
import type { Bus, Headers, Message } from '../../bus/types.js';
import {
  classify,
  type AttemptDecision,
  type AttemptFacts,
  type AttemptOutcome,
  type ErrorKind,
  type Failed,
  type GiveUp,
} from '../../machines/attempt.js';
import type { ConnectionState } from '../../machines/connection.js';
import { ClientDisconnectedError, NetworkError, fromErrorBody } from '../../protocol/errors.js';
import type { ErrorBody } from '../../protocol/messages.js';
import type { ReplyDecoder } from './replies.js';

/** A reply from a worker: the fields every reply has. */
export interface Reply {
  readonly ok: boolean;
  readonly error?: ErrorBody;
  readonly [key: string]: unknown;
}

/** One request as the connection carries it until it has a final answer. */
export interface RequestSpec {
  readonly subject: string;
  /**
   * The same on every attempt, so a command keeps its command id; a function
   * is given the connection's client id when the attempt goes out (a request
   * made while disconnected goes out on the next connection, under its id).
   */
  readonly body: Uint8Array | ((clientId: string) => Uint8Array);
  /** Headers that explain the request to whoever watches (HEADER), for the client id the attempt goes out under. */
  readonly headers?: (clientId: string) => Headers;
  /** For errors: `send DEPOSIT to ledger/alice`. */
  readonly what: string;
  /** `app/id`. */
  readonly session: string;
  /** True when an attempt may change the session: an unanswered one makes the outcome ambiguous. */
  readonly mutates: boolean;
  /** Gives up with TimeoutError after this many ms; without it, after troubledInterval of failures. */
  readonly timeout?: number | undefined;
  /**
   * When the call began, if before this request (a transaction's step): its
   * timeout runs from there, so no step outlives the whole call's deadline.
   */
  readonly since?: number;
  /** Read-only fallback: where a read goes while the primary does not answer (secondaries). */
  readonly fallback?: string;
}

/** What the attempts need of the connection that hosts them: where to send now, and where to report. */
export interface AttemptHost {
  readonly bus: Bus | undefined;
  readonly state: ConnectionState;
  readonly readOnly: boolean;
  readonly clientId: string;
  /** A worker answered: whatever the trouble was, it is over. */
  answered(): void;
  /** An attempt went unanswered: the connection is in trouble. */
  unanswered(reason: string, now: number): void;
  /** A request waits to be sent (not NORMAL): the connection's clock must wake by `deadline`. */
  waiting(deadline: number): void;
  /** Reads go to secondaries now (the connection is in trouble); the primary behind `subject` is polled until it answers. */
  fallBack(subject: string, body: Uint8Array, reason: string, now: number): void;
}

export interface AttemptsOptions {
  readonly host: AttemptHost;
  readonly environment: Environment;
  readonly replies: ReplyDecoder;
  /** One attempt's share of a request's time: an unanswered attempt is sent again. */
  readonly attemptTimeout: number;
  readonly troubledInterval: number;
  /** While no primary answers, reads go to secondaries (ZEO read_only_fallback). */
  readonly readOnlyFallback: boolean;
  /** Counts attempts after a request's first. */
  readonly retries?: Counter;
}

/** One pending request, and what its attempts so far have shown. */
export interface Pending {
  readonly spec: RequestSpec;
  readonly started: number;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (err: Error) => void;
  /** First failed attempt: the request gives up troubledInterval after it. */
  troubleSince: number | undefined;
  /** An attempt went out and no answer came back: it may have been applied. */
  unanswered: boolean;
  lastError: Error | undefined;
  lastErrorKind: ErrorKind | undefined;
  inFlight: boolean;
  /** Retry after a retryable answer (moved, locked), on its own short pause. */
  pause: TimerHandle | undefined;
  answeredRetries: number;
  /** Attempts so far; only the latest one's failure counts (an earlier one may still be out after a reconnect). */
  attempts: number;
  settled: boolean;
  /** The body as last encoded, and for which client id. */
  encoded?: { readonly clientId: string; readonly data: Uint8Array; readonly headers: Headers | undefined };
}

/**
 * Carries each pending request through its attempts: sends it, reads the
 * answer, asks `classify` what that means, and does it. The connection
 * decides when everything pending is sent again; this decides for one.
 */
/** A retry's `after` attribute: what the attempt before it ran into (`answered`: a retryable answer, or a reconnect). */
const RETRY_ATTRIBUTES: Readonly<Record<ErrorKind | 'answered', Attributes>> = Object.freeze({
  'no-responders': Object.freeze({ after: 'no-responders' }),
  timeout: Object.freeze({ after: 'timeout' }),
  closed: Object.freeze({ after: 'closed' }),
  retryable: Object.freeze({ after: 'retryable' }),
  refused: Object.freeze({ after: 'refused' }),
  other: Object.freeze({ after: 'other' }),
  answered: Object.freeze({ after: 'answered' }),
});

export class Attempts {
  readonly #pending = new Set<Pending>();
  readonly #host: AttemptHost;
  readonly #clock: Environment['clock'];
  readonly #replies: ReplyDecoder;
  readonly #attemptTimeout: number;
  readonly #troubledInterval: number;
  readonly #readOnlyFallback: boolean;
  readonly #retries: Counter | undefined;
  /** Waiting for the last pending request to settle (a graceful close). */
  #idle: (() => void)[] = [];
  /** Filled in for each decision: classify keeps nothing, so one will do, and the send path allocates no more than it did. */
  readonly #facts: { -readonly [K in keyof AttemptFacts]: AttemptFacts[K] };

  constructor(options: AttemptsOptions) {
    this.#host = options.host;
    this.#clock = options.environment.clock;
    this.#replies = options.replies;
    this.#attemptTimeout = options.attemptTimeout;
    this.#troubledInterval = options.troubledInterval;
    this.#readOnlyFallback = options.readOnlyFallback;
    this.#retries = options.retries;
    this.#facts = {
      outcome: 'due',
      error: undefined,
      mutates: false,
      unanswered: false,
      inFlight: false,
      paused: false,
      elapsed: 0,
      timeout: undefined,
      troubledFor: undefined,
      troubledInterval: options.troubledInterval,
      lastError: undefined,
      answeredRetries: 0,
      canFallBack: false,
    };
  }

  get size(): number {
    return this.#pending.size;
  }

  add(spec: RequestSpec, resolve: (reply: Reply) => void, reject: (err: Error) => void): Pending {
    const p: Pending = {
      spec,
      started: spec.since ?? this.#clock.now(),
      resolve,
      reject,
      troubleSince: undefined,
      unanswered: false,
      lastError: undefined,
      lastErrorKind: undefined,
      inFlight: false,
      pause: undefined,
      answeredRetries: 0,
      attempts: 0,
      settled: false,
    };
    this.#pending.add(p);
    return p;
  }

  /** Resolves once nothing is pending. */
  idle(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  #encoded(p: Pending): { readonly data: Uint8Array; readonly headers: Headers | undefined } {
    const { body, headers } = p.spec;
    const clientId = this.#host.clientId;
    if (p.encoded?.clientId !== clientId)
      p.encoded = {
        clientId,
        data: typeof body === 'function' ? body(clientId) : body,
        headers: headers?.(clientId),
      };
    return p.encoded;
  }

  async attempt(p: Pending, fallback = false): Promise<void> {
    const bus = this.#host.bus;
    if (bus === undefined || p.settled) return;
    const now = this.#clock.now();
    if (this.#decide(p, 'due', now) !== 'send') return;
    const remaining = p.spec.timeout === undefined ? Infinity : p.started + p.spec.timeout - now;
    const subject = fallback ? p.spec.fallback! : p.spec.subject;
    const attempt = ++p.attempts;
    if (attempt > 1) this.#retries?.add(1, RETRY_ATTRIBUTES[p.lastErrorKind ?? 'answered']);
    // One still out (sent again after a reconnect) is never heard from now: delivered, it may have been applied.
    if (p.inFlight && p.spec.mutates) p.unanswered = true;
    p.inFlight = true;
    let m: Message;
    try {
      const { data, headers } = this.#encoded(p);
      const timeout = Math.min(remaining, this.#attemptTimeout);
      m = await bus.request(subject, data, headers === undefined ? { timeout } : { timeout, headers });
    } catch (err) {
      if (p.settled || attempt !== p.attempts) return; // a later attempt speaks for it
      p.inFlight = false;
      this.#decide(p, 'unanswered', this.#clock.now(), err, fallback);
      return;
    }
    if (attempt === p.attempts) p.inFlight = false;
    if (p.settled) return;
    let reply: Reply;
    try {
      reply = (await this.#replies.decode(m, p)) as Reply;
    } catch (err) {
      this.#host.answered();
      this.#decide(p, 'unreadable', this.#clock.now(), err);
      return;
    }
    // In NORMAL an answer changes nothing: spare the machine a transition per request.
    if (!fallback && this.#host.state !== 'NORMAL') this.#host.answered();
    if (reply.ok || reply.error === undefined || !reply.error.retryable) {
      // An answer settles whatever the time, so the attempt's start stands for now (a clock read spared per request).
      this.#decide(p, reply.ok ? 'ok' : 'final', now, reply);
    } else {
      // Answered "retry" (moved, locked, not enough replicas): this request alone waits a moment.
      this.#decide(p, 'retry', this.#clock.now(), fromErrorBody(reply.error));
    }
  }

  /** `reconnected`: requests in flight went to a server connection that is gone; nats.js would let them wait out their timeout. */
  retryAll(reconnected: boolean): void {
    for (const p of [...this.#pending]) {
      if ((reconnected || !p.inFlight) && p.pause === undefined && !p.settled)
        void this.attempt(p, this.#host.readOnly && p.spec.fallback !== undefined);
    }
  }

  /** On the connection's clock: requests out of time give up even while others keep the connection NORMAL. */
  expire(): void {
    const now = this.#clock.now();
    for (const p of [...this.#pending]) this.#decide(p, 'idle', now);
  }

  /** The connection gave up: every pending request fails, with whether it may have been applied. */
  failAll(outcome: 'disabled' | 'wait-timeout', reason: string): void {
    const now = this.#clock.now();
    for (const p of [...this.#pending]) this.#decide(p, outcome, now, undefined, false, reason);
  }

  /** The earliest own timeout of a request waiting to be sent: it must not outwait it. */
  nextDeadline(): number | null {
    let at: number | null = null;
    for (const p of this.#pending) {
      if (p.spec.timeout !== undefined && !p.inFlight) at = Math.min(at ?? Infinity, p.started + p.spec.timeout);
    }
    return at;
  }

  /**
   * Asks classify what this outcome means for the request, and carries it
   * out. `ended`: the reply (ok, final) or the error the attempt ended with;
   * `fallback`: the attempt went to secondaries; `reason`: why the connection gave up.
   */
  #decide(
    p: Pending,
    outcome: AttemptOutcome,
    now: number,
    ended?: unknown,
    fallback = false,
    reason?: string,
  ): AttemptDecision['action'] {
    const answered = outcome === 'ok' || outcome === 'final';
    const kind = answered || ended === undefined ? undefined : errorKind(ended);
    const f = this.#facts;
    f.outcome = outcome;
    f.error = kind;
    f.mutates = p.spec.mutates;
    f.unanswered = p.unanswered;
    f.inFlight = p.inFlight;
    f.paused = p.pause !== undefined;
    f.elapsed = now - p.started;
    f.timeout = p.spec.timeout;
    f.troubledFor = p.troubleSince === undefined ? undefined : now - p.troubleSince;
    f.lastError = p.lastErrorKind;
    f.answeredRetries = p.answeredRetries;
    f.canFallBack = !fallback && p.spec.fallback !== undefined && this.#readOnlyFallback;
    const d = classify(f);
    const failed = (d as { readonly failed?: Failed }).failed;
    if (failed !== undefined) {
      p.unanswered = failed.unanswered;
      p.lastError = asError(ended);
      p.lastErrorKind = kind;
      p.troubleSince ??= now;
    }
    switch (d.action) {
      case 'settle':
        this.#settle(p, ended as Reply);
        break;
      case 'fail':
        this.#settle(p, asError(ended));
        break;
      case 'send':
      case 'wait':
        break;
      case 'retry':
        p.answeredRetries++;
        // Never past its deadline: the attempt then gives up on time.
        p.pause = this.#clock.setTimeout(
          () => {
            p.pause = undefined;
            const state = this.#host.state;
            if (state === 'NORMAL' || (state === 'TROUBLE' && this.#host.readOnly)) void this.attempt(p);
            else if (p.spec.timeout !== undefined) this.#host.waiting(p.started + p.spec.timeout);
          },
          p.spec.timeout === undefined ? d.pause : Math.min(d.pause, Math.max(0, p.started + p.spec.timeout - now)),
        );
        break;
      case 'fall-back':
        // Answer from a secondary now, and keep polling the primary.
        this.#host.fallBack(p.spec.subject, this.#encoded(p).data, (ended as Error).message, now);
        void this.attempt(p, true);
        break;
      case 'report':
        this.#host.unanswered((ended as Error).message, now);
        // It waits for the connection's next retry, but not past its own deadline.
        if (p.spec.timeout !== undefined) this.#host.waiting(p.started + p.spec.timeout);
        break;
      case 'give-up':
        this.#settle(p, this.#giveUpError(p, d.error, d.ambiguous, now, reason));
        break;
    }
    return d.action;
  }

  #giveUpError(p: Pending, error: GiveUp, ambiguous: boolean, now: number, reason?: string): Error {
    switch (error) {
      case 'timeout':
        return new TimeoutError(p.spec.what, p.spec.timeout!, { cause: p.lastError, ambiguous });
      case 'last-error':
        return p.lastError!;
      case 'network':
        return new NetworkError(
          p.spec.what,
          {
            session: p.spec.session,
            triedMs: now - p.started,
            ambiguous,
            reason: reason ?? `no answer for troubledInterval (${this.#troubledInterval} ms)`,
          },
          {
            cause: p.lastError,
          },
        );
      case 'disconnected':
        return new ClientDisconnectedError(this.#host.clientId, reason ?? 'not connected');
    }
  }

  #settle(p: Pending, outcome: Reply | Error): void {
    if (p.settled) return;
    p.settled = true;
    this.#pending.delete(p);
    if (p.pause !== undefined) this.#clock.clearTimeout(p.pause);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
    if (this.#pending.size === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }
}

/** The bus's error classes as the decision sees them. */
function errorKind(err: unknown): ErrorKind {
  if (!(err instanceof BusError)) return 'other';
  if (err instanceof NoRespondersError) return 'no-responders';
  if (err instanceof TimeoutError) return 'timeout';
  if (err instanceof BusClosedError) return 'closed';
  return err.retryable ? 'retryable' : 'refused';
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
