import { isBatchMsgId } from './groupCommit.js';
import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { decode } from '../../bus/codec.js';
import { DecodeError } from '../../bus/errors.js';
import { journalSubject } from '../../bus/subjects.js';
import type { Journal } from '../../bus/types.js';
import { CorruptSessionError } from '../../protocol/errors.js';
import { entryEpoch } from '../../protocol/epochs.js';
import { HEADER } from '../../protocol/headers.js';
import { parseJournalEntry, type JournalEntryBody } from '../../protocol/records.js';
import { resolveIntent, type IntentDecider } from './txJournal.js';
import type {
  JournaledEvent,
  JournalRecord,
  PatchMessage,
  PatchOperation,
  VerifyOutcome,
  VerifyReply,
  VerifyRequest,
} from '../../protocol/messages.js';
import { documentOf, replaySession, restoreSession, startSession, type SessionState } from '../../machines/session.js';
import type { Application } from './application.js';
import type { SessionStore, StoredSnapshot } from './sessionStore.js';
import { parseRecent, type RecentCommand } from './recentCommands.js';
import { DEDUP_MAX_IDS } from '../../protocol/dedup.js';

/** Which journal entries count: those no newer epoch's marker comes before (protocol/epochs.ts). */
export interface EpochAdmission {
  admits(shard: number, seq: number, epoch: number): boolean;
}

/** Where the journal and the snapshots are. */
export interface ReplayDeps {
  readonly journal: Journal;
  readonly store: SessionStore;
  readonly cluster: string;
  /** Absent: every entry counts (static sharding has no epochs). */
  readonly epochs?: EpochAdmission;
  /**
   * A primary loading a session: a transaction intent still undecided is
   * decided (txJournal.ts). Absent: replay stops before it.
   */
  readonly decider?: IntentDecider;
}

export interface LoadedSession {
  readonly state: SessionState;
  /** Stream sequence of the last journal entry reflected: the fence for the next append. */
  readonly journalSeq: number;
  /** Command ids it committed, with the seq each produced and when, oldest first: the snapshot's, then the journal's after it. */
  readonly recent: RecentCommand[];
  /** The oldest multi-session record on its subject compaction must keep (StoredSnapshot.keep). */
  readonly keep?: number;
}

/**
 * The journal no longer holds what lies between the snapshot read and its
 * first entry. `compacted`: there was no snapshot to start from and the
 * journal no longer starts at the session's first event.
 */
export class JournalGapError extends RangeError {
  override readonly name = 'JournalGapError';
  constructor(
    message: string,
    readonly compacted = false,
  ) {
    super(message);
  }
}

/** Reads that met a purge under way are tried again this many times in all. */
const ATTEMPTS = 3;

interface ReplayOptions {
  /** Start from the stored snapshot only when it is at or below this seq (verification needs the events after it); default any. */
  readonly snapshotAtMost?: number;
  /** Ask the journal's last sequence beside the snapshot and read nothing when nothing follows it: spares a consumer. */
  readonly skipWhenCurrent?: boolean;
  /** Each event as it is applied, after the state before it; true stops the read there. */
  readonly onEvent?: (before: SessionState, after: SessionState, event: JournaledEvent) => boolean;
  /** When the session is loaded: the time of remembered command ids a snapshot stored without one. */
  readonly loadedAt?: number;
}

interface Replayed {
  /** Undefined: no snapshot to start from, and nothing journaled. */
  readonly state: SessionState | undefined;
  readonly journalSeq: number;
  readonly recent: RecentCommand[];
  readonly keep: number | undefined;
}

/**
 * The one journal reader: the stored snapshot, then every journal entry
 * after it replayed with the pure transition. Throws JournalGapError when
 * the two do not meet (the snapshot read and the journal read straddled a
 * compaction).
 */
