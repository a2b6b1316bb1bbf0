import { EventRejectedError, type Application, type SessionHandle, type UserEvent } from '../../internal.js';
import type { Workload, WorkloadContext } from './workload.js';

/**
 * Workloads for the example applications, used when a simulation names
 * none: each client loops over shared sessions, sending and reading, with a
 * pause between operations drawn from its seed.
 */

export interface ExampleWorkloadOptions {
  /** Sessions shared by all clients (default: enough that none takes more than about 50 events in the run). */
  readonly sessions?: number;
  /** Pause between one client's operations, virtual ms (default 20-300). */
  readonly pause?: readonly [number, number];
}

/** Enough sessions that each takes about `perSession` events over the run, at one operation per ~0.2 s per client. */
function sessionCount(ctx: WorkloadContext, perSession = 50): number {
  const operations = (ctx.clients * ctx.duration) / 200;
  return Math.max(8 * ctx.clients, Math.ceil(operations / perSession));
}

async function loop(
  ctx: WorkloadContext,
  options: ExampleWorkloadOptions,
  step: (pick: number) => Promise<unknown>,
): Promise<void> {
  const n = options.sessions ?? sessionCount(ctx);
  const [min, max] = options.pause ?? [20, 300];
  while (ctx.running()) {
    try {
      await step(Math.floor(ctx.random() * n));
    } catch {
      // Recorded in the history already: refused, timed out, or given up on.
    }
    await ctx.sleep(min + Math.floor(ctx.random() * (max - min + 1)));
  }
}

/**
 * The ledger (examples/ledger.ts): open accounts, deposit (70%), withdraw
 * (15%, an overdraft is refused) and read (15%), several clients on each account.
 */
export function ledgerWorkload(options: ExampleWorkloadOptions = {}): Workload {
  return async (ctx) => {
    const opened = new Set<string>();
    await loop(ctx, options, async (pick) => {
      const id = `acct-${pick}`;
      const account = ctx.client.session('ledger', id);
      if (!opened.has(id)) return open(account, { type: 'OPEN', owner: id }, () => opened.add(id));
      const r = ctx.random();
      if (r < 0.7) return account.send({ type: 'DEPOSIT', amount: 1 + Math.floor(ctx.random() * 100) });
      if (r < 0.85) return account.send({ type: 'WITHDRAW', amount: 1 + Math.floor(ctx.random() * 50) });
      return account.read();
    });
  };
}

/** The whiteboard (examples/whiteboard.ts): add, move and delete shapes, set titles, read boards. */
export function whiteboardWorkload(options: ExampleWorkloadOptions = {}): Workload {
  return async (ctx) => {
    let made = 0;
    await loop(ctx, options, async (pick) => {
      const board = ctx.client.session('whiteboard', `board-${pick}`);
      // Shape ids this client made; another client may have moved or deleted any of them.
      const shape = `${ctx.index}-${Math.floor(ctx.random() * Math.max(1, made))}`;
      const x = Math.floor(ctx.random() * 1_000);
      const y = Math.floor(ctx.random() * 1_000);
      const r = ctx.random();
      if (r < 0.4) return board.send({ type: 'ADD_SHAPE', id: `${ctx.index}-${made++}`, kind: 'rect', x, y });
      if (r < 0.7) return board.send({ type: 'MOVE_SHAPE', id: shape, x, y });
      if (r < 0.8) return board.send({ type: 'DELETE_SHAPE', id: shape });
      if (r < 0.9) return board.send({ type: 'SET_TITLE', title: `set by ${ctx.index} at ${ctx.now()}` });
      return board.read();
    });
  };
}

/** An OPEN-like command that is refused once someone else made the session: either way it exists now. */
async function open(session: SessionHandle, event: UserEvent, made: () => void): Promise<void> {
  try {
    await session.send(event);
    made();
  } catch (err) {
    if (err instanceof EventRejectedError) made();
    throw err;
  }
}

/** The example workload for these applications: the first of them that has one; undefined for others. */
export function exampleWorkload(applications: readonly Application[]): Workload | undefined {
  for (const app of applications) {
    if (app.name === 'ledger') return ledgerWorkload();
    if (app.name === 'whiteboard') return whiteboardWorkload();
  }
  return undefined;
}
