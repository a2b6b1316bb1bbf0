import type { Clock, TimerHandle } from '../../bus/clock.js';
import { labelOf } from '../../protocol/clientId.js';
import {
  EventRejectedError,
  InvalidRequestError,
  refuse,
  SessionLockedError,
  SessionMovedError,
  TransactionRolledBackError,
  type RollbackReason,
} from '../../protocol/errors.js';
import type {
  JournaledEvent,
  JournalRecord,
  ReadReply,
  SessionRef,
  StampedEvent,
  TxPart,
  TxReply,
  TxRequest,
} from '../../protocol/messages.js';
import { sessionKey } from '../../protocol/names.js';
import { shardOf } from '../../protocol/shard.js';
import { escapeToken } from '../../bus/subjects.js';
import { preparePatch, type PreparedPatch } from './sessionWrites.js';
import { admittedWhileHandingOff } from '../../machines/handoffTransactions.js';
import { documentOf, stepSession, type SessionState } from '../../machines/session.js';
import type { HostedSession, TransactionPlan } from './session.js';
import type { SessionLock } from './sessionDeps.js';

/** Transaction ids whose rollback reason is kept, so a late step learns why. */
const ROLLBACKS_KEPT = 4096;

/**
 * Why transactions went without their client asking, kept past the
 * session's own memory (a session may be passivated, a step may come late).
 * Written where a rollback happens, read where a late step is answered.
 */
export class RollbackLog {
  readonly #reasons = new Map<string, RollbackReason>();

  /** Why transaction `txId` was rolled back, when it was here. */
  reasonFor(txId: string): RollbackReason | undefined {
    return this.#reasons.get(txId);
  }

  note(txId: string, reason: RollbackReason): void {
    this.#reasons.set(txId, reason);
    if (this.#reasons.size > ROLLBACKS_KEPT) this.#reasons.delete(this.#reasons.keys().next().value!);
  }
}

/** A session of the transaction's shard it took in (`tx.session(app, id)`): its lock, and its working copy. */
class Joined implements SessionLock {
  readonly session: HostedSession;
  readonly base: SessionState;
  working: SessionState;
  readonly events: JournaledEvent[] = [];
  /** Its intent is journaled: the copy may not go on until the transaction is decided (txJournal.ts). */
  intent: number | undefined;
  /** Set while the transaction lets go of it: a drop otherwise means the copy went (evicted). */
  releasing = false;
  readonly #tx: OpenTransaction;

  constructor(tx: OpenTransaction, session: HostedSession) {
    this.#tx = tx;
    this.session = session;
    this.base = session.state;
    this.working = session.state;
  }

  get txId(): string {
    return this.#tx.txId;
  }

  get client(): string {
    return this.#tx.client;
  }

  get label(): string {
    return this.#tx.label;
  }

  drop(): void {
    if (!this.releasing) this.#tx.broken ??= `${sessionKey(this.session.app.name, this.session.id)} left memory`;
  }
}

/** One step taken: the session it went to (its key) and the seq it made there. */
interface TakenStep {
  readonly key: string;
  readonly seq: number;
}

/**
 * An open transaction: the lock of the session it began on (its home) and
 * its lease, the sessions of the same shard it took in, and the working
 * copies their events go to until commit.
 */
class OpenTransaction implements SessionLock {
  readonly txId: string;
  readonly client: string;
  readonly label: string;
  readonly home: HostedSession;
  /** Nothing else commits while the lock is held, so this stays the committed state. */
  readonly base: SessionState;
  working: SessionState;
  /** The home session's own events. */
  readonly events: JournaledEvent[] = [];
  /** Every step, in order, whichever session it went to. */
  readonly steps: TakenStep[] = [];
  /** Other sessions, by key. */
  readonly joined = new Map<string, Joined>();
  /** Why it can only roll back (a session it holds left memory). */
  broken: string | undefined;
  /** Something of it reached the journal undecided (an intent, or a record whose answer was lost). */
  unsettled = false;
  /** Its commit is under way in the home's mailbox: a step for another session now (in that one's) is refused. */
  committing = false;
  /** A client that never finishes does not hold the session for ever. */
  lease: TimerHandle | undefined;
  readonly #clock: Clock;
  readonly #closed: (tx: OpenTransaction) => void;
  #dropped = false;

