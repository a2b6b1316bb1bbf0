import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import type { KvStore } from '../../bus/types.js';
import { SessionMovedError, type RollbackReason } from '../../protocol/errors.js';
import { sessionKey } from '../../protocol/names.js';
import type { Application } from './application.js';
import { SessionDirectory } from './directory.js';
import type { Primacy } from './lease.js';
import { loadSession, type ReplayDeps } from './replay.js';
import type { AdoptedCopy } from './replica.js';
import { HostedSession } from './session.js';
import type { SessionDeps } from './sessionDeps.js';
import { RollbackLog, Transactions } from './sessionTransaction.js';
import { Wakeups } from './wakeups.js';
import { awaitTransactions, type HandoffWaitOutcome } from './handoff.js';
import { cohortMetrics, type CohortMetrics } from '../../metrics/instruments.js';

export interface CatalogOptions {
  readonly apps: ReadonlyMap<string, Application>;
  /** What every session works with, less what the catalog supplies itself (its directory and wake-ups). */
  readonly sessions: Omit<SessionDeps, 'wakeups' | 'directory'>;
  /** The timers bucket, for the wake-up index. */
  readonly timers: KvStore;
  /**
   * A secondary's copies: collected when idle, as sessions are, and adopted
   * by the sessions of a shard this worker was promoted to (membership only).
   */
  readonly secondaries?:
    | {
        sweep(idleMs: number): void;
        adopt(app: Application, id: string, shard: number): Promise<AdoptedCopy | undefined>;
      }
    | undefined;
  /** The longest a transaction may hold a session's lock, whatever its client asks. */
  readonly maxTransactionTimeout: number;
  /** How long a planned hand-off of a shard waits for the transactions open on it (see handOff). */
  readonly handoffTransactionWait: number;
  /** Where its activations, passivations and active sessions are counted (default: the global meter provider's). */
  readonly metrics?: CohortMetrics | undefined;
}

/** How a session leaves memory: whether a pending timer wakes it again, and whether an open transaction keeps it. */
interface Passivation {
  readonly wake: boolean;
  readonly force: boolean;
  /** Its metric's `reason`. */
  readonly reason: 'idle' | 'leaving';
}
/** Idle, or asked for: a session holding a transaction stays, since its lock and working copy live only here. */
const WHEN_IDLE: Passivation = { wake: true, force: false, reason: 'idle' };
/** The shard is leaving (its next primary wakes them) or the worker stopping: transactions go with the copy. */
const LEAVING: Passivation = { wake: false, force: true, reason: 'leaving' };

/**
 * The sessions of one worker, as Orleans' Catalog keeps activations:
 * activated on first reference from snapshot and journal (one activation
 * per key at a time), passivated when idle, on request and when their shard
 * leaves, forgotten when their copy is no longer trusted. It owns the
 * directory, the wake-up index, and the log of rollbacks.
 */
export class Catalog {
  readonly #apps: ReadonlyMap<string, Application>;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #directory: SessionDirectory;
  readonly #metrics: CohortMetrics;
  readonly #activating = new Map<string, Promise<HostedSession>>();
  readonly #deps: SessionDeps;
  readonly #secondaries: CatalogOptions['secondaries'];
  /** Shortest unusedSessionLifetime of the applications: what the idle sweep's pace follows. */
  readonly #shortestLifetime: number;
  readonly wakeups: Wakeups;
  readonly rollbacks = new RollbackLog();
  readonly transactions: Transactions;
  readonly #handoffWait: number;
  /** Shards being handed off: no new transaction begins on them. */
  readonly #handingOff = new Set<number>();
  /** Shards let go (their release begun) and not served here again: none of their sessions is activated here. */
  readonly #released = new Set<number>();
  #sweep: TimerHandle | undefined;
  #stopped = false;

  constructor({
    apps,
    sessions,
    timers,
    secondaries,
    maxTransactionTimeout,
    handoffTransactionWait,
    metrics,
  }: CatalogOptions) {
    this.#metrics = metrics ?? sessions.metrics ?? cohortMetrics();
    this.#directory = new SessionDirectory(this.#metrics.activeSessions);
    this.#apps = apps;
    this.#clock = sessions.clock;
    this.#log = sessions.log;
    this.#secondaries = secondaries;
    this.#shortestLifetime = Math.min(...[...apps.values()].map((a) => a.unusedSessionLifetime));
    this.wakeups = new Wakeups({
      index: timers,
      apps,
      clock: sessions.clock,
      log: sessions.log,
      active: this.#directory,
      wake: (app, id, shard) => this.session(app, id, shard),
    });
    this.#deps = { ...sessions, wakeups: this.wakeups, directory: this.#directory, metrics: this.#metrics };
    this.transactions = new Transactions({
      rollbacks: this.rollbacks,
      clock: sessions.clock,
      maxTimeout: maxTransactionTimeout,
      handingOff: (shard) => this.#handingOff.has(shard),
    });
    this.#handoffWait = handoffTransactionWait;
  }

