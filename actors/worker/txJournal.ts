/**
 * How a transaction over several sessions of one shard is journaled.
 *
 * The journal is one stream; each session's entries are on its own subject,
 * fenced by expected-last-subject-sequence, and nats-server 2.9 has no
 * atomic publish over several subjects. So the transaction's one message,
 * with every session's events, goes on one subject (its coordinator's: the
 * session it began on when that one has events, else the first in key
 * order that has), and each other session gets an intent on its own
 * subject first, fenced there, that points at it:
 *
 *   1. intents, in session key order, each fenced on its session's subject
 *      (the lock keeps this worker's own writers out; the fence keeps out
 *      a deposed primary and anything else that wrote since the copy read);
 *   2. the record on the coordinator's subject, fenced there: the commit
 *      point. It carries the coordinator's events as any record does (so a
 *      reader of that session alone needs nothing new) and each other
 *      session's part, naming the stream sequence of its intent.
 *
 * An intent's session reads its part at the intent, in its own order: the
 * record was written with the coordinator's subject fenced on its last
 * sequence from before the intents, so the record landed if and only if it
 * is the first entry on the coordinator's subject after the intent. Any
 * other entry there first (a later write, or an abort below) means it can
 * never land, because that fence is gone. Nothing there yet means it is
 * still in flight, or was lost with its writer: a primary loading the
 * session decides by appending an abort to the coordinator's subject,
 * fenced on its last sequence, which either lands (the record now never
 * can) or fails because the record landed. Readers that must not write
 * (secondaries, verification) stop before an undecided intent; a secondary
 * then applies the part when the record comes down the shard's tail, which
 * carries both subjects in stream order.
 *
 * Cost: none on an activation that meets no intent (the usual one); an
 * intent costs one read of the coordinator's subject (limit 1), and an
 * undecided one an append. A shard-level subject read at every activation
 * would cost every session for the sake of the few in transactions.
 *
 * Epochs: the record counts only when readers admit it (a deposed
 * primary's record after a newer epoch's marker counts for nobody, its
 * coordinator included), so the verdict follows the same rule.
 *
 * Compaction: the other sessions snapshot as the commit makes them current
 * (their replays then start past their intents), and the coordinator keeps
 * the record from its own compaction (StoredSnapshot.keep) until every one
 * of them has, so a snapshot lost with a killed worker costs a read, never
 * the part.
 *
 * Locks: every session's lock is held from its first step to the end; a
 * transaction waits (SessionLockedError, retried) only for a session whose
 * key comes after every one it holds, and rolls back ('lock-order')
 * otherwise, so two transactions never wait for each other.
 */
import { decode, encode } from '../../bus/codec.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { journalSubject } from '../../bus/subjects.js';
import type { AppendAck, Journal, JournalEntry } from '../../bus/types.js';
import { entryEpoch } from '../../protocol/epochs.js';
import { HEADER, sessionHeader } from '../../protocol/headers.js';
import type { JournaledEvent, SessionRef, TxAbort, TxIntent } from '../../protocol/messages.js';
import { parseJournalEntry, partOf } from '../../protocol/records.js';
import type { EpochAdmission } from './replay.js';

/** `Cohort-Type` of a multi-session transaction's record: a follower looks for other sessions' parts only in these. */
export const TX_RECORD_TYPE = 'tx';

/** Who writes an abort, when a reader may decide (a primary loading the session). */
export interface IntentDecider {
  stamp(shard: number): { readonly epoch: number; readonly worker: string };
  /**
   * An abort was appended on `at`'s subject at `seq`, fenced on `fence`: a
   * copy of `at` in memory that reflected `fence` reflects `seq` now (an
   * abort changes nothing of it). Otherwise that copy's next append would
   * find its fence gone, and the transaction it serves fail, leaving
   * intents of its own for the next load to abort, and so on.
   */
  aborted?(at: SessionRef, fence: number, seq: number): void;
}

export interface IntentReaders {
  readonly journal: Journal;
  readonly cluster: string;
  readonly epochs?: EpochAdmission;
  /** Present: an undecided intent is decided (aborted if the record has not landed). */
  readonly decider?: IntentDecider;
}