  constructor({
    txId,
    client,
    home,
    clock,
    closed,
  }: {
    txId: string;
    client: string;
    home: HostedSession;
    clock: Clock;
    closed: (tx: OpenTransaction) => void;
  }) {
    this.txId = txId;
    this.client = client;
    this.label = labelOf(client);
    this.home = home;
    this.base = home.state;
    this.working = home.state;
    this.#clock = clock;
    this.#closed = closed;
  }

  get homeKey(): string {
    return sessionKey(this.home.app.name, this.home.id);
  }

  /** The greatest key of the sessions it holds: it may wait only for a session after it (lock order). */
  get lastKey(): string {
    let last = this.homeKey;
    for (const key of this.joined.keys()) if (key > last) last = key;
    return last;
  }

  /**
   * The home's lock is dropped (commit, abort, rollback, or the home left
   * memory): the other sessions are let go. Any of them that may hold an
   * undecided part of it in the journal is forgotten instead, so its next
   * message reloads it and the load decides (txJournal.ts).
   */
  drop(): void {
    if (this.#dropped) return;
    this.#dropped = true;
    if (this.lease !== undefined) this.#clock.clearTimeout(this.lease);
    this.lease = undefined;
    this.#closed(this);
    for (const j of this.joined.values()) {
      j.releasing = true;
      if (this.unsettled) j.session.forget(`transaction ${this.txId} ended undecided`);
      else if (j.session.openTransaction === j) void j.session.unlock();
    }
    if (this.unsettled) this.home.forget(`transaction ${this.txId} ended undecided`);
  }
}

export interface TransactionsOptions {
  readonly rollbacks: RollbackLog;
  readonly clock: Clock;
  /** The longest lease a `begin` gets: a client cannot hold a session's lock for as long as it likes. */
  readonly maxTimeout: number;
  /** Whether `shard` is being handed off by this worker: no new transaction begins on it (see machines/handoffTransactions.ts). */
  readonly handingOff: (shard: number) => boolean;
}

/**
 * The transaction protocol (begin, send, read, commit, abort; see TxRequest
 * in protocol/messages.ts) over hosted sessions' commit paths: steps go to
 * working copies under the sessions' locks, and commit journals them as
 * one message (for several sessions of the shard, see txJournal.ts). One
 * per worker; every step runs in the mailbox of the session it is for.
 */
export class Transactions {
  readonly #rollbacks: RollbackLog;
  readonly #clock: Clock;
  readonly #maxTimeout: number;
  readonly #handingOff: (shard: number) => boolean;
  /** Open transactions by id: a step for another session finds its transaction here. */
  readonly #open = new Map<string, OpenTransaction>();

  constructor({ rollbacks, clock, maxTimeout, handingOff }: TransactionsOptions) {
    this.#rollbacks = rollbacks;
    this.#clock = clock;
    this.#maxTimeout = maxTimeout;
    this.#handingOff = handingOff;
  }

