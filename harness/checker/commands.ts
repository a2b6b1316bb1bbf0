/**
 * The invariants about commands, checked against the journal: each
 * acknowledged send's command is there exactly once, as sent, at its seq;
 * nothing is there that nobody sent; an ambiguous send is there at most
 * once; a failed one is not there at all.
 */
import { sameDocument } from './compare.js';
import { factsOf, type CheckContext, type SessionFacts } from './context.js';
import { sentEvent, type LocatedEvent } from './attribution.js';
import { isAcknowledged, type Operation } from './history.js';
import { describeEvent, refOf, type Violation } from './violation.js';

/** The events an operation's command made in its own session (those elsewhere are phantoms there). */
function ownEvents(ctx: CheckContext, op: Operation): readonly LocatedEvent[] {
  return (ctx.attribution.eventsOf.get(op) ?? []).filter((e) => e.app === op.app && e.session === op.session);
}

function violation(invariant: Violation['invariant'], op: Operation, message: string, event?: LocatedEvent): Violation {
  return {
    invariant,
    app: op.app,
    session: op.session,
    operations: [op],
    at: op.completedAt,
    message,
    ...(event === undefined ? {} : { event: refOf(event) }),
  };
}

/** The snapshot a compacted journal was read with remembers the command at that seq. */
function recalled(facts: SessionFacts, op: Operation & { readonly seq: number }): boolean {
  const recent = facts.journal.base?.snapshot.recent ?? [];
  return op.cmdId !== undefined && recent.some(([cmdId, seq]) => cmdId === op.cmdId && seq === op.seq);
}

export function checkAcknowledgedOnce(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const op of ctx.input.history) {
    if (!isAcknowledged(op)) continue;
    const facts = factsOf(ctx, op)!;
    const own = ownEvents(ctx, op);
    const cmd = op.cmdId === undefined ? '' : ` (cmd ${op.cmdId})`;
    if (own.length === 0) {
      // Below a compaction; or a retry answered from the journal's de-duplication after its entry was purged,
      // which carries the session's seq of the moment rather than its own.
      if (op.seq < facts.journalFrom || (op.duplicate === true && facts.journalFrom > 1)) {
        if (!recalled(facts, op)) ctx.unverifiable(op);
        continue;
      }
      const there = facts.journal.events.find((e) => e.seq === op.seq);
      const instead = there === undefined ? 'nothing' : describeEvent(there);
      out.push(
        violation(
          'acknowledged-once',
          op,
          `${op.event?.type ?? 'send'}${cmd} acknowledged at seq ${op.seq} is not in the journal, which has ${instead} at that seq`,
        ),
      );
    } else if (own.length > 1) {
      out.push(
        violation(
          'acknowledged-once',
          op,
          `${op.event?.type ?? 'send'}${cmd} acknowledged at seq ${op.seq} is journaled ${own.length} times, at seqs ${own.map((e) => e.seq).join(', ')}`,
          own[1],
        ),
      );
    } else {
      const e = own[0]!;
      const commit = facts.application?.commit;
      if (e.seq !== op.seq) {
        out.push(
          violation('acknowledged-once', op, `acknowledged at seq ${op.seq}, journaled as ${describeEvent(e)}`, e),
        );
      } else if (op.event !== undefined && !sameDocument(sentEvent(e), op.event)) {
        out.push(
          violation(
            'acknowledged-once',
            op,
            `sent ${JSON.stringify(op.event)}, journaled ${JSON.stringify(sentEvent(e))} at seq ${e.seq}`,
            e,
          ),
        );
      } else if (
        op.duplicate !== true &&
        commit !== 'memory' &&
        op.by !== undefined &&
        op.epoch !== undefined &&
        (op.by !== e.worker || op.epoch !== e.epoch)
      ) {
        // At commit level memory the journal follows the reply, possibly under a later epoch.
        out.push(
          violation(
            'acknowledged-once',
            op,
            `acknowledged by ${op.by} at epoch ${op.epoch}, journaled by ${e.worker} at epoch ${e.epoch} (${describeEvent(e)})`,
            e,
          ),
        );
      }
    }
  }
  return out;
}

export function checkNoPhantom(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const group of ctx.attribution.unclaimed) {
    const e = group[0]!;
    const times = group.length > 1 ? ` (journaled ${group.length} times)` : '';
    out.push({
      invariant: 'no-phantom',
      app: e.app,
      session: e.session,
      operations: [],
      at: e.time,
      message: `${describeEvent(e)} from client ${e.event.meta.client} is journaled, but no operation of the history sent it${times}`,
      event: refOf(e),
    });
  }
  for (const [op, events] of ctx.attribution.eventsOf) {
    for (const e of events) {
      if (e.app === op.app && e.session === op.session) continue;
      out.push({
        invariant: 'no-phantom',
        app: e.app,
        session: e.session,
        operations: [op],
        at: e.time,
        message: `${describeEvent(e)} is journaled here, but its command was sent to ${op.app}/${op.session}`,
        event: refOf(e),
      });
    }
  }
  return out;
}

export function checkAmbiguousAtMostOnce(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const op of ctx.input.history) {
    if (op.kind !== 'send' || op.outcome !== 'ambiguous') continue;
    const own = ownEvents(ctx, op);
    if (own.length === 0 && factsOf(ctx, op)!.journalFrom > 1) ctx.unverifiable(op);
    if (own.length > 1) {
      out.push(
        violation(
          'ambiguous-at-most-once',
          op,
          `ambiguous ${op.event?.type ?? 'send'} (${op.error ?? 'no answer'}) is journaled ${own.length} times, at seqs ${own.map((e) => e.seq).join(', ')}`,
          own[1],
        ),
      );
    }
  }
  return out;
}

export function checkFailedAbsent(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const op of ctx.input.history) {
    if (op.kind !== 'send' || op.outcome !== 'failed') continue;
    const own = ownEvents(ctx, op);
    if (own.length === 0 && factsOf(ctx, op)!.journalFrom > 1) ctx.unverifiable(op);
    if (own.length > 0) {
      out.push(
        violation(
          'failed-absent',
          op,
          `${op.event?.type ?? 'send'} failed with ${op.error ?? 'an error'} (not committed), yet it is journaled as ${describeEvent(own[0]!)}`,
          own[0],
        ),
      );
    }
  }
  return out;
}
