/**
 * A history of client operations and the invariants a cluster must keep
 * whatever faults it went through (DESIGN.md section 8): every acknowledged
 * command is in the final state exactly once, nothing appears that nobody
 * sent, and per shard at most one primary's writes were accepted per epoch.
 *
 * Commands are told apart by a token the application keeps in its document
 * (say, a list of applied tokens), so the final state can be checked
 * directly, not through the runtime's own bookkeeping. State that keeps only
 * a count and a sum (a ledger's balance) is checked from the same history
 * with tallyBySession and checkTally instead, less precisely.
 */
import type { Bus, SendResult } from '../index.js';
import {
  decode,
  entryEpoch,
  EpochFences,
  HEADER,
  type JournalRecord,
  journalStreamFilter,
  journalStreamName,
  parseEpochMarker,
  parseSubject,
} from '../internal.js';

export interface Operation {
  readonly session: string;
  readonly token: string;
  /** Milliseconds on the recorder's clock. */
  readonly sentAt: number;
  readonly settledAt: number;
  /** The acknowledgement, or the error the client finally gave up with (the command may or may not be applied). */
  readonly outcome: SendResult | { readonly error: string };
}

/** Acknowledged: applied exactly once, whatever happened after. Otherwise the command may or may not be applied. */
export function isAcknowledged(op: Operation): op is Operation & { readonly outcome: SendResult } {
  return !('error' in op.outcome);
}

/** Records operations as clients settle them. */
export class History {
  readonly #ops: Operation[] = [];

  constructor(readonly now: () => number = () => performance.now()) {}

  get operations(): readonly Operation[] {
    return this.#ops;
  }

  /** Runs one send and records how it ended; never throws. */
  async track(session: string, token: string, send: () => Promise<SendResult>): Promise<Operation> {
    const sentAt = this.now();
    let outcome: Operation['outcome'];
    try {
      outcome = await send();
    } catch (err) {
      outcome = { error: err instanceof Error ? err.name : String(err) };
    }
    const op: Operation = { session, token, sentAt, settledAt: this.now(), outcome };
    this.#ops.push(op);
    return op;
  }
}

/** One journal entry as the checker needs it. */
export interface JournalFact {
  readonly streamSeq: number;
  readonly shard: number;
  readonly session: string;
  readonly tokens: readonly string[];
  readonly epoch: number;
  readonly worker: string;
}

/** The cluster's whole journal, in stream order; `tokenOf` finds a command's token in its event. */
export async function readJournalFacts(
  bus: Bus,
  cluster: string,
  tokenOf: (event: Record<string, unknown>) => string | undefined,
): Promise<JournalFact[]> {
  const journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const facts: JournalFact[] = [];
  // A deposed epoch's late entry (after a newer epoch's marker) is applied by nobody: not a fact of the run.
  const fences = new Map<number, EpochFences>();
  for await (const entry of journal.read(journalStreamFilter(cluster))) {
    const target = parseSubject(entry.subject);
    if (target.kind === 'epoch') {
      const marker = parseEpochMarker(decode(entry.data, { where: 'epoch marker' }), target.shard);
      let f = fences.get(target.shard);
      if (f === undefined) fences.set(target.shard, (f = new EpochFences(Number.POSITIVE_INFINITY)));
      if (typeof marker !== 'string') f.addMarker(entry.seq, marker);
      continue;
    }
    if (target.kind !== 'jrnl') continue;
    if (fences.get(target.shard)?.admits(entry.seq, entryEpoch(entry.headers)) === false) continue;
    const record = decode(entry.data, { where: `journal ${entry.subject}#${entry.seq}` }) as JournalRecord;
    facts.push({
      streamSeq: entry.seq,
      shard: target.shard,
      session: target.id,
      tokens: record.events.flatMap((e) => tokenOf(e.event as unknown as Record<string, unknown>) ?? []),
      epoch: entryEpoch(entry.headers),
      worker: entry.headers[HEADER.worker] ?? '',
    });
  }
  return facts;
}

export interface Verdict {
  readonly acknowledged: number;
  readonly failed: number;
  /** Acknowledged, but not in the final document of its session. */
  readonly lost: readonly string[];
  /** In a final document more than once. */
  readonly duplicated: readonly string[];
  /** In a final document, but never sent to that session. */
  readonly unexplained: readonly string[];
  /** Two writers journaled under one shard epoch: `shard 5 epoch 3: w1, w2`. */
  readonly sharedEpochs: readonly string[];
  /**
   * A write acknowledged by its writer (not as a retry) although a later
   * epoch had already written to its shard: a deposed primary accepted it.
   */
  readonly lateAcknowledgements: readonly string[];
  readonly ok: boolean;
}

