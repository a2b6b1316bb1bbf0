/**
 * The application's own machine as the model: a session's journaled events
 * replayed with the runtime's pure session functions (machines/session.ts,
 * the same steps a primary, its secondaries and activation take), giving
 * the document and state value after every seq. What a client saw at seq N
 * must be what the model has at N.
 *
 * Replayed in stream order, as a worker reads the journal: an event at or
 * below the current seq is skipped (noted unless it lies in the snapshot
 * the replay started from), a gap or an event the machine refuses stops the
 * replay there.
 */
import {
  documentOf,
  restoreSession,
  startSession,
  stepSession,
  type Application,
  type SessionState,
} from '../../internal.js';
import { asRead, firstDifference } from './compare.js';
import type { JournalEvent, SessionJournal } from './journal.js';

/** The session as of one seq: its document (as a client reads it) and the machine's state value. */
export interface ModelState {
  readonly seq: number;
  readonly document: unknown;
  readonly state: unknown;
}

export interface ModelStep extends ModelState {
  /** The event that made this seq. */
  readonly event: JournalEvent;
}

/**
 * Something in the journal the replay could not take as it came:
 * `repeated` (a seq already applied: skipped), `timer` (a delayed event for
 * a timer the model had not armed: applied all the same), `gap` and
 * `refused` (the replay stops), `base` (the snapshot does not restore).
 */
export interface ModelAnomaly {
  readonly kind: 'repeated' | 'timer' | 'gap' | 'refused' | 'base';
  readonly event?: JournalEvent;
  readonly reason: string;
}

export interface SessionModel {
  readonly app: string;
  readonly session: string;
  /** Where the replay started: seq 0 (the machine's initial state), or the snapshot of a compacted journal; undefined when it had nowhere to start. */
  readonly start: ModelState | undefined;
  /** One per seq after the start, consecutive. */
  readonly steps: readonly ModelStep[];
  readonly anomalies: readonly ModelAnomaly[];
  /** The last seq the model reached (the start's when no step). */
  readonly lastSeq: number;
  at(seq: number): ModelState | undefined;
  /** The journaled event that made `seq`, when the model applied it. */
  eventAt(seq: number): JournalEvent | undefined;
}

/** Replays one session's journal through its application's machine. */
export function replayModel(application: Application, journal: SessionJournal): SessionModel {
  const { machine } = application;
  const anomalies: ModelAnomaly[] = [];
  const steps: ModelStep[] = [];
  let state: SessionState | undefined;
  let baseSeq = 0;
  if (journal.base !== undefined) {
    try {
      state = restoreSession(machine, journal.base.snapshot.session);
      baseSeq = state.seq;
    } catch (err) {
      anomalies.push({ kind: 'base', reason: `the snapshot does not restore: ${messageOf(err)}` });
    }
  }
  const first = journal.events[0];
  if (state === undefined && (first === undefined || first.seq === 1))
    state = startSession(machine, first?.event.meta.time ?? 0);
  const start = state === undefined ? undefined : view(state);
  for (const e of journal.events) {
    if (state === undefined) break;
    if (e.seq <= state.seq) {
      if (e.seq > baseSeq) anomalies.push({ kind: 'repeated', event: e, reason: `seq ${e.seq} journaled again` });
      continue;
    }
    if (e.seq !== state.seq + 1) {
      anomalies.push({ kind: 'gap', event: e, reason: `at seq ${state.seq}, the journal goes on at seq ${e.seq}` });
      break;
    }
    const timer = e.event.meta.timer;
    if (timer !== undefined && !state.timers.some((t) => t.id === timer))
      anomalies.push({ kind: 'timer', event: e, reason: `delayed event for timer ${timer}, which was not armed` });
    let r: ReturnType<typeof stepSession>;
    try {
      r = stepSession(machine, state, e.event);
    } catch (err) {
      anomalies.push({ kind: 'refused', event: e, reason: `the machine threw: ${messageOf(err)}` });
      break;
    }
    if (!r.accepted) {
      anomalies.push({
        kind: 'refused',
        event: e,
        reason: `${e.event.type} is not accepted in state ${JSON.stringify(r.stateValue)}`,
      });
      break;
    }
    state = r.state;
    steps.push({ ...view(state), event: e });
  }
  const firstSeq = start?.seq ?? 0;
  return {
    app: journal.app,
    session: journal.session,
    start,
    steps,
    anomalies,
    lastSeq: start === undefined ? 0 : firstSeq + steps.length,
    at: (seq) => (seq === firstSeq ? start : steps[seq - firstSeq - 1]),
    eventAt: (seq) => steps[seq - firstSeq - 1]?.event,
  };
}

function view(state: SessionState): ModelState {
  return { seq: state.seq, document: asRead(documentOf(state)), state: asRead(state.snapshot.value) };
}

/** Where two replays of the same journal parted: a machine that reads the wall clock or randomness. */
export interface Divergence {
  readonly seq: number;
  readonly event: JournalEvent;
  readonly difference: string;
}

/**
 * Replays the journal twice, a millisecond of wall clock apart, and names
 * the first event after which the two differ: a machine whose actions read
 * `Date.now()` or `Math.random()` cannot replay itself.
 */
export function findNondeterminism(application: Application, journal: SessionJournal): Divergence | undefined {
  const a = replayModel(application, journal);
  nextMillisecond();
  return compareReplays(a, replayModel(application, journal));
}

/** The first step at which two replays of one journal differ. */
export function compareReplays(a: SessionModel, b: SessionModel): Divergence | undefined {
  const n = Math.max(a.steps.length, b.steps.length);
  for (let i = 0; i < n; i++) {
    const x = a.steps[i];
    const y = b.steps[i];
    if (x === undefined || y === undefined) {
      const step = (x ?? y)!;
      return { seq: step.seq, event: step.event, difference: 'accepted by one replay and refused by the other' };
    }
    const difference =
      firstDifference(x.document, y.document) ??
      (firstDifference(x.state, y.state) === undefined
        ? undefined
        : `state ${JSON.stringify(x.state)} ≠ ${JSON.stringify(y.state)}`);
    if (difference !== undefined) return { seq: x.seq, event: x.event, difference };
  }
  return undefined;
}

/** Waits (busily, at most a few ms) for the wall clock's next millisecond, so a second replay reads another Date.now(). */
export function nextMillisecond(): void {
  const t = Date.now();
  for (let i = 0; i < 10_000_000 && Date.now() === t; i++);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
