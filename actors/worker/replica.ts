import type { Logger } from 'pino';
import { createActor, type Actor } from 'xstate';
import type { Clock } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import {
  journalShardFilter,
  journalSubject,
  parseSubject,
  type ParsedSubject,
  readOnlyShardFilter,
  replicaReportSubject,
} from '../../bus/subjects.js';
import type { Bus, Delivery, Headers, Journal, JournalEntry, JournalFollow, Subscription } from '../../bus/types.js';
import type { JournaledEvent, JournalRecord, ReadReply, ScatterReply } from '../../protocol/messages.js';
import { parseScatter } from '../../protocol/scatter.js';
import { checkClaim } from '../../protocol/clientId.js';
import type { Responder } from './respond.js';
import { answerScatter } from './scatter.js';
import {
  appliedBy,
  replicaMachine,
  roleOf,
  synchronizedReplicas,
  syncStateOf,
  type SyncState,
} from '../../machines/replica.js';
import { documentOf, replaySession, type SessionState } from '../../machines/session.js';
import type { View } from '../../machines/view.js';
import type { Application } from './application.js';
import { ConflictError, InvalidRequestError, refuse, UnknownApplicationError } from '../../protocol/errors.js';
import { checkShard } from '../../protocol/requests.js';
import { parseJournalEntry } from '../../protocol/records.js';
import { sessionKey } from '../../protocol/names.js';
import { loadSession, type ReplayDeps } from './replay.js';
import type { EpochMarks } from './epochs.js';
import { entryEpoch } from '../../protocol/epochs.js';
import { HEADER, headerText } from '../../protocol/headers.js';
import { isBatchMsgId } from './groupCommit.js';
import { TX_RECORD_TYPE } from './txJournal.js';
import { RecentCommands, type RecentCommand } from './recentCommands.js';
import type { SessionStore } from './sessionStore.js';

/** A record's events applied to a secondary's copy, which then reflects journal entry `journalSeq`. */
function applyRecord(
  app: Application,
  copy: Copy,
  events: readonly JournaledEvent[],
  journalSeq: number,
  msgId: string | undefined,
): void {
  copy.state = replaySession(app.machine, copy.state, events);
  copy.journalSeq = journalSeq;
  for (const x of events) copy.recent.remember(x.event.meta.cmdId, x.seq, x.event.meta.time);
  // A transaction's record is de-duplicated on its id, as replay remembers it.
  const last = events[events.length - 1]!;
  if (msgId !== undefined && !isBatchMsgId(msgId) && events.every((x) => x.event.meta.cmdId !== msgId))
    copy.recent.remember(msgId, last.seq, last.event.meta.time);
}

/** Read-only queries of every copy of a shard share this queue group: one copy answers each. */
export const READ_ONLY_QUEUE = 'cohort-ro';
/** How long a read asking for a newer copy than this one waits for the journal to bring it. */
const MIN_SEQ_WAIT_MS = 1_000;

export interface ReplicationOptions {
  readonly bus: Bus;
  readonly journal: Journal;
  readonly store: SessionStore;
  readonly cluster: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly apps: ReadonlyMap<string, Application>;
  readonly sessionTimeout: number;
  /** The cluster's shard count: a read on another shard's subject than its session's is refused. */
  readonly shardCount: number;
  /** The shards' epoch markers: learnt as they are followed, and which entries copies apply (absent: none kept). */
  readonly epochs: EpochMarks | undefined;
  /** False (test-only UNSAFE.reloadOnPromotion): a promoted secondary drops its copies and its sessions are loaded. */
  readonly adoptCopies: boolean;
  /** Sends a scatter's answer, claim-checked when it is too large for a message. */
  readonly responder: Responder;
}

/** A secondary's copy of one session: the same pure state the primary has, as of `journalSeq`. */
interface Copy {
  state: SessionState;
  journalSeq: number;
  lastActive: number;
  readonly waiters: Set<() => void>;
  /** The command ids it has seen committed: a promoted copy recognises retries as the primary did. */
  readonly recent: RecentCommands;
  /** The oldest multi-session record on its subject the primary keeps from compaction (StoredSnapshot.keep). */
  keep?: number;
}