  /** One step. Never throws: every outcome is a reply. */
  async step(session: HostedSession, req: TxRequest, time: number): Promise<TxReply | ReadReply> {
    session.lastActive = time;
    const held = openOn(session);
    const open = held?.txId === req.txId ? held : undefined;
    if (open !== undefined && open.client !== req.client)
      return refuse(new InvalidRequestError(`transaction ${req.txId} belongs to another client`));
    // Checked here, in the mailbox: a begin queued before the hand-off began is refused too, so the wait ends.
    if (this.#handingOff(session.shard) && !admittedWhileHandingOff(req.op, open === undefined))
      return refuse(new SessionMovedError(session.app.name, session.id));
    switch (req.op) {
      case 'begin':
        return this.#begin(session, req.txId, req.client, Math.min(req.timeout, this.#maxTimeout), open);
      case 'send': {
        if (open === undefined) {
          const seq = session.recentSeq(stepId(req.txId, req.step));
          return seq === undefined ? this.#gone(session, req) : { ok: true, seq, duplicate: true };
        }
        const ordered = this.#ordered(open, req.step, open.homeKey);
        if (ordered !== undefined) return ordered;
        const event: StampedEvent = {
          ...req.event,
          meta: { time, cmdId: stepId(req.txId, req.step), client: req.client },
        };
        const step = stepSession(session.app.machine, open.working, event);
        // Refused: not a step taken; the transaction stays open on the same working copy.
        if (!step.accepted) return refuse(new EventRejectedError(event.type, step.stateValue));
        open.working = step.state;
        open.events.push({ event, seq: step.state.seq });
        open.steps.push({ key: open.homeKey, seq: step.state.seq });
        return { ok: true, seq: step.state.seq };
      }
      case 'read':
        if (open === undefined)
          return session.recentSeq(req.txId) !== undefined ? session.read(undefined) : this.#gone(session, req);
        return {
          ok: true,
          seq: open.working.seq,
          state: open.working.snapshot.value,
          document: documentOf(open.working),
        };
      case 'commit':
        return this.#commit(session, req, open);
      case 'abort':
        if (open !== undefined) {
          session.log.debug({ txId: req.txId, client: open.label }, 'transaction aborted');
          await session.unlock();
        }
        return { ok: true, seq: session.seq };
    }
  }

  /**
   * A `send` or `read` of transaction `req.txId` (begun on `home`) for
   * another session of its shard, in that session's mailbox: the first
   * takes its lock. Never throws.
   */
  async stepOn(
    session: HostedSession,
    home: SessionRef,
    req: Extract<TxRequest, { op: 'send' | 'read' }>,
    time: number,
  ): Promise<TxReply | ReadReply> {
    session.lastActive = time;
    const key = sessionKey(session.app.name, session.id);
    const open = this.#open.get(req.txId);
    if (open === undefined) {
      // Committed already (a retried step), or gone.
      const seq = session.recentSeq(req.op === 'send' ? stepId(req.txId, req.step) : req.txId);
      if (seq === undefined) return this.#gone(session, req);
      return req.op === 'send' ? { ok: true, seq, duplicate: true } : session.read(undefined);
    }
    if (open.client !== req.client)
      return refuse(new InvalidRequestError(`transaction ${req.txId} belongs to another client`));
    if (open.home.app.name !== home.app || open.home.id !== home.id)
      return refuse(new InvalidRequestError(`transaction ${req.txId} began on another session`));
    if (open.home.shard !== session.shard)
      return refuse(new InvalidRequestError(`transaction ${req.txId} is on shard ${open.home.shard}`));
    if (open.broken !== undefined) return this.#brokenReply(open);
    if (open.committing) return refuse(new InvalidRequestError(`transaction ${req.txId} is committing: no more steps`));
    let joined = open.joined.get(key);
    if (joined !== undefined && joined.session !== session) return this.#brokenReply(open);
    if (joined === undefined) {
      if (this.#handingOff(session.shard)) return refuse(new SessionMovedError(session.app.name, session.id));
      const holder = session.openTransaction;
      if (holder !== undefined) {
        // Waiting (the client retries SessionLockedError) only for a session after every one it holds: two
        // transactions then never wait for each other. Out of order, it rolls back and lets go of what it holds.
        if (key > open.lastKey) return refuse(new SessionLockedError(session.app.name, session.id, holder.label));
        this.#rollbacks.note(req.txId, 'lock-order');
        void this.rollBack(open.home, req.txId, 'lock-order');
        return refuse(new TransactionRolledBackError(req.txId, 'lock-order'));
      }
      joined = new Joined(open, session);
      open.joined.set(key, joined);
      session.lock(joined);
      session.log.debug({ txId: req.txId, client: open.label, home: open.homeKey }, 'session joined a transaction');
    }
    if (req.op === 'read')
      return {
        ok: true,
        seq: joined.working.seq,
        state: joined.working.snapshot.value,
        document: documentOf(joined.working),
      };
    const ordered = this.#ordered(open, req.step, key);
    if (ordered !== undefined) return ordered;
    const event: StampedEvent = { ...req.event, meta: { time, cmdId: stepId(req.txId, req.step), client: req.client } };
    const step = stepSession(session.app.machine, joined.working, event);
    if (!step.accepted) return refuse(new EventRejectedError(event.type, step.stateValue));
    joined.working = step.state;
    joined.events.push({ event, seq: step.state.seq });
    open.steps.push({ key, seq: step.state.seq });
    return { ok: true, seq: step.state.seq };
  }

  /** A retried step's first answer, or a step out of order refused; undefined: it is the next step. */
  #ordered(open: OpenTransaction, step: number, key: string): TxReply | undefined {
    const taken = open.steps[step];
    if (taken !== undefined) {
      if (taken.key !== key) return refuse(new InvalidRequestError(`step ${step} went to ${taken.key}, not ${key}`));
      return { ok: true, seq: taken.seq, duplicate: true };
    }
    if (step !== open.steps.length)
      return refuse(new InvalidRequestError(`step ${step} is out of order: ${open.steps.length} steps taken`));
    return undefined;
  }

  /** A session it holds left memory: its working copy went with it, so it only rolls back. */
  #brokenReply(open: OpenTransaction): TxReply {
    open.home.log.info({ txId: open.txId, why: open.broken }, 'transaction can only roll back');
    this.#rollbacks.note(open.txId, 'unknown');
    void this.rollBack(open.home, open.txId, 'unknown');
    return refuse(new TransactionRolledBackError(open.txId, 'unknown'));
  }

