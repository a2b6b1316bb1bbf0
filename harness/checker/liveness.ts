/**
 * After the last fault heals, every session accepts a command within a
 * bound: some send to it completed with an acknowledgement between
 * `healedAt` and `healedAt + bound`. The bound is the caller's, derived from
 * the timeouts in force (session timeout, attempt timeout, reconnect
 * interval).
 */
import type { CheckContext } from './context.js';
import { sessionKeyOf } from './journal.js';
import type { Violation } from './violation.js';

export function checkLiveness(ctx: CheckContext): Violation[] {
  const live = ctx.input.liveness;
  if (live === undefined) return [];
  const probes = live.probes ?? ctx.input.history;
  const deadline = live.healedAt + live.bound;
  const sessions = new Map<string, { app: string; session: string }>();
  for (const s of live.sessions ?? ctx.input.history.filter((op) => op.kind === 'send'))
    sessions.set(sessionKeyOf(s.app, s.session), { app: s.app, session: s.session });
  const out: Violation[] = [];
  for (const [key, { app, session }] of sessions) {
    const mine = probes.filter((op) => op.kind === 'send' && sessionKeyOf(op.app, op.session) === key);
    const answered = mine.some(
      (op) => op.outcome === 'ok' && op.completedAt >= live.healedAt && op.completedAt <= deadline,
    );
    if (answered) continue;
    const after = mine.filter((op) => op.completedAt >= live.healedAt);
    out.push({
      invariant: 'liveness',
      app,
      session,
      operations: after,
      at: deadline,
      message: `no command to it was acknowledged within ${live.bound} ms of the heal at ${live.healedAt} (${after.length} sends completed after the heal: ${summary(after.map((op) => op.outcome))})`,
    });
  }
  return out;
}

function summary(outcomes: readonly string[]): string {
  if (outcomes.length === 0) return 'none';
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
  return [...counts].map(([o, n]) => `${n} ${o}`).join(', ');
}