/** A copy a newly promoted primary activates a session from, instead of loading it. */
export interface AdoptedCopy {
  readonly state: SessionState;
  readonly journalSeq: number;
  readonly recent: RecentCommand[];
  readonly keep?: number;
}

interface Secondary {
  follow: JournalFollow;
  readonly sub: Subscription;
  readonly copies: Map<string, Copy>;
  applied: number;
  /** What it last told the primary, and when: a report that would say nothing new waits (see tick). */
  reportedSeq: number;
  reportedAt: number;
}

export interface ReplicaStatus {
  readonly role: 'primary' | 'secondary' | 'none';
  readonly epoch: number;
  /** Secondary: the last journal sequence applied for the shard. */
  readonly applied: number | null;
  /**
   * Primary: each secondary of the view, how far it has applied (never
   * beyond what this primary knows is journaled for the shard), and whether
   * it is synchronized.
   */
  readonly secondaries: readonly { worker: string; seq: number; state: SyncState }[];
  /** Primary: reports heard that claimed more than was journaled then (overtaking an ack, or forged). */
  readonly reportsAhead: number;
}

interface Waiter {
  readonly seq: number;
  readonly want: number;
  readonly resolve: (replicated: boolean) => void;
}

/**
 * Replica actors of one worker: a replica machine per shard the view gives
 * it a part in; as secondary, a live tail of the shard's journal applied to
 * copies of its sessions with the same pure transition, reported back to
 * the primary and answering read-only queries; as primary, what its
 * secondaries have applied, for commits at level `replicas`.
 */
export class Replication {
  readonly #bus: Bus;
  readonly #cluster: string;
  readonly #journal: Journal;
  /** Where copies load from: the journal and the snapshots. */
  readonly #stored: ReplayDeps;
  readonly #epochs: EpochMarks | undefined;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #apps: ReadonlyMap<string, Application>;
  readonly #shardCount: number;
  readonly #sessionTimeout: number;
  readonly #adoptCopies: boolean;
  readonly #responder: Responder;
  readonly #actors = new Map<number, Actor<typeof replicaMachine>>();
  /** The assignment each actor was last told of (its ROLE), as a key. */
  readonly #assignments = new Map<number, string>();
  readonly #secondaries = new Map<number, Secondary>();
  readonly #waiters = new Map<number, Set<Waiter>>();
  /** Per shard this worker was secondary of and is primary of now: the copies it followed, for adoption. */
  readonly #adoptable = new Map<number, Map<string, Copy>>();
  /** Sessions activated from a copy, and copies refused (behind the journal) at activation. */
  readonly adoptions = { adopted: 0, refused: 0 };
  #memberId = '';
  /** The member id as a header carries it. */
  #memberText = '';
  readonly #reportHeadersByShard = new Map<number, Headers>();
  /** Per shard: the highest journaled sequence its actor has not been told yet (see journaled). */
  readonly #untold = new Map<number, number>();
  /** Per shard this worker is primary of: its secondaries' reports (only those; not every report in the cluster). */
  readonly #reports = new Map<number, Subscription>();
  #stopped = false;

  constructor({
    bus,
    journal,
    store,
    cluster,
    clock,
    log,
    apps,
    sessionTimeout,
    shardCount,
    epochs,
    adoptCopies,
    responder,
  }: ReplicationOptions) {
    this.#responder = responder;
    this.#adoptCopies = adoptCopies;
    this.#shardCount = shardCount;
    this.#epochs = epochs;
    this.#bus = bus;
    this.#cluster = cluster;
    this.#journal = journal;
    this.#stored = { journal, store, cluster, ...(epochs !== undefined && { epochs }) };
    this.#clock = clock;
    this.#log = log;
    this.#apps = apps;
    this.#sessionTimeout = sessionTimeout;
  }