  async #begin(
    session: HostedSession,
    txId: string,
    client: string,
    timeout: number,
    open: OpenTransaction | undefined,
  ): Promise<TxReply> {
    if (open !== undefined) return { ok: true, seq: open.base.seq, ...session.signature() };
    if (session.recentSeq(txId) !== undefined)
      return refuse(new InvalidRequestError(`transaction ${txId} was committed already`));
    const reason = this.#rollbacks.reasonFor(txId);
    if (reason !== undefined) return refuse(new TransactionRolledBackError(txId, reason));
    // Open on another session (a forged or confused begin): one transaction, one home.
    if (this.#open.has(txId)) return refuse(new InvalidRequestError(`transaction ${txId} is open on another session`));
    const holder = session.openTransaction;
    if (holder !== undefined) return refuse(new SessionLockedError(session.app.name, session.id, holder.label));
    const tx = new OpenTransaction({
      txId,
      client,
      home: session,
      clock: this.#clock,
      closed: (t) => {
        if (this.#open.get(t.txId) === t) this.#open.delete(t.txId);
      },
    });
    tx.lease = this.#clock.setTimeout(() => {
      tx.lease = undefined;
      void session.enqueue(() => this.#rollBack(session, txId, 'timeout'));
    }, timeout);
    this.#open.set(txId, tx);
    session.lock(tx);
    session.log.debug({ txId, client: tx.label, timeout }, 'transaction begun');
    // Under which epoch: the client names it on every later step, so a newer primary can say 'failover'.
    return { ok: true, seq: session.seq, ...session.signature() };
  }

  async #commit(
    session: HostedSession,
    req: Extract<TxRequest, { op: 'commit' }>,
    open: OpenTransaction | undefined,
  ): Promise<TxReply> {
    const { txId, steps } = req;
    if (open === undefined) {
      const seq = session.recentSeq(txId);
      return seq === undefined ? this.#gone(session, req) : session.duplicateAsPrimary(seq);
    }
    if (steps !== open.steps.length)
      return refuse(
        new InvalidRequestError(`commit says ${steps} steps, the transaction has taken ${open.steps.length}`),
      );
    if (open.broken !== undefined) return this.#brokenReply(open);
    const parts = this.#parts(open);
    if (parts.length === 0) {
      const signature = session.signature();
      await session.unlock();
      return { ok: true, seq: session.seq, ...signature };
    }
    if (parts.length === 1) {
      // One session with events: its own record, on its own subject, as a one-session transaction's.
      const only = parts[0]!;
      const reply = await only.session.persist(only.working, only.events, txId, open.client);
      if (!reply.ok || session.openTransaction !== open) return reply;
      if (only.session !== session) session.rememberTransaction(txId, session.seq);
      await session.unlock();
      return only.session === session ? reply : { ok: true, seq: session.seq, ...session.signature() };
    }
    open.committing = true;
    try {
      return await this.#commitMany(session, open, parts);
    } finally {
      open.committing = false;
    }
  }