async function replay(
  deps: ReplayDeps,
  app: Application,
  id: string,
  shard: number,
  options: ReplayOptions,
): Promise<Replayed> {
  const subject = journalSubject(deps.cluster, shard, app.name, id);
  // Both lookups at once: two round trips in parallel, not in a row.
  const storedSnapshot = loadSnapshot(deps.store, app.name, id);
  const [stored, lastSeq] = options.skipWhenCurrent
    ? await Promise.all([storedSnapshot, deps.journal.lastSeq(subject)])
    : [await storedSnapshot, Number.POSITIVE_INFINITY];
  if (stored !== null) checkSnapshot(app.name, id, stored);
  const snapshot =
    stored !== null && stored.session.seq <= (options.snapshotAtMost ?? Number.POSITIVE_INFINITY) ? stored : null;
  let state: SessionState | undefined = snapshot === null ? undefined : restoreSnapshot(app, id, snapshot);
  let journalSeq = snapshot?.journalSeq ?? 0;
  const recent: RecentCommand[] = parseRecent(snapshot?.recent, options.loadedAt ?? 0);
  // Until its other sessions are known to be past it (settled when this session next compacts).
  let keep: number | undefined = snapshot?.keep;
  const tail = lastSeq > journalSeq ? deps.journal.read(subject, { fromSeq: journalSeq + 1 }) : [];
  const onEvent = options.onEvent;
  for await (const entry of tail) {
    // A deposed primary's late entry: never acknowledged, applied by nobody; the fence still moves past it.
    if (deps.epochs?.admits(shard, entry.seq, entryEpoch(entry.headers)) === false) {
      journalSeq = entry.seq;
      continue;
    }
    const body = readEntry(app.name, id, entry.seq, entry.data);
    // A transaction's abort on its coordinator's subject: nothing of this session's.
    if (body.kind === 'abort') {
      journalSeq = entry.seq;
      continue;
    }
    let record: JournalRecord;
    if (body.kind === 'intent') {
      // This session's part of a multi-session transaction, if its record landed (txJournal.ts).
      const verdict = await resolveIntent(deps, shard, { app: app.name, id }, entry.seq, body.intent);
      if ('pending' in verdict) break;
      if ('aborted' in verdict) {
        journalSeq = entry.seq;
        continue;
      }
      record = { v: 1, events: verdict.committed };
    } else {
      record = body.record;
      if (record.tx !== undefined) keep ??= entry.seq;
    }
    const first = record.events[0]!;
    // Without a snapshot only a journal that still starts at the session's first event will do.
    const compacted = state === undefined && first.seq !== 1;
    state ??= startSession(app.machine, first.event.meta.time);
    if (first.seq > state.seq + 1)
      throw new JournalGapError(
        `${app.name}/${id}: at seq ${state.seq}, the journal resumes at seq ${first.seq}`,
        compacted,
      );
    if (onEvent === undefined) state = replaySession(app.machine, state, record.events);
    else {
      for (const e of record.events) {
        if (e.seq <= state.seq) continue;
        if (e.seq !== state.seq + 1)
          throw new JournalGapError(`${app.name}/${id}: at seq ${state.seq}, the journal goes on at seq ${e.seq}`);
        const next = replaySession(app.machine, state, [e]);
        const stop = onEvent(state, next, e);
        state = next;
        if (stop) return { state, journalSeq: entry.seq, recent, keep };
      }
    }
    for (const e of record.events) recent.push([e.event.meta.cmdId, e.seq, e.event.meta.time]);
    // A transaction's record is de-duplicated on its txId: a retried commit after reloading is still recognised.
    const msgId = body.kind === 'record' ? entry.headers[HEADER.command] : undefined;
    const last = record.events[record.events.length - 1]!;
    if (msgId !== undefined && !isBatchMsgId(msgId) && record.events.every((e) => e.event.meta.cmdId !== msgId))
      recent.push([msgId, last.seq, last.event.meta.time]);
    journalSeq = entry.seq;
  }
  return { state, journalSeq, recent, keep };
}

/** The stored snapshot; one the store cannot read is this session's corruption, not the worker's. */
async function loadSnapshot(store: SessionStore, app: string, id: string): Promise<StoredSnapshot | null> {
  try {
    return await store.load(app, id);
  } catch (err) {
    if (err instanceof DecodeError) throw new CorruptSessionError(`${app}/${id}`, 0, `is unreadable: ${err.message}`);
    throw err;
  }
}

/** The numbers a load steers by, before anything is taken from a snapshot. */
function checkSnapshot(app: string, id: string, snapshot: StoredSnapshot): void {
  const count = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  const session = snapshot.session as unknown;
  const why = !count(snapshot.journalSeq)
    ? `has journalSeq ${JSON.stringify(snapshot.journalSeq)}`
    : snapshot.keep !== undefined && !count(snapshot.keep)
      ? `has keep ${JSON.stringify(snapshot.keep)}`
      : typeof session !== 'object' || session === null || !count((session as { seq?: unknown }).seq)
        ? 'has no session at a seq'
        : undefined;
  if (why !== undefined) throw new CorruptSessionError(`${app}/${id}`, 0, why);
}

