import type { View } from '../index.js';
import { placeShards, waitForView } from '../internal.js';
import { RebalanceRefusedError, requestRebalance } from '../protocol/control.js';
import { parseMilliseconds } from './worker.js';
import {
  connectAdmin,
  currentView,
  OPERATOR_USAGE,
  OperatorError,
  parseOperatorArgs,
  type OperatorArgs,
  type OperatorIO,
} from './operator.js';

export const REBALANCE_USAGE = `usage: cohort rebalance [--dry-run] [--timeout MS] --nats URL [--cluster NAME] [--json]

The primary moves that would balance the cluster, computed from the view by
the leader's own placement (even primaries per member, copies on other
members and zones, fewest moves). The leader carries such moves out by
itself, a few hand-offs at a time, whenever the membership is stable; this
command shows the plan and follows the views until the cluster is balanced
(a line per view; --json: one object per line). While the view says the
membership is unstable the leader holds rebalancing (until it has been
still for --stable-after): then the command asks the leader, on
cohort.<cluster>.ctl.rebalance, to record the membership stable now, and
the hand-offs begin. Exit 1 when refused or not balanced within MS
(default 60000).

  --dry-run             print the plan only
  --timeout MS          how long to follow the views
${OPERATOR_USAGE}
`;

export interface RebalanceArgs extends OperatorArgs {
  dryRun: boolean;
  timeout: number;
}

export function parseRebalanceArgs(args: string[]): RebalanceArgs {
  const { values, base } = parseOperatorArgs(
    args,
    { 'dry-run': { type: 'boolean' }, timeout: { type: 'string' } },
    { min: 0, max: 0, names: '' },
  );
  return {
    ...base,
    dryRun: values['dry-run'] === true,
    timeout: parseMilliseconds('timeout', values['timeout'] as string | undefined) ?? 60_000,
  };
}

export interface PlannedMove {
  shard: number;
  from: string | null;
  to: string;
}

/** The primary moves from `view` to the balanced map the leader's placement aims at (every hand-off allowed at once). */
export function rebalancePlan(view: View): PlannedMove[] {
  const held = new Set(view.safeguards.held.map((h) => h.member));
  const members = view.members.filter((m) => !held.has(m.id));
  if (members.length === 0) return [];
  const placed = placeShards({
    shardCount: view.shardCount,
    members,
    replicas: view.replicas,
    previous: view.shards,
    maxConcurrentMoves: view.shardCount,
    rebalance: 'full',
  });
  return placed.flatMap((s, shard) => {
    const to = s.next ?? s.primary;
    const from = view.shards[shard]!.next ?? view.shards[shard]!.primary;
    return to !== null && to !== from ? [{ shard, from: view.shards[shard]!.primary, to }] : [];
  });
}

function counts(view: View): Map<string, number> {
  const out = new Map<string, number>(view.members.map((m) => [m.id, 0]));
  for (const s of view.shards) if (s.primary !== null) out.set(s.primary, (out.get(s.primary) ?? 0) + 1);
  return out;
}

const describeCounts = (view: View): string => [...counts(view)].map(([w, n]) => `${w} ${n}`).join(', ');

export async function runRebalance(options: RebalanceArgs & OperatorIO): Promise<number> {
  const bus = await connectAdmin(options, 'rebalance');
  const out = (o: Record<string, unknown>, line: string): void =>
    options.write(options.json ? JSON.stringify(o) : line);
  try {
    const view = await currentView(bus, options.cluster);
    const plan = rebalancePlan(view);
    const pending = view.shards.filter((s) => s.state === 'PENDING').length;
    out(
      {
        event: 'plan',
        viewId: view.viewId,
        primaries: Object.fromEntries(counts(view)),
        moves: plan,
        handingOff: pending,
        unstable: view.safeguards.unstable !== null,
      },
      `view ${view.viewId}: primaries ${describeCounts(view)}; ${plan.length === 0 ? 'balanced, nothing to move' : `${plan.length} moves to balance:`}${plan.map((m) => `\n  shard ${m.shard}: ${m.from ?? '-'} -> ${m.to}`).join('')}${pending > 0 ? `\n${pending} shards handing off now` : ''}`,
    );
    const unstable = view.safeguards.unstable !== null && plan.length > 0;
    if (unstable && options.dryRun)
      options.warn(
        `the membership is unstable (since ${new Date(view.safeguards.unstable!).toISOString()}): the leader moves nothing for balance until it has been still for --stable-after, or cohort rebalance asks it to`,
      );
    if (options.dryRun || (plan.length === 0 && pending === 0)) return 0;
    if (unstable) {
      const answer = await requestRebalance(bus, options.cluster);
      out(
        { event: 'accepted', leader: answer.leader, changed: answer.changed, reason: answer.reason },
        `rebalance asked of leader ${answer.leader}: ${answer.reason}`,
      );
    }
    const balanced = (v: View): boolean => v.shards.every((s) => s.state === 'ACTIVE') && rebalancePlan(v).length === 0;
    const waiter = await waitForView(
      bus,
      options.cluster,
      (v) => {
        const done = balanced(v);
        const left = rebalancePlan(v).length;
        const moving = v.shards.filter((s) => s.state === 'PENDING').length;
        out(
          {
            event: 'view',
            viewId: v.viewId,
            primaries: Object.fromEntries(counts(v)),
            movesLeft: left,
            handingOff: moving,
          },
          `view ${v.viewId}: ${describeCounts(v)}; ${moving} handing off, ${left} moves left`,
        );
        return done;
      },
      {
        onUnreadable: (err, revision) =>
          options.warn(`view revision ${revision} skipped: ${err instanceof Error ? err.message : String(err)}`),
      },
    );
    try {
      const done = await waiter.until(options.timeout);
      if (done === null) throw new OperatorError(`not balanced within ${options.timeout} ms`);
      out(
        { event: 'done', viewId: done.viewId, primaries: Object.fromEntries(counts(done)) },
        `done: balanced in view ${done.viewId}`,
      );
      return 0;
    } finally {
      waiter.stop();
    }
  } catch (err) {
    if (err instanceof OperatorError || err instanceof RebalanceRefusedError) {
      options.warn(err.message);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