  /** The sessions with events to commit, in key order (the order intents are written in). */
  #parts(open: OpenTransaction): Part[] {
    const parts: Part[] = [];
    if (open.events.length > 0)
      parts.push({ key: open.homeKey, session: open.home, working: open.working, events: open.events });
    for (const [key, j] of open.joined)
      if (j.events.length > 0) parts.push({ key, session: j.session, working: j.working, events: j.events, joined: j });
    return parts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * Several sessions' events as one record on the coordinator's subject,
   * after an intent on each other's (txJournal.ts). Not journaled, or not
   * provably: the transaction stays open for a retried commit (each
   * append is de-duplicated), until its lease ends; a fence broken
   * anywhere ends it.
   */
  async #commitMany(home: HostedSession, open: OpenTransaction, parts: readonly Part[]): Promise<TxReply> {
    const { txId } = open;
    const coordinator = parts.find((p) => p.session === home) ?? parts[0]!;
    const others = parts.filter((p) => p !== coordinator);
    // Encoded before anything is journaled: a document that cannot be kept must not reach the journal.
    const patches = new Map<Part, PreparedPatch>();
    for (const p of parts) {
      const patch = preparePatch(p.session.state, p.working, open.client);
      if (typeof patch === 'string')
        return refuse(
          new EventRejectedError(p.events[p.events.length - 1]!.event.type, p.session.state.snapshot.value, patch),
        );
      patches.set(p, patch);
    }
    // The strictest of its sessions' plans (their applications may ask for different commit levels).
    let plan: TransactionPlan | undefined;
    for (const p of parts) {
      const planned = await p.session.planTransaction();
      if (!planned.ok) return this.#failed(open, planned.reply);
      plan = plan === undefined ? planned.plan : stricter(plan, planned.plan);
    }
    const at: SessionRef = { app: coordinator.session.app.name, id: coordinator.session.id };
    const txParts: TxPart[] = [];
    for (const p of others) {
      open.unsettled = true;
      const landed = await p.session.appendTransaction(txId, plan!.epoch, { intent: { tx: txId, at } });
      if (!landed.ok) return this.#failed(open, landed.reply);
      if (p.joined !== undefined) p.joined.intent = landed.seq;
      txParts.push({ app: p.session.app.name, id: p.session.id, intent: landed.seq, events: p.events });
    }
    const record: JournalRecord = { v: 1, events: coordinator.events, tx: { id: txId, parts: txParts } };
    const stored = await coordinator.session.appendTransaction(txId, plan!.epoch, { record });
    if (!stored.ok) return this.#failed(open, stored.reply);
    const unsettled = await coordinator.session.settleTransaction(plan!, stored.seq);
    if (unsettled !== undefined) return this.#failed(open, unsettled);
    // Journaled: every copy takes its part in one turn of the event loop (a reader sees all of it or none); the
    // others snapshot, so their replays need not look for their parts in the coordinator's record again.
    coordinator.session.keepRecord(stored.seq);
    const snapshotted = await Promise.all(
      parts.map((p) =>
        p.session.takeTransaction(
          p.working,
          p.events,
          patches.get(p)!,
          p === coordinator ? txId : undefined,
          p !== coordinator,
        ),
      ),
    );
    // Every other session's replay now starts past its intent: the coordinator may compact the record away.
    if (snapshotted.every(Boolean)) coordinator.session.settledRecord(stored.seq);
    if (coordinator.session !== home) home.rememberTransaction(txId, home.seq);
    open.unsettled = false;
    home.log.debug({ txId, sessions: parts.map((p) => p.key), record: stored.seq }, 'transaction committed');
    const signature = home.signature();
    if (home.openTransaction === open) await home.unlock();
    return { ok: true, seq: home.seq, ...signature, epoch: plan!.epoch };
  }