  /** Takes up the replica roles of `view`. Resolves once every new secondary is following. */
  async apply(view: View, memberId: string): Promise<void> {
    if (this.#stopped) return;
    this.#memberId = memberId;
    this.#memberText = headerText(memberId);
    const now = this.#clock.now();
    const starts: Promise<void>[] = [];
    try {
      this.#takeUpRoles(view, memberId, now, starts);
    } catch (err) {
      // The bus closed under it (the worker stopping): the secondaries already starting fail alike, and are
      // waited for here rather than left to reject unheard.
      await Promise.allSettled(starts);
      throw err;
    }
    await Promise.all(starts);
  }

  /** apply's walk over the shards: each one's role taken up; secondaries' starts go in `starts`. */
  #takeUpRoles(view: View, memberId: string, now: number, starts: Promise<void>[]): void {
    view.shards.forEach((_, shard) => {
      const role = roleOf(view, shard, memberId);
      let actor = this.#actors.get(shard);
      if (actor === undefined && role === 'none') return;
      if (actor === undefined) {
        actor = createActor(replicaMachine, {
          input: { shard, self: memberId, sessionTimeout: this.#sessionTimeout, now },
        }).start();
        this.#actors.set(shard, actor);
      }
      // Most views change a few shards: an actor told of its shard's assignment as it already knows it is not
      // told again (a send costs about a tenth of a millisecond, and a worker has a part in most shards).
      const s = view.shards[shard]!;
      const assignment = `${memberId} ${s.primary} ${s.state} ${s.next} ${s.epoch} ${s.replicas.join(' ')}`;
      if (this.#assignments.get(shard) !== assignment) {
        this.#assignments.set(shard, assignment);
        this.#tellJournaled(shard, actor);
        actor.send({ type: 'ROLE', view, now });
      }
      if (role === 'secondary' && !this.#secondaries.has(shard)) starts.push(this.#follow(shard));
      // Promoted: the copies it followed stay, for the sessions to be activated from (adopt).
      const copies = role === 'primary' ? this.#secondaries.get(shard)?.copies : undefined;
      if (role !== 'secondary') this.#unfollow(shard);
      if (copies !== undefined && copies.size > 0 && this.#adoptCopies) this.#adoptable.set(shard, copies);
      if (role !== 'primary') this.#adoptable.delete(shard);
      if (role === 'primary' && !this.#reports.has(shard)) {
        this.#reports.set(
          shard,
          this.#bus.subscribe(replicaReportSubject(this.#cluster, shard), (m) => this.#onReport(m)),
        );
      } else if (role !== 'primary') {
        this.#reports.get(shard)?.unsubscribe();
        this.#reports.delete(shard);
      }
      if (role === 'none') {
        actor.stop();
        this.#actors.delete(shard);
        this.#assignments.delete(shard);
        this.#untold.delete(shard);
      }
      this.#settle(shard);
    });
  }

  /**
   * Before a view's primaries start serving: the copies of every shard this
   * worker follows and is now primary of stop following and wait to be
   * adopted, so a command arriving the moment the shard is served finds them.
   */
  promote(view: View, memberId: string): void {
    for (const [shard, secondary] of [...this.#secondaries]) {
      if (roleOf(view, shard, memberId) !== 'primary') continue;
      this.#unfollow(shard);
      if (secondary.copies.size > 0 && this.#adoptCopies) this.#adoptable.set(shard, secondary.copies);
    }
  }

  get secondaryShards(): number[] {
    return [...this.#secondaries.keys()].sort((a, b) => a - b);
  }

  /** What this worker knows of its part in `shard`: for inspection (cohort status) and tests. */
  status(shard: number): ReplicaStatus {
    const actor = this.#actors.get(shard);
    const secondary = this.#secondaries.get(shard);
    if (actor === undefined) return { role: 'none', epoch: 0, applied: null, secondaries: [], reportsAhead: 0 };
    const snapshot = actor.getSnapshot();
    const ctx = { ...snapshot.context, now: this.#clock.now() };
    return {
      role: snapshot.value === 'primary' ? 'primary' : snapshot.value === 'secondary' ? 'secondary' : 'none',
      epoch: ctx.epoch,
      applied: secondary?.applied ?? null,
      secondaries: ctx.replicas.map((worker) => ({
        worker,
        seq: ctx.followers[worker]?.seq ?? 0,
        state: syncStateOf(ctx.followers[worker], ctx.now, ctx.sessionTimeout),
      })),
      reportsAhead: ctx.reportsAhead,
    };
  }

  /**
   * Per shard this worker is primary of and that has secondaries: journal
   * stream sequences between its last acknowledged append and the slowest
   * secondary's report (0: all caught up).
   */
  lags(): [shard: number, lag: number][] {
    const out: [number, number][] = [];
    for (const [shard, actor] of this.#actors) {
      const snapshot = actor.getSnapshot();
      if (snapshot.value !== 'primary' || snapshot.context.replicas.length === 0) continue;
      const ctx = snapshot.context;
      const slowest = Math.min(...ctx.replicas.map((w) => ctx.followers[w]?.seq ?? 0));
      out.push([shard, Math.max(0, ctx.journaled - slowest)]);
    }
    return out;
  }

  /** Secondaries of this worker's primary shards that are not synchronized, as `shard/worker`. */
  notSynchronized(): string[] {
    const now = this.#clock.now();
    const out: string[] = [];
    // forEach: no [shard, actor] pair per shard, per heartbeat.
    this.#actors.forEach((actor, shard) => {
      const snapshot = actor.getSnapshot();
      if (snapshot.value !== 'primary') return;
      // Asked at every heartbeat: read in place (as synchronizedReplicas would), without a copy of each context.
      const { replicas, followers, sessionTimeout } = snapshot.context;
      for (let i = 0; i < replicas.length; i++) {
        const w = replicas[i]!;
        if (syncStateOf(followers[w], now, sessionTimeout) !== 'SYNCHRONIZED') out.push(`${shard}/${w}`);
      }
    });
    return out;
  }

  /** Synchronized secondaries of a shard this worker is primary of. */
  synchronized(shard: number): number {
    const actor = this.#actors.get(shard);
    if (actor === undefined) return 0;
    return synchronizedReplicas({ ...actor.getSnapshot().context, now: this.#clock.now() }).length;
  }

  /**
   * The journal acknowledged an entry of `shard` at stream sequence `seq`:
   * reports are credited up to the highest such sequence, so a report
   * claiming more (forged, or misread) cannot count a secondary as caught up.
   */
  journaled(shard: number, seq: number): void {
    const actor = this.#actors.get(shard);
    if (actor === undefined) return;
    const snapshot = actor.getSnapshot();
    // The commit path reports each append twice (appended, then waited on): the second changes nothing.
    if (seq > snapshot.context.journaled) {
      // A primary without secondaries has no report to credit against it: kept here, and told before
      // the next assignment (which may bring secondaries), instead of a transition per append.
      if (snapshot.value === 'primary' && snapshot.context.replicas.length === 0) {
        if (seq > (this.#untold.get(shard) ?? 0)) this.#untold.set(shard, seq);
      } else actor.send({ type: 'JOURNALED', seq, now: this.#clock.now() });
    }
    this.#settle(shard);
  }

  /** What `journaled` kept from the actor of `shard`, told now: it is about to be asked or changed. */
  #tellJournaled(shard: number, actor: Actor<typeof replicaMachine>): void {
    const seq = this.#untold.get(shard);
    if (seq === undefined) return;
    this.#untold.delete(shard);
    if (seq > actor.getSnapshot().context.journaled) actor.send({ type: 'JOURNALED', seq, now: this.#clock.now() });
  }

  /**
   * Resolves true once `want` synchronized secondaries (or all there are,
   * if fewer) have applied `seq`; false if it gave up after `timeout`.
   */
  replicated(shard: number, seq: number, want: number, timeout: number): Promise<boolean> {
    // What is waited for is journaled: the caller holds its ack.
    this.journaled(shard, seq);
    return new Promise((resolve) => {
      let settled = false;
      const timer = this.#clock.setTimeout(() => done(false), timeout);
      const done = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        this.#clock.clearTimeout(timer);
        this.#waiters.get(shard)?.delete(waiter);
        resolve(ok);
      };
      const waiter: Waiter = { seq, want, resolve: done };
      let set = this.#waiters.get(shard);
      if (set === undefined) this.#waiters.set(shard, (set = new Set()));
      set.add(waiter);
      this.#settle(shard);
    });
  }

  /**
   * Re-checks waiters against time: a secondary that fell silent is no longer
   * waited for. Only shards with waiters: every reader of a replica's
   * context takes the clock's time, so an idle shard needs no event.
   */
  tick(): void {
    for (const shard of this.#waiters.keys()) if (this.#actors.has(shard)) this.#settle(shard);
    // A quiet secondary says it is still there, and how far it has applied: often enough that the primary,
    // which counts it synchronized for a session timeout after each report, never misses it.
    const now = this.#clock.now();
    for (const [shard, s] of this.#secondaries)
      if (s.applied !== s.reportedSeq || now - s.reportedAt >= this.#sessionTimeout / 3) this.#report(shard, s);
  }

  #settle(shard: number): void {
    const waiters = this.#waiters.get(shard);
    const actor = this.#actors.get(shard);
    if (waiters === undefined || waiters.size === 0) return;
    const ctx = actor === undefined ? undefined : { ...actor.getSnapshot().context, now: this.#clock.now() };
    const synced = ctx === undefined ? 0 : synchronizedReplicas(ctx).length;
    for (const w of [...waiters]) {
      const need = Math.min(w.want, synced);
      if (ctx === undefined || appliedBy(ctx, w.seq) >= need) w.resolve(true);
    }
  }

  #onReport(m: Delivery): void {
    let body: { w?: unknown; s?: unknown; q?: unknown };
    try {
      body = decode(m.data, { where: `replica report ${m.subject}` }) as typeof body;
    } catch (err) {
      this.#log.warn({ err, subject: m.subject }, 'unreadable replica report ignored');
      return;
    }
    const { w, s, q } = body;
    if (typeof w !== 'string' || typeof s !== 'number' || typeof q !== 'number' || !Number.isSafeInteger(q) || q < 0)
      return;
    // A report speaks for the shard of its own subject only: one that names another is forged or misrouted.
    if (!Number.isSafeInteger(s) || m.subject !== replicaReportSubject(this.#cluster, s)) return;
    const actor = this.#actors.get(s);
    if (actor === undefined || w === this.#memberId) return;
    // Taken up to what this primary knows is journaled for the shard; a claim beyond waits for the journal.
    actor.send({ type: 'REPORT', worker: w, seq: q, now: this.#clock.now() });
    this.#settle(s);
  }

  /** Made once per shard and member id: reports go out at every applied entry. */
  #reportHeaders(shard: number): Headers {
    let h = this.#reportHeadersByShard.get(shard);
    if (h === undefined || h[HEADER.worker] !== this.#memberText) {
      h = { [HEADER.worker]: this.#memberText, [HEADER.shard]: String(shard) };
      this.#reportHeadersByShard.set(shard, h);
    }
    return h;
  }

  #report(shard: number, s: Secondary): void {
    s.reportedSeq = s.applied;
    s.reportedAt = this.#clock.now();
    try {
      this.#bus.publish(
        replicaReportSubject(this.#cluster, shard),
        encode({ w: this.#memberId, s: shard, q: s.applied }),
        { headers: this.#reportHeaders(shard) },
      );
    } catch (err) {
      this.#log.debug({ err, shard }, 'replica report not sent');
    }
  }

  async #follow(shard: number): Promise<void> {
    const bus = this.#bus;
    const cluster = this.#cluster;
    const journal = this.#journal;
    const copies = new Map<string, Copy>();
    const sub = bus.subscribe(readOnlyShardFilter(cluster, shard), (m) => void this.#answer(m, shard), {
      queue: READ_ONLY_QUEUE,
    });
    const entry: Secondary = {
      follow: { stop: () => undefined },
      sub,
      copies,
      applied: 0,
      reportedSeq: -1,
      reportedAt: Number.NEGATIVE_INFINITY,
    };
    this.#secondaries.set(shard, entry);
    // Entries wait for the markers stored before following began (later ones come with the journal).
    let learnt!: () => void;
    const markers = new Promise<void>((resolve) => (learnt = resolve));
    // Only what is journaled from now on: copies load the past from snapshot and journal when first needed.
    const follow = await journal.follow(
      journalShardFilter(cluster, shard),
      {
        onError: (err, e) =>
          this.#log.warn({ err, subject: e.subject, seq: e.seq }, 'journal entry not applied on secondary'),
      },
      async (e) => {
        await markers;
        await this.#applyEntry(shard, entry, e);
      },
    );
    await this.#epochs
      ?.learn(shard)
      .catch((err: unknown) =>
        this.#log.warn({ err, shard }, 'epoch markers not read: late entries are not told apart'),
      );
    learnt();
    if (this.#secondaries.get(shard) !== entry) {
      follow.stop();
      return;
    }
    // The same object the journal's handler updates: status() and the tick read what it applied.
    entry.follow = follow;
  }

  #unfollow(shard: number): void {
    const s = this.#secondaries.get(shard);
    if (s === undefined) return;
    this.#secondaries.delete(shard);
    s.follow.stop();
    s.sub.unsubscribe();
    for (const c of s.copies.values()) for (const wake of c.waiters) wake();
  }

  async #applyEntry(shard: number, s: Secondary, e: JournalEntry): Promise<void> {
    const target = parseSubject(e.subject);
    if (target.kind === 'epoch' && target.shard === shard) this.#epochs?.observe(shard, e);
    const app = target.kind === 'jrnl' ? this.#apps.get(target.app) : undefined;
    if (
      target.kind === 'jrnl' &&
      app !== undefined &&
      this.#epochs?.admits(shard, e.seq, entryEpoch(e.headers)) === false
    ) {
      // A deposed primary's late entry: applied by nobody, but the copy has seen past it.
      const copy = s.copies.get(sessionKey(app.name, target.id));
      if (copy !== undefined) copy.journalSeq = Math.max(copy.journalSeq, e.seq);
    } else if (target.kind === 'jrnl' && app !== undefined) {
      const key = sessionKey(app.name, target.id);
      const copy = s.copies.get(key);
      let record: JournalRecord | undefined;
      if (copy === undefined) {
        // Loaded now, the copy already reflects this entry (the load reads the journal to its end).
        try {
          s.copies.set(key, await this.#load(app, target.id, shard));
        } catch (err) {
          // One session that cannot be loaded (a damaged entry) must not stop this shard's replication.
          this.#log.warn({ err, key }, 'secondary copy not loaded');
        }
      } else if (e.seq > copy.journalSeq) {
        try {
          const body = parseJournalEntry(decode(e.data, { where: `journal ${e.subject}#${e.seq}` }));
          if (typeof body === 'string') throw new TypeError(`journal entry ${e.seq} is not a record: ${body}`);
          // An abort is nothing of this session's; an intent waits for its record, which names it (txJournal.ts).
          if (body.kind === 'abort') copy.journalSeq = e.seq;
          else if (body.kind === 'record') {
            record = body.record;
            applyRecord(app, copy, record.events, e.seq, e.headers[HEADER.command]);
            if (record.tx !== undefined) copy.keep ??= e.seq;
          }
        } catch (err) {
          // A copy that cannot follow (say, it missed entries) is dropped and loaded afresh when next needed.
          this.#log.warn({ err, key }, 'secondary copy diverged: dropped');
          s.copies.delete(key);
        }
        for (const wake of copy.waiters) wake();
      }
      // A multi-session transaction's record: its other sessions' parts, whatever became of its coordinator's copy.
      if (e.headers[HEADER.type] === TX_RECORD_TYPE) this.#applyParts(s, shard, record, e);
    }
    s.applied = Math.max(s.applied, e.seq);
    this.#report(shard, s);
  }

  /**
   * The other sessions' parts of a multi-session transaction's record
   * (`record`, or read from `e` when its coordinator's copy was not here to
   * read it), each applied to its copy at its intent, once.
   */
  #applyParts(s: Secondary, shard: number, record: JournalRecord | undefined, e: JournalEntry): void {
    if (record === undefined) {
      try {
        const body = parseJournalEntry(decode(e.data, { where: `journal ${e.subject}#${e.seq}` }));
        if (typeof body === 'string' || body.kind !== 'record') return;
        record = body.record;
      } catch {
        return;
      }
    }
    for (const part of record.tx?.parts ?? []) {
      const app = this.#apps.get(part.app);
      if (app === undefined || checkShard(part.app, part.id, shard, this.#shardCount) !== undefined) continue;
      const key = sessionKey(app.name, part.id);
      const copy = s.copies.get(key);
      if (copy === undefined || copy.journalSeq >= part.intent) continue;
      try {
        applyRecord(app, copy, part.events, part.intent, undefined);
      } catch (err) {
        this.#log.warn({ err, key }, 'secondary copy diverged: dropped');
        s.copies.delete(key);
      }
      for (const wake of copy.waiters) wake();
    }
  }

  async #load(app: Application, id: string, shard: number): Promise<Copy> {
    const { state, journalSeq, recent, keep } = await loadSession(this.#stored, app, id, shard, this.#clock.now());
    return {
      state,
      journalSeq,
      lastActive: this.#clock.now(),
      waiters: new Set(),
      recent: new RecentCommands(recent),
      ...(keep !== undefined && { keep }),
    };
  }

  /**
   * A session of a shard this worker was promoted to, from the copy it kept
   * as secondary: only when the copy has applied the journal's last entry on
   * the session's subject (one lookup, where a load reads the snapshot and
   * every entry after it). Undefined otherwise: the caller loads it. Each
   * copy is adopted once.
   */
  async adopt(app: Application, id: string, shard: number): Promise<AdoptedCopy | undefined> {
    const copies = this.#adoptable.get(shard);
    const key = sessionKey(app.name, id);
    const copy = copies?.get(key);
    if (copy === undefined) return undefined;
    copies!.delete(key);
    if (copies!.size === 0) this.#adoptable.delete(shard);
    const last = await this.#journal.lastSeq(journalSubject(this.#cluster, shard, app.name, id));
    if (last !== copy.journalSeq) {
      this.adoptions.refused++;
      this.#log.debug({ key, copy: copy.journalSeq, journal: last }, 'copy behind the journal: loaded instead');
      return undefined;
    }
    this.adoptions.adopted++;
    return {
      state: copy.state,
      journalSeq: copy.journalSeq,
      recent: copy.recent.entries(this.#clock.now()),
      ...(copy.keep !== undefined && { keep: copy.keep }),
    };
  }

  /** A read-only query on a secondary: its copy, marked stale, with the seq it reflects; or a scatter over its copies. */
  async #answer(m: Delivery, shard: number): Promise<void> {
    let target: ParsedSubject;
    try {
      target = parseSubject(m.subject);
    } catch (err) {
      m.respond(encode(refuse(err)));
      return;
    }
    if (target.kind === 'scatter') {
      const reply = await this.#scatter(m, target, shard).catch((err: unknown): ScatterReply => refuse(err));
      await this.#responder.send(m, reply);
      return;
    }
    const reply = await this.#read(m, target, shard).catch((err: unknown): ReadReply => refuse(err));
    m.respond(encode(reply));
  }

  async #read(m: Delivery, target: ParsedSubject, shard: number): Promise<ReadReply> {
    if (target.kind !== 'ro') throw new InvalidRequestError('not a read-only subject');
    const app = this.#apps.get(target.app);
    if (app === undefined) throw new UnknownApplicationError(target.app);
    const body = decode(m.data, { where: `read-only ${m.subject}` }) as { minSeq?: unknown };
    const minSeq = typeof body?.minSeq === 'number' ? body.minSeq : undefined;
    return this.#copyRead(app, target.id, shard, minSeq);
  }

  /** A scatter on the read-only subject: each session's copy here, as a read-only read would be answered. */
  async #scatter(
    m: Delivery,
    target: Extract<ParsedSubject, { kind: 'scatter' }>,
    shard: number,
  ): Promise<ScatterReply> {
    const app = this.#apps.get(target.app);
    if (app === undefined) throw new UnknownApplicationError(target.app);
    if (target.via !== 'ro')
      throw new InvalidRequestError('a secondary answers scatters on the read-only subject only');
    const req = parseScatter(decode(m.data, { where: `scatter ${m.subject}` }));
    if (req instanceof Error) throw req;
    const claimed = checkClaim(target.label, req.client);
    if (claimed !== undefined) throw claimed;
    return answerScatter(app, req, (id) => this.#copyRead(app, id, shard, undefined), this.#clock, {
      maxAnswerBytes: this.#responder.maxBytes,
    });
  }

  async #copyRead(app: Application, id: string, shard: number, minSeq: number | undefined): Promise<ReadReply> {
    const misplaced = checkShard(app.name, id, shard, this.#shardCount);
    if (misplaced !== undefined) throw misplaced;
    const s = this.#secondaries.get(shard);
    if (s === undefined) throw new ConflictError(minSeq ?? 0, 0);
    const key = sessionKey(app.name, id);
    let copy = s.copies.get(key);
    if (copy === undefined) {
      copy = await this.#load(app, id, shard);
      s.copies.set(key, s.copies.get(key) ?? copy);
      copy = s.copies.get(key)!;
    }
    copy.lastActive = this.#clock.now();
    if (minSeq !== undefined && copy.state.seq < minSeq) {
      // Read-your-writes on a secondary: wait (bounded) for the journal to bring it.
      const c = copy;
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimeout(finish, MIN_SEQ_WAIT_MS);
        function finish(): void {
          c.waiters.delete(check);
          resolve();
        }
        const check = (): void => {
          if (c.state.seq >= minSeq) {
            clearTimer();
            finish();
          }
        };
        const clearTimer = (): void => this.#clock.clearTimeout(timer);
        c.waiters.add(check);
      });
      if (copy.state.seq < minSeq) return refuse(new ConflictError(minSeq, copy.state.seq));
    }
    return {
      ok: true,
      seq: copy.state.seq,
      state: copy.state.snapshot.value,
      document: documentOf(copy.state),
      stale: true,
    };
  }

  /** Drops copies nobody has read or written for `idleMs`: a secondary's memory is bounded like a primary's. */
  sweep(idleMs: number): void {
    const now = this.#clock.now();
    for (const copies of [...[...this.#secondaries.values()].map((s) => s.copies), ...this.#adoptable.values()]) {
      for (const [key, c] of copies) if (now - c.lastActive >= idleMs && c.waiters.size === 0) copies.delete(key);
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const shard of [...this.#secondaries.keys()]) this.#unfollow(shard);
    this.#adoptable.clear();
    for (const a of this.#actors.values()) a.stop();
    this.#actors.clear();
    this.#assignments.clear();
    for (const set of this.#waiters.values()) for (const w of set) w.resolve(false);
    for (const sub of this.#reports.values()) sub.unsubscribe();
    this.#reports.clear();
  }
}