/** What became of an intent: its session's events, or none; `pending`: undecided, and this reader may not decide. */
export type IntentVerdict =
  { readonly committed: readonly JournaledEvent[] } | { readonly aborted: true } | { readonly pending: true };

const ABORTED: IntentVerdict = { aborted: true };
const PENDING: IntentVerdict = { pending: true };

/** Tries at deciding, each after someone else wrote on the coordinator's subject meanwhile. */
const ATTEMPTS = 3;

/** The de-duplication id of the intent of transaction `txId` on session `key`. */
export function intentMsgId(txId: string, key: string): string {
  return `${txId}>${key}`;
}

/** Appends an intent on `subject`, fenced on `fence`; throws WrongLastSequenceError when the fence does not hold. */
export function appendIntent(
  journal: Journal,
  subject: string,
  session: SessionRef,
  intent: TxIntent['intent'],
  stamp: {
    readonly msgId: string;
    readonly fence: number | undefined;
    readonly epoch: number;
    readonly worker: string;
  },
): Promise<AppendAck> {
  const body: TxIntent = { v: 1, intent };
  return journal.append(subject, encode(body), {
    msgId: stamp.msgId,
    expectedLastSubjectSeq: stamp.fence,
    headers: {
      [HEADER.type]: 'tx-intent',
      [HEADER.session]: sessionHeader(session.app, session.id),
      [HEADER.command]: stamp.msgId,
      [HEADER.epoch]: String(stamp.epoch),
      [HEADER.worker]: stamp.worker,
    },
  });
}

/** What an intent's session takes from the first entry on the coordinator's subject after the intent. */
function verdictOf(
  readers: IntentReaders,
  shard: number,
  session: SessionRef,
  intentSeq: number,
  txId: string,
  e: JournalEntry,
): IntentVerdict {
  if (e.headers[HEADER.command] !== txId) return ABORTED;
  if (readers.epochs?.admits(shard, e.seq, entryEpoch(e.headers)) === false) return ABORTED;
  let body;
  try {
    body = parseJournalEntry(decode(e.data, { where: `journal ${e.subject}#${e.seq}` }));
  } catch {
    return ABORTED;
  }
  if (typeof body === 'string' || body.kind !== 'record' || body.record.tx?.id !== txId) return ABORTED;
  const part = partOf(body.record, session.app, session.id, intentSeq);
  return part === undefined ? ABORTED : { committed: part.events };
}

/**
 * What became of the intent of `session` at stream sequence `intentSeq`
 * (see the top of this file). With a decider, never pending.
 */
export async function resolveIntent(
  readers: IntentReaders,
  shard: number,
  session: SessionRef,
  intentSeq: number,
  intent: TxIntent['intent'],
): Promise<IntentVerdict> {
  const { journal, cluster, decider } = readers;
  const subject = journalSubject(cluster, shard, intent.at.app, intent.at.id);
  for (let attempt = 1; ; attempt++) {
    for await (const e of journal.read(subject, { fromSeq: intentSeq + 1, limit: 1 }))
      return verdictOf(readers, shard, session, intentSeq, intent.tx, e);
    if (decider === undefined) return PENDING;
    const last = await journal.lastSeq(subject);
    // Something landed there between the two reads: read it.
    if (last > intentSeq) {
      if (attempt >= ATTEMPTS) throw new Error(`${subject}: an entry after ${intentSeq} that cannot be read`);
      continue;
    }
    const { epoch, worker } = decider.stamp(shard);
    const body: TxAbort = { v: 1, abort: intent.tx };
    try {
      const ack = await journal.append(subject, encode(body), {
        msgId: `abort:${intent.tx}`,
        expectedLastSubjectSeq: last,
        headers: {
          [HEADER.type]: 'tx-abort',
          [HEADER.session]: sessionHeader(intent.at.app, intent.at.id),
          [HEADER.command]: `abort:${intent.tx}`,
          [HEADER.epoch]: String(epoch),
          [HEADER.worker]: worker,
        },
      });
      decider.aborted?.(intent.at, last, ack.seq);
      return ABORTED;
    } catch (err) {
      if (!(err instanceof WrongLastSequenceError) || attempt >= ATTEMPTS) throw err;
    }
  }
}
