/**
 * Example application: a whiteboard shared by several clients.
 *
 * One session per board; its context is the board's document. Every client
 * that subscribes keeps a mirror of it, updated by the patches the runtime
 * publishes after each commit (a client does not receive its own change back).
 *
 * - ADD_SHAPE is refused when the id is already taken, MOVE_SHAPE and
 *   DELETE_SHAPE when it is missing: guarded transitions without a fallback,
 *   so `snapshot.can(event)` is false and nothing is journaled.
 * - Shapes with an empty id, an unknown kind, a position that is not a finite
 *   number or a `text` that is not a string are refused too: NaN and Infinity
 *   would not survive the document's JSON round trip.
 * - `by` is the label of the client that added the shape (`event.meta.client`);
 *   moving a shape keeps it.
 *
 * Deterministic: the author comes only from `event.meta`. Every action builds
 * new objects and never mutates the previous context, which the runtime diffs
 * against the next one.
 */
import { assign, setup } from 'xstate';
import { defineApplication, type EventMeta } from '../index.js';

export type ShapeKind = 'rect' | 'circle' | 'text';

const SHAPE_KINDS: readonly string[] = ['rect', 'circle', 'text'] satisfies ShapeKind[];

export interface Shape {
  kind: ShapeKind;
  x: number;
  y: number;
  text?: string;
  /** Label of the client that added it. */
  by: string;
}

export interface WhiteboardContext {
  title: string;
  shapes: Record<string, Shape>;
}

/** What a client sends. */
export type WhiteboardCommand =
  | { type: 'SET_TITLE'; title: string }
  | { type: 'ADD_SHAPE'; id: string; kind: ShapeKind; x: number; y: number; text?: string }
  | { type: 'MOVE_SHAPE'; id: string; x: number; y: number }
  | { type: 'DELETE_SHAPE'; id: string };

/** What the machine receives: a client's command stamped by the runtime. */
export type WhiteboardEvent = WhiteboardCommand & { meta: EventMeta };

type AddShape = Extract<WhiteboardEvent, { type: 'ADD_SHAPE' }>;

// Own properties only: 'toString' or '__proto__' are ids like any other.
function hasShape(context: WhiteboardContext, id: string): boolean {
  return typeof id === 'string' && Object.hasOwn(context.shapes, id);
}

function isPosition(x: number, y: number): boolean {
  return Number.isFinite(x) && Number.isFinite(y);
}

export const whiteboardMachine = setup({
  types: {
    context: {} as WhiteboardContext,
    events: {} as WhiteboardEvent,
  },
  guards: {
    validTitle: (_, params: { title: string }) => typeof params.title === 'string',
    /** A well-formed shape whose id is not taken yet. */
    canAdd: ({ context }, params: { event: AddShape }) => {
      const { id, kind, x, y, text } = params.event;
      return (
        typeof id === 'string' &&
        id !== '' &&
        !hasShape(context, id) &&
        SHAPE_KINDS.includes(kind) &&
        isPosition(x, y) &&
        (text === undefined || typeof text === 'string')
      );
    },
    canMove: ({ context }, params: { id: string; x: number; y: number }) =>
      hasShape(context, params.id) && isPosition(params.x, params.y),
    exists: ({ context }, params: { id: string }) => hasShape(context, params.id),
  },
  actions: {
    setTitle: assign((_, params: { title: string }) => ({ title: params.title })),
    addShape: assign(({ context }, params: { event: AddShape }) => {
      const { id, kind, x, y, text, meta } = params.event;
      // No `text: undefined` key: the document must equal its JSON round trip.
      const shape: Shape = text === undefined ? { kind, x, y, by: meta.client } : { kind, x, y, text, by: meta.client };
      return { shapes: { ...context.shapes, [id]: shape } };
    }),
    moveShape: assign(({ context }, params: { id: string; x: number; y: number }) => {
      const shape = context.shapes[params.id];
      if (shape === undefined) return {};
      return { shapes: { ...context.shapes, [params.id]: { ...shape, x: params.x, y: params.y } } };
    }),
    deleteShape: assign(({ context }, params: { id: string }) => {
      const { [params.id]: _deleted, ...shapes } = context.shapes;
      return { shapes };
    }),
  },
}).createMachine({
  id: 'whiteboard',
  initial: 'editing',
  context: { title: 'Untitled', shapes: {} },
  states: {
    editing: {
      on: {
        SET_TITLE: {
          guard: { type: 'validTitle', params: ({ event }) => ({ title: event.title }) },
          actions: { type: 'setTitle', params: ({ event }) => ({ title: event.title }) },
        },
        ADD_SHAPE: {
          guard: { type: 'canAdd', params: ({ event }) => ({ event }) },
          actions: { type: 'addShape', params: ({ event }) => ({ event }) },
        },
        MOVE_SHAPE: {
          guard: { type: 'canMove', params: ({ event }) => ({ id: event.id, x: event.x, y: event.y }) },
          actions: { type: 'moveShape', params: ({ event }) => ({ id: event.id, x: event.x, y: event.y }) },
        },
        DELETE_SHAPE: {
          guard: { type: 'exists', params: ({ event }) => ({ id: event.id }) },
          actions: { type: 'deleteShape', params: ({ event }) => ({ id: event.id }) },
        },
      },
    },
  },
});

export const whiteboard = defineApplication({
  name: 'whiteboard',
  machine: whiteboardMachine,
  commit: 'journal',
});
