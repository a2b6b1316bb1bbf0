import { describe, expect, it } from 'vitest';
import { type SendResult, SessionMovedError } from '../../index.js';
import { TimeoutError } from '../../bus/errors.js';
import {
  checkHistory,
  checkTally,
  History,
  someAddUpTo,
  tallyBySession,
  type JournalFact,
  type Operation,
} from '../../harness/history.js';

/** An acknowledgement as a client reports it. */
function ack(by: string, epoch: number, options: { seq?: number; duplicate?: boolean } = {}): SendResult {
  return { seq: options.seq ?? 1, duplicate: options.duplicate ?? false, by, epoch };
}

let clock = 0;
function op(session: string, token: string, outcome: Operation['outcome']): Operation {
  const sentAt = clock++;
  return { session, token, sentAt, settledAt: clock++, outcome };
}

let seq = 0;
function fact(
  shard: number,
  epoch: number,
  worker: string,
  session: string,
  tokens: readonly string[],
  streamSeq = ++seq,
): JournalFact {
  return { streamSeq, shard, session, tokens, epoch, worker };
}

function docs(entries: Record<string, readonly string[]>): ReadonlyMap<string, readonly string[]> {
  return new Map(Object.entries(entries));
}

describe('checkHistory', () => {
  it('passes a clean history and counts acknowledged and failed operations', () => {
    const operations = [
      op('s1', 'a', ack('w1', 1)),
      op('s1', 'b', ack('w1', 1)),
      op('s2', 'c', ack('w2', 1)),
      // Failed: applied or not, either is consistent.
      op('s1', 'd', { error: 'TimeoutError' }),
      op('s2', 'e', { error: 'TimeoutError' }),
    ];
    const journal = [
      fact(1, 1, 'w1', 's1', ['a']),
      fact(2, 1, 'w2', 's2', ['c']),
      fact(1, 1, 'w1', 's1', ['b']),
      // A later epoch of shard 1, by another worker: fine.
      fact(1, 2, 'w3', 's1', ['d']),
    ];
    const verdict = checkHistory({ operations, documents: docs({ s1: ['a', 'b', 'd'], s2: ['c'] }), journal });
    expect(verdict).toEqual({
      acknowledged: 3,
      failed: 2,
      lost: [],
      duplicated: [],
      unexplained: [],
      sharedEpochs: [],
      lateAcknowledgements: [],
      ok: true,
    });
  });

  it('an empty history is ok', () => {
    expect(checkHistory({ operations: [], documents: new Map(), journal: [] })).toMatchObject({
      acknowledged: 0,
      failed: 0,
      ok: true,
    });
  });

  it('detects an acknowledged token missing from its session (lost), but not a failed one', () => {
    const operations = [
      op('s1', 'a', ack('w1', 1)),
      op('s1', 'b', ack('w1', 1)),
      op('s1', 'c', { error: 'TimeoutError' }),
    ];
    const verdict = checkHistory({ operations, documents: docs({ s1: ['a'] }), journal: [] });
    expect(verdict.lost).toEqual(['b']);
    expect(verdict.duplicated).toEqual([]);
    expect(verdict.unexplained).toEqual([]);
    expect(verdict.ok).toBe(false);
  });

  it('an acknowledged token whose session has no document at all is lost', () => {
    const verdict = checkHistory({ operations: [op('s9', 'z', ack('w1', 1))], documents: docs({}), journal: [] });
    expect(verdict.lost).toEqual(['z']);
    expect(verdict.ok).toBe(false);
  });

  it('detects a token twice in a final document (duplicated)', () => {
    const operations = [op('s1', 'a', ack('w1', 1)), op('s1', 'b', ack('w1', 1))];
    const verdict = checkHistory({ operations, documents: docs({ s1: ['a', 'b', 'a'] }), journal: [] });
    expect(verdict.duplicated).toEqual(['a']);
    expect(verdict.lost).toEqual([]);
    expect(verdict.unexplained).toEqual([]);
    expect(verdict.ok).toBe(false);
  });

  it('a failed command applied twice is duplicated too', () => {
    const verdict = checkHistory({
      operations: [op('s1', 'f', { error: 'TimeoutError' })],
      documents: docs({ s1: ['f', 'f'] }),
      journal: [],
    });
    expect(verdict.duplicated).toEqual(['f']);
    expect(verdict.ok).toBe(false);
  });

  it('detects a token never sent (unexplained), and one sent to another session', () => {
    const operations = [op('s1', 'a', ack('w1', 1)), op('s2', 'b', ack('w1', 1))];
    const verdict = checkHistory({
      operations,
      documents: docs({ s1: ['a', 'ghost'], s2: ['b'], s3: ['a'] }),
      journal: [],
    });
    // `a` belongs to s1 alone: in s3 it is unexplained (and, being in two documents, duplicated).
    expect(verdict.unexplained.slice().sort()).toEqual(['a in s3', 'ghost in s1']);
    expect(verdict.duplicated).toEqual(['a']);
    expect(verdict.lost).toEqual([]);
    expect(verdict.ok).toBe(false);
  });

  it('an acknowledged token that landed in the wrong session is both lost and unexplained', () => {
    const verdict = checkHistory({
      operations: [op('s1', 'a', ack('w1', 1))],
      documents: docs({ s1: [], s2: ['a'] }),
      journal: [],
    });
    expect(verdict.lost).toEqual(['a']);
    expect(verdict.unexplained).toEqual(['a in s2']);
    expect(verdict.ok).toBe(false);
  });

  it('detects two workers journaling under one shard epoch (sharedEpochs)', () => {
    const operations = [op('s1', 'a', ack('w2', 3)), op('s1', 'b', ack('w1', 3))];
    const journal = [
      fact(5, 3, 'w2', 's1', ['a']),
      fact(5, 3, 'w1', 's1', ['b']),
      // The same worker twice in an epoch, and the same epoch number on other shards by others: fine.
      fact(5, 3, 'w2', 's1', []),
      fact(6, 3, 'w3', 's2', []),
      fact(7, 3, 'w4', 's3', []),
    ];
    const verdict = checkHistory({ operations, documents: docs({ s1: ['a', 'b'] }), journal });
    expect(verdict.sharedEpochs).toEqual(['shard 5 epoch 3: w1, w2']);
    expect(verdict.lateAcknowledgements).toEqual([]);
    expect(verdict.ok).toBe(false);
  });

  describe('late acknowledgements', () => {
    /** Shard 4: epoch 2 writes first, then an epoch-1 entry lands. */
    function deposed(
      outcome: Operation['outcome'],
      order: 'stream' | 'shuffled' = 'stream',
    ): ReturnType<typeof checkHistory> {
      const operations = [op('s1', 'new', ack('w2', 2)), op('s1', 'late', outcome)];
      const journal = [fact(4, 2, 'w2', 's1', ['new'], 10), fact(4, 1, 'w1', 's1', ['late'], 11)];
      return checkHistory({
        operations,
        documents: docs({ s1: ['new', 'late'] }),
        journal: order === 'stream' ? journal : journal.slice().reverse(),
      });
    }

    it('flags a write its writer acknowledged at epoch 1 although epoch 2 had written to the shard', () => {
      const verdict = deposed(ack('w1', 1));
      expect(verdict.lateAcknowledgements).toEqual([
        'late: acknowledged by w1 at epoch 1 of shard 4, journaled after epoch 2 wrote',
      ]);
      expect(verdict.sharedEpochs).toEqual([]);
      expect(verdict.lost).toEqual([]);
      expect(verdict.ok).toBe(false);
    });

    it('walks the journal in stream order, not array order', () => {
      expect(deposed(ack('w1', 1), 'shuffled').lateAcknowledgements).toHaveLength(1);
    });

    it('does not flag it when the acknowledgement was a retry answered as a duplicate', () => {
      const verdict = deposed(ack('w2', 2, { duplicate: true }));
      expect(verdict.lateAcknowledgements).toEqual([]);
      expect(verdict.ok).toBe(true);
    });

    it('does not flag it when the operation failed', () => {
      const verdict = deposed({ error: 'SessionMovedError' });
      expect(verdict.lateAcknowledgements).toEqual([]);
      expect(verdict).toMatchObject({ acknowledged: 1, failed: 1, ok: true });
    });

    it('does not flag epochs that only rise, nor a later epoch of another shard', () => {
      const operations = [op('s1', 'x', ack('w1', 1)), op('s1', 'y', ack('w2', 2)), op('s2', 'z', ack('w1', 1))];
      const journal = [
        fact(4, 1, 'w1', 's1', ['x'], 1),
        fact(4, 2, 'w2', 's1', ['y'], 2),
        fact(3, 5, 'w9', 's3', [], 3),
        // Shard 3's epoch 5 says nothing about shard 2.
        fact(2, 1, 'w1', 's2', ['z'], 4),
      ];
      const verdict = checkHistory({ operations, documents: docs({ s1: ['x', 'y'], s2: ['z'] }), journal });
      expect(verdict.lateAcknowledgements).toEqual([]);
      expect(verdict.ok).toBe(true);
    });
  });
});

