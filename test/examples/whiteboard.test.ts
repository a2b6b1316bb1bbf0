import { describe, expect, it } from 'vitest';
import { initialTransition, transition, type SnapshotFrom, type SnapshotStatus, type StateValue } from 'xstate';
import {
  whiteboard,
  whiteboardMachine,
  type WhiteboardCommand,
  type WhiteboardContext,
  type WhiteboardEvent,
} from '../../examples/whiteboard.js';

type WhiteboardSnapshot = SnapshotFrom<typeof whiteboardMachine>;

let nextCmd = 0;

/** Stamps a command as the runtime does: time, a fresh command id and the client's label. */
function stamp(command: WhiteboardCommand, client = 'alice', time = 1_000): WhiteboardEvent {
  nextCmd += 1;
  return { ...command, meta: { time, cmdId: `cmd-${nextCmd}`, client } };
}

/** What getPersistedSnapshot gives for this machine (xstate types it only as Snapshot<unknown>). */
interface PersistedWhiteboard {
  value: StateValue;
  context: WhiteboardContext;
  status: SnapshotStatus;
}

function persist(snapshot: WhiteboardSnapshot): PersistedWhiteboard {
  return whiteboardMachine.getPersistedSnapshot(snapshot) as unknown as PersistedWhiteboard;
}

/** Persists a snapshot the way the runtime stores it (JSON) and resolves it again. */
function rehydrate(snapshot: WhiteboardSnapshot): WhiteboardSnapshot {
  const stored = JSON.parse(JSON.stringify(persist(snapshot))) as PersistedWhiteboard;
  return whiteboardMachine.resolveState(stored);
}

function apply(snapshot: WhiteboardSnapshot, ...events: WhiteboardEvent[]): WhiteboardSnapshot {
  let s = snapshot;
  for (const event of events) {
    expect(s.can(event)).toBe(true);
    [s] = transition(whiteboardMachine, s, event);
  }
  return s;
}

/** A board with a rectangle `r1` by alice and a text `t1` by bob. */
function board(): WhiteboardSnapshot {
  const [fresh] = initialTransition(whiteboardMachine);
  return apply(
    fresh,
    stamp({ type: 'ADD_SHAPE', id: 'r1', kind: 'rect', x: 10, y: 20 }, 'alice'),
    stamp({ type: 'ADD_SHAPE', id: 't1', kind: 'text', x: 0, y: 0, text: 'hello' }, 'bob'),
  );
}

function expectRefused(snapshot: WhiteboardSnapshot, event: WhiteboardEvent): void {
  expect(snapshot.can(event)).toBe(false);
  const [next, actions] = transition(whiteboardMachine, snapshot, event);
  expect(next).toBe(snapshot);
  expect(actions).toEqual([]);
}

describe('whiteboard application', () => {
  it('is defined with its options and defaults', () => {
    expect(whiteboard).toMatchObject({
      name: 'whiteboard',
      machine: whiteboardMachine,
      commit: 'journal',
      unusedSessionLifetime: 15_000,
      snapshotEvery: 100,
    });
  });

  it('starts editing an empty, untitled board with no effects', () => {
    const [snapshot, actions] = initialTransition(whiteboardMachine);
    expect(snapshot.value).toBe('editing');
    expect(snapshot.context).toEqual({ title: 'Untitled', shapes: {} });
    expect(actions).toEqual([]);
  });
});

describe.each(['live', 'restored'] as const)('whiteboard editing (%s)', (mode) => {
  // "restored" persists and rehydrates after every event: it catches context that does not serialise.
  const step = (snapshot: WhiteboardSnapshot, event: WhiteboardEvent): WhiteboardSnapshot => {
    expect(snapshot.can(event)).toBe(true);
    const [next, actions] = transition(whiteboardMachine, snapshot, event);
    expect(actions).toEqual([]);
    return mode === 'restored' ? rehydrate(next) : next;
  };

  it('lets several clients edit one document', () => {
    let [s] = initialTransition(whiteboardMachine);
    s = step(s, stamp({ type: 'SET_TITLE', title: 'Sprint plan' }, 'alice'));
    s = step(s, stamp({ type: 'ADD_SHAPE', id: 'r1', kind: 'rect', x: 10, y: 20 }, 'alice'));
    s = step(s, stamp({ type: 'ADD_SHAPE', id: 'c1', kind: 'circle', x: -5, y: 7.5 }, 'bob'));
    s = step(s, stamp({ type: 'ADD_SHAPE', id: 't1', kind: 'text', x: 0, y: 0, text: 'ship it' }, 'carol'));
    expect(s.context).toStrictEqual({
      title: 'Sprint plan',
      shapes: {
        r1: { kind: 'rect', x: 10, y: 20, by: 'alice' },
        c1: { kind: 'circle', x: -5, y: 7.5, by: 'bob' },
        t1: { kind: 'text', x: 0, y: 0, text: 'ship it', by: 'carol' },
      },
    });

    // Moving keeps the author; deleting removes the key.
    s = step(s, stamp({ type: 'MOVE_SHAPE', id: 'r1', x: 100, y: 200 }, 'bob'));
    s = step(s, stamp({ type: 'DELETE_SHAPE', id: 'c1' }, 'carol'));
    expect(s.value).toBe('editing');
    expect(s.context).toStrictEqual({
      title: 'Sprint plan',
      shapes: {
        r1: { kind: 'rect', x: 100, y: 200, by: 'alice' },
        t1: { kind: 'text', x: 0, y: 0, text: 'ship it', by: 'carol' },
      },
    });

    // A deleted id may be used again.
    s = step(s, stamp({ type: 'ADD_SHAPE', id: 'c1', kind: 'circle', x: 1, y: 1 }, 'dave'));
    expect(s.context.shapes['c1']).toStrictEqual({ kind: 'circle', x: 1, y: 1, by: 'dave' });
  });

  it('treats ids that name Object.prototype members as ordinary ids', () => {
    let [s] = initialTransition(whiteboardMachine);
    for (const id of ['__proto__', 'toString', 'constructor']) {
      expect(s.can(stamp({ type: 'MOVE_SHAPE', id, x: 1, y: 1 }))).toBe(false);
      s = step(s, stamp({ type: 'ADD_SHAPE', id, kind: 'rect', x: 0, y: 0 }));
      s = step(s, stamp({ type: 'MOVE_SHAPE', id, x: 3, y: 4 }));
    }
    expect(Object.keys(s.context.shapes).sort()).toEqual(['__proto__', 'constructor', 'toString']);
    expect(Object.getPrototypeOf(s.context.shapes)).toBe(Object.prototype);
    expect(Object.hasOwn(s.context.shapes, '__proto__')).toBe(true);
    for (const id of ['__proto__', 'toString', 'constructor']) {
      s = step(s, stamp({ type: 'DELETE_SHAPE', id }));
    }
    expect(s.context.shapes).toStrictEqual({});
  });
});

