import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../bus/clock.js';
import { decode, encode } from '../bus/codec.js';
import { WrongLastSequenceError } from '../bus/errors.js';
import { eventSubject, journalSubject } from '../bus/subjects.js';
import type { Bus, Journal } from '../bus/types.js';
import {
  HEADER,
  type CommandReply,
  type CommandRequest,
  type JournalRecord,
  type PatchMessage,
  type PatchOperation,
  type ReadReply,
  type StampedEvent,
} from '../machines/protocol.js';
import { documentOf, persistSession, stepSession, type SessionState, type Timer } from '../machines/session.js';
import type { Application } from './application.js';
import { ConflictError, EventRejectedError, NotEnoughReplicasError, SessionMovedError, toErrorBody } from './errors.js';
import type { SessionStore } from './sessionStore.js';

/**
 * Whether this worker may still acknowledge writes for a shard. A paused or
 * cut-off primary may have been replaced while it could not look; its
 * appends can still succeed on sessions the new primary has not touched,
 * so acknowledging them needs proof (DESIGN.md section 4).
 */
export interface Primacy {
  /** This worker's member id, stamped on what it journals. */
  readonly self: string;
  /** The shard's epoch while the latest view makes this worker its primary; null otherwise. */
  epochOf(shard: number): number | null;
  /** Its heartbeats have reached the server lately: nobody can have taken over. */
  leaseHeld(): boolean;
  /** The view as stored right now still makes this worker primary of `shard` at `epoch`. */
  stillPrimary(shard: number, epoch: number): Promise<boolean>;
}

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
    if (req.expectSeq !== undefined && req.expectSeq !== this.#state.seq) {
      return { ok: false, error: toErrorBody(new ConflictError(req.expectSeq, this.#state.seq)) };
    }
    const event: StampedEvent = { ...req.event, meta: { time, cmdId: req.cmdId, client: req.client } };
    return this.#commit(event);
  }

  async #commit(event: StampedEvent): Promise<CommandReply> {
    const step = stepSession(this.app.machine, this.#state, event);
    if (!step.accepted) {
      return { ok: false, error: toErrorBody(new EventRejectedError(event.type, step.stateValue)) };
    }
    const next = step.state;
    const record: JournalRecord = { v: 1, events: [{ event, seq: next.seq }] };
    const replicas = this.app.commit === 'replicas' ? this.host.replicas : undefined;
    if (replicas !== undefined && this.app.requiredSynchronizedReplicas > 0) {
      const synchronized = replicas.synchronized(this.shard);
      if (synchronized < this.app.requiredSynchronizedReplicas) {
        return { ok: false, error: toErrorBody(new NotEnoughReplicasError(this.app.name, this.shard, this.app.requiredSynchronizedReplicas, synchronized)) };
      }
    }
    const epoch = await this.#provePrimacy();
    if (epoch === null) return this.#moved('this worker is no longer primary of the shard');
    if (this.app.commit !== 'memory') {
      const outcome = await this.#append(record, event.meta.cmdId, epoch);
      if (outcome !== 'ok') return outcome.ok ? { ...outcome, ...this.#signature(epoch) } : outcome;
      // Landed, but perhaps after a successor took over while this worker could not look: not acknowledged then.
      if ((await this.#provePrimacy()) !== epoch) return this.#moved('the lease lapsed around the append and the view moved the shard');
      // Synchronous commit: durable in the journal already; now wait (bounded) for the synchronized secondaries.
      if (replicas !== undefined) await replicas.replicated(this.shard, this.#journalSeq, this.app.syncReplicas, this.host.sessionTimeout);
    } else {
      this.#unjournaled.push(record);
      this.#appending ??= this.#appendInBackground();
    }
    // The wake-up index is written before the reply, so a worker killed right after still wakes the session.
    await this.#apply(next, event);
    return { ok: true, seq: next.seq, ...this.#signature(epoch) };
  }

  #signature(epoch: number): { by: string; epoch: number } {
    return { by: this.host.primacy?.self ?? this.host.id, epoch };
  }

  /** The epoch this worker writes under, or null when it may not write (see Primacy). */
  async #provePrimacy(): Promise<number | null> {
    const primacy = this.host.primacy;
    if (primacy === undefined) return 0;
    const epoch = primacy.epochOf(this.shard);
    if (epoch === null) return null;
    if (primacy.leaseHeld() || (await primacy.stillPrimary(this.shard, epoch))) return epoch;
    return null;
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
  #apply(next: SessionState, event: StampedEvent): Promise<void> {
    const prev = this.#state;
    this.#state = next;
    this.#remember(event.meta.cmdId, next.seq);
    this.#publishPatch(prev, next, event.meta.client);
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

  /** Stops its clock timers; the durable timer index keeps what is pending. */
  stop(): void {
    this.#evicted = true;
    if (this.#timer !== undefined) this.host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Passivation: flush, snapshot, and leave memory. */
  async passivate(): Promise<void> {
    await this.#appending;
    await this.saveSnapshot();
    this.stop();
  }
}
