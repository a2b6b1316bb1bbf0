import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { eventSubject, journalSubject } from '../../bus/subjects.js';
import type { Bus, Journal } from '../../bus/types.js';
import { HEADER } from '../../protocol/headers.js';
import { type CommandReply, type CommandRequest, type ErrorBody, type JournaledEvent, type JournalRecord, type PatchMessage, type PatchOperation, type ReadReply, type StampedEvent, type TxReply, type TxRequest, type VerifyReply, type VerifyRequest } from '../../protocol/messages.js';
import { documentOf, persistSession, stepSession, type SessionState, type Timer } from '../../machines/session.js';
import { planCommit, primacyVerdict, type PrimacyFacts } from '../../machines/commitPlan.js';
import type { Application } from './application.js';
import { labelOf } from '../../protocol/clientId.js';
import {
  ConflictError,
  EventRejectedError,
  InvalidRequestError,
  NotEnoughReplicasError,
  SessionLockedError,
  SessionMovedError,
  TransactionRolledBackError,
  toErrorBody,
  type RollbackReason,
} from '../../protocol/errors.js';
import type { Primacy } from './lease.js';
import type { SessionStore } from './sessionStore.js';
import { verifySession } from './replay.js';

/** What a hosted session needs from its worker. */
export interface SessionHost {
  readonly id: string;
  readonly bus: Bus;
  readonly journal: Journal;
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly cluster: string;
  readonly log: Logger;
  /** The session's copy is no longer trustworthy here: forget it (it reloads on its next message). */
  evict(session: HostedSession): void;
  /** Proof of primacy (membership only; static sharding trusts its configuration). */
  readonly primacy?: Primacy;
  /** Secondaries of this worker's primary shards (membership only). */
  readonly replicas?: {
    synchronized(shard: number): number;
    replicated(shard: number, seq: number, want: number, timeout: number): Promise<boolean>;
  };
  /** How long a commit at level `replicas` waits for a secondary before it stops counting on it. */
  readonly sessionTimeout: number;
  /** The session's earliest pending timer changed (undefined: none): keep the durable index. */
  timersChanged(session: HostedSession, due: number | undefined): Promise<void>;
  /** Why transactions went without their client asking, kept past the session's own memory (absent: 'unknown'). */
  readonly rollbacks?: {
    rolledBack(txId: string): RollbackReason | undefined;
    noteRollback(txId: string, reason: RollbackReason): void;
  };
}

/** An open transaction: the session's lock, and the working copy its events go to until commit. */
interface OpenTx {
  readonly txId: string;
  readonly client: string;
  readonly label: string;
  /** Nothing else commits while the lock is held, so this stays the committed state. */
  readonly base: SessionState;
  working: SessionState;
  readonly events: JournaledEvent[];
  lease: TimerHandle | undefined;
}

/** Pause before a delayed event whose commit failed is tried again. */
const TIMER_RETRY_MS = 1_000;

/** Recent command ids per session, so a retry is answered without touching the journal. */
const RECENT_COMMANDS = 256;
/** Of those, how many a snapshot carries. */
const RECENT_IN_SNAPSHOT = 64;

/**
 * One active session: one message at a time through its mailbox; the commit
 * path journals before anything becomes current or visible.
 */
export class HostedSession {
  #state: SessionState;
  /** Stream sequence of the last journal message reflected in #state: the fence. */
  #journalSeq: number;
  #snapshotSeq: number;
  #mailbox: Promise<unknown> = Promise.resolve();
  #timer: TimerHandle | undefined;
  #timerDue: number | undefined;
  #evicted = false;
  readonly #recent = new Map<string, number>();
  /** Commit level memory: records waiting for the background appender. */
  #unjournaled: JournalRecord[] = [];
  #appending: Promise<void> | undefined;
  #saving: Promise<void> = Promise.resolve();
  #tx: OpenTx | undefined;
  lastActive: number;

  readonly subject: string;
  readonly log: Logger;

