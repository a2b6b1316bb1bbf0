import type { Logger } from 'pino';
import type { TimerHandle } from '../../bus/clock.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { journalSubject } from '../../bus/subjects.js';
import type {
  CommandReply,
  CommandRequest,
  ErrorBody,
  JournaledEvent,
  JournalRecord,
  ReadReply,
  StampedEvent,
  TxIntent,
  VerifyReply,
  VerifyRequest,
} from '../../protocol/messages.js';
import {
  ConflictError,
  EventRejectedError,
  InvalidRequestError,
  NotEnoughReplicasError,
  refuse,
  SessionLockedError,
  SessionMovedError,
} from '../../protocol/errors.js';
import { planCommit, primacyVerdict, type CommitPlan, type PrimacyFacts } from '../../machines/commitPlan.js';
import { sessionKey } from '../../protocol/names.js';
import { appendIntent, intentMsgId } from './txJournal.js';
import { decode } from '../../bus/codec.js';
import { parseJournalEntry } from '../../protocol/records.js';
import {
  documentOf,
  persistSession,
  replaySession,
  stepSession,
  type SessionState,
  type Timer,
} from '../../machines/session.js';
import type { Application } from './application.js';
import type { Primacy } from './lease.js';
import { verifySession, type LoadedSession } from './replay.js';
import type { SessionDeps, SessionLock } from './sessionDeps.js';
import { sessionHeader } from '../../protocol/headers.js';
import {
  appendRecord,
  journaledAt,
  ownEarlierRecord,
  preparePatch,
  publishPatch,
  type PreparedPatch,
} from './sessionWrites.js';
import { RecentCommands, type RecentCommand } from './recentCommands.js';
import { batchMsgId, GROUP_COMMIT_DEFAULTS, takeBatch, type WaitingCommand } from './groupCommit.js';

export interface HostedSessionOptions {
  readonly deps: SessionDeps;
  readonly app: Application;
  readonly id: string;
  readonly shard: number;
  /** Its state, journal fence and recent command ids, as loadSession read them. */
  readonly loaded: LoadedSession;
}

/** An earlier attempt of a command, found journaled, as it becomes current: its state, events and patch, and the command's seq. */
interface TakenRecord {
  readonly next: SessionState;
  readonly events: readonly JournaledEvent[];
  readonly patch: PreparedPatch;
  readonly seq: number;
}

/** What became of one command of a batch, before the batch's record is journaled. */
type CommandOutcome =
  /** Answered whatever becomes of the record: a refusal read from committed state. */
  | { readonly kind: 'reply'; readonly reply: CommandReply }
  /** A command id this copy remembers committed at `seq`: a duplicate, if this copy is still the primary's. */
  | { readonly kind: 'known'; readonly seq: number }
  /** Refused on the state before it; `dependent`: that state includes uncommitted steps. `plain`: not a primacy matter. */
  | { readonly kind: 'refuse'; readonly error: Error; readonly dependent: boolean; readonly plain?: boolean }
  /** Stepped to `seq` (or, `duplicate`, the same id earlier in the batch). */
  | { readonly kind: 'step'; readonly seq: number; readonly cmdId: string; readonly duplicate?: boolean };

/** A record journaled and made current (`taken`: the events an earlier attempt journaled instead), or the reply for all. */
type JournalOutcome =
  | { readonly ok: true; readonly epoch: number; readonly taken?: readonly JournaledEvent[] }
  | { readonly ok: false; readonly reply: CommandReply };

/** How a multi-session transaction commits: under which epoch, whether primacy is proved again after, which secondaries it waits for. */
export interface TransactionPlan {
  readonly epoch: number;
  readonly reprove: boolean;
  readonly waitFor: number | null;
}

/** What an idle session's mailbox and snapshot chain start from: one for all of them. */
const SETTLED: Promise<void> = Promise.resolve();

/** An empty list shared by every idle session; replaced (never pushed to) when something arrives. */
const NONE: never[] = Object.freeze([]) as unknown as never[];

/** Pause before a delayed event whose commit failed is tried again. */
const TIMER_RETRY_MS = 1_000;

/**
 * One active session: one message at a time through its mailbox; the commit
 * path journals before anything becomes current or visible.
 */
export class HostedSession {
  readonly #deps: SessionDeps;
  #state: SessionState;
  /** Stream sequence of the last journal message reflected in #state: the fence. */
  #journalSeq: number;
  #snapshotSeq: number;
  #mailbox: Promise<unknown> = SETTLED;
  #busySince: number | undefined;
  #timer: TimerHandle | undefined;
  #timerDue: number | undefined;
  #evicted = false;
  /** Command ids committed inside the de-duplication window: a retry is answered without touching the journal. */
  readonly #recent: RecentCommands;
  /** Commit level memory: records waiting for the background appender. */
  #unjournaled: JournalRecord[] = NONE;
  #appending: Promise<void> | undefined;
  #saving: Promise<void> = SETTLED;
  #lock: SessionLock | undefined;
  /** The oldest multi-session record on its subject compaction keeps (StoredSnapshot.keep). */
  #keep: number | undefined;
  /** Waiting for the lock to be free (a shard's hand-off waiting for its transactions). */
  #unlocked: (() => void)[] | undefined;
  /** Commands waiting for the next turn, taken together (group commit). */
  #waiting: WaitingCommand[] = NONE;
  /** A turn for the waiting commands is in the mailbox already. */
  #turnQueued = false;
  lastActive: number;

