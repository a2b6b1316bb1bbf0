/**
 * What every invariant works from, computed once: the history and the
 * journal per session, each session's model replay, and which journaled
 * events each send made.
 */
import type { Application } from '../../internal.js';
import { attribute, type Attribution } from './attribution.js';
import type { Operation } from './history.js';
import { sessionKeyOf, type SessionJournal } from './journal.js';
import { compareReplays, nextMillisecond, replayModel, type Divergence, type SessionModel } from './model.js';

/** A session's document read at the end of the run (from its primary). */
export interface FinalDocument {
  readonly app: string;
  readonly session: string;
  readonly seq: number;
  readonly document: unknown;
  readonly state?: unknown;
  /** When it was read, on the history's clock. */
  readonly at?: number;
}

/** A secondary's copy of a session, as the simulator took it. */
export interface SecondaryCopy {
  readonly worker: string;
  readonly app: string;
  readonly session: string;
  readonly seq: number;
  readonly document: unknown;
  readonly at?: number;
}

export interface LivenessInput {
  /** When the last fault healed, on the history's clock. */
  readonly healedAt: number;
  /** How long after it every session must have acknowledged a command (derived from the timeouts by the caller). */
  readonly bound: number;
  /** The sends that probe it (default: the whole history). */
  readonly probes?: readonly Operation[];
  /** The sessions that must answer (default: every session the history sent to). */
  readonly sessions?: readonly { readonly app: string; readonly session: string }[];
}

export interface CheckInput {
  readonly history: readonly Operation[];
  readonly journals: readonly SessionJournal[];
  /** The applications the sessions belong to: their machines are the model. */
  readonly applications: readonly Application[];
  readonly finals?: readonly FinalDocument[];
  readonly secondaries?: readonly SecondaryCopy[];
  readonly liveness?: LivenessInput;
  /**
   * Report each session whose journal no longer starts at seq 1, with the
   * operations that could therefore not be checked (default true).
   */
  readonly requireFullJournal?: boolean;
}

/** One session, everything known of it. */
export interface SessionFacts {
  readonly app: string;
  readonly session: string;
  /** Its journal; an empty one when nothing was journaled. */
  readonly journal: SessionJournal;
  /** Undefined when no application of that name was given. */
  readonly application: Application | undefined;
  readonly model: SessionModel | undefined;
  /** Where a second replay parted from the model: the machine is not deterministic. */
  readonly divergence: Divergence | undefined;
  /** The history's operations on it, in history order. */
  readonly operations: readonly Operation[];
  /** The lowest seq the journal still holds (1 when not compacted, or when empty). */
  readonly journalFrom: number;
}

export interface CheckContext {
  readonly input: CheckInput;
  /** By `app/id`. */
  readonly sessions: ReadonlyMap<string, SessionFacts>;
  readonly attribution: Attribution;
  /** An operation the journal cannot settle (its part was compacted away), for `journal-complete`. */
  unverifiable(op: Operation): void;
  readonly unverified: ReadonlyMap<string, readonly Operation[]>;
}

export function prepare(input: CheckInput): CheckContext {
  const apps = new Map(input.applications.map((a) => [a.name, a]));
  const journals = new Map(input.journals.map((j) => [sessionKeyOf(j.app, j.session), j]));
  const ops = new Map<string, Operation[]>();
  for (const op of input.history) {
    const key = sessionKeyOf(op.app, op.session);
    const list = ops.get(key);
    if (list === undefined) ops.set(key, [op]);
    else list.push(op);
  }
  const keys = new Set([...journals.keys(), ...ops.keys()]);
  const found = [...keys].map((key) => {
    const first = journals.get(key) ?? ops.get(key)![0]!;
    const { app, session } = first;
    const journal = journals.get(key) ?? { app, session, shard: -1, events: [], unreadable: [] };
    const application = apps.get(app);
    return { key, app, session, journal, application, model: application && replayModel(application, journal) };
  });
  // Every session replayed a second time, a millisecond of wall clock later: a machine reading it parts.
  nextMillisecond();
  const sessions = new Map<string, SessionFacts>();
  for (const { key, app, session, journal, application, model } of found) {
    const again = application && replayModel(application, journal);
    sessions.set(key, {
      app,
      session,
      journal,
      application,
      model,
      divergence: model && again && compareReplays(model, again),
      operations: ops.get(key) ?? [],
      journalFrom: journal.events.reduce((low, e) => Math.min(low, e.seq), journal.events.length === 0 ? 1 : Infinity),
    });
  }
  const unverified = new Map<string, Operation[]>();
  return {
    input,
    sessions,
    attribution: attribute(input.history, input.journals),
    unverifiable: (op) => {
      const key = sessionKeyOf(op.app, op.session);
      const list = unverified.get(key) ?? [];
      if (!list.includes(op)) list.push(op);
      unverified.set(key, list);
    },
    unverified,
  };
}

/** The facts of a session; every session of the history or the journal has some. */
export function factsOf(
  ctx: CheckContext,
  of: { readonly app: string; readonly session: string },
): SessionFacts | undefined {
  return ctx.sessions.get(sessionKeyOf(of.app, of.session));
}
