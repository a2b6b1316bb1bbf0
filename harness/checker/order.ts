/**
 * Linearizability per session, as far as seqs show it: acknowledged sends
 * have distinct seqs, and seqs respect real time. An operation that
 * completed before another was invoked comes first: a send after it gets a
 * higher seq, a read after it reflects at least its seq. Reads that may
 * trail the primary (a secondary's, the cache's) are left out.
 */
import type { CheckContext } from './context.js';
import { isAcknowledged, type Operation } from './history.js';
import type { Violation } from './violation.js';

export function checkSeqDistinct(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const facts of ctx.sessions.values()) {
    const bySeq = new Map<number, Operation[]>();
    for (const op of facts.operations) {
      if (!isAcknowledged(op)) continue;
      const same = bySeq.get(op.seq);
      if (same === undefined) bySeq.set(op.seq, [op]);
      else same.push(op);
    }
    for (const [seq, ops] of bySeq) {
      if (ops.length < 2) continue;
      out.push({
        invariant: 'seq-distinct',
        app: facts.app,
        session: facts.session,
        operations: ops,
        at: Math.max(...ops.map((op) => op.completedAt)),
        message: `${ops.length} sends acknowledged with seq ${seq}: ${ops.map((op) => `${op.event?.type ?? 'send'} by ${op.client}`).join(', ')}`,
      });
    }
  }
  return out;
}

/** An operation with a place in its session's order: an acknowledged send, or a read from the primary. */
function ordered(op: Operation): op is Operation & { readonly seq: number } {
  if (op.outcome !== 'ok' || op.seq === undefined) return false;
  return op.kind === 'send' || (op.stale !== true && (op.source === undefined || op.source === 'primary'));
}

export function checkRealTimeOrder(ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  for (const facts of ctx.sessions.values()) {
    const ops = facts.operations.filter(ordered);
    const byCompletion = [...ops].sort((a, b) => a.completedAt - b.completedAt);
    const byInvocation = [...ops].sort((a, b) => a.invokedAt - b.invokedAt);
    // Sweep: the highest seq among operations completed before the one looked at was invoked.
    let done = 0;
    let highest: (Operation & { readonly seq: number }) | undefined;
    for (const later of byInvocation) {
      while (done < byCompletion.length && byCompletion[done]!.completedAt < later.invokedAt) {
        const op = byCompletion[done++]!;
        if (highest === undefined || op.seq > highest.seq) highest = op;
      }
      if (highest === undefined) continue;
      const broken = later.kind === 'send' ? highest.seq >= later.seq : highest.seq > later.seq;
      if (!broken) continue;
      out.push({
        invariant: 'real-time-order',
        app: facts.app,
        session: facts.session,
        operations: [highest, later],
        at: later.completedAt,
        message: `${describe(highest)} completed at ${highest.completedAt}, before ${describe(later)} was invoked at ${later.invokedAt}, yet ${later.kind === 'send' ? 'got' : 'reflects'} seq ${later.seq}`,
      });
    }
  }
  return out;
}

function describe(op: Operation & { readonly seq: number }): string {
  const what = op.kind === 'send' ? (op.event?.type ?? 'a send') : 'a read';
  return `${what} by ${op.client} (seq ${op.seq})`;
}