describe('History.track', () => {
  function steppingClock(): () => number {
    let t = 100;
    return () => (t += 5);
  }

  it('records an acknowledgement with the times around it', async () => {
    const history = new History(steppingClock());
    const result = ack('w1', 2, { seq: 7 });
    const recorded = await history.track('s1', 'a', async () => result);
    expect(recorded).toEqual({ session: 's1', token: 'a', sentAt: 105, settledAt: 110, outcome: result });
    expect(history.operations).toEqual([recorded]);
  });

  it('records an error outcome by the error name, and never throws', async () => {
    const history = new History(steppingClock());
    const moved = await history.track('s1', 'a', () => Promise.reject(new SessionMovedError('counter', 's1')));
    const timedOut = await history.track('s1', 'b', async () => {
      throw new TimeoutError('send', 10);
    });
    // A send that throws before it returns a promise is caught too.
    const sync = await history.track('s2', 'c', () => {
      throw new RangeError('bad');
    });
    const odd = await history.track('s2', 'd', () => Promise.reject('not an error'));
    expect(moved.outcome).toEqual({ error: 'SessionMovedError' });
    expect(timedOut.outcome).toEqual({ error: 'TimeoutError' });
    expect(sync.outcome).toEqual({ error: 'RangeError' });
    expect(odd.outcome).toEqual({ error: 'not an error' });
    expect(history.operations.map((o) => [o.session, o.token])).toEqual([
      ['s1', 'a'],
      ['s1', 'b'],
      ['s2', 'c'],
      ['s2', 'd'],
    ]);
    expect(history.operations.every((o) => o.settledAt > o.sentAt)).toBe(true);
    // Fed to the checker, they count as failed, not acknowledged.
    expect(checkHistory({ operations: history.operations, documents: new Map(), journal: [] })).toMatchObject({
      acknowledged: 0,
      failed: 4,
      ok: true,
    });
  });
});