  /** Sessions in memory now. */
  get size(): number {
    return this.#directory.size;
  }

  /** The sessions in memory now, for inspection: read, never activated or changed from here. */
  active(): HostedSession[] {
    return [...this.#directory.values()].filter((s) => !s.evicted);
  }

  /** The session `app`/`id` if it is in memory now; undefined otherwise (nothing is activated). */
  find(app: string, id: string): HostedSession | undefined {
    const s = this.#directory.get(sessionKey(app, id));
    return s === undefined || s.evicted ? undefined : s;
  }

  /** When the longest-running message in any session's mailbox started (null: none running). */
  busySince(): number | null {
    let oldest: number | null = null;
    // Asked at every heartbeat (health): a walk that leaves no garbage behind.
    this.#directory.forEach((s) => {
      const since = s.busySince;
      if (since !== undefined && (oldest === null || since < oldest)) oldest = since;
    });
    return oldest;
  }

  /** Primacy for commits from now on: a (re)joined member's lease. */
  set primacy(primacy: Primacy | undefined) {
    this.#deps.primacy = primacy;
  }

  /** The session, active already or activated now. */
  session(app: Application, id: string, shard: number): Promise<HostedSession> {
    const key = sessionKey(app.name, id);
    const active = this.#directory.get(key);
    if (active !== undefined && !active.evicted) return Promise.resolve(active);
    // A request that reached this worker before it let the shard go, and wants its session (again) after: the
    // copy it would load here could acknowledge a write after the next primary's epoch marker, which nobody
    // applies. Refused, retryably: the client finds the next primary.
    if (this.#released.has(shard)) return Promise.reject(new SessionMovedError(app.name, id));
    let pending = this.#activating.get(key);
    if (pending === undefined) {
      pending = this.#activate(app, id, shard, key).finally(() => this.#activating.delete(key));
      this.#activating.set(key, pending);
    }
    return pending;
  }

  /** From the copy this worker kept as the shard's secondary, if it is current; else the latest snapshot plus the journal after it. */
  async #activate(app: Application, id: string, shard: number, key: string): Promise<HostedSession> {
    const adopted = await this.#secondaries?.adopt(app, id, shard);
    const loaded = adopted ?? (await loadSession(this.#loader, app, id, shard, this.#clock.now()));
    this.#metrics.activations.add(1, { app: app.name, from: adopted === undefined ? 'store' : 'secondary' });
    this.wakeups.cancel(key);
    const session = new HostedSession({ deps: this.#deps, app, id, shard, loaded });
    this.#directory.add(key, session);
    return session;
  }

  /** As the primary loads a session: a multi-session transaction's intent still undecided is decided (txJournal.ts). */
  get #loader(): ReplayDeps {
    const deps = this.#deps;
    return {
      ...deps,
      decider: {
        stamp: (shard) => ({ epoch: deps.primacy?.epochOf(shard) ?? 0, worker: deps.primacy?.self ?? deps.workerId }),
        aborted: (at, fence, seq) => this.find(at.app, at.id)?.abortedAfter(fence, seq),
      },
    };
  }

  /** Sessions whose lock `client` holds. */
  #holding(client: string): HostedSession[] {
    return [...this.#directory.values()].filter((s) => s.openTransaction?.client === client);
  }

  /** How many transactions `client` holds open here. */
  transactionsOf(client: string): number {
    return this.#holding(client).length;
  }

  /** Rolls back `client`'s open transactions; queued in each session's mailbox at once, so before any later request. */
  async rollBack(client: string, reason: RollbackReason): Promise<number> {
    const done = await Promise.all(
      this.#holding(client).map((s) => this.transactions.rollBackClient(s, client, reason)),
    );
    return done.filter(Boolean).length;
  }

  /** Commit level memory: resolves once every session's acknowledged writes are journaled. */
  async flush(): Promise<void> {
    await Promise.all([...this.#directory.values()].map((s) => s.flush()));
  }

  start(): void {
    this.#armSweep();
  }

  #armSweep(): void {
    if (this.#stopped || this.#apps.size === 0) return;
    const every = Math.max(10, this.#shortestLifetime / 2);
    this.#sweep = this.#clock.setTimeout(() => {
      void this.#passivateIdle().finally(() => this.#armSweep());
    }, every);
  }

  async #passivateIdle(): Promise<void> {
    const now = this.#clock.now();
    this.#secondaries?.sweep(this.#shortestLifetime);
    // Only the idle ones are gathered: no pair per active session at every sweep.
    const idle: [string, HostedSession][] = [];
    this.#directory.forEach((s, key) => {
      if (now - s.lastActive >= s.app.unusedSessionLifetime && s.openTransaction === undefined) idle.push([key, s]);
    });
    // A snapshot that cannot be written now (the store timed out) leaves the session active: the next sweep tries again.
    await Promise.all(
      idle.map(([key, s]) =>
        this.#passivate(key, s, WHEN_IDLE).catch((err: unknown) =>
          this.#log.warn({ err, key }, 'idle session not passivated'),
        ),
      ),
    );
  }

  /** Every session not holding a transaction; resolves with how many. */
  async passivateAll(): Promise<number> {
    const all = [...this.#directory.entries()].filter(([, s]) => s.openTransaction === undefined);
    await Promise.all(all.map(([key, s]) => this.#passivate(key, s, WHEN_IDLE)));
    return all.length;
  }

  /**
   * A planned hand-off of `shards` is about to let them go: from now on no
   * transaction begins on them (until they are served here again, see
   * serve), and this resolves once the transactions open on them have
   * ended, or were rolled back ('failover') at the bound. The caller still
   * serves the shards meanwhile.
   */
  handOff(shards: ReadonlySet<number>): Promise<HandoffWaitOutcome> {
    for (const shard of shards) this.#handingOff.add(shard);
    return awaitTransactions(
      {
        clock: this.#clock,
        log: this.#log,
        bound: this.#handoffWait,
        holding: (of) =>
          [...this.#directory.values()].filter((s) => of.has(s.shard) && s.openTransaction !== undefined),
        rollBack: (session, txId) => this.transactions.rollBack(session, txId, 'failover'),
      },
      shards,
    );
  }

  /**
   * The sessions of shards given up: once activations under way are done,
   * their wake-ups are cleared and they drain and passivate (snapshots
   * written, background appends flushed), so the next primary starts from
   * everything this one acknowledged.
   */
  async release(shards: ReadonlySet<number>): Promise<void> {
    for (const shard of shards) this.#released.add(shard);
    await Promise.allSettled([...this.#activating.values()]);
    this.wakeups.disarm(shards);
    const leaving = [...this.#directory.entries()].filter(([, s]) => shards.has(s.shard));
    await this.#passivateOrDrop(leaving, 'snapshot on release failed');
  }

  /**
   * `shards` are served from here (again): transactions begin on them. Not
   * before: a begin still on its way in when a handed-off shard was let go
   * is refused (retried on the next primary), not taken by a worker that no
   * longer serves the shard.
   */
  serve(shards: Iterable<number>): void {
    for (const shard of shards) {
      this.#handingOff.delete(shard);
      this.#released.delete(shard);
    }
  }

  /** No more idle sweeps or wake-ups. */
  stop(): void {
    this.#stopped = true;
    if (this.#sweep !== undefined) this.#clock.clearTimeout(this.#sweep);
    this.wakeups.stop();
  }

  /** Stopping: every session passivates, transactions or not. */
  async close(): Promise<void> {
    // Its journal holds every acknowledged write; only the snapshot is missing. Its clock timers go regardless.
    await this.#passivateOrDrop([...this.#directory.entries()], 'snapshot on stop failed');
  }

  async #passivateOrDrop(sessions: readonly [string, HostedSession][], warning: string): Promise<void> {
    await Promise.all(
      sessions.map(([key, s]) =>
        this.#passivate(key, s, LEAVING).catch((err: unknown) => {
          this.#log.warn({ err, key }, warning);
          s.stop();
          this.#directory.forget(s);
        }),
      ),
    );
  }

  async #passivate(key: string, s: HostedSession, how: Passivation): Promise<void> {
    await s.enqueue(async () => {
      if (s.evicted || (!how.force && s.openTransaction !== undefined)) return;
      await s.passivate();
      this.#directory.forget(s);
      this.#metrics.passivations.add(1, { app: s.app.name, reason: how.reason });
      const due = s.state.timers[0]?.due;
      if (due !== undefined && how.wake) this.wakeups.wakeAt(s.app, s.id, s.shard, due);
    });
    this.#log.debug({ key }, 'session passivated');
  }
}
