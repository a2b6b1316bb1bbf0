import { initialTransition, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import type { StampedEvent, UserEvent } from './events.js';
import { pureTransition } from './pureTransition.js';

/**
 * A session as pure data: the machine's snapshot, its seq, and the delayed
 * events it has armed. Every function here is pure, so the primary, its
 * secondaries and the simulator compute exactly the same thing from the same
 * events (xstate's pure transition, never a live actor).
 */

/** A delayed event (`after`, or a delayed raise) the runtime must fire. */
export interface Timer {
  readonly id: string;
  readonly event: UserEvent;
  /** Milliseconds since the epoch. */
  readonly due: number;
}

export interface SessionState {
  readonly snapshot: AnyMachineSnapshot;
  readonly seq: number;
  /** Sorted by due, then id. */
  readonly timers: readonly Timer[];
}

/** What goes to storage: xstate's persisted snapshot plus what xstate does not keep (issue #5331: deadlines). */
export interface PersistedSession {
  readonly snapshot: unknown;
  readonly seq: number;
  readonly timers: readonly Timer[];
}

export type StepResult =
  | { readonly accepted: true; readonly state: SessionState }
  | { readonly accepted: false; readonly stateValue: unknown };

interface RaiseParams {
  event?: UserEvent;
  id?: string;
  delay?: number;
}

function byDue(a: Timer, b: Timer): number {
  return a.due - b.due || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Applies xstate's delayed-raise and cancel actions to the timer table. */
function applyTimerActions(
  timers: readonly Timer[],
  actions: readonly { type: string; params?: unknown }[],
  now: number,
): readonly Timer[] {
  let out: Timer[] | undefined;
  for (const a of actions) {
    if (a.type === 'xstate.cancel') {
      const sendId = (a.params as { sendId?: string } | undefined)?.sendId;
      out = (out ?? [...timers]).filter((t) => t.id !== sendId);
    } else if (a.type === 'xstate.raise') {
      const p = a.params as RaiseParams | undefined;
      if (p?.delay === undefined || p.event === undefined) continue;
      const id = p.id ?? `raise:${p.event.type}`;
      out = (out ?? [...timers]).filter((t) => t.id !== id);
      out.push({ id, event: p.event, due: now + p.delay });
    }
  }
  return out === undefined ? timers : out.sort(byDue);
}

/** A new session, as of `time` (the time of the event that first references it). */
export function startSession(machine: AnyStateMachine, time: number): SessionState {
  const [snapshot, actions] = initialTransition(machine);
  return { snapshot, seq: 0, timers: applyTimerActions([], actions, time) };
}

/**
 * One event. Refused (and nothing changes) when the machine does not accept
 * it in the current state; otherwise the next state, one seq on.
 */
export function stepSession(machine: AnyStateMachine, state: SessionState, event: StampedEvent): StepResult {
  if (!state.snapshot.can(event)) return { accepted: false, stateValue: state.snapshot.value };
  const [snapshot, actions] = pureTransition(machine, state.snapshot, event);
  // A fired timer is spent, whether or not the machine re-arms it.
  const fired = event.meta.timer;
  const timers = fired === undefined ? state.timers : state.timers.filter((t) => t.id !== fired);
  return {
    accepted: true,
    state: { snapshot, seq: state.seq + 1, timers: applyTimerActions(timers, actions, event.meta.time) },
  };
}

/** Replays journaled events; an event the machine refuses here means the copy diverged. */
export function replaySession(
  machine: AnyStateMachine,
  state: SessionState,
  events: readonly { event: StampedEvent; seq: number }[],
): SessionState {
  let s = state;
  for (const { event, seq } of events) {
    if (seq <= s.seq) continue; // already in the snapshot
    if (seq !== s.seq + 1)
      throw new RangeError(`journal gap: session at seq ${s.seq}, next journaled event has seq ${seq}`);
    const r = stepSession(machine, s, event);
    if (!r.accepted)
      throw new RangeError(
        `journaled event ${event.type} (seq ${seq}) refused on replay in state ${JSON.stringify(r.stateValue)}`,
      );
    s = r.state;
  }
  return s;
}

export function persistSession(machine: AnyStateMachine, state: SessionState): PersistedSession {
  return { snapshot: machine.getPersistedSnapshot(state.snapshot), seq: state.seq, timers: state.timers };
}

export function restoreSession(machine: AnyStateMachine, persisted: PersistedSession): SessionState {
  const snapshot = machine.resolveState(persisted.snapshot as Parameters<AnyStateMachine['resolveState']>[0]);
  return { snapshot, seq: persisted.seq, timers: [...persisted.timers].sort(byDue) };
}

/** The document clients see: the machine's context. */
export function documentOf(state: SessionState): unknown {
  return state.snapshot.context;
}
