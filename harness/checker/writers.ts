/**
 * One writer per shard and epoch, from the journal's own headers
 * (`Cohort-Epoch`, `Cohort-Worker`): the fence and the lease must keep a
 * deposed primary from writing beside its successor. Epoch 0 is static
 * sharding, which has no epochs to check. And no acknowledged write was
 * journaled under an epoch older than one its shard had written under
 * already: a deposed primary's write may land, but must not be acknowledged.
 */
import type { CheckContext } from './context.js';
import type { LocatedEvent } from './attribution.js';
import { describeEvent, refOf, type Violation } from './violation.js';

/** Every journaled event with its session, in stream order. */
function inStreamOrder(ctx: CheckContext): LocatedEvent[] {
  const all: LocatedEvent[] = [];
  for (const j of ctx.input.journals) for (const e of j.events) all.push({ ...e, app: j.app, session: j.session });
  return all.sort((a, b) => a.streamSeq - b.streamSeq || a.seq - b.seq);
}

export function checkSingleWriter(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  const writers = new Map<string, Map<string, LocatedEvent>>();
  for (const e of inStreamOrder(ctx)) {
    if (e.epoch === 0) continue;
    const key = `${e.shard}/${e.epoch}`;
    let byWorker = writers.get(key);
    if (byWorker === undefined) writers.set(key, (byWorker = new Map()));
    if (byWorker.has(e.worker)) continue;
    byWorker.set(e.worker, e);
    if (byWorker.size < 2) continue;
    const first = [...byWorker.values()][0]!;
    const op = ctx.attribution.operationOf(e);
    out.push({
      invariant: 'single-writer',
      app: e.app,
      session: e.session,
      operations: op === undefined ? [] : [op],
      at: e.time,
      message: `shard ${e.shard} epoch ${e.epoch} has a second writer: ${e.worker} journaled ${describeEvent(e)} (entry ${e.streamSeq}) after ${first.worker} journaled ${describeEvent(first)} in ${first.app}/${first.session} (entry ${first.streamSeq})`,
      event: refOf(e),
    });
  }
  return out;
}

export function checkDeposedWriter(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  const highest = new Map<number, LocatedEvent>();
  for (const e of inStreamOrder(ctx)) {
    const before = highest.get(e.shard);
    const op = ctx.attribution.operationOf(e);
    if (before !== undefined && e.epoch < before.epoch && op?.outcome === 'ok' && op.duplicate !== true) {
      out.push({
        invariant: 'deposed-writer',
        app: e.app,
        session: e.session,
        operations: [op],
        at: op.completedAt,
        message: `${describeEvent(e)} was acknowledged by ${op.by ?? e.worker} at epoch ${e.epoch} of shard ${e.shard}, journaled (entry ${e.streamSeq}) after epoch ${before.epoch} had written (entry ${before.streamSeq}, by ${before.worker})`,
        event: refOf(e),
      });
    }
    if (before === undefined || e.epoch > before.epoch) highest.set(e.shard, e);
  }
  return out;
}
