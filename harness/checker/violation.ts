/**
 * What a checker reports: which invariant broke, for which session, through
 * which operations, at which time, and (when it is about one) which
 * journaled event.
 */
import type { Operation } from './history.js';
import type { JournalEvent } from './journal.js';

export type Invariant =
  /** An acknowledged send's command is journaled exactly once, in its session, at the seq it was acknowledged with, as sent. */
  | 'acknowledged-once'
  /** Every journaled command was sent, to that session, by an operation of the history (delayed events aside). */
  | 'no-phantom'
  /** An ambiguous send's command is journaled once or not at all. */
  | 'ambiguous-at-most-once'
  /** A failed send's command is not journaled. */
  | 'failed-absent'
  /** Acknowledged sends of one session have distinct seqs. */
  | 'seq-distinct'
  /** An operation that completed before another was invoked has the lower seq (reads: not higher). */
  | 'real-time-order'
  /** Replaying the journal through the application's machine takes every event and reproduces every read and final document. */
  | 'model'
  /** Two replays of the same journal agree: the machine reads no wall clock and no randomness. */
  | 'deterministic'
  /** Per shard and epoch, one worker wrote to the journal. */
  | 'single-writer'
  /** No acknowledged write was journaled under an epoch older than one its shard had already written under. */
  | 'deposed-writer'
  /** A secondary's document equals its primary's at the same seq. */
  | 'replica-agreement'
  /** After the last fault healed, every session acknowledged a command within the bound. */
  | 'liveness'
  /** The journal still holds the session from seq 1 (not compacted), so everything could be checked. */
  | 'journal-complete'
  /** Every journal entry is a readable record. */
  | 'journal-readable'
  /** A workload ran to its end without throwing (a simulation's or a scenario's). */
  | 'workload';

/** A journaled event as a violation names it. */
export interface EventRef {
  readonly seq: number;
  readonly type: string;
  readonly cmdId: string;
  /** The journal's stream sequence of its entry. */
  readonly streamSeq: number;
}

export interface Violation {
  readonly invariant: Invariant;
  readonly app: string;
  /** The session's id within its application. */
  readonly session: string;
  readonly operations: readonly Operation[];
  /** On the history's clock when operations are involved; else the journal's time of the event. */
  readonly at: number;
  readonly message: string;
  readonly event?: EventRef;
}

export function refOf(e: JournalEvent): EventRef {
  return { seq: e.seq, type: e.event.type, cmdId: e.event.meta.cmdId, streamSeq: e.streamSeq };
}

/** `DEPOSIT (cmd 1f3…) at seq 4`. */
export function describeEvent(e: JournalEvent): string {
  return `${e.event.type} (cmd ${e.event.meta.cmdId}) at seq ${e.seq}`;
}
