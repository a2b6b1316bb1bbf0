import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  initialTransition,
  transition,
  type AnyEventObject,
  type AnyMachineSnapshot,
  type AnyStateMachine,
} from 'xstate';
import { STATEMENT_DUE, ledgerMachine } from '../../examples/ledger.js';
import { whiteboardMachine } from '../../examples/whiteboard.js';
import { pureTransition } from '../../machines/pureTransition.js';

/** What a step produced, in a form two runs can be compared by. */
function outcome(snapshot: AnyMachineSnapshot, actions: readonly { type: string; params?: unknown }[]): unknown {
  return {
    value: snapshot.value,
    status: snapshot.status,
    context: snapshot.context,
    actions: actions.map((a) => [a.type, a.params]),
  };
}

/** Steps both ways through the same events; every intermediate outcome must agree, including "nothing changed". */
function agreeOn(machine: AnyStateMachine, events: AnyEventObject[]): void {
  let [a] = initialTransition(machine);
  let b = a;
  for (const event of events) {
    const [nextA, actionsA] = transition(machine, a, event);
    const [nextB, actionsB] = pureTransition(machine, b, event);
    expect(outcome(nextB, actionsB)).toEqual(outcome(nextA, actionsA));
    expect(nextB === b).toBe(nextA === a);
    a = nextA;
    b = nextB;
  }
}

const meta = fc.record({
  time: fc.integer({ min: 0, max: 2 ** 40 }),
  cmdId: fc.string({ minLength: 1 }),
  client: fc.string(),
});
const amount = fc.oneof(fc.integer({ min: -5, max: 10_000 }), fc.constant(Number.NaN), fc.double());

const ledgerEvent: fc.Arbitrary<AnyEventObject> = fc.oneof(
  fc.record({ type: fc.constant('OPEN'), owner: fc.string(), meta }),
  fc.record({ type: fc.constant('DEPOSIT'), amount, meta }),
  fc.record({ type: fc.constant('WITHDRAW'), amount, meta }),
  fc.record({ type: fc.constant('CLOSE'), meta }),
  fc.record({ type: fc.constant(STATEMENT_DUE), meta }),
  fc.record({ type: fc.constant('NOT_AN_EVENT'), meta }),
);

const shapeId = fc.constantFrom('a', 'b', 'toString', '__proto__');
const whiteboardEvent: fc.Arbitrary<AnyEventObject> = fc.oneof(
  fc.record({ type: fc.constant('SET_TITLE'), title: fc.string(), meta }),
  fc.record({
    type: fc.constant('ADD_SHAPE'),
    id: shapeId,
    kind: fc.constantFrom('rect', 'circle', 'text', 'hexagon'),
    x: fc.double(),
    y: fc.integer(),
    meta,
  }),
  fc.record({ type: fc.constant('MOVE_SHAPE'), id: shapeId, x: fc.integer(), y: fc.double(), meta }),
  fc.record({ type: fc.constant('DELETE_SHAPE'), id: shapeId, meta }),
);

describe('pureTransition', () => {
  it('agrees with xstate transition() on every step of random ledger histories, timers included', () => {
    fc.assert(fc.property(fc.array(ledgerEvent, { maxLength: 40 }), (events) => agreeOn(ledgerMachine, events)));
  });

  it('agrees with xstate transition() on random whiteboard histories', () => {
    fc.assert(
      fc.property(fc.array(whiteboardEvent, { maxLength: 40 }), (events) => agreeOn(whiteboardMachine, events)),
    );
  });

  it('keeps the actions of interleaved machines apart', () => {
    const [l0] = initialTransition(ledgerMachine);
    const [w0] = initialTransition(whiteboardMachine);
    const stamp = { time: 1, cmdId: 'c', client: 'x' };
    const [l1, la] = pureTransition(ledgerMachine, l0, { type: 'OPEN', owner: 'Ann', meta: stamp });
    const [, wa] = pureTransition(whiteboardMachine, w0, { type: 'SET_TITLE', title: 't', meta: stamp });
    // OPEN arms the statement timer; the whiteboard's step must not see it, nor the ledger's lose it.
    expect(la.map((a) => a.type)).toContain('xstate.raise');
    expect(wa.map((a) => a.type)).not.toContain('xstate.raise');
    expect(l1.value).toBe('open');
  });
});
