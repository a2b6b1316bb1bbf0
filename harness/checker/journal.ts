/**
 * A cluster's journal read for checking: every session's events in stream
 * order, each with what its entry's headers say about who wrote it.
 *
 * Compaction. Every `snapshotEvery` events a primary snapshots the session
 * and purges its journal below the snapshot, so the events before it are
 * gone for good. A checker needs the whole sequence to say that every
 * acknowledged command is there exactly once, so applications under test
 * should have a `snapshotEvery` above the events any session takes in the
 * run (their journal then starts at seq 1). Where one was compacted, its
 * latest stored snapshot is read as the session's `base` and the checker
 * replays from it: what lies after it is checked, what lies at or below it
 * only as far as the snapshot's own memory of recent command ids goes, and
 * the checker says so (invariant `journal-complete`) unless told not to.
 *
 * Epoch markers. An entry an older epoch wrote after a newer epoch's marker
 * for its shard (a deposed primary's late append) is applied by no copy, so
 * it is not one of the session's events here either: it is listed among the
 * session's `ignored` entries.
 *
 * Multi-session transactions. A transaction over several sessions of a
 * shard is one record on its coordinator's subject, carrying the other
 * sessions' parts, each after an intent on its own subject
 * (actors/worker/txJournal.ts). The checker reads the stream in order, so
 * each part counts among its session's events where the record is, and an
 * intent or an abort counts as no event.
 */
import {
  BucketNotFoundError,
  bucketName,
  decode,
  entryEpoch,
  EpochFences,
  HEADER,
  journalStreamFilter,
  journalStreamName,
  parseEpochMarker,
  parseJournalEntry,
  parseSubject,
  SessionStore,
  type Bus,
  type EpochMarker,
  type StampedEvent,
  type StoredSnapshot,
} from '../../internal.js';

/** One journaled event, with its entry's facts (a record of several events, a transaction's, repeats them). */
export interface JournalEvent {
  /** The session's seq this event made. */
  readonly seq: number;
  readonly event: StampedEvent;
  /** The journal's stream sequence of its entry. */
  readonly streamSeq: number;
  readonly shard: number;
  /** `Cohort-Epoch` and `Cohort-Worker`: the shard's epoch it was written under, and by whom (0 and the worker's id with static sharding). */
  readonly epoch: number;
  readonly worker: string;
  /** `Cohort-Cmd`: the entry's de-duplication id (the command id; a transaction's id for its record). */
  readonly msgId: string;
  /** When the journal stored it, on the server's clock (the memory bus's clock). */
  readonly time: number;
}

/** An entry that is not a journal record, named so a checker reports it. */
export interface UnreadableEntry {
  readonly streamSeq: number;
  readonly reason: string;
  readonly time: number;
}

/** A deposed epoch's late entry, which every reader ignores (protocol/epochs.ts). */
export interface IgnoredEntry {
  readonly streamSeq: number;
  readonly epoch: number;
  readonly worker: string;
  /** The epoch whose marker came before it. */
  readonly inForce: number;
  /** Command ids of its events. */
  readonly cmdIds: readonly string[];
  readonly time: number;
}

/** Where a compacted session's replay starts: its stored snapshot. */
export interface SessionBase {
  readonly seq: number;
  readonly snapshot: StoredSnapshot;
}

export interface SessionJournal {
  readonly app: string;
  /** The session's id within its application. */
  readonly session: string;
  readonly shard: number;
  /** In stream order. */
  readonly events: readonly JournalEvent[];
  readonly unreadable: readonly UnreadableEntry[];
  /** Late entries of deposed epochs, in stream order (absent: none). */
  readonly ignored?: readonly IgnoredEntry[];
  /** Read only when the journal no longer starts at seq 1 (compacted) and a snapshot was found. */
  readonly base?: SessionBase;
}

export interface ReadJournalsOptions {
  /** Read the stored snapshot of a compacted session (default true). */
  readonly snapshots?: boolean;
}

/** `app/id`: how the checker keys a session. */
export function sessionKeyOf(app: string, session: string): string {
  return `${app}/${session}`;
}

/**
 * Every session's journal, read to its end as of now: best when the run is
 * over (workers stopped, or idle), since a purge between the journal read
 * and the snapshot read would leave a gap the checker then reports.
 */