  constructor(
    readonly host: SessionHost,
    readonly app: Application,
    readonly id: string,
    readonly shard: number,
    state: SessionState,
    journalSeq: number,
    recent: Iterable<[string, number]>,
  ) {
    this.#state = state;
    this.#journalSeq = journalSeq;
    this.#snapshotSeq = state.seq;
    for (const [cmd, seq] of recent) this.#remember(cmd, seq);
    this.subject = journalSubject(host.cluster, shard, app.name, id);
    this.log = host.log.child({ app: app.name, session: id, shard });
    this.lastActive = host.clock.now();
    void this.#armTimers();
  }

  get seq(): number {
    return this.#state.seq;
  }

  get state(): SessionState {
    return this.#state;
  }

  get evicted(): boolean {
    return this.#evicted;
  }

  /** The transaction holding the session's lock, if any. */
  get openTransaction(): { readonly txId: string; readonly client: string } | undefined {
    return this.#tx;
  }

  /** Runs `task` after everything already queued for this session. */
  enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#mailbox.then(task, task);
    this.#mailbox = run.catch(() => undefined);
    return run;
  }

  read(minSeq: number | undefined): ReadReply {
    this.lastActive = this.host.clock.now();
    if (minSeq !== undefined && minSeq > this.#state.seq) {
      return { ok: false, error: toErrorBody(new ConflictError(minSeq, this.#state.seq)) };
    }
    return { ok: true, seq: this.#state.seq, state: this.#state.snapshot.value, document: documentOf(this.#state) };
  }

  /** The commit path (DESIGN.md section 3). Never throws: every outcome is a reply. */
  async command(req: CommandRequest, time: number): Promise<CommandReply> {
    this.lastActive = time;
    const known = this.#recent.get(req.cmdId);
    if (known !== undefined) return { ok: true, seq: known, duplicate: true, ...this.#signature(this.host.primacy?.epochOf(this.shard) ?? 0) };
    const locked = this.#lockedFor(req.client);
    if (locked !== undefined) return { ok: false, error: toErrorBody(locked) };
    if (req.expectSeq !== undefined && req.expectSeq !== this.#state.seq) {
      return { ok: false, error: toErrorBody(new ConflictError(req.expectSeq, this.#state.seq)) };
    }
    const event: StampedEvent = { ...req.event, meta: { time, cmdId: req.cmdId, client: req.client } };
    return this.#commit(event);
  }

  /** Plain writes wait while a transaction holds the lock; its own client must write through it. */
  #lockedFor(client: string): Error | undefined {
    const tx = this.#tx;
    if (tx === undefined) return undefined;
    if (tx.client === client) return new InvalidRequestError(`${tx.label} holds the session in transaction ${tx.txId}: send through it`);
    return new SessionLockedError(this.app.name, this.id, tx.label);
  }

  /** Cache verification, answered as of the committed seq (it runs in the mailbox). */
  async verify(req: VerifyRequest): Promise<VerifyReply> {
    this.lastActive = this.host.clock.now();
    // Commit level memory: what was acknowledged reaches the journal before the journal is replayed.
    await this.#appending;
    return verifySession(this.host, { app: this.app, id: this.id, shard: this.shard, current: this.#state, log: this.log }, req);
  }

  /** One step of a transaction (see TxRequest in machines/protocol.ts). Never throws: every outcome is a reply. */
  async transaction(req: TxRequest, time: number): Promise<TxReply | ReadReply> {
    this.lastActive = time;
    const open = this.#tx?.txId === req.txId ? this.#tx : undefined;
    if (open !== undefined && open.client !== req.client) return refuse(new InvalidRequestError(`transaction ${req.txId} belongs to another client`));
    switch (req.op) {
      case 'begin':
        return this.#begin(req.txId, req.client, req.timeout, open);
      case 'send': {
        if (open === undefined) {
          const seq = this.#recent.get(stepId(req.txId, req.step));
          return seq === undefined ? this.#gone(req.txId) : { ok: true, seq, duplicate: true };
        }
        // A retry of a step taken: the same answer as the first time.
        const taken = open.events[req.step];
        if (taken !== undefined) return { ok: true, seq: taken.seq, duplicate: true };
        if (req.step !== open.events.length) return refuse(new InvalidRequestError(`step ${req.step} is out of order: ${open.events.length} steps taken`));
        const event: StampedEvent = { ...req.event, meta: { time, cmdId: stepId(req.txId, req.step), client: req.client } };
        const step = stepSession(this.app.machine, open.working, event);
        // Refused: not a step taken; the transaction stays open on the same working copy.
        if (!step.accepted) return refuse(new EventRejectedError(event.type, step.stateValue));
        open.working = step.state;
        open.events.push({ event, seq: step.state.seq });
        return { ok: true, seq: step.state.seq };
      }
      case 'read':
        if (open === undefined) return this.#recent.has(req.txId) ? this.read(undefined) : this.#gone(req.txId);
        return { ok: true, seq: open.working.seq, state: open.working.snapshot.value, document: documentOf(open.working) };
      case 'commit':
        return this.#commitTx(req.txId, req.steps, open);
      case 'abort':
        if (open !== undefined) {
          this.log.debug({ txId: req.txId, client: open.label }, 'transaction aborted');
          await this.#release();
        }
        return { ok: true, seq: this.#state.seq };
    }
  }

  async #begin(txId: string, client: string, timeout: number, open: OpenTx | undefined): Promise<TxReply> {
    if (open !== undefined) return { ok: true, seq: open.base.seq };
    if (this.#recent.has(txId)) return refuse(new InvalidRequestError(`transaction ${txId} was committed already`));
    const reason = this.host.rollbacks?.rolledBack(txId);
    if (reason !== undefined) return refuse(new TransactionRolledBackError(txId, reason));
    if (this.#tx !== undefined) return refuse(new SessionLockedError(this.app.name, this.id, this.#tx.label));
    const tx: OpenTx = { txId, client, label: labelOf(client), base: this.#state, working: this.#state, events: [], lease: undefined };
    // The lease: a client that never finishes does not hold the session for ever.
    tx.lease = this.host.clock.setTimeout(() => {
      tx.lease = undefined;
      void this.enqueue(() => this.#rollBack(txId, 'timeout'));
    }, timeout);
    this.#tx = tx;
    this.log.debug({ txId, client: tx.label, timeout }, 'transaction begun');
    return { ok: true, seq: this.#state.seq };
  }

  async #commitTx(txId: string, steps: number, open: OpenTx | undefined): Promise<TxReply> {
    const epoch = this.host.primacy?.epochOf(this.shard) ?? 0;
    if (open === undefined) {
      const seq = this.#recent.get(txId);
      return seq === undefined ? this.#gone(txId) : { ok: true, seq, duplicate: true, ...this.#signature(epoch) };
    }
    if (steps !== open.events.length) return refuse(new InvalidRequestError(`commit says ${steps} steps, the transaction has taken ${open.events.length}`));
    if (open.events.length === 0) {
      await this.#release();
      return { ok: true, seq: this.#state.seq, ...this.#signature(epoch) };
    }
    const reply = await this.#persist(open.working, open.events, txId, open.client);
    // Not journaled (or not provably): the transaction stays open for a retried commit, until its lease ends.
    if (reply.ok && this.#tx === open) await this.#release();
    return reply;
  }

  /** Steps of a transaction this session does not hold: it was rolled back here, or never was here. */
  #gone(txId: string): TxReply {
    return refuse(new TransactionRolledBackError(txId, this.host.rollbacks?.rolledBack(txId) ?? 'unknown'));
  }

  /** Rolls back `client`'s transaction, if it holds one; in the mailbox, after what is queued. */
  rollBackClient(client: string, reason: RollbackReason): Promise<boolean> {
    return this.enqueue(async () => (this.#tx?.client === client ? this.#rollBack(this.#tx.txId, reason) : false));
  }

  async #rollBack(txId: string, reason: RollbackReason): Promise<boolean> {
    const tx = this.#tx;
    if (tx?.txId !== txId) return false;
    this.host.rollbacks?.noteRollback(txId, reason);
    this.log.info({ txId, client: tx.label, reason, steps: tx.events.length }, 'transaction rolled back');
    await this.#release();
    return true;
  }

  /** Frees the lock; delayed events that fell due meanwhile fire now. */
  async #release(): Promise<void> {
    this.#unlock();
    if (!this.#evicted) await this.#armTimers();
  }

  #unlock(): void {
    const lease = this.#tx?.lease;
    if (lease !== undefined) this.host.clock.clearTimeout(lease);
    this.#tx = undefined;
  }

  async #commit(event: StampedEvent): Promise<CommandReply> {
    const step = stepSession(this.app.machine, this.#state, event);
    if (!step.accepted) {
      return { ok: false, error: toErrorBody(new EventRejectedError(event.type, step.stateValue)) };
    }
    return this.#persist(step.state, [{ event, seq: step.state.seq }], event.meta.cmdId, event.meta.client);
  }

  /**
   * Journals `events` as one message (de-duplicated on `msgId`), then makes
   * `next` current: the path commands, delayed events and transactions share.
   */
  async #persist(next: SessionState, events: readonly JournaledEvent[], msgId: string, setter: string): Promise<CommandReply> {
    const record: JournalRecord = { v: 1, events };
    const { app, shard } = this;
    const primacy = this.host.primacy;
    const replication = this.host.replicas;
    const plan = planCommit({
      level: app.commit,
      requiredSynchronizedReplicas: app.requiredSynchronizedReplicas,
      syncReplicas: app.syncReplicas,
      replication: replication !== undefined,
      // Counted only when some are required: counting looks at every secondary.
      synchronized: replication !== undefined && app.commit === 'replicas' && app.requiredSynchronizedReplicas > 0 ? replication.synchronized(shard) : 0,
      primacy: primacy === undefined ? null : this.#primacyFacts(primacy),
    });
    if (plan.do === 'refuse') {
      if (plan.why === 'moved') return this.#moved('this worker is no longer primary of the shard');
      return refuse(new NotEnoughReplicasError(app.name, shard, plan.required, plan.synchronized));
    }
    const epoch = plan.epoch;
    if (plan.askStoredView && !(await primacy!.stillPrimary(shard, epoch))) return this.#moved('this worker is no longer primary of the shard');
    if (plan.do === 'append') {
      const outcome = await this.#append(record, msgId, epoch);
      if (outcome !== 'ok') return outcome.ok ? { ...outcome, ...this.#signature(epoch) } : outcome;
      // Landed, but perhaps after a successor took over while this worker could not look: not acknowledged then.
      if (plan.reprove && !(await this.#stillPrimary(primacy!, epoch))) return this.#moved('the lease lapsed around the append and the view moved the shard');
      // Synchronous commit: durable in the journal already; now wait (bounded) for the synchronized secondaries.
      if (plan.waitFor !== null) await replication!.replicated(shard, this.#journalSeq, plan.waitFor, this.host.sessionTimeout);
    } else {
      this.#unjournaled.push(record);
      this.#appending ??= this.#appendInBackground();
    }
    // The wake-up index is written before the reply, so a worker killed right after still wakes the session.
    const ids: [string, number][] = events.map((e) => [e.event.meta.cmdId, e.seq]);
    if (ids.every(([cmdId]) => cmdId !== msgId)) ids.push([msgId, next.seq]);
    await this.#apply(next, ids, setter);
    return { ok: true, seq: next.seq, ...this.#signature(epoch) };
  }

  #signature(epoch: number): { by: string; epoch: number } {
    return { by: this.host.primacy?.self ?? this.host.id, epoch };
  }

  /** The lease is asked only while the view makes this worker primary. */
  #primacyFacts(primacy: Primacy): PrimacyFacts {
    const epoch = primacy.epochOf(this.shard);
    return { epoch, leaseHeld: epoch !== null && primacy.leaseHeld() };
  }

  /** After an append: still primary at `epoch`, by the lease or else by the stored view. */
  async #stillPrimary(primacy: Primacy, epoch: number): Promise<boolean> {
    const facts = this.#primacyFacts(primacy);
    let verdict = primacyVerdict(facts, undefined, epoch);
    if (verdict === 'ask-stored-view') verdict = primacyVerdict(facts, await primacy.stillPrimary(this.shard, facts.epoch!), epoch);
    return verdict === 'proven';
  }

  /** Refused, retryable: the client tries again and finds the shard's primary. The copy here is not trusted any more. */
  #moved(why: string): CommandReply {
    this.#evict(why);
    return { ok: false, error: toErrorBody(new SessionMovedError(this.app.name, this.id)) };
  }

  /** Appends one record, fenced on the last sequence this copy reflects. */
  async #append(record: JournalRecord, msgId: string, epoch: number): Promise<'ok' | CommandReply> {
    try {
      const ack = await this.host.journal.append(this.subject, encode(record), {
        msgId,
        expectedLastSubjectSeq: this.#journalSeq,
        headers: {
          [HEADER.type]: 'event',
          [HEADER.session]: `${this.app.name}/${this.id}`,
          [HEADER.command]: msgId,
          [HEADER.seq]: String(record.events[record.events.length - 1]!.seq),
          [HEADER.epoch]: String(epoch),
          [HEADER.worker]: this.host.primacy?.self ?? this.host.id,
        },
      });
      if (ack.duplicate) {
        // Journaled before, but not through this copy: it is stale. Answer with the seq it got, then reload.
        const seq = await this.#seqOfJournaled(ack.seq, msgId);
        this.#evict('a retried command was journaled by an earlier owner');
        return { ok: true, seq, duplicate: true };
      }
      this.#journalSeq = ack.seq;
      return 'ok';
    } catch (err) {
      if (err instanceof WrongLastSequenceError) {
        this.#evict('journal moved on: stale copy or lost ownership');
        return { ok: false, error: toErrorBody(new SessionMovedError(this.app.name, this.id)) };
      }
      return { ok: false, error: toErrorBody(err) };
    }
  }

  async #seqOfJournaled(journalSeq: number, cmdId: string): Promise<number> {
    for await (const e of this.host.journal.read(this.subject, { fromSeq: journalSeq, limit: 1 })) {
      const rec = decode(e.data) as JournalRecord;
      const hit = rec.events.find((x) => x.event.meta.cmdId === cmdId) ?? rec.events[rec.events.length - 1];
      if (hit) return hit.seq;
    }
    return this.#state.seq;
  }

  /** Commit level memory: the reply went out already; journal in batches, in order. */
  async #appendInBackground(): Promise<void> {
    while (this.#unjournaled.length > 0 && !this.#evicted) {
      const batch = this.#unjournaled;
      this.#unjournaled = [];
      const record: JournalRecord = { v: 1, events: batch.flatMap((r) => r.events) };
      const outcome = await this.#append(record, record.events[0]!.event.meta.cmdId, this.host.primacy?.epochOf(this.shard) ?? 0);
      if (outcome !== 'ok') {
        this.log.error({ lost: record.events.length }, 'background journal append failed: unjournaled writes lost');
        break;
      }
    }
    this.#appending = undefined;
  }

  /** The commit is durable (or, at commit level memory, accepted): now it becomes current and visible. */
  #apply(next: SessionState, ids: readonly [string, number][], setter: string): Promise<void> {
    const prev = this.#state;
    this.#state = next;
    for (const [cmdId, seq] of ids) this.#remember(cmdId, seq);
    this.#publishPatch(prev, next, setter);
    const indexed = prev.timers !== next.timers ? this.#armTimers() : Promise.resolve();
    if (next.seq - this.#snapshotSeq >= this.app.snapshotEvery && this.app.commit !== 'memory') {
      void this.saveSnapshot({ compact: true }).catch((err: unknown) => this.log.warn({ err }, 'snapshot failed'));
    }
    return indexed;
  }

  #remember(cmdId: string, seq: number): void {
    this.#recent.set(cmdId, seq);
    if (this.#recent.size > RECENT_COMMANDS) this.#recent.delete(this.#recent.keys().next().value!);
  }

  #publishPatch(prev: SessionState, next: SessionState, setter: string): void {
    const ops = jsonPatch.compare(documentOf(prev) as object, documentOf(next) as object) as PatchOperation[];
    const patch: PatchMessage = { seq: next.seq, prev: prev.seq, ops, setter };
    try {
      this.host.bus.publish(eventSubject(this.host.cluster, this.app.name, this.id), encode(patch), {
        headers: { [HEADER.type]: 'patch', [HEADER.session]: `${this.app.name}/${this.id}`, [HEADER.seq]: String(next.seq), [HEADER.client]: setter },
      });
    } catch (err) {
      // A patch too large for a message: subscribers see the gap and re-read.
      this.log.warn({ err, seq: next.seq }, 'patch not published');
    }
  }

  /**
   * Writes the snapshot. Every `snapshotEvery` events the journal below it
   * goes too; a passivation only snapshots, because a purge costs the
   * server time that grows with the stream (on 2.9.10) and mass passivation
   * would otherwise flood it with them.
   */
  saveSnapshot(options: { compact?: boolean } = {}): Promise<void> {
    // One at a time: a passivation waits for a compaction already under way.
    const run = this.#saving.then(() => this.#writeSnapshot(options));
    this.#saving = run.catch(() => undefined);
    return run;
  }

  async #writeSnapshot(options: { compact?: boolean }): Promise<void> {
    await this.#appending;
    const seq = this.#state.seq;
    if (seq === this.#snapshotSeq || this.#evicted || this.#unjournaled.length > 0) return;
    const journalSeq = this.#journalSeq;
    const recent = [...this.#recent.entries()].slice(-RECENT_IN_SNAPSHOT);
    await this.host.store.save(this.app.name, this.id, { session: persistSession(this.app.machine, this.#state), journalSeq, recent });
    this.#snapshotSeq = seq;
    if (!options.compact) return;
    await this.host.journal.purge(this.subject, { below: journalSeq }).catch((err: unknown) => {
      this.log.warn({ err }, 'journal compaction failed');
    });
  }

  /** Arms the clock for the earliest pending timer; an overdue one fires at once. */
  #armTimers(): Promise<void> {
    const first: Timer | undefined = this.#state.timers[0];
    if (first?.due === this.#timerDue) return Promise.resolve();
    if (this.#timer !== undefined) this.host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = first?.due;
    const indexed = this.host.timersChanged(this, first?.due);
    if (first !== undefined && !this.#evicted) this.#scheduleFire(first.due - this.host.clock.now());
    return indexed;
  }

  #scheduleFire(delay: number): void {
    this.#timer = this.host.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerDue = undefined;
      void this.enqueue(() => this.#fireDue());
    }, Math.max(0, delay));
  }

  /** Delayed events are journaled like commands, so secondaries and replays see them too. */
  async #fireDue(): Promise<void> {
    // Locked: they wait, and the release arms them again.
    if (this.#tx !== undefined) return;
    const now = this.host.clock.now();
    for (const t of this.#state.timers.filter((x) => x.due <= now)) {
      if (this.#evicted) return;
      const cmdId = `t:${this.app.name}/${this.id}:${t.id}:${t.due}`;
      const event: StampedEvent = { ...t.event, meta: { time: now, cmdId, client: 'timer', timer: t.id } };
      const reply = await this.#commit(event);
      if (!reply.ok && reply.error.name === 'EventRejectedError') {
        // As xstate drops a delayed event nobody takes; a rejected event changes nothing, so copies still agree.
        this.#state = { ...this.#state, timers: this.#state.timers.filter((x) => x.id !== t.id) };
      } else if (!reply.ok) {
        // The journal is unavailable (or the session moved): try again shortly, not in a tight loop.
        this.log.warn({ timer: t.id, error: reply.error }, 'delayed event not committed; retrying');
        if (!this.#evicted) {
          this.#timerDue = t.due;
          this.#scheduleFire(TIMER_RETRY_MS);
        }
        return;
      }
    }
    this.#timerDue = undefined;
    await this.#armTimers();
  }

  #evict(why: string): void {
    if (this.#evicted) return;
    this.log.info({ why }, 'session evicted');
    this.stop();
    this.host.evict(this);
  }

  /** Stops its clock timers; the durable timer index keeps what is pending. An open transaction is lost with the copy. */
  stop(): void {
    this.#evicted = true;
    if (this.#timer !== undefined) this.host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#tx !== undefined) {
      this.log.info({ txId: this.#tx.txId, client: this.#tx.label }, 'open transaction dropped with the session');
      this.#unlock();
    }
  }

  /** Commit level memory: resolves once what was acknowledged is journaled. */
  async flush(): Promise<void> {
    await this.#appending;
  }

  /** Passivation: flush, snapshot, and leave memory. */
  async passivate(): Promise<void> {
    await this.#appending;
    await this.saveSnapshot();
    this.stop();
  }
}

/** The command id of a transaction's step: also the key a retried step is recognised by. */
function stepId(txId: string, step: number): string {
  return `${txId}:${step}`;
}

function refuse(err: Error): { ok: false; error: ErrorBody } {
  return { ok: false, error: toErrorBody(err) };
}
