import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { decode } from '../../bus/codec.js';
import { journalSubject } from '../../bus/subjects.js';
import type { JournalRecord, PatchMessage, PatchOperation, VerifyOutcome, VerifyReply, VerifyRequest } from '../../protocol/messages.js';
import { documentOf, replaySession, restoreSession, startSession, type SessionState } from '../../machines/session.js';
import type { Application } from './application.js';
import type { LoadDeps } from './loadSession.js';

/** A replay that met a purge under way is tried again this many times before the cache is cleared. */
const ATTEMPTS = 3;

/**
 * Cache verification (ZEO): what brings a client's copy at `since` to the
 * session's `current` state. Patches are rebuilt from the journal, the
 * way loadSession rebuilds a session, diffing each event's document
 * against the one before; whenever that is not possible (the journal was
 * compacted past `since`, the gap exceeds the client's `max`) the answer
 * is `cleared` with the whole document, which is always correct.
 */
export async function verifySession(
  deps: LoadDeps,
  app: Application,
  id: string,
  shard: number,
  current: SessionState,
  req: VerifyRequest,
  log: Logger,
): Promise<VerifyReply> {
  const seq = current.seq;
  const whole = (outcome: VerifyOutcome): VerifyReply => ({ ok: true, outcome, seq, document: documentOf(current), state: current.snapshot.value });
  if (req.since === seq) return { ok: true, outcome: 'up-to-date', seq };
  if (req.since > seq) return whole('newer-than-server');
  if (seq - req.since > req.max) return whole('cleared');
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const replay = await replayJournal(deps, app, id, shard, req.since, seq);
    if (replay === 'compacted') return whole('cleared');
    if (replay === 'gap') continue;
    // The journal and this copy must agree; if they do not, the client re-reads rather than trust the patches.
    if (jsonPatch.compare(documentOf(replay.state) as object, documentOf(current) as object).length > 0) {
      log.warn({ since: req.since, seq }, 'journal replay does not reproduce the session: verification answered cleared');
      return whole('cleared');
    }
    return { ok: true, outcome: 'replayed', seq, patches: replay.patches };
  }
  return whole('cleared');
}

type Replay = { readonly state: SessionState; readonly patches: PatchMessage[] } | 'compacted' | 'gap';

/**
 * The patches for seq since+1..target: from the stored snapshot when it is
 * not past `since`, else from the journal's start if it still holds seq 1.
 * `gap`: the snapshot read and the journal read straddled a compaction.
 */
async function replayJournal(deps: LoadDeps, app: Application, id: string, shard: number, since: number, target: number): Promise<Replay> {
  const subject = journalSubject(deps.cluster, shard, app.name, id);
  const stored = await deps.store.load(app.name, id);
  const fromSnapshot = stored !== null && stored !== undefined && stored.session.seq <= since;
  let state: SessionState | undefined = fromSnapshot ? restoreSession(app.machine, stored.session) : undefined;
  const patches: PatchMessage[] = [];
  for await (const entry of deps.journal.read(subject, { fromSeq: fromSnapshot ? stored.journalSeq + 1 : 1 })) {
    const record = decode(entry.data, { where: `journal ${entry.subject}#${entry.seq}` }) as JournalRecord;
    for (const e of record.events) {
      if (state === undefined) {
        // No usable snapshot: only a journal that still starts at the session's first event will do.
        if (e.seq !== 1) return 'compacted';
        state = startSession(app.machine, e.event.meta.time);
      }
      if (e.seq <= state.seq) continue;
      if (e.seq !== state.seq + 1) return 'gap';
      // One patch per event, even inside a transaction's record: each says who set it.
      const next = replaySession(app.machine, state, [e]);
      if (e.seq > since) {
        const ops = jsonPatch.compare(documentOf(state) as object, documentOf(next) as object) as PatchOperation[];
        patches.push({ seq: e.seq, prev: state.seq, ops, setter: e.event.meta.client });
      }
      state = next;
      if (state.seq === target) return { state, patches };
    }
  }
  // The journal ends short of the session (unjournaled writes lost, or a purge between reads).
  return state === undefined ? 'compacted' : 'gap';
}
