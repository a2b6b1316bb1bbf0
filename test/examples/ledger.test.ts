import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type SnapshotFrom, type SnapshotStatus, type StateValue } from 'xstate';
import {
  ledger,
  ledgerMachine,
  STATEMENT_DUE,
  STATEMENT_PERIOD,
  type LedgerCommand,
  type LedgerContext,
  type LedgerEvent,
} from '../../examples/ledger.js';

type LedgerSnapshot = SnapshotFrom<typeof ledgerMachine>;

let nextCmd = 0;

/** Stamps a command as the runtime does: time, a fresh command id and the client's label. */
function stamp(command: LedgerCommand, time: number, client = 'alice'): LedgerEvent {
  nextCmd += 1;
  return { ...command, meta: { time, cmdId: `cmd-${nextCmd}`, client } };
}

/** The statement timer firing, stamped by the runtime like a command. */
function statementDue(time: number): LedgerEvent {
  nextCmd += 1;
  return { type: STATEMENT_DUE, meta: { time, cmdId: `cmd-${nextCmd}`, client: 'timer' } };
}

/** What getPersistedSnapshot gives for this machine (xstate types it only as Snapshot<unknown>). */
interface PersistedLedger {
  value: StateValue;
  context: LedgerContext;
  status: SnapshotStatus;
}

function persist(snapshot: LedgerSnapshot): PersistedLedger {
  return ledgerMachine.getPersistedSnapshot(snapshot) as unknown as PersistedLedger;
}

/** Persists a snapshot the way the runtime stores it (JSON) and resolves it again. */
function rehydrate(machine: typeof ledgerMachine, snapshot: LedgerSnapshot): LedgerSnapshot {
  const stored = JSON.parse(JSON.stringify(persist(snapshot))) as PersistedLedger;
  return machine.resolveState(stored);
}

function openAccount(balance = 0): LedgerSnapshot {
  let [snapshot] = initialTransition(ledgerMachine);
  [snapshot] = transition(ledgerMachine, snapshot, stamp({ type: 'OPEN', owner: 'Ann' }, 1_000));
  if (balance > 0) [snapshot] = transition(ledgerMachine, snapshot, stamp({ type: 'DEPOSIT', amount: balance }, 2_000));
  return snapshot;
}

function closedAccount(): LedgerSnapshot {
  const [snapshot] = transition(ledgerMachine, openAccount(), stamp({ type: 'CLOSE' }, 3_000));
  return snapshot;
}

/** An event the machine does not accept: can() is false and transition changes nothing. */
function expectRefused(snapshot: LedgerSnapshot, event: LedgerEvent): void {
  expect(snapshot.can(event)).toBe(false);
  const [next, actions] = transition(ledgerMachine, snapshot, event);
  expect(next).toBe(snapshot);
  expect(actions).toEqual([]);
}

describe('ledger application', () => {
  it('is defined with its options', () => {
    expect(ledger).toMatchObject({
      name: 'ledger',
      machine: ledgerMachine,
      commit: 'journal',
      unusedSessionLifetime: 15_000,
      snapshotEvery: 100,
      metadata: { title: 'Accounts' },
    });
    expect([...ledger.queries.keys()]).toEqual(['balance', 'overLimit']);
    const account = persist(openAccount(500)).context;
    expect(ledger.queries.get('balance')!(account, undefined)).toBe(500);
    expect(ledger.queries.get('overLimit')!(account, { limit: 100 })).toBe(true);
    expect(ledger.queries.get('overLimit')!(account, { limit: 1_000 })).toBe(false);
  });

  it('starts as a new account with an empty document and no effects', () => {
    const [snapshot, actions] = initialTransition(ledgerMachine);
    expect(snapshot.value).toBe('new');
    expect(snapshot.context).toEqual({ owner: null, balance: 0, statements: [], lastChange: null });
    expect(actions).toEqual([]);
  });
});

