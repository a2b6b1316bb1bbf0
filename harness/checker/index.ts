/**
 * The history checker: record what clients did (HistoryRecorder), read what
 * the cluster journaled (readJournals), and check the one against the other
 * with the application's machine as the model (checkHistory).
 */
export { HistoryRecorder, isAcknowledged, type Operation, type Outcome } from './history.js';
export { sendOutcome } from './outcome.js';
export {
  readJournals,
  sessionKeyOf,
  type JournalEvent,
  type ReadJournalsOptions,
  type SessionBase,
  type SessionJournal,
  type UnreadableEntry,
} from './journal.js';
export {
  compareReplays,
  findNondeterminism,
  replayModel,
  type Divergence,
  type ModelAnomaly,
  type ModelState,
  type ModelStep,
  type SessionModel,
} from './model.js';
export { attribute, isDelayedEvent, sentEvent, type Attribution, type LocatedEvent } from './attribution.js';
export { asRead, firstDifference, sameDocument } from './compare.js';
export type { CheckContext, CheckInput, FinalDocument, LivenessInput, SecondaryCopy, SessionFacts } from './context.js';
export * from './check.js';
export { describeEvent, refOf, type EventRef, type Invariant, type Violation } from './violation.js';
