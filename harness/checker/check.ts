/**
 * Checks a history against the journal it left, for any application: each
 * invariant is one function of the prepared context (context.ts), exported
 * so a test can run one alone; checkHistory runs them all.
 *
 * ```ts
 * const violations = checkHistory({
 *   history: recorder.operations,
 *   journals: await readJournals(bus, cluster),
 *   applications: [ledger],
 * })
 * ```
 */
import { checkAcknowledgedOnce, checkAmbiguousAtMostOnce, checkFailedAbsent, checkNoPhantom } from './commands.js';
import { prepare, type CheckContext, type CheckInput } from './context.js';
import { checkJournalComplete, checkJournalReadable } from './journalChecks.js';
import { checkLiveness } from './liveness.js';
import { checkDeterministic, checkModel } from './modelChecks.js';
import { checkRealTimeOrder, checkSeqDistinct } from './order.js';
import { checkReplicaAgreement } from './replicas.js';
import type { Violation } from './violation.js';
import { checkDeposedWriter, checkSingleWriter } from './writers.js';

export {
  checkAcknowledgedOnce,
  checkAmbiguousAtMostOnce,
  checkDeposedWriter,
  checkDeterministic,
  checkFailedAbsent,
  checkJournalComplete,
  checkJournalReadable,
  checkLiveness,
  checkModel,
  checkNoPhantom,
  checkRealTimeOrder,
  checkReplicaAgreement,
  checkSeqDistinct,
  checkSingleWriter,
  prepare,
};

/** Every invariant but journal-complete, which reports what these could not check and so runs last. */
const INVARIANTS: readonly ((ctx: CheckContext) => Violation[])[] = [
  checkJournalReadable,
  checkAcknowledgedOnce,
  checkNoPhantom,
  checkAmbiguousAtMostOnce,
  checkFailedAbsent,
  checkSeqDistinct,
  checkRealTimeOrder,
  checkModel,
  checkDeterministic,
  checkSingleWriter,
  checkDeposedWriter,
  checkReplicaAgreement,
  checkLiveness,
];

/** Every violation of every invariant, in time order; empty when the run kept them all. */
export function checkHistory(input: CheckInput): Violation[] {
  const ctx = prepare(input);
  const found = INVARIANTS.flatMap((check) => check(ctx));
  return [...found, ...checkJournalComplete(ctx)].sort((a, b) => a.at - b.at);
}