  /**
   * A commit that did not go through. A fence broken (a copy found stale
   * and evicted) or primacy lost: the transaction can never commit here,
   * and ends. Anything else (the journal not answering): it stays open for
   * a retried commit.
   */
  async #failed(open: OpenTransaction, reply: TxReply): Promise<TxReply> {
    const ends =
      open.broken !== undefined || open.home.evicted || (!reply.ok && reply.error.name === 'SessionMovedError');
    if (ends && open.home.openTransaction === open) {
      open.unsettled = true;
      await open.home.unlock();
    }
    return reply;
  }

  /**
   * Steps of a transaction this session does not hold: it was rolled back
   * here, or begun under an older epoch of the shard (its primary has moved
   * since, and the lock went with that primary's memory), or never was here.
   */
  #gone(session: HostedSession, req: { readonly txId: string; readonly epoch?: number }): TxReply {
    const known = this.#rollbacks.reasonFor(req.txId);
    const moved = req.epoch !== undefined && session.signature().epoch > req.epoch;
    return refuse(new TransactionRolledBackError(req.txId, known ?? (moved ? 'failover' : 'unknown')));
  }

  /** Rolls back `client`'s transaction on `session`, if it holds one; in the mailbox, after what is queued. */
  rollBackClient(session: HostedSession, client: string, reason: RollbackReason): Promise<boolean> {
    return session.enqueue(async () => {
      const held = openOn(session);
      return held?.client === client ? this.#rollBack(session, held.txId, reason) : false;
    });
  }

  /** Rolls back transaction `txId` on `session`, if it still holds the lock; in the mailbox, after what is queued. */
  rollBack(session: HostedSession, txId: string, reason: RollbackReason): Promise<boolean> {
    return session.enqueue(() => this.#rollBack(session, txId, reason));
  }

  async #rollBack(session: HostedSession, txId: string, reason: RollbackReason): Promise<boolean> {
    const tx = openOn(session);
    if (tx?.txId !== txId) return false;
    this.#rollbacks.note(txId, reason);
    session.log.info({ txId, client: tx.label, reason, steps: tx.steps.length }, 'transaction rolled back');
    await session.unlock();
    return true;
  }
}

/** Both plans' demands: one epoch (one shard, one primary), proof again if either asks, the most secondaries. */
function stricter(a: TransactionPlan, b: TransactionPlan): TransactionPlan {
  return {
    epoch: a.epoch,
    reprove: a.reprove || b.reprove,
    waitFor: a.waitFor === null ? b.waitFor : b.waitFor === null ? a.waitFor : Math.max(a.waitFor, b.waitFor),
  };
}

/** A session's events in a transaction, as commit journals them. */
interface Part {
  readonly key: string;
  readonly session: HostedSession;
  readonly working: SessionState;
  readonly events: readonly JournaledEvent[];
  readonly joined?: Joined;
}

/** The transaction holding `session`'s lock as its home: only this module takes locks, so it is one of ours. */
function openOn(session: HostedSession): OpenTransaction | undefined {
  const held = session.openTransaction;
  return held instanceof OpenTransaction ? held : undefined;
}

/** The command id of a transaction's step: also the key a retried step is recognised by. */
function stepId(txId: string, step: number): string {
  return `${txId}:${step}`;
}

/**
 * The other session a step names, when a transaction may take it in: an
 * application this worker serves, on the same shard, not the session the
 * transaction began on. Otherwise why not (InvalidRequestError).
 */
export function otherSession(
  home: SessionRef & { readonly shard: number },
  on: SessionRef,
  known: (app: string) => boolean,
  shardCount: number,
): InvalidRequestError | undefined {
  if (!known(on.app))
    return new InvalidRequestError(`transaction step for ${on.app}/${on.id}: no application ${on.app}`);
  try {
    escapeToken(on.id);
  } catch (err) {
    return new InvalidRequestError(
      `transaction step for ${on.app}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (on.app === home.app && on.id === home.id)
    return new InvalidRequestError(`transaction step names ${on.app}/${on.id}, the session it began on`);
  const shard = shardOf(on.app, on.id, shardCount);
  if (shard !== home.shard)
    return new InvalidRequestError(
      `transaction on ${home.app}/${home.id} (shard ${home.shard}) cannot take in ${on.app}/${on.id} (shard ${shard})`,
    );
  return undefined;
}