describe("checkTally (state with a count and a sum, not tokens: the demo's ledger)", () => {
  const tally = { acknowledged: 3, acknowledgedSum: 300, failed: [7, 40] };

  it('accepts a final state the acknowledged commands and some failed ones explain', () => {
    expect(checkTally(tally, { applied: 3, sum: 300 })).toEqual({
      lost: 0,
      duplicated: 0,
      failedApplied: 0,
      unexplained: false,
    });
    expect(checkTally(tally, { applied: 4, sum: 340 })).toEqual({
      lost: 0,
      duplicated: 0,
      failedApplied: 1,
      unexplained: false,
    });
    expect(checkTally(tally, { applied: 5, sum: 347 })).toMatchObject({ failedApplied: 2 });
  });

  it('counts a missing acknowledged command as lost and one too many as duplicated', () => {
    expect(checkTally(tally, { applied: 2, sum: 200 })).toMatchObject({ lost: 1 });
    expect(checkTally(tally, { applied: 4, sum: 299 })).toMatchObject({ lost: 1 });
    expect(checkTally(tally, { applied: 6, sum: 447 })).toMatchObject({ duplicated: 1 });
    expect(checkTally(tally, { applied: 4, sum: 400 })).toMatchObject({ duplicated: 1 });
    // One more applied than acknowledged, but no failed command of that amount.
    expect(checkTally(tally, { applied: 4, sum: 310 })).toMatchObject({ unexplained: true });
  });

  it('tallies a history per session: acknowledged count and sum, failed amounts', () => {
    const amounts: Record<string, number> = { a: 100, b: 200, c: 7, d: 40, e: 5 };
    const operations = [
      op('acct-1', 'a', ack('w1', 1)),
      op('acct-1', 'c', { error: 'TimeoutError' }),
      op('acct-1', 'b', ack('w2', 2)),
      op('acct-1', 'd', { error: 'NetworkError' }),
      op('acct-2', 'e', ack('w1', 1)),
    ];
    const tallies = tallyBySession(operations, (o) => amounts[o.token]!);
    expect(tallies.get('acct-1')).toEqual({ acknowledged: 2, acknowledgedSum: 300, failed: [7, 40] });
    expect(tallies.get('acct-2')).toEqual({ acknowledged: 1, acknowledgedSum: 5, failed: [] });
    expect(checkTally(tallies.get('acct-1')!, { applied: 3, sum: 340 })).toMatchObject({
      failedApplied: 1,
      lost: 0,
      duplicated: 0,
    });
  });

  it('finds subsets of a given size and sum', () => {
    expect(someAddUpTo([5, 7, 9], 2, 16)).toBe(true);
    expect(someAddUpTo([5, 7, 9], 2, 12)).toBe(true);
    expect(someAddUpTo([5, 7, 9], 1, 12)).toBe(false);
    expect(someAddUpTo([], 0, 0)).toBe(true);
  });
});
