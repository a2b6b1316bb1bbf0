import { NoRespondersError, TimeoutError, type View } from '../index.js';
import { waitForView } from '../internal.js';
import { DrainRefusedError, requestDrain } from '../protocol/drain.js';
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

export const DRAIN_USAGE = `usage: cohort drain WORKER [--timeout MS] --nats URL [--cluster NAME] [--json]

A planned hand-off of every shard WORKER (a member id, as cohort status
shows it) holds, then it leaves the view and stops (its process exits 0),
as on SIGTERM: the request goes to that worker on
cohort.<cluster>.ctl.drain.<worker>. Prints a line per view until WORKER is
out of it (--json: one object per line). Refused for the only promotable
member. Exit 1 when refused or not done within MS (default 60000).

  --timeout MS          how long to follow the views
${OPERATOR_USAGE}
`;

export interface DrainArgs extends OperatorArgs {
  worker: string;
  timeout: number;
}

export function parseDrainArgs(args: string[]): DrainArgs {
  const { values, positionals, base } = parseOperatorArgs(
    args,
    { timeout: { type: 'string' } },
    { min: 1, max: 1, names: 'WORKER (a member id)' },
  );
  return {
    ...base,
    worker: positionals[0]!,
    timeout: parseMilliseconds('timeout', values['timeout'] as string | undefined) ?? 60_000,
  };
}

export async function runDrain(options: DrainArgs & OperatorIO): Promise<number> {
  const bus = await connectAdmin(options, 'drain');
  const { worker } = options;
  const out = (o: Record<string, unknown>, line: string): void =>
    options.write(options.json ? JSON.stringify(o) : line);
  try {
    const before = await currentView(bus, options.cluster);
    if (!before.members.some((m) => m.id === worker))
      throw new OperatorError(
        `${worker} is not a member of view ${before.viewId} (members: ${before.members.map((m) => m.id).join(', ')})`,
      );
    const progress = (view: View): boolean => {
      const member = view.members.some((m) => m.id === worker);
      const primaries = view.shards.filter((s) => s.primary === worker).length;
      const handingOff = view.shards.filter((s) => s.primary === worker && s.state === 'PENDING').length;
      out(
        { event: 'view', viewId: view.viewId, member, primaries, handingOff },
        member
          ? `view ${view.viewId}: ${worker} holds ${primaries} shards, ${handingOff} handing off`
          : `view ${view.viewId}: ${worker} has left (members: ${view.members.map((m) => m.id).join(', ')})`,
      );
      return !member;
    };
    const waiter = await waitForView(bus, options.cluster, progress, {
      include: 'updates',
      onUnreadable: (err, revision) =>
        options.warn(`view revision ${revision} skipped: ${err instanceof Error ? err.message : String(err)}`),
    });
    try {
      const { shards } = await requestDrain(bus, options.cluster, worker);
      out(
        { event: 'accepted', worker, shards, viewId: before.viewId },
        `drain of ${worker} accepted: ${shards} shards to hand off`,
      );
      const view = await waiter.until(options.timeout);
      if (view === null) throw new OperatorError(`${worker} had not left within ${options.timeout} ms`);
      const counts = new Map<string, number>();
      for (const s of view.shards) if (s.primary !== null) counts.set(s.primary, (counts.get(s.primary) ?? 0) + 1);
      out(
        { event: 'done', worker, viewId: view.viewId, primaries: Object.fromEntries(counts) },
        `done: ${worker} drained and gone; view ${view.viewId}: ${[...counts].map(([w, n]) => `${w} ${n}`).join(', ')} shards`,
      );
      return 0;
    } finally {
      waiter.stop();
    }
  } catch (err) {
    if (err instanceof DrainRefusedError || err instanceof OperatorError) {
      options.warn(err.message);
      return 1;
    }
    if (err instanceof NoRespondersError || err instanceof TimeoutError) {
      options.warn(`${worker} did not answer: ${err.message}`);
      return 1;
    }
    throw err;
  } finally {
    await bus.close();
  }
}