describe.each(['live', 'restored'] as const)('ledger happy path (%s)', (mode) => {
  // "restored" persists and rehydrates after every event: it catches context that does not serialise.
  const step = (snapshot: LedgerSnapshot, event: LedgerEvent): LedgerSnapshot => {
    expect(snapshot.can(event)).toBe(true);
    const [next] = transition(ledgerMachine, snapshot, event);
    return mode === 'restored' ? rehydrate(ledgerMachine, next) : next;
  };

  it('opens, deposits, withdraws, receives statements and closes', () => {
    let [s] = initialTransition(ledgerMachine);
    s = step(s, stamp({ type: 'OPEN', owner: 'Ann' }, 1_000));
    expect(s.value).toBe('open');
    expect(s.context).toEqual({ owner: 'Ann', balance: 0, statements: [], lastChange: 1_000 });

    s = step(s, stamp({ type: 'DEPOSIT', amount: 10_000 }, 2_000));
    s = step(s, stamp({ type: 'WITHDRAW', amount: 2_550 }, 3_000, 'bob'));
    expect(s.context).toMatchObject({ balance: 7_450, lastChange: 3_000 });

    s = step(s, statementDue(1_000 + STATEMENT_PERIOD));
    expect(s.value).toBe('open');
    expect(s.context.statements).toEqual([{ at: 1_000 + STATEMENT_PERIOD, balance: 7_450 }]);
    // A statement is not a change by a client.
    expect(s.context.lastChange).toBe(3_000);

    s = step(s, stamp({ type: 'WITHDRAW', amount: 7_450 }, 4_000 + STATEMENT_PERIOD));
    s = step(s, statementDue(1_000 + 2 * STATEMENT_PERIOD));
    expect(s.context.statements).toEqual([
      { at: 1_000 + STATEMENT_PERIOD, balance: 7_450 },
      { at: 1_000 + 2 * STATEMENT_PERIOD, balance: 0 },
    ]);

    s = step(s, stamp({ type: 'CLOSE' }, 5_000 + 2 * STATEMENT_PERIOD));
    expect(s.value).toBe('closed');
    expect(s.status).toBe('done');
    expect(s.context).toEqual({
      owner: 'Ann',
      balance: 0,
      statements: [
        { at: 1_000 + STATEMENT_PERIOD, balance: 7_450 },
        { at: 1_000 + 2 * STATEMENT_PERIOD, balance: 0 },
      ],
      lastChange: 5_000 + 2 * STATEMENT_PERIOD,
    });
  });

  it('allows withdrawing the whole balance', () => {
    const s = step(openAccount(500), stamp({ type: 'WITHDRAW', amount: 500 }, 9_000));
    expect(s.context.balance).toBe(0);
  });
});

