/**
 * Every secondary's document equals its primary's at the same seq. The
 * primary's is what a client read from it at that seq (a primary read, the
 * final document), else what the journal replayed gives: the primary made
 * the journal with the same pure steps.
 */
import { firstDifference } from './compare.js';
import { factsOf, type CheckContext } from './context.js';
import type { Operation } from './history.js';
import { describeEvent, refOf, type Violation } from './violation.js';

export function checkReplicaAgreement(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const copy of ctx.input.secondaries ?? []) {
    const facts = factsOf(ctx, copy);
    const base = {
      invariant: 'replica-agreement' as const,
      app: copy.app,
      session: copy.session,
      at: copy.at ?? 0,
    };
    const primaryReads = (facts?.operations ?? []).filter(
      (op): op is Operation & { readonly seq: number } =>
        op.kind === 'read' &&
        op.outcome === 'ok' &&
        op.seq === copy.seq &&
        op.stale !== true &&
        (op.source === undefined || op.source === 'primary'),
    );
    const finals = (ctx.input.finals ?? []).filter(
      (f) => f.app === copy.app && f.session === copy.session && f.seq === copy.seq,
    );
    const seen = [
      ...primaryReads.map((op) => ({ document: op.document, what: `the primary's read by ${op.client}`, op })),
      ...finals.map((f) => ({ document: f.document, what: 'the final document', op: undefined })),
    ];
    if (seen.length > 0) {
      const differing = seen.flatMap((x) => {
        const difference = firstDifference(copy.document, x.document);
        return difference === undefined ? [] : [{ ...x, difference }];
      });
      const first = differing[0];
      if (first !== undefined) {
        const others = differing.length > 1 ? ` (and ${differing.length - 1} more reads at that seq)` : '';
        out.push({
          ...base,
          operations: differing.flatMap((x) => (x.op === undefined ? [] : [x.op])),
          message: `secondary ${copy.worker} at seq ${copy.seq} differs from ${first.what} at that seq${others} (secondary ≠ primary at ${first.difference})`,
        });
      }
      continue;
    }
    const model = facts?.model;
    if (model === undefined || model.start === undefined || copy.seq < model.start.seq) continue;
    const m = model.at(copy.seq);
    if (m === undefined) {
      out.push({
        ...base,
        operations: [],
        message: `secondary ${copy.worker} is at seq ${copy.seq}, but the journal ends at seq ${model.lastSeq}`,
      });
      continue;
    }
    const difference = firstDifference(copy.document, m.document);
    if (difference === undefined) continue;
    const d = facts?.divergence;
    const event = d !== undefined && d.seq <= copy.seq ? d.event : model.eventAt(copy.seq);
    out.push({
      ...base,
      operations: [],
      message: `secondary ${copy.worker} at seq ${copy.seq} differs from the journal replayed, as its primary made it (secondary ≠ model at ${difference})${d !== undefined && d.seq <= copy.seq ? `; the machine is not deterministic: two replays part at ${describeEvent(d.event)}` : ''}`,
      ...(event === undefined ? {} : { event: refOf(event) }),
    });
  }
  return out;
}