function restoreSnapshot(app: Application, id: string, snapshot: StoredSnapshot): SessionState {
  try {
    return restoreSession(app.machine, snapshot.session);
  } catch (err) {
    throw new CorruptSessionError(
      `${app.name}/${id}`,
      0,
      `does not restore: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** One journal entry (a record, a transaction's intent or abort), or CorruptSessionError naming the session and the sequence. */
function readEntry(app: string, id: string, seq: number, data: Uint8Array): JournalEntryBody {
  let body: JournalEntryBody | string;
  try {
    body = parseJournalEntry(decode(data, { where: `journal entry ${seq}` }));
  } catch (err) {
    body = err instanceof Error ? err.message : String(err);
  }
  if (typeof body === 'string') throw new CorruptSessionError(`${app}/${id}`, seq, `is not a journal record: ${body}`);
  return body;
}

/**
 * A session as the journal has it: the latest snapshot plus every entry
 * after it. Primaries activate with it, secondaries make their copies with
 * it; a session never seen starts fresh at `now`.
 */
export async function loadSession(
  deps: ReplayDeps,
  app: Application,
  id: string,
  shard: number,
  now: number,
): Promise<LoadedSession> {
  // A copy loaded while the primary compacts can read the store before the new snapshot and the
  // journal after the purge: a gap. Reading again finds the snapshot that covers it.
  for (let attempt = 1; ; attempt++) {
    try {
      const { state, journalSeq, recent, keep } = await replay(deps, app, id, shard, {
        skipWhenCurrent: true,
        loadedAt: now,
      });
      return {
        state: state ?? startSession(app.machine, now),
        journalSeq,
        recent: recent.slice(-DEDUP_MAX_IDS),
        ...(keep !== undefined && { keep }),
      };
    } catch (err) {
      if (!(err instanceof JournalGapError) || attempt >= ATTEMPTS) throw err;
    }
  }
}

/** The session a verification is for. */
export interface VerifiedSession {
  readonly app: Application;
  readonly id: string;
  readonly shard: number;
  /** Its state now, as of the committed seq. */
  readonly current: SessionState;
  readonly log: Logger;
}

/**
 * Cache verification (ZEO): what brings a client's copy at `since` to the
 * session's current state. Patches are rebuilt from the journal, diffing
 * each event's document against the one before; whenever that is not
 * possible (the journal was compacted past `since`, the gap exceeds the
 * client's `max`) the answer is `cleared` with the whole document, which is
 * always correct.
 */
export async function verifySession(
  deps: ReplayDeps,
  session: VerifiedSession,
  req: VerifyRequest,
): Promise<VerifyReply> {
  const { app, id, shard, current, log } = session;
  const seq = current.seq;
  const whole = (outcome: VerifyOutcome): VerifyReply => ({
    ok: true,
    outcome,
    seq,
    document: documentOf(current),
    state: current.snapshot.value,
  });
  if (req.since === seq) return { ok: true, outcome: 'up-to-date', seq };
  if (req.since > seq) return whole('newer-than-server');
  if (seq - req.since > req.max) return whole('cleared');
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    // One patch per event, even inside a transaction's record: each says who set it.
    const patches: PatchMessage[] = [];
    const onEvent = (before: SessionState, after: SessionState, e: JournaledEvent): boolean => {
      if (e.seq > req.since) {
        const ops = jsonPatch.compare(documentOf(before) as object, documentOf(after) as object) as PatchOperation[];
        patches.push({ seq: e.seq, prev: before.seq, ops, setter: e.event.meta.client });
      }
      return after.seq === seq;
    };
    let replayed: Replayed;
    try {
      replayed = await replay(deps, app, id, shard, { snapshotAtMost: req.since, onEvent });
    } catch (err) {
      if (!(err instanceof JournalGapError)) throw err;
      if (err.compacted) return whole('cleared');
      continue;
    }
    // The journal ends short of the session: nothing at all (compacted), or unjournaled writes lost or a purge between reads.
    if (replayed.state === undefined) return whole('cleared');
    if (replayed.state.seq !== seq) continue;
    // The journal and this copy must agree; if they do not, the client re-reads rather than trust the patches.
    if (jsonPatch.compare(documentOf(replayed.state) as object, documentOf(current) as object).length > 0) {
      log.warn(
        { since: req.since, seq },
        'journal replay does not reproduce the session: verification answered cleared',
      );
      return whole('cleared');
    }
    return { ok: true, outcome: 'replayed', seq, patches };
  }
  return whole('cleared');
}