export async function readJournals(
  bus: Bus,
  cluster: string,
  options: ReadJournalsOptions = {},
): Promise<SessionJournal[]> {
  const journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const sessions = new Map<string, { app: string; session: string; shard: number; events: JournalEvent[] }>();
  const unreadable = new Map<string, UnreadableEntry[]>();
  const ignored = new Map<string, IgnoredEntry[]>();
  const fences = new Map<number, EpochFences>();
  for await (const entry of journal.read(journalStreamFilter(cluster))) {
    const target = parseSubject(entry.subject);
    if (target.kind === 'epoch') {
      const marker = readMarker(target.shard, entry.data);
      let f = fences.get(target.shard);
      if (f === undefined) fences.set(target.shard, (f = new EpochFences(Number.POSITIVE_INFINITY)));
      if (marker !== undefined) f.addMarker(entry.seq, marker);
      continue;
    }
    if (target.kind !== 'jrnl') continue;
    const key = sessionKeyOf(target.app, target.id);
    let s = sessions.get(key);
    if (s === undefined)
      sessions.set(key, (s = { app: target.app, session: target.id, shard: target.shard, events: [] }));
    let body: ReturnType<typeof parseJournalEntry>;
    try {
      body = parseJournalEntry(decode(entry.data, { where: `journal ${entry.subject}#${entry.seq}` }));
    } catch (err) {
      body = err instanceof Error ? err.message : String(err);
    }
    if (typeof body === 'string') {
      unreadable.set(key, [...(unreadable.get(key) ?? []), { streamSeq: entry.seq, reason: body, time: entry.time }]);
      continue;
    }
    // A multi-session transaction's intent or abort holds no events: its record, if it landed, does.
    if (body.kind !== 'record') continue;
    const record = body.record;
    const epoch = entryEpoch(entry.headers);
    const inForce = fences.get(target.shard)?.inForceAt(entry.seq) ?? 0;
    if (epoch < inForce) {
      const late: IgnoredEntry = {
        streamSeq: entry.seq,
        epoch,
        worker: entry.headers[HEADER.worker] ?? '',
        inForce,
        cmdIds: record.events.map((e) => e.event.meta.cmdId),
        time: entry.time,
      };
      ignored.set(key, [...(ignored.get(key) ?? []), late]);
      continue;
    }
    const facts = {
      streamSeq: entry.seq,
      shard: target.shard,
      epoch,
      worker: entry.headers[HEADER.worker] ?? '',
      msgId: entry.headers[HEADER.command] ?? '',
      time: entry.time,
    };
    for (const e of record.events) s.events.push({ ...facts, seq: e.seq, event: e.event });
    // The other sessions' parts take effect here too: nothing of theirs can come between their intent and this.
    for (const part of record.tx?.parts ?? []) {
      const partKey = sessionKeyOf(part.app, part.id);
      let other = sessions.get(partKey);
      if (other === undefined)
        sessions.set(partKey, (other = { app: part.app, session: part.id, shard: target.shard, events: [] }));
      for (const e of part.events) other.events.push({ ...facts, seq: e.seq, event: e.event });
    }
  }
  const compacted = [...sessions.values()].some((s) => s.events[0]?.seq !== 1);
  // Opened only when needed: a reader may not be allowed the snapshots' buckets.
  const store = options.snapshots === false || !compacted ? undefined : await openStore(bus, cluster);
  const out: SessionJournal[] = [];
  for (const [key, s] of sessions) {
    const base = store !== undefined && s.events[0]?.seq !== 1 ? await baseOf(store, s.app, s.session) : undefined;
    const late = ignored.get(key);
    out.push({
      ...s,
      unreadable: unreadable.get(key) ?? [],
      ...(late !== undefined && { ignored: late }),
      ...(base === undefined ? {} : { base }),
    });
  }
  return out;
}

/** A marker as the checker takes it: one that does not parse marks nothing (a worker ignores it too). */
function readMarker(shard: number, data: Uint8Array): EpochMarker | undefined {
  try {
    const marker = parseEpochMarker(decode(data, { where: 'epoch marker' }), shard);
    return typeof marker === 'string' ? undefined : marker;
  } catch {
    return undefined;
  }
}

async function openStore(bus: Bus, cluster: string): Promise<SessionStore | undefined> {
  try {
    const kv = await bus.kv({ bucket: bucketName(cluster, 'snapshots'), create: false });
    const blobs = await bus.blobs({ bucket: bucketName(cluster, 'blobs') });
    return new SessionStore({ kv, blobs, maxPayload: bus.server.maxPayload });
  } catch (err) {
    if (err instanceof BucketNotFoundError) return undefined;
    throw err;
  }
}

async function baseOf(store: SessionStore, app: string, session: string): Promise<SessionBase | undefined> {
  const snapshot = await store.load(app, session);
  return snapshot === null ? undefined : { seq: snapshot.session.seq, snapshot };
}
