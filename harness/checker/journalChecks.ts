/**
 * What the journal must be for the rest to be checked: readable entry by
 * entry, and whole from seq 1 (see journal.ts on compaction).
 */
import type { CheckContext } from './context.js';
import type { Violation } from './violation.js';

/** Run after the other invariants: they note the operations a compacted journal kept them from checking. */
export function checkJournalComplete(ctx: CheckContext): Violation[] {
  if (ctx.input.requireFullJournal === false) return [];
  const out: Violation[] = [];
  for (const [key, facts] of ctx.sessions) {
    const compacted = facts.journalFrom > 1 || facts.journal.base !== undefined;
    if (!compacted) continue;
    const unchecked = ctx.unverified.get(key) ?? [];
    const base = facts.journal.base;
    const below =
      base === undefined
        ? 'and no snapshot was read to start the replay from'
        : `below the snapshot at seq ${base.seq}, where the replay starts`;
    out.push({
      invariant: 'journal-complete',
      app: facts.app,
      session: facts.session,
      operations: unchecked,
      at: facts.journal.events[0]?.time ?? 0,
      message: `the journal starts at seq ${facts.journalFrom}, compacted ${below}: ${unchecked.length} operations could not be checked against it; give ${facts.app} a snapshotEvery above the events a session takes in the run`,
    });
  }
  return out;
}

export function checkJournalReadable(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const facts of ctx.sessions.values()) {
    for (const u of facts.journal.unreadable) {
      out.push({
        invariant: 'journal-readable',
        app: facts.app,
        session: facts.session,
        operations: [],
        at: u.time,
        message: `journal entry ${u.streamSeq} is not a journal record: ${u.reason}`,
      });
    }
  }
  return out;
}
