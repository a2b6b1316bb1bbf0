/**
 * Example application: a bank account ledger.
 *
 * One session per account. The session's context is the account's document,
 * published to clients as patches after every commit.
 *
 * - Amounts are integer cents (`1250` is 12.50), so balances add up exactly.
 *   A DEPOSIT or WITHDRAW whose amount is not a positive safe integer is
 *   refused, as is a deposit that would push the balance past
 *   `Number.MAX_SAFE_INTEGER`.
 * - A WITHDRAW that would take the balance below zero is refused: the guarded
 *   transition has no fallback, so the event is not accepted at all
 *   (`snapshot.can(event)` is false) and the runtime replies with an error
 *   instead of journaling it.
 * - CLOSE is accepted only at a zero balance: withdraw everything first.
 *   `closed` is a final state, so a closed account accepts nothing more.
 * - While `open`, the named delay `statement` (30 days by default; override it
 *   with `ledgerMachine.provide({ delays: { statement: ms } })`) appends a
 *   statement and re-enters `open`, which arms the next one. The runtime arms
 *   the timer on its clock and, when it fires, journals the delayed event
 *   `xstate.after.statement.ledger.open` stamped with `meta` like a command.
 *
 * Deterministic: times come only from `event.meta.time`; no Date.now, no
 * Math.random. The context holds only strings, numbers, null and arrays, so it
 * survives a JSON round trip.
 */
import { assign, setup } from 'xstate';
import { defineApplication, type EventMeta } from '../index.js';

const DAY = 24 * 60 * 60 * 1000;

/** The default statement period: 30 days in milliseconds. */
export const STATEMENT_PERIOD = 30 * DAY;

/** The type of the delayed event that produces a statement (machine id `ledger`, state `open`, delay `statement`). */
export const STATEMENT_DUE = 'xstate.after.statement.ledger.open';

export interface Statement {
  /** `meta.time` of the delayed event that produced it; 0 if that event was not stamped (only outside the runtime). */
  at: number;
  /** The balance at that time, in cents. */
  balance: number;
}

export interface LedgerContext {
  owner: string | null;
  /** Integer cents; never negative. */
  balance: number;
  statements: Statement[];
  /** `meta.time` of the last OPEN, DEPOSIT, WITHDRAW or CLOSE; statements do not count. */
  lastChange: number | null;
}

/** What a client sends. */
export type LedgerCommand =
  | { type: 'OPEN'; owner: string }
  | { type: 'DEPOSIT'; amount: number }
  | { type: 'WITHDRAW'; amount: number }
  | { type: 'CLOSE' };

/** What the machine receives: a client's command stamped by the runtime, or the statement timer firing. */
export type LedgerEvent =
  | (LedgerCommand & { meta: EventMeta })
  // The runtime stamps delayed events too, but xstate raises them without `meta` when run outside it.
  | { type: typeof STATEMENT_DUE; meta?: EventMeta };

/** A positive whole number of cents (false for anything else a client may send, such as `'5'` or `NaN`). */
function isCents(amount: number): boolean {
  return Number.isSafeInteger(amount) && amount > 0;
}

function timeOf(event: LedgerEvent): number | null {
  return event.meta?.time ?? null;
}

export const ledgerMachine = setup({
  types: {
    context: {} as LedgerContext,
    events: {} as LedgerEvent,
  },
  guards: {
    validOwner: (_, params: { owner: string }) => typeof params.owner === 'string' && params.owner.trim() !== '',
    /** A positive amount that keeps the balance a safe integer. */
    canDeposit: ({ context }, params: { amount: number }) =>
      isCents(params.amount) && Number.isSafeInteger(context.balance + params.amount),
    /** A positive amount the balance covers: the balance never goes below zero. */
    canWithdraw: ({ context }, params: { amount: number }) =>
      isCents(params.amount) && params.amount <= context.balance,
    balanceIsZero: ({ context }) => context.balance === 0,
  },
  actions: {
    open: assign(({ event }, params: { owner: string }) => ({ owner: params.owner, lastChange: timeOf(event) })),
    deposit: assign(({ context, event }, params: { amount: number }) => ({
      balance: context.balance + params.amount,
      lastChange: timeOf(event),
    })),
    withdraw: assign(({ context, event }, params: { amount: number }) => ({
      balance: context.balance - params.amount,
      lastChange: timeOf(event),
    })),
    close: assign(({ event }) => ({ lastChange: timeOf(event) })),
    appendStatement: assign(({ context, event }) => ({
      statements: [...context.statements, { at: timeOf(event) ?? 0, balance: context.balance }],
    })),
  },
  delays: {
    statement: STATEMENT_PERIOD,
  },
}).createMachine({
  id: 'ledger',
  initial: 'new',
  context: { owner: null, balance: 0, statements: [], lastChange: null },
  states: {
    new: {
      on: {
        OPEN: {
          guard: { type: 'validOwner', params: ({ event }) => ({ owner: event.owner }) },
          target: 'open',
          actions: { type: 'open', params: ({ event }) => ({ owner: event.owner }) },
        },
      },
    },
    open: {
      after: {
        // Re-entering `open` runs its exit (cancelling the timer that just fired: a no-op)
        // and its entry (arming the next statement).
        statement: { target: 'open', reenter: true, actions: 'appendStatement' },
      },
      on: {
        DEPOSIT: {
          guard: { type: 'canDeposit', params: ({ event }) => ({ amount: event.amount }) },
          actions: { type: 'deposit', params: ({ event }) => ({ amount: event.amount }) },
        },
        WITHDRAW: {
          guard: { type: 'canWithdraw', params: ({ event }) => ({ amount: event.amount }) },
          actions: { type: 'withdraw', params: ({ event }) => ({ amount: event.amount }) },
        },
        CLOSE: {
          guard: 'balanceIsZero',
          target: 'closed',
          actions: 'close',
        },
      },
    },
    closed: {
      type: 'final',
    },
  },
});

export const ledger = defineApplication({
  name: 'ledger',
  machine: ledgerMachine,
  commit: 'journal',
  unusedSessionLifetime: 15_000,
  snapshotEvery: 100,
  metadata: { title: 'Accounts' },
  // For client.scatter: pure functions of an account's document.
  queries: {
    balance: (account) => account.balance,
    overLimit: (account, args) => account.balance > (args as { limit: number }).limit,
  },
});
