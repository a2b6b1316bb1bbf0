/**
 * Which journaled events each send of a history made. The journal is read
 * as commands: its events grouped by `meta.cmdId` (a command applied twice
 * is one group of two). A send is tied to its command
 *
 * 1. by its command id, when the history knows it (HistoryRecorder with
 *    its environment, or a simulator that records it);
 * 2. else, acknowledged: by (session, seq), the command at the seq it was
 *    acknowledged with;
 * 3. else (failed, ambiguous): by content, the earliest command in its
 *    session whose event equals the one sent and that nothing else claimed.
 *
 * Delayed events (`meta.timer`, client `timer`) are the runtime's, not a
 * client's, and are left out; the model checks them. Events of a
 * transaction are commands of their own (`<txId>:<step>`) that no send of
 * a history claims.
 */
import type { UserEvent } from '../../internal.js';
import { sameDocument } from './compare.js';
import { isAcknowledged, type Operation } from './history.js';
import { sessionKeyOf, type JournalEvent, type SessionJournal } from './journal.js';

/** A journaled event with the session it is in. */
export interface LocatedEvent extends JournalEvent {
  readonly app: string;
  readonly session: string;
}

export interface Attribution {
  /** Every send's events, anywhere in the journal (empty when it made none). */
  readonly eventsOf: ReadonlyMap<Operation, readonly LocatedEvent[]>;
  /** The send that made a journaled event, if one of the history did. */
  operationOf(e: JournalEvent): Operation | undefined;
  /** Clients' commands no send claims, each as its events. */
  readonly unclaimed: readonly (readonly LocatedEvent[])[];
}

export function isDelayedEvent(e: JournalEvent): boolean {
  return e.event.meta.timer !== undefined && e.event.meta.client === 'timer';
}

/** The event as its client sent it: without the runtime's `meta`. */
export function sentEvent(e: JournalEvent): UserEvent {
  const { meta: _meta, ...event } = e.event;
  return event;
}

export function attribute(history: readonly Operation[], journals: readonly SessionJournal[]): Attribution {
  const commands = new Map<string, LocatedEvent[]>();
  const bySessionSeq = new Map<string, LocatedEvent>();
  for (const j of journals) {
    for (const e of j.events) {
      const located: LocatedEvent = { ...e, app: j.app, session: j.session };
      // The first entry at a seq is the one a replay applies.
      const at = `${sessionKeyOf(j.app, j.session)}#${e.seq}`;
      if (!bySessionSeq.has(at)) bySessionSeq.set(at, located);
      if (isDelayedEvent(e)) continue;
      const group = commands.get(e.event.meta.cmdId);
      if (group === undefined) commands.set(e.event.meta.cmdId, [located]);
      else group.push(located);
    }
  }
  const claimed = new Set<string>();
  const eventsOf = new Map<Operation, readonly LocatedEvent[]>();
  const claim = (op: Operation, cmdId: string | undefined): void => {
    const group = cmdId === undefined ? undefined : commands.get(cmdId);
    if (cmdId !== undefined && group !== undefined && !claimed.has(cmdId)) {
      claimed.add(cmdId);
      eventsOf.set(op, group);
    } else eventsOf.set(op, []);
  };
  const sends = history.filter((op) => op.kind === 'send');
  for (const op of sends) if (op.cmdId !== undefined) claim(op, op.cmdId);
  for (const op of sends) {
    if (op.cmdId !== undefined || !isAcknowledged(op)) continue;
    claim(op, bySessionSeq.get(`${sessionKeyOf(op.app, op.session)}#${op.seq}`)?.event.meta.cmdId);
  }
  const rest = sends.filter((op) => op.cmdId === undefined && !isAcknowledged(op));
  const bySession = new Map<string, (readonly [string, LocatedEvent])[]>();
  if (rest.length > 0) {
    for (const [cmdId, group] of commands) {
      const key = sessionKeyOf(group[0]!.app, group[0]!.session);
      const list = bySession.get(key);
      if (list === undefined) bySession.set(key, [[cmdId, group[0]!]]);
      else list.push([cmdId, group[0]!]);
    }
  }
  for (const op of [...rest].sort((a, b) => a.invokedAt - b.invokedAt)) {
    const match = (bySession.get(sessionKeyOf(op.app, op.session)) ?? []).find(
      ([cmdId, first]) => !claimed.has(cmdId) && op.event !== undefined && sameDocument(sentEvent(first), op.event),
    );
    claim(op, match?.[0]);
  }
  const byEntry = new Map<string, Operation>();
  for (const [op, events] of eventsOf) for (const e of events) byEntry.set(entryKey(e), op);
  const unclaimed = [...commands].filter(([cmdId]) => !claimed.has(cmdId)).map(([, group]) => group);
  return { eventsOf, operationOf: (e) => byEntry.get(entryKey(e)), unclaimed };
}

/** An event's place in the journal: its entry and, within a record of several, its seq. */
function entryKey(e: JournalEvent): string {
  return `${e.streamSeq}:${e.seq}`;
}