export function checkHistory(input: {
  readonly operations: readonly Operation[];
  /** Each session's final list of tokens. */
  readonly documents: ReadonlyMap<string, readonly string[]>;
  readonly journal: readonly JournalFact[];
}): Verdict {
  const sent = new Map<string, string>();
  for (const op of input.operations) sent.set(op.token, op.session);
  const acked = input.operations.filter(isAcknowledged);
  const lost: string[] = [];
  const duplicated = new Set<string>();
  const unexplained: string[] = [];
  const counts = new Map<string, number>();
  for (const [session, tokens] of input.documents) {
    for (const t of tokens) {
      counts.set(t, (counts.get(t) ?? 0) + 1);
      if (sent.get(t) !== session) unexplained.push(`${t} in ${session}`);
    }
  }
  for (const [t, n] of counts) if (n > 1) duplicated.add(t);
  for (const op of acked) if (!input.documents.get(op.session)?.includes(op.token)) lost.push(op.token);

  const writers = new Map<string, Set<string>>();
  for (const f of input.journal) {
    const key = `shard ${f.shard} epoch ${f.epoch}`;
    const set = writers.get(key) ?? new Set<string>();
    set.add(f.worker);
    writers.set(key, set);
  }
  const sharedEpochs = [...writers]
    .filter(([, w]) => w.size > 1)
    .map(([key, w]) => `${key}: ${[...w].sort().join(', ')}`);

  // Per shard, the highest epoch journaled so far, walking the stream in order.
  const acceptedBy = new Map<string, SendResult>();
  for (const op of acked) if (!op.outcome.duplicate) acceptedBy.set(op.token, op.outcome);
  const highest = new Map<number, number>();
  const lateAcknowledgements: string[] = [];
  for (const f of [...input.journal].sort((a, b) => a.streamSeq - b.streamSeq)) {
    const before = highest.get(f.shard) ?? -1;
    for (const t of f.tokens) {
      const ack = acceptedBy.get(t);
      if (ack !== undefined && f.epoch < before) {
        lateAcknowledgements.push(
          `${t}: acknowledged by ${ack.by} at epoch ${f.epoch} of shard ${f.shard}, journaled after epoch ${before} wrote`,
        );
      }
    }
    highest.set(f.shard, Math.max(before, f.epoch));
  }
  return {
    acknowledged: acked.length,
    failed: input.operations.length - acked.length,
    lost,
    duplicated: [...duplicated],
    unexplained,
    sharedEpochs,
    lateAcknowledgements,
    ok: lost.length + duplicated.size + unexplained.length + sharedEpochs.length + lateAcknowledgements.length === 0,
  };
}

/** What a history sent one session, for state that keeps a count and a sum, not tokens. */
export interface SessionTally {
  readonly acknowledged: number;
  readonly acknowledgedSum: number;
  /** Amounts of the failed commands: each may or may not be applied. */
  readonly failed: readonly number[];
}

/** The history per session; `amountOf` is what each command adds to the sum. */
export function tallyBySession(
  operations: readonly Operation[],
  amountOf: (op: Operation) => number,
): Map<string, SessionTally> {
  const tallies = new Map<string, { acknowledged: number; acknowledgedSum: number; failed: number[] }>();
  for (const op of operations) {
    let t = tallies.get(op.session);
    if (t === undefined) tallies.set(op.session, (t = { acknowledged: 0, acknowledgedSum: 0, failed: [] }));
    if (isAcknowledged(op)) {
      t.acknowledged++;
      t.acknowledgedSum += amountOf(op);
    } else {
      t.failed.push(amountOf(op));
    }
  }
  return tallies;
}

/** Whether exactly `count` of `amounts` add up to `sum` (amounts are few: the failed commands of one session). */
export function someAddUpTo(amounts: readonly number[], count: number, sum: number): boolean {
  // Reachable (count, sum) pairs, built one amount at a time.
  let reach = new Set<string>(['0:0']);
  for (const a of amounts) {
    const next = new Set(reach);
    for (const key of reach) {
      const [c, s] = key.split(':').map(Number) as [number, number];
      if (c < count && s + a <= sum) next.add(`${c + 1}:${s + a}`);
    }
    reach = next;
  }
  return reach.has(`${count}:${sum}`);
}

export interface TallyCheck {
  /** Acknowledged commands missing from the final state. */
  readonly lost: number;
  /** Commands applied more often than they were sent. */
  readonly duplicated: number;
  /** Failed commands the final state shows applied. */
  readonly failedApplied: number;
  /** A final state that neither loss nor duplication explains (no combination of the failed commands makes it up). */
  readonly unexplained: boolean;
}

/**
 * checkHistory's invariants for one session whose final state is only how
 * many commands it applied and their sum: the applied commands beyond the
 * acknowledged ones must be some of the failed ones, and their amounts must
 * make up the sum above the acknowledged one.
 */
export function checkTally(tally: SessionTally, final: { readonly applied: number; readonly sum: number }): TallyCheck {
  const extra = final.applied - tally.acknowledged;
  const surplus = final.sum - tally.acknowledgedSum;
  const failedSum = tally.failed.reduce((x, y) => x + y, 0);
  if (extra < 0 || surplus < 0)
    return { lost: Math.max(1, -extra), duplicated: 0, failedApplied: 0, unexplained: false };
  if (extra > tally.failed.length || surplus > failedSum) {
    return { lost: 0, duplicated: Math.max(1, extra - tally.failed.length), failedApplied: 0, unexplained: false };
  }
  if (!someAddUpTo(tally.failed, extra, surplus))
    return { lost: 0, duplicated: 0, failedApplied: 0, unexplained: true };
  return { lost: 0, duplicated: 0, failedApplied: extra, unexplained: false };
}
