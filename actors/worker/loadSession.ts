import { decode } from '../../bus/codec.js';
import { journalSubject } from '../../bus/subjects.js';
import type { Journal } from '../../bus/types.js';
import { HEADER } from '../../protocol/headers.js';
import { type JournalRecord } from '../../protocol/messages.js';
import { replaySession, restoreSession, startSession, type SessionState } from '../../machines/session.js';
import type { Application } from './application.js';
import type { SessionStore } from './sessionStore.js';

/** What loading needs: where the journal and the snapshots are. */
export interface LoadDeps {
  readonly journal: Journal;
  readonly store: SessionStore;
  readonly cluster: string;
}

export interface LoadedSession {
  readonly state: SessionState;
  /** Stream sequence of the last journal entry reflected: the fence for the next append. */
  readonly journalSeq: number;
  /** Recent command ids and the seq each produced, oldest first. */
  readonly recent: [string, number][];
}

/**
 * A session as the journal has it: the latest snapshot plus every entry
 * after it, replayed with the pure transition. Primaries activate with it,
 * secondaries make their copies with it; a session never seen starts fresh
 * at `now`.
 */
export async function loadSession(
  deps: LoadDeps,
  app: Application,
  id: string,
  shard: number,
  now: number,
): Promise<LoadedSession> {
  // A copy loaded while the primary compacts can read the store before the new snapshot and the
  // journal after the purge: a gap. Reading again finds the snapshot that covers it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await loadOnce(deps, app, id, shard, now);
    } catch (err) {
      if (!(err instanceof JournalGapError) || attempt >= 3) throw err;
    }
  }
}

/** The journal no longer holds what lies between the snapshot read and its first entry. */
export class JournalGapError extends RangeError {
  override readonly name = 'JournalGapError';
}

async function loadOnce(
  deps: LoadDeps,
  app: Application,
  id: string,
  shard: number,
  now: number,
): Promise<LoadedSession> {
  const subject = journalSubject(deps.cluster, shard, app.name, id);
  // Both lookups at once: two round trips in parallel, not in a row.
  const [stored, lastSeq] = await Promise.all([deps.store.load(app.name, id), deps.journal.lastSeq(subject)]);
  let state: SessionState | undefined = stored ? restoreSession(app.machine, stored.session) : undefined;
  let journalSeq = stored?.journalSeq ?? 0;
  const recent: [string, number][] = (stored?.recent ?? []).map(([c, s]) => [c, s]);
  // The last-sequence lookup spares a consumer when there is nothing after the snapshot (or no session yet).
  const tail = lastSeq > journalSeq ? deps.journal.read(subject, { fromSeq: journalSeq + 1 }) : [];
  for await (const entry of tail) {
    const record = decode(entry.data, { where: `journal ${entry.subject}#${entry.seq}` }) as JournalRecord;
    const first = record.events[0];
    if (first === undefined) continue;
    state ??= startSession(app.machine, first.event.meta.time);
    if (first.seq > state.seq + 1) throw new JournalGapError(`${app.name}/${id}: at seq ${state.seq}, the journal resumes at seq ${first.seq}`);
    state = replaySession(app.machine, state, record.events);
    for (const e of record.events) recent.push([e.event.meta.cmdId, e.seq]);
    // A transaction's record is de-duplicated on its txId: a retried commit after reloading is still recognised.
    const msgId = entry.headers[HEADER.command];
    const last = record.events[record.events.length - 1]!;
    if (msgId !== undefined && record.events.every((e) => e.event.meta.cmdId !== msgId)) recent.push([msgId, last.seq]);
    journalSeq = entry.seq;
  }
  return { state: state ?? startSession(app.machine, now), journalSeq, recent: recent.slice(-256) };
}
