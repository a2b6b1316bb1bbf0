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
import type { JournaledEvent, ReadReply, StampedEvent, TxReply, TxRequest } from '../../protocol/messages.js';
import { admittedWhileHandingOff } from '../../machines/handoffTransactions.js';
import { documentOf, stepSession, type SessionState } from '../../machines/session.js';
import type { HostedSession } from './session.js';
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

/** An open transaction: the session's lock and its lease, and the working copy its events go to until commit. */
class OpenTransaction implements SessionLock {
  readonly txId: string;
  readonly client: string;
  readonly label: string;
  /** Nothing else commits while the lock is held, so this stays the committed state. */
  readonly base: SessionState;
  working: SessionState;
  readonly events: JournaledEvent[] = [];
  /** A client that never finishes does not hold the session for ever. */
  lease: TimerHandle | undefined;
  readonly #clock: Clock;

  constructor({ txId, client, base, clock }: { txId: string; client: string; base: SessionState; clock: Clock }) {
    this.txId = txId;
    this.client = client;
    this.label = labelOf(client);
    this.base = base;
    this.working = base;
    this.#clock = clock;
  }

  drop(): void {
    if (this.lease !== undefined) this.#clock.clearTimeout(this.lease);
    this.lease = undefined;
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
 * in protocol/messages.ts) over a hosted session's commit path: steps go to
 * a working copy under the session's lock, and commit journals them as one
 * message. One per worker; every step runs in the session's mailbox.
 */
export class Transactions {
  readonly #rollbacks: RollbackLog;
  readonly #clock: Clock;
  readonly #maxTimeout: number;
  readonly #handingOff: (shard: number) => boolean;

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
        // A retry of a step taken: the same answer as the first time.
        const taken = open.events[req.step];
        if (taken !== undefined) return { ok: true, seq: taken.seq, duplicate: true };
        if (req.step !== open.events.length)
          return refuse(new InvalidRequestError(`step ${req.step} is out of order: ${open.events.length} steps taken`));
        const event: StampedEvent = {
          ...req.event,
          meta: { time, cmdId: stepId(req.txId, req.step), client: req.client },
        };
        const step = stepSession(session.app.machine, open.working, event);
        // Refused: not a step taken; the transaction stays open on the same working copy.
        if (!step.accepted) return refuse(new EventRejectedError(event.type, step.stateValue));
        open.working = step.state;
        open.events.push({ event, seq: step.state.seq });
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
    const holder = session.openTransaction;
    if (holder !== undefined) return refuse(new SessionLockedError(session.app.name, session.id, holder.label));
    const tx = new OpenTransaction({ txId, client, base: session.state, clock: this.#clock });
    tx.lease = this.#clock.setTimeout(() => {
      tx.lease = undefined;
      void session.enqueue(() => this.#rollBack(session, txId, 'timeout'));
    }, timeout);
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
      return seq === undefined ? this.#gone(session, req) : { ok: true, seq, duplicate: true, ...session.signature() };
    }
    if (steps !== open.events.length)
      return refuse(
        new InvalidRequestError(`commit says ${steps} steps, the transaction has taken ${open.events.length}`),
      );
    if (open.events.length === 0) {
      const signature = session.signature();
      await session.unlock();
      return { ok: true, seq: session.seq, ...signature };
    }
    const reply = await session.persist(open.working, open.events, txId, open.client);
    // Not journaled (or not provably): the transaction stays open for a retried commit, until its lease ends.
    if (reply.ok && session.openTransaction === open) await session.unlock();
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
    session.log.info({ txId, client: tx.label, reason, steps: tx.events.length }, 'transaction rolled back');
    await session.unlock();
    return true;
  }
}

/** The transaction holding `session`'s lock: only this module takes the lock, so it is one of ours. */
function openOn(session: HostedSession): OpenTransaction | undefined {
  const held = session.openTransaction;
  return held instanceof OpenTransaction ? held : undefined;
}

/** The command id of a transaction's step: also the key a retried step is recognised by. */
function stepId(txId: string, step: number): string {
  return `${txId}:${step}`;
}