describe('whiteboard refusals', () => {
  it('ADD_SHAPE is refused when the id exists', () => {
    expectRefused(board(), stamp({ type: 'ADD_SHAPE', id: 'r1', kind: 'circle', x: 0, y: 0 }, 'eve'));
  });

  it('MOVE_SHAPE and DELETE_SHAPE are refused when the id is missing', () => {
    const s = board();
    expectRefused(s, stamp({ type: 'MOVE_SHAPE', id: 'nope', x: 1, y: 1 }));
    expectRefused(s, stamp({ type: 'DELETE_SHAPE', id: 'nope' }));
    const [afterDelete] = transition(whiteboardMachine, s, stamp({ type: 'DELETE_SHAPE', id: 'r1' }));
    expectRefused(afterDelete, stamp({ type: 'DELETE_SHAPE', id: 'r1' }));
    expectRefused(afterDelete, stamp({ type: 'MOVE_SHAPE', id: 'r1', x: 0, y: 0 }));
  });

  it.each([
    ['an empty id', { id: '' }],
    ['a non-string id', { id: 7 as unknown as string }],
    ['an unknown kind', { kind: 'star' as 'rect' }],
    ['a NaN position', { x: Number.NaN }],
    ['an infinite position', { y: Number.NEGATIVE_INFINITY }],
    ['a string position', { x: '1' as unknown as number }],
    ['a non-string text', { text: 42 as unknown as string }],
  ])('ADD_SHAPE is refused with %s', (_name, change) => {
    const base = { type: 'ADD_SHAPE', id: 'new', kind: 'rect', x: 0, y: 0 } as const;
    expectRefused(board(), stamp({ ...base, ...change }));
  });

  it('MOVE_SHAPE is refused to a position that is not finite', () => {
    expectRefused(board(), stamp({ type: 'MOVE_SHAPE', id: 'r1', x: Number.POSITIVE_INFINITY, y: 0 }));
    expectRefused(board(), stamp({ type: 'MOVE_SHAPE', id: 'r1', x: 0, y: Number.NaN }));
  });

  it('SET_TITLE is refused when the title is not a string', () => {
    expectRefused(board(), stamp({ type: 'SET_TITLE', title: null as unknown as string }));
  });
});

describe('whiteboard persistence', () => {
  it('never mutates the previous document (the runtime diffs old against new)', () => {
    const before = board();
    const frozen = JSON.stringify(before.context);
    const [moved] = transition(whiteboardMachine, before, stamp({ type: 'MOVE_SHAPE', id: 'r1', x: 9, y: 9 }));
    const [deleted] = transition(whiteboardMachine, moved, stamp({ type: 'DELETE_SHAPE', id: 't1' }));
    transition(whiteboardMachine, deleted, stamp({ type: 'SET_TITLE', title: 'changed' }));
    expect(JSON.stringify(before.context)).toBe(frozen);
    expect(moved.context.shapes['t1']).toBeDefined();
  });

  it('keeps a context that survives a JSON round trip', () => {
    const s = apply(
      board(),
      stamp({ type: 'SET_TITLE', title: 'Plan ✓ "quoted"' }),
      stamp({ type: 'MOVE_SHAPE', id: 't1', x: -0.5, y: 1e6 }),
    );
    expect(JSON.parse(JSON.stringify(s.context))).toStrictEqual(s.context);
  });

  it('resolves a persisted snapshot to the same state and document', () => {
    const s = board();
    const persisted = persist(s);
    const resolved = whiteboardMachine.resolveState(persisted);
    expect(resolved.value).toEqual(s.value);
    expect(resolved.context).toStrictEqual(s.context);
    expect(resolved.can(stamp({ type: 'ADD_SHAPE', id: 'r1', kind: 'rect', x: 0, y: 0 }))).toBe(false);
  });
});