describe('ledger refusals', () => {
  it('a new account accepts only OPEN with a non-empty owner', () => {
    const [fresh] = initialTransition(ledgerMachine);
    expectRefused(fresh, stamp({ type: 'DEPOSIT', amount: 100 }, 1));
    expectRefused(fresh, stamp({ type: 'WITHDRAW', amount: 100 }, 1));
    expectRefused(fresh, stamp({ type: 'CLOSE' }, 1));
    expectRefused(fresh, statementDue(1));
    expectRefused(fresh, stamp({ type: 'OPEN', owner: '' }, 1));
    expectRefused(fresh, stamp({ type: 'OPEN', owner: '   ' }, 1));
    expectRefused(fresh, stamp({ type: 'OPEN', owner: 42 as unknown as string }, 1));
  });

  it('an open account cannot be opened again', () => {
    expectRefused(openAccount(), stamp({ type: 'OPEN', owner: 'Eve' }, 5_000));
  });

  it.each([
    ['zero', 0],
    ['negative', -100],
    ['fractional cents', 12.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a string', '100' as unknown as number],
  ])('DEPOSIT and WITHDRAW refuse an amount that is %s', (_name, amount) => {
    const s = openAccount(1_000);
    expectRefused(s, stamp({ type: 'DEPOSIT', amount }, 5_000));
    expectRefused(s, stamp({ type: 'WITHDRAW', amount }, 5_000));
  });

  it('DEPOSIT refuses to take the balance past MAX_SAFE_INTEGER', () => {
    const s = openAccount(Number.MAX_SAFE_INTEGER - 1);
    expectRefused(s, stamp({ type: 'DEPOSIT', amount: 2 }, 5_000));
    expect(s.can(stamp({ type: 'DEPOSIT', amount: 1 }, 5_000))).toBe(true);
  });

  it('WITHDRAW refuses to take the balance below zero', () => {
    expectRefused(openAccount(), stamp({ type: 'WITHDRAW', amount: 1 }, 5_000));
    expectRefused(openAccount(1_000), stamp({ type: 'WITHDRAW', amount: 1_001 }, 5_000));
  });

  it('CLOSE is refused while the balance is not zero', () => {
    expectRefused(openAccount(1), stamp({ type: 'CLOSE' }, 5_000));
  });

  it('a closed account accepts nothing', () => {
    const s = closedAccount();
    expectRefused(s, stamp({ type: 'OPEN', owner: 'Ann' }, 5_000));
    expectRefused(s, stamp({ type: 'DEPOSIT', amount: 100 }, 5_000));
    expectRefused(s, stamp({ type: 'WITHDRAW', amount: 100 }, 5_000));
    expectRefused(s, stamp({ type: 'CLOSE' }, 5_000));
    expectRefused(s, statementDue(5_000));
  });
});

describe('ledger statement timer', () => {
  const arm = (delay: number) =>
    expect.objectContaining({
      type: 'xstate.raise',
      params: expect.objectContaining({ delay, event: { type: STATEMENT_DUE } }),
    });
  const cancel = expect.objectContaining({ type: 'xstate.cancel', params: { sendId: STATEMENT_DUE } });

  it('names the delayed event after the delay, the machine and the state', () => {
    expect(STATEMENT_DUE).toBe('xstate.after.statement.ledger.open');
    expect(STATEMENT_PERIOD).toBe(30 * 24 * 60 * 60 * 1000);
  });

  it('is armed on entering open', () => {
    const [fresh] = initialTransition(ledgerMachine);
    const [, actions] = transition(ledgerMachine, fresh, stamp({ type: 'OPEN', owner: 'Ann' }, 1_000));
    expect(actions).toEqual([arm(STATEMENT_PERIOD)]);
  });

  it('is not re-armed by deposits and withdrawals', () => {
    const [s, depositActions] = transition(
      ledgerMachine,
      openAccount(),
      stamp({ type: 'DEPOSIT', amount: 100 }, 2_000),
    );
    expect(depositActions).toEqual([]);
    const [, withdrawActions] = transition(ledgerMachine, s, stamp({ type: 'WITHDRAW', amount: 100 }, 3_000));
    expect(withdrawActions).toEqual([]);
  });

  it('appends a statement stamped with the event time and re-arms', () => {
    const s = openAccount(4_200);
    const due = statementDue(1_000 + STATEMENT_PERIOD);
    expect(s.can(due)).toBe(true);
    const [next, actions] = transition(ledgerMachine, s, due);
    expect(next.value).toBe('open');
    expect(next.context.statements).toEqual([{ at: 1_000 + STATEMENT_PERIOD, balance: 4_200 }]);
    // Re-entering `open`: its exit cancels the timer that fired, its entry arms the next month.
    expect(actions).toEqual([cancel, arm(STATEMENT_PERIOD)]);
  });

  it('records time 0 when the delayed event was not stamped (outside the runtime)', () => {
    const [next] = transition(ledgerMachine, openAccount(300), { type: STATEMENT_DUE });
    expect(next.context.statements).toEqual([{ at: 0, balance: 300 }]);
  });

  it('is cancelled when the account closes', () => {
    const [, actions] = transition(ledgerMachine, openAccount(), stamp({ type: 'CLOSE' }, 3_000));
    expect(actions).toEqual([cancel]);
  });

  it('takes its period from the named delay, which provide() overrides', () => {
    const monthly = ledgerMachine.provide({ delays: { statement: 1_000 } });
    const [fresh] = initialTransition(monthly);
    const [open, openActions] = transition(monthly, fresh, stamp({ type: 'OPEN', owner: 'Ann' }, 0));
    expect(openActions).toEqual([arm(1_000)]);
    const [next, dueActions] = transition(monthly, open, statementDue(1_000));
    expect(next.context.statements).toEqual([{ at: 1_000, balance: 0 }]);
    expect(dueActions).toEqual([cancel, arm(1_000)]);
  });
});

describe('ledger persistence', () => {
  function history(): LedgerSnapshot[] {
    const snapshots: LedgerSnapshot[] = [];
    let [s] = initialTransition(ledgerMachine);
    snapshots.push(s);
    const events = [
      stamp({ type: 'OPEN', owner: 'Ann' }, 1_000),
      stamp({ type: 'DEPOSIT', amount: 1_999 }, 2_000),
      statementDue(1_000 + STATEMENT_PERIOD),
      stamp({ type: 'WITHDRAW', amount: 1_999 }, 3_000 + STATEMENT_PERIOD),
      stamp({ type: 'CLOSE' }, 4_000 + STATEMENT_PERIOD),
    ];
    for (const event of events) {
      [s] = transition(ledgerMachine, s, event);
      snapshots.push(s);
    }
    return snapshots;
  }

  it('keeps a context that survives a JSON round trip', () => {
    for (const s of history()) {
      expect(JSON.parse(JSON.stringify(s.context))).toStrictEqual(s.context);
    }
  });

  it('resolves a persisted snapshot to the same state and document', () => {
    for (const s of history()) {
      const persisted = persist(s);
      const resolved = ledgerMachine.resolveState(persisted);
      expect(resolved.value).toEqual(s.value);
      expect(resolved.status).toBe(s.status);
      expect(resolved.context).toStrictEqual(s.context);
    }
  });

  it('keeps accepting and refusing the same events after rehydration', () => {
    const s = rehydrate(ledgerMachine, openAccount(500));
    expect(s.can(stamp({ type: 'WITHDRAW', amount: 501 }, 5_000))).toBe(false);
    const [next] = transition(ledgerMachine, s, stamp({ type: 'WITHDRAW', amount: 500 }, 5_000));
    expect(next.context.balance).toBe(0);
    const [closed] = transition(ledgerMachine, rehydrate(ledgerMachine, next), stamp({ type: 'CLOSE' }, 6_000));
    expect(rehydrate(ledgerMachine, closed).status).toBe('done');
  });
});
