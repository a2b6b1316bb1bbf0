import { describe, expect, it } from 'vitest';
import {
  admittedWhileHandingOff,
  defaultHandoffTransactionWait,
  handoffStep,
} from '../../machines/handoffTransactions.js';

describe('handoffStep', () => {
  const facts = { open: ['t1', 't2'], since: 1_000, bound: 3_000 };

  it('releases at once when nothing is open', () => {
    expect(handoffStep({ ...facts, open: [], now: 1_000 })).toEqual({ do: 'release' });
    // Even past the bound: there is nothing to roll back.
    expect(handoffStep({ ...facts, open: [], now: 9_000 })).toEqual({ do: 'release' });
  });

  it('waits, until the bound counted from when the wait began, while some are open', () => {
    expect(handoffStep({ ...facts, now: 1_000 })).toEqual({ do: 'wait', until: 4_000 });
    expect(handoffStep({ ...facts, now: 3_999 })).toEqual({ do: 'wait', until: 4_000 });
  });

  it('rolls back what is still open at the bound, and only that', () => {
    expect(handoffStep({ ...facts, now: 4_000 })).toEqual({ do: 'roll-back', txIds: ['t1', 't2'] });
    expect(handoffStep({ ...facts, open: ['t2'], now: 5_000 })).toEqual({ do: 'roll-back', txIds: ['t2'] });
  });

  it('a bound of 0 rolls back at once (no waiting)', () => {
    expect(handoffStep({ ...facts, bound: 0, now: 1_000 })).toEqual({ do: 'roll-back', txIds: ['t1', 't2'] });
  });
});

describe('admittedWhileHandingOff', () => {
  it('refuses only the begin of a new transaction', () => {
    expect(admittedWhileHandingOff('begin', true)).toBe(false);
    expect(admittedWhileHandingOff('begin', false)).toBe(true);
    for (const op of ['send', 'read', 'commit', 'abort'] as const) {
      expect(admittedWhileHandingOff(op, true)).toBe(true);
      expect(admittedWhileHandingOff(op, false)).toBe(true);
    }
  });
});

describe('defaultHandoffTransactionWait', () => {
  it('is one session timeout', () => {
    expect(defaultHandoffTransactionWait(3_000)).toBe(3_000);
    expect(defaultHandoffTransactionWait(500)).toBe(500);
  });
});