  readonly app: Application;
  readonly id: string;
  readonly shard: number;
  #log: Logger | undefined;

  constructor({ deps, app, id, shard, loaded }: HostedSessionOptions) {
    this.#deps = deps;
    this.app = app;
    this.id = id;
    this.shard = shard;
    this.#state = loaded.state;
    this.#journalSeq = loaded.journalSeq;
    this.#snapshotSeq = loaded.state.seq;
    this.#recent = new RecentCommands(loaded.recent);
    this.#keep = loaded.keep;
    this.lastActive = deps.clock.now();
    void this.#armTimers();
  }

  /** Made on first use: a child logger per session is a few hundred bytes most sessions never need. */
  get log(): Logger {
    return (this.#log ??= this.#deps.log.child({ app: this.app.name, session: this.id, shard: this.shard }));
  }

  /** Its journal subject, made when used: an idle session need not hold the string. */
  get subject(): string {
    return journalSubject(this.#deps.cluster, this.shard, this.app.name, this.id);
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
  get openTransaction(): SessionLock | undefined {
    return this.#lock;
  }

  /** Taken by a transaction's begin; the caller has checked it is free. */
  lock(lock: SessionLock): void {
    this.#lock = lock;
  }

  /** Frees the lock; delayed events that fell due meanwhile fire now. */
  async unlock(): Promise<void> {
    this.#dropLock();
    if (!this.#evicted) await this.#armTimers();
  }

  #dropLock(): void {
    this.#lock?.drop();
    this.#lock = undefined;
    const unlocked = this.#unlocked;
    this.#unlocked = undefined;
    for (const resolve of unlocked ?? []) resolve();
  }

  /** Resolves once no transaction holds the lock: at once if none does now. */
  whenUnlocked(): Promise<void> {
    if (this.#lock === undefined) return Promise.resolve();
    return new Promise((resolve) => (this.#unlocked ??= []).push(resolve));
  }

  /** The seq command (or transaction, or step) `cmdId` produced, while it is inside the de-duplication window. */
  recentSeq(cmdId: string): number | undefined {
    return this.#recent.seqOf(cmdId, this.#deps.clock.now());
  }

  /** Nothing in its mailbox, running or waiting: a read now cannot overtake a command. */
  get idle(): boolean {
    return this.#mailbox === SETTLED;
  }

  /** When the message its mailbox is on now started (undefined: idle): a stall shows here. */
  get busySince(): number | undefined {
    return this.#busySince;
  }

  /** Runs `task` after everything already queued for this session. */
  enqueue<T>(task: () => Promise<T>): Promise<T> {
    const start = (): Promise<T> => {
      this.#busySince = this.#deps.clock.now();
      return task();
    };
    const run = this.#mailbox.then(start, start);
    // No async wrapper per message: the mailbox's own continuation marks it idle.
    const idle = (): void => {
      this.#busySince = undefined;
      // Nothing queued behind it: the session lets go of its last message's promise.
      if (this.#mailbox === after) this.#mailbox = SETTLED;
    };
    const after = run.then(idle, idle);
    this.#mailbox = after;
    return run;
  }

  /** The copy in memory, as it is (read-only routing, a transaction's read after its commit). */
  read(minSeq: number | undefined): ReadReply {
    this.lastActive = this.#deps.clock.now();
    if (minSeq !== undefined && minSeq > this.#state.seq) return refuse(new ConflictError(minSeq, this.#state.seq));
    return { ok: true, seq: this.#state.seq, state: this.#state.snapshot.value, document: documentOf(this.#state) };
  }

  /**
   * A read on the primary's own subject, strongly consistent: answered only
   * while this worker is proved primary (its lease, or else the stored
   * view), since a deposed primary that has not heard yet (paused, cut off)
   * would answer from a stale copy. Otherwise SessionMovedError, retried.
   */
  async readAsPrimary(minSeq: number | undefined): Promise<ReadReply> {
    const primacy = this.#deps.primacy;
    if (primacy !== undefined && !(await this.#provenPrimary(primacy)))
      return this.#moved('this worker is no longer primary of the shard');
    return this.read(minSeq);
  }

  /**
   * Where the dispatcher hands a command: it waits for the session's next
   * turn, and every command waiting then is committed with it as one
   * journal message (group commit). Undefined: the copy was evicted before
   * its turn; load the session again and submit it there.
   */
  submit(
    req: CommandRequest,
    time: number,
    size: number,
    admit: (client: string) => Error | undefined,
  ): Promise<CommandReply | undefined> {
    return new Promise((resolve) => {
      const waiting: WaitingCommand = { req, time, size, admit, resolve };
      if (this.#waiting.length === 0) this.#waiting = [waiting];
      else this.#waiting.push(waiting);
      if (this.#turnQueued) return;
      this.#turnQueued = true;
      void this.enqueue(() => this.#commandTurn());
    });
  }

  /** One turn of the mailbox: the commands waiting now, within the batch limits; the rest get the next turn. */
  async #commandTurn(): Promise<void> {
    const batch = takeBatch(this.#waiting, this.#deps.groupCommit ?? GROUP_COMMIT_DEFAULTS);
    if (this.#waiting.length > 0) void this.enqueue(() => this.#commandTurn());
    else {
      this.#turnQueued = false;
      this.#waiting = NONE;
    }
    if (this.#evicted) {
      for (const w of batch) w.resolve(undefined);
      return;
    }
    const admitted = batch.filter((w) => {
      const refusal = w.admit(w.req.client);
      if (refusal !== undefined) w.resolve(refuse(refusal));
      return refusal === undefined;
    });
    if (admitted.length === 0) return;
    try {
      const replies = await this.#commitCommands(admitted);
      for (let i = 0; i < admitted.length; i++) admitted[i]!.resolve(replies[i]);
    } catch (err) {
      for (const w of admitted) w.resolve(refuse(err));
    }
  }

  /** The commit path (DESIGN.md section 3) for one command, inside the mailbox. Never throws: every outcome is a reply. */
  async command(req: CommandRequest, time: number): Promise<CommandReply> {
    return (await this.#commitCommands([{ req, time }]))[0]!;
  }

  /**
   * The commit path for commands in arrival order, each stepped on the state
   * the ones before it left; the accepted ones journaled as one record. A
   * refusal decided on that uncommitted state holds only if the record
   * lands: otherwise it gets the batch's own failure, which is retryable.
   */
  async #commitCommands(
    commands: readonly { readonly req: CommandRequest; readonly time: number }[],
  ): Promise<CommandReply[]> {
    const base = this.#state;
    let state = base;
    const outcomes: CommandOutcome[] = [];
    const events: JournaledEvent[] = [];
    const patches: PreparedPatch[] = [];
    for (const { req, time } of commands) {
      this.lastActive = time;
      const dependent = events.length > 0;
      const known = this.#recent.seqOf(req.cmdId, time);
      if (known !== undefined) {
        outcomes.push({ kind: 'known', seq: known });
        continue;
      }
      const twin = events.find((e) => e.event.meta.cmdId === req.cmdId);
      if (twin !== undefined) {
        outcomes.push({ kind: 'step', seq: twin.seq, cmdId: req.cmdId, duplicate: true });
        continue;
      }
      const locked = this.#lockedFor(req.client);
      if (locked !== undefined) {
        outcomes.push({ kind: 'reply', reply: refuse(locked) });
        continue;
      }
      if (req.expectSeq !== undefined && req.expectSeq !== state.seq) {
        outcomes.push({ kind: 'refuse', error: new ConflictError(req.expectSeq, state.seq), dependent });
        continue;
      }
      const event: StampedEvent = { ...req.event, meta: { time, cmdId: req.cmdId, client: req.client } };
      const step = stepSession(this.app.machine, state, event);
      if (!step.accepted) {
        outcomes.push({ kind: 'refuse', error: new EventRejectedError(event.type, step.stateValue), dependent });
        continue;
      }
      // Encoded before anything is journaled: a document that cannot be kept must not reach the journal.
      const patch = preparePatch(state, step.state, req.client);
      if (typeof patch === 'string') {
        const error = new EventRejectedError(event.type, state.snapshot.value, patch);
        outcomes.push(
          dependent ? { kind: 'refuse', error, dependent, plain: true } : { kind: 'reply', reply: refuse(error) },
        );
        continue;
      }
      state = step.state;
      events.push({ event, seq: state.seq });
      patches.push(patch);
      outcomes.push({ kind: 'step', seq: state.seq, cmdId: req.cmdId });
    }
    const journaled = events.length === 0 ? undefined : await this.#journalCommit(state, events, patches);
    /**
     * A refusal or a duplicate read from this copy's state is final for the client, so it is given only while
     * proved primary (asked once): a deposed primary's copy may remember a command whose entry landed after a newer
     * epoch's marker, which nobody applies, and answering "duplicate" for it would lose it.
     */
    let proven: Promise<boolean> | undefined;
    const asPrimary = (answer: () => CommandReply): Promise<CommandReply> => {
      const primacy = this.#deps.primacy;
      if (primacy === undefined) return Promise.resolve(answer());
      proven ??= this.#provenPrimary(primacy);
      return proven.then((yes) => (yes ? answer() : this.#moved('this worker is no longer primary of the shard')));
    };
    const replies: CommandReply[] = [];
    for (const o of outcomes) {
      if (o.kind === 'reply') replies.push(o.reply);
      else if (o.kind === 'known')
        replies.push(await asPrimary(() => ({ ok: true, seq: o.seq, duplicate: true, ...this.signature() })));
      else if (o.kind === 'refuse') {
        if (o.dependent && journaled !== undefined && !journaled.ok) replies.push(journaled.reply);
        else replies.push(o.plain === true ? refuse(o.error) : await asPrimary(() => refuse(o.error)));
      } else if (!journaled!.ok) replies.push(journaled!.reply);
      else if (journaled!.taken !== undefined) {
        const taken = journaled!.taken;
        const hit = taken.find((e) => e.event.meta.cmdId === o.cmdId) ?? taken[taken.length - 1]!;
        replies.push({ ok: true, seq: hit.seq, duplicate: true, by: this.#signer, epoch: journaled!.epoch });
      } else if (o.duplicate === true)
        replies.push({ ok: true, seq: o.seq, duplicate: true, by: this.#signer, epoch: journaled!.epoch });
      else replies.push({ ok: true, seq: o.seq, by: this.#signer, epoch: journaled!.epoch });
    }
    return replies;
  }

  /**
   * A refusal read from this copy's state is final for the client, so it is
   * given only while this worker is proved primary: a deposed primary's
   * stale copy would refuse what the real primary applies.
   */
  async #refuseAsPrimary(error: Error): Promise<CommandReply> {
    const primacy = this.#deps.primacy;
    if (primacy !== undefined && !(await this.#provenPrimary(primacy)))
      return this.#moved('this worker is no longer primary of the shard');
    return refuse(error);
  }

  /**
   * A command or transaction this copy remembers committed at `seq`: a
   * duplicate only while this worker is proved primary, since a deposed
   * primary's copy may remember an entry that landed after a newer epoch's
   * marker, which nobody applies.
   */
  async duplicateAsPrimary(seq: number): Promise<CommandReply> {
    const primacy = this.#deps.primacy;
    if (primacy !== undefined && !(await this.#provenPrimary(primacy)))
      return this.#moved('this worker is no longer primary of the shard');
    return { ok: true, seq, duplicate: true, ...this.signature() };
  }

  /** Plain writes wait while a transaction holds the lock; its own client must write through it. */
  #lockedFor(client: string): Error | undefined {
    const tx = this.#lock;
    if (tx === undefined) return undefined;
    if (tx.client === client)
      return new InvalidRequestError(`${tx.label} holds the session in transaction ${tx.txId}: send through it`);
    return new SessionLockedError(this.app.name, this.id, tx.label);
  }

  /** Cache verification, answered as of the committed seq (it runs in the mailbox). */
  async verify(req: VerifyRequest): Promise<VerifyReply> {
    this.lastActive = this.#deps.clock.now();
    // Commit level memory: what was acknowledged reaches the journal before the journal is replayed.
    await this.#appending;
    return verifySession(
      this.#deps,
      { app: this.app, id: this.id, shard: this.shard, current: this.#state, log: this.log },
      req,
    );
  }

  /** A delayed event, committed like a command. */
  async #commit(event: StampedEvent): Promise<CommandReply> {
    const step = stepSession(this.app.machine, this.#state, event);
    if (!step.accepted) return this.#refuseAsPrimary(new EventRejectedError(event.type, step.stateValue));
    return this.persist(step.state, [{ event, seq: step.state.seq }], event.meta.cmdId, event.meta.client);
  }

  /**
   * Journals `events` as one message (de-duplicated on `msgId`), then makes
   * `next` current: the path delayed events and transactions take.
   */
  async persist(
    next: SessionState,
    events: readonly JournaledEvent[],
    msgId: string,
    setter: string,
  ): Promise<CommandReply> {
    const patch = preparePatch(this.#state, next, setter);
    if (typeof patch === 'string') {
      return refuse(new EventRejectedError(events[events.length - 1]!.event.type, this.#state.snapshot.value, patch));
    }
    const journaled = await this.#journalCommit(next, events, [patch], msgId);
    if (!journaled.ok) return journaled.reply;
    const sig = this.#signature(journaled.epoch);
    if (journaled.taken === undefined) return { ok: true, seq: next.seq, ...sig };
    const taken = journaled.taken;
    const hit = taken.find((e) => e.event.meta.cmdId === msgId) ?? taken[taken.length - 1]!;
    return { ok: true, seq: hit.seq, duplicate: true, ...sig };
  }

  /**
   * Journals `events` as one record (de-duplicated on `given`, a
   * transaction's id, or else its commands' own: batchMsgId), then makes
   * `next` current and publishes `patches`.
   * Not ok: the one reply every command of the record gets.
   */
  async #journalCommit(
    next: SessionState,
    events: readonly JournaledEvent[],
    patches: readonly PreparedPatch[],
    given?: string,
  ): Promise<JournalOutcome> {
    const record: JournalRecord = { v: 1, events };
    const msgId =
      given ?? (events.length === 1 ? events[0]!.event.meta.cmdId : batchMsgId(events.map((e) => e.event.meta.cmdId)));
    const { app, shard } = this;
    const { primacy, replicas: replication, sessionTimeout } = this.#deps;
    const planned = await this.#plan();
    if (!planned.ok) return planned;
    const plan = planned.plan;
    const epoch = plan.epoch;
    /** What the journal holds for these commands, when an earlier attempt of them is what it holds. */
    let taken: readonly JournaledEvent[] | undefined;
    if (plan.do === 'append') {
      const outcome = await this.#append(record, msgId, epoch, true);
      if (outcome !== 'ok' && !('taken' in outcome)) {
        if (!outcome.ok) return { ok: false, reply: outcome };
        // Journaled before by an earlier owner: a lone command is answered from the journal; a batch's commands
        // are sent back to retry one by one on the reloaded copy, which knows each of their ids.
        if (events.length > 1) {
          this.#evict('a retried batch was journaled by an earlier owner');
          return { ok: false, reply: refuse(new SessionMovedError(app.name, this.id)) };
        }
        return { ok: false, reply: { ...outcome, ...this.#signature(epoch) } };
      }
      let patch: readonly PreparedPatch[] = patches;
      if (outcome !== 'ok') {
        // The journal holds an earlier attempt of these commands by this copy (its answer lost): that becomes current.
        ({ next, events: taken } = outcome.taken);
        patch = [outcome.taken.patch];
        events = taken;
      }
      patches = patch;
      // Landed, but perhaps after a successor took over while this worker could not look: not acknowledged then.
      if (plan.reprove && !(await this.#stillPrimary(primacy!, epoch)))
        return { ok: false, reply: this.#moved('the lease lapsed around the append and the view moved the shard') };
      // Synchronous commit: durable in the journal already; now wait (bounded) for the synchronized secondaries.
      if (plan.waitFor !== null) await replication!.replicated(shard, this.#journalSeq, plan.waitFor, sessionTimeout);
    } else {
      if (this.#unjournaled.length === 0) this.#unjournaled = [record];
      else this.#unjournaled.push(record);
      this.#appending ??= this.#appendInBackground();
    }
    // The wake-up index is written before the reply, so a worker killed right after still wakes the session.
    const ids: RecentCommand[] = events.map((e) => [e.event.meta.cmdId, e.seq, e.event.meta.time]);
    // A transaction's record is de-duplicated on its own id: a retried commit is recognised by it too.
    if (given !== undefined && ids.every(([cmdId]) => cmdId !== given))
      ids.push([given, next.seq, events[events.length - 1]!.event.meta.time]);
    await this.#apply(next, ids, patches);
    return taken === undefined ? { ok: true, epoch } : { ok: true, epoch, taken };
  }

  /** How a commit goes now (commitPlan.ts), refused when this worker may not commit or too few secondaries follow. */
  async #plan(): Promise<
    | { readonly ok: true; readonly plan: Exclude<CommitPlan, { do: 'refuse' }> }
    | { readonly ok: false; readonly reply: CommandReply }
  > {
    const { app, shard } = this;
    const { primacy, replicas: replication } = this.#deps;
    const plan = planCommit({
      level: app.commit,
      requiredSynchronizedReplicas: app.requiredSynchronizedReplicas,
      syncReplicas: app.syncReplicas,
      replication: replication !== undefined,
      // Counted only when some are required: counting looks at every secondary.
      synchronized:
        replication !== undefined && app.commit === 'replicas' && app.requiredSynchronizedReplicas > 0
          ? replication.synchronized(shard)
          : 0,
      primacy: primacy === undefined ? null : this.#primacyFacts(primacy),
    });
    if (plan.do === 'refuse') {
      if (plan.why === 'moved')
        return { ok: false, reply: this.#moved('this worker is no longer primary of the shard') };
      return {
        ok: false,
        reply: refuse(new NotEnoughReplicasError(app.name, shard, plan.required, plan.synchronized)),
      };
    }
    if (plan.askStoredView && !(await primacy!.stillPrimary(shard, plan.epoch)))
      return { ok: false, reply: this.#moved('this worker is no longer primary of the shard') };
    return { ok: true, plan };
  }

  // ------------------------------------------------ multi-session transactions (txJournal.ts)

  /**
   * A multi-session transaction's plan, asked of its coordinator: every
   * session of it is on this shard, so one proof of primacy and one epoch
   * serve all. Journaled before the reply whatever the commit level.
   */
  async planTransaction(): Promise<
    { readonly ok: true; readonly plan: TransactionPlan } | { readonly ok: false; readonly reply: CommandReply }
  > {
    const planned = await this.#plan();
    if (!planned.ok) return planned;
    const { epoch, reprove, waitFor } = planned.plan;
    return { ok: true, plan: { epoch, reprove, waitFor } };
  }

  /**
   * Appends this session's intent in transaction `txId` (or, `record`, the
   * transaction's record, when this session coordinates), fenced on what
   * this copy reflects. A copy of it stored before (a retried commit) is
   * taken as this append: the lock kept every other writer of this worker
   * out, and the fence every other. Fence broken: this copy is stale and
   * evicted.
   */
  async appendTransaction(
    txId: string,
    epoch: number,
    entry: { readonly intent: TxIntent['intent'] } | { readonly record: JournalRecord },
  ): Promise<{ readonly ok: true; readonly seq: number } | { readonly ok: false; readonly reply: CommandReply }> {
    await this.#appending;
    const fence = this.#deps.unfenced === true ? undefined : this.#journalSeq;
    const session = sessionHeader(this.app.name, this.id);
    try {
      const ack =
        'intent' in entry
          ? await appendIntent(this.#deps.journal, this.subject, { app: this.app.name, id: this.id }, entry.intent, {
              msgId: intentMsgId(txId, sessionKey(this.app.name, this.id)),
              fence,
              epoch,
              worker: this.#signer,
            })
          : await appendRecord(this.#deps.journal, this.subject, entry.record, {
              msgId: txId,
              expectedLastSubjectSeq: fence,
              session,
              epoch,
              worker: this.#signer,
            });
      this.#deps.health?.appended();
      this.#deps.replicas?.journaled(this.shard, ack.seq);
      if (ack.seq > this.#journalSeq) this.#journalSeq = ack.seq;
      return { ok: true, seq: ack.seq };
    } catch (err) {
      if (err instanceof WrongLastSequenceError) {
        this.#evict('journal moved on under a transaction: stale copy or lost ownership');
        return { ok: false, reply: refuse(new SessionMovedError(this.app.name, this.id)) };
      }
      this.#deps.health?.appendFailed(err);
      return { ok: false, reply: refuse(err) };
    }
  }

  /** After the record landed at `journalSeq`: still primary (when the plan says to ask), and the secondaries waited for. */
  async settleTransaction(plan: TransactionPlan, journalSeq: number): Promise<CommandReply | undefined> {
    const { primacy, replicas: replication, sessionTimeout } = this.#deps;
    if (plan.reprove && !(await this.#stillPrimary(primacy!, plan.epoch)))
      return this.#moved('the lease lapsed around the append and the view moved the shard');
    if (plan.waitFor !== null) await replication!.replicated(this.shard, journalSeq, plan.waitFor, sessionTimeout);
    return undefined;
  }

  /**
   * A transaction's part of this session, journaled: `next` becomes current
   * and visible. `snapshot`: written now (awaited), so a replay of this
   * session need not look for its part in the coordinator's record again;
   * false when that snapshot failed.
   */
  async takeTransaction(
    next: SessionState,
    events: readonly JournaledEvent[],
    patch: PreparedPatch,
    txId: string | undefined,
    snapshot: boolean,
  ): Promise<boolean> {
    const ids: RecentCommand[] = events.map((e) => [e.event.meta.cmdId, e.seq, e.event.meta.time]);
    if (txId !== undefined) ids.push([txId, next.seq, events[events.length - 1]!.event.meta.time]);
    await this.#apply(next, ids, [patch]);
    if (!snapshot) return true;
    return this.saveSnapshot().then(
      () => true,
      (err: unknown) => {
        this.log.warn({ err }, 'snapshot after a transaction failed');
        return false;
      },
    );
  }

  /** Remembers that transaction `txId` committed here at `seq` (its session had no events in it): a retried commit is answered. */
  rememberTransaction(txId: string, seq: number): void {
    this.#recent.remember(txId, seq, this.#deps.clock.now());
  }

  /** The copy is not to be trusted any more (a transaction of it did not settle): the next message reloads it. */
  forget(why: string): void {
    this.#evict(why);
  }

  #signature(epoch: number): { by: string; epoch: number } {
    return { by: this.#signer, epoch };
  }

  /** Who acknowledges, under which epoch (0 with static sharding, or when no longer primary): as replies say it. */
  signature(): { by: string; epoch: number } {
    return this.#signature(this.#deps.primacy?.epochOf(this.shard) ?? 0);
  }

  get #signer(): string {
    return this.#deps.primacy?.self ?? this.#deps.workerId;
  }

  /** The lease is asked only while the view makes this worker primary. */
  #primacyFacts(primacy: Primacy): PrimacyFacts {
    const epoch = primacy.epochOf(this.shard);
    return { epoch, leaseHeld: epoch !== null && primacy.leaseHeld() };
  }

  /** Primary now, at the epoch the view gives it: by the lease, or else by the stored view. */
  async #provenPrimary(primacy: Primacy): Promise<boolean> {
    const facts = this.#primacyFacts(primacy);
    let verdict = primacyVerdict(facts);
    if (verdict === 'ask-stored-view')
      verdict = primacyVerdict(facts, await primacy.stillPrimary(this.shard, facts.epoch!));
    return verdict === 'proven';
  }

  /** After an append: still primary at `epoch`, by the lease or else by the stored view. */
  async #stillPrimary(primacy: Primacy, epoch: number): Promise<boolean> {
    const facts = this.#primacyFacts(primacy);
    let verdict = primacyVerdict(facts, undefined, epoch);
    if (verdict === 'ask-stored-view')
      verdict = primacyVerdict(facts, await primacy.stillPrimary(this.shard, facts.epoch!), epoch);
    return verdict === 'proven';
  }

  /** Refused, retryable: the client tries again and finds the shard's primary. The copy here is not trusted any more. */
  #moved(why: string): { readonly ok: false; readonly error: ErrorBody } {
    this.#evict(why);
    return refuse(new SessionMovedError(this.app.name, this.id));
  }

  /**
   * Appends one record, fenced on the last sequence this copy reflects.
   * `take`: a duplicate that is this copy's own earlier attempt of the same
   * command, journaled right after what it holds, is taken up (`taken`)
   * rather than reloaded.
   */
  async #append(
    record: JournalRecord,
    msgId: string,
    epoch: number,
    take = false,
  ): Promise<'ok' | CommandReply | { readonly taken: TakenRecord }> {
    try {
      const ack = await appendRecord(this.#deps.journal, this.subject, record, {
        msgId,
        expectedLastSubjectSeq: this.#deps.unfenced === true ? undefined : this.#journalSeq,
        session: sessionHeader(this.app.name, this.id),
        epoch,
        worker: this.#signer,
      });
      this.#deps.health?.appended();
      this.#deps.replicas?.journaled(this.shard, ack.seq);
      if (ack.duplicate && take && ack.seq > this.#journalSeq) {
        const taken = await this.#ownEarlierAttempt(ack.seq, msgId, epoch);
        if (taken !== undefined) return { taken };
      }
      if (ack.duplicate) {
        const first = await journaledAt(this.#deps.journal, this.subject, ack.seq, msgId);
        // Its first copy is a deposed epoch's late entry, which nobody applies: journaled again, under an id of
        // this epoch's own (once: a copy under that id is this epoch's).
        const own = `@${epoch}`;
        if (
          first !== undefined &&
          !msgId.endsWith(own) &&
          this.#deps.epochs?.admits(this.shard, ack.seq, first.epoch) === false
        )
          return this.#append(record, msgId + own, epoch);
        // Journaled before. Through this copy, and forgotten since (more ids than a session keeps): answered
        // from the journal. Not through this copy: it is stale; answered likewise, then reloaded.
        const seq = first?.seq ?? this.#state.seq;
        if (ack.seq > this.#journalSeq) this.#evict('a retried command was journaled by an earlier owner');
        return { ok: true, seq, duplicate: true };
      }
      this.#journalSeq = ack.seq;
      return 'ok';
    } catch (err) {
      if (err instanceof WrongLastSequenceError) {
        this.#evict('journal moved on: stale copy or lost ownership');
        return refuse(new SessionMovedError(this.app.name, this.id));
      }
      this.#deps.health?.appendFailed(err);
      return refuse(err);
    }
  }

  /**
   * An attempt of command `msgId` this copy made earlier, whose answer was
   * lost (a NATS node died with it, the call timed out) but which the
   * journal stored at `seq`, right after what this copy holds: that record
   * replayed onto this copy, as a reload would find it, without reloading
   * (which reads the snapshot and the journal again, while their streams
   * may still be electing leaders). Undefined when it is anything else.
   */
  async #ownEarlierAttempt(seq: number, msgId: string, epoch: number): Promise<TakenRecord | undefined> {
    const record = await ownEarlierRecord(this.#deps.journal, this.subject, {
      seq,
      msgId,
      worker: this.#signer,
      epoch,
      after: this.#state.seq,
    });
    if (record === undefined) return undefined;
    let next: SessionState;
    try {
      next = replaySession(this.app.machine, this.#state, record.events);
    } catch {
      return undefined;
    }
    const last = record.events[record.events.length - 1]!;
    const patch = preparePatch(this.#state, next, last.event.meta.client);
    if (typeof patch === 'string') return undefined;
    this.#journalSeq = seq;
    const hit = record.events.find((e) => e.event.meta.cmdId === msgId) ?? last;
    return { next, events: record.events, patch, seq: hit.seq };
  }

  /** Commit level memory: the reply went out already; journal in batches, in order. */
  async #appendInBackground(): Promise<void> {
    while (this.#unjournaled.length > 0 && !this.#evicted) {
      const batch = this.#unjournaled;
      this.#unjournaled = NONE;
      const record: JournalRecord = { v: 1, events: batch.flatMap((r) => r.events) };
      const outcome = await this.#append(
        record,
        record.events[0]!.event.meta.cmdId,
        this.#deps.primacy?.epochOf(this.shard) ?? 0,
      );
      if (outcome !== 'ok') {
        this.log.error({ lost: record.events.length }, 'background journal append failed: unjournaled writes lost');
        break;
      }
    }
    this.#appending = undefined;
  }

  /** The commit is durable (or, at commit level memory, accepted): now it becomes current and visible. */
  #apply(next: SessionState, ids: readonly RecentCommand[], patches: readonly PreparedPatch[]): Promise<void> {
    const prev = this.#state;
    this.#state = next;
    for (const [cmdId, seq, time] of ids) this.#recent.remember(cmdId, seq, time);
    for (const patch of patches) this.#publishPatch(patch);
    const indexed = prev.timers !== next.timers ? this.#armTimers() : Promise.resolve();
    if (next.seq - this.#snapshotSeq >= this.app.snapshotEvery && this.app.commit !== 'memory') {
      void this.saveSnapshot({ compact: true }).catch((err: unknown) => this.log.warn({ err }, 'snapshot failed'));
    }
    return indexed;
  }

  #publishPatch(patch: PreparedPatch): void {
    // Nobody watches: a subscriber who comes later is told the seq it starts from, and catches up.
    if (this.#deps.interest?.wants(this.app.name, this.id, this.shard) === false) return;
    try {
      publishPatch(this.#deps.bus, this.#deps.cluster, this.app.name, this.id, patch);
    } catch (err) {
      // A patch too large for a message: subscribers see the gap and re-read.
      this.log.warn({ err, seq: patch.seq }, 'patch not published');
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
    if (options.compact && this.#keep !== undefined) await this.#settleKept();
    const seq = this.#state.seq;
    if (seq === this.#snapshotSeq || this.#evicted || this.#unjournaled.length > 0) return;
    const journalSeq = this.#journalSeq;
    const keep = this.#keep;
    const recent = this.#recent.entries(this.#deps.clock.now());
    await this.#deps.store.save(this.app.name, this.id, {
      session: persistSession(this.app.machine, this.#state),
      journalSeq,
      recent,
      ...(keep !== undefined && { keep }),
    });
    this.#snapshotSeq = seq;
    this.#deps.metrics?.snapshots.add(1, { app: this.app.name });
    if (!options.compact) return;
    // A multi-session record another session may still need stays, with what follows it.
    const below = keep === undefined ? journalSeq : Math.min(journalSeq, keep);
    await this.#deps.journal.purge(this.subject, { below }).catch((err: unknown) => {
      this.log.warn({ err }, 'journal compaction failed');
    });
  }

  /**
   * Moves `keep` past the multi-session records whose other sessions have
   * snapshots beyond their intents (so their replays no longer read them);
   * it stays at the first that is not so (or cannot be read now).
   */
  async #settleKept(): Promise<void> {
    const from = this.#keep!;
    const upTo = this.#journalSeq;
    try {
      for await (const e of this.#deps.journal.read(this.subject, { fromSeq: from })) {
        if (e.seq > upTo) break;
        const body = parseJournalEntry(decode(e.data, { where: `journal ${this.subject}#${e.seq}` }));
        if (typeof body === 'string' || body.kind !== 'record' || body.record.tx === undefined) continue;
        for (const part of body.record.tx.parts) {
          const stored = await this.#deps.store.load(part.app, part.id);
          if (stored === null || stored.journalSeq < part.intent) {
            this.#keep = e.seq;
            return;
          }
        }
      }
      if (this.#keep === from) this.#keep = undefined;
    } catch (err) {
      this.log.warn({ err }, 'kept transaction records not settled now');
    }
  }

  /**
   * A transaction's abort was appended on this session's subject at `seq`,
   * fenced on `fence` (a load of another session of it decided it): if
   * this copy reflected `fence`, it reflects `seq` now, since an abort
   * changes nothing of it.
   */
  abortedAfter(fence: number, seq: number): void {
    if (!this.#evicted && this.#journalSeq === fence && seq > fence) this.#journalSeq = seq;
  }

  /** Coordinating a multi-session record at `seq`: kept from compaction until its other sessions are past it. */
  keepRecord(seq: number): void {
    if (this.#keep === undefined || seq < this.#keep) this.#keep = seq;
  }

  /** Its other sessions snapshotted past the record at `seq`: no longer kept for them. */
  settledRecord(seq: number): void {
    if (this.#keep === seq) this.#keep = undefined;
  }

  /** Arms the clock for the earliest pending timer; an overdue one fires at once. */
  #armTimers(): Promise<void> {
    const first: Timer | undefined = this.#state.timers[0];
    if (first?.due === this.#timerDue) return Promise.resolve();
    if (this.#timer !== undefined) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = first?.due;
    const indexed = this.#deps.wakeups.update(this.shard, this.app.name, this.id, first?.due);
    if (first !== undefined && !this.#evicted) this.#scheduleFire(first.due - this.#deps.clock.now());
    return indexed;
  }

  #scheduleFire(delay: number): void {
    this.#timer = this.#deps.clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDue = undefined;
        void this.enqueue(() => this.#fireDue());
      },
      Math.max(0, delay),
    );
  }

  /** Delayed events are journaled like commands, so secondaries and replays see them too. */
  async #fireDue(): Promise<void> {
    // Locked: they wait, and the release arms them again.
    if (this.#lock !== undefined) return;
    const now = this.#deps.clock.now();
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
    this.#deps.directory.forget(this);
  }

  /** Stops its clock timers; the durable timer index keeps what is pending. An open transaction is lost with the copy. */
  stop(): void {
    this.#evicted = true;
    if (this.#timer !== undefined) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lock !== undefined) {
      this.log.info({ txId: this.#lock.txId, client: this.#lock.label }, 'open transaction dropped with the session');
      this.#dropLock();
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
