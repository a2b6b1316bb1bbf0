import type { Logger } from 'pino';
import type { Clock } from '../../bus/clock.js';
import { handoffStep } from '../../machines/handoffTransactions.js';
import type { HostedSession } from './session.js';

export interface HandoffWaitDeps {
  readonly clock: Clock;
  readonly log: Logger;
  /** How long the wait may last in all (WorkerOptions.handoffTransactionWait). */
  readonly bound: number;
  /** The sessions of `shards` a transaction holds the lock of now. */
  holding(shards: ReadonlySet<number>): HostedSession[];
  /** Rolls back `txId` on `session` if it is still open there ('failover'); in the session's mailbox. */
  rollBack(session: HostedSession, txId: string): Promise<boolean>;
}

/** What the wait came to: transactions that ended by themselves (commit, abort, lease) and those rolled back at the bound. */
export interface HandoffWaitOutcome {
  readonly ended: number;
  readonly rolledBack: number;
}

/**
 * Before a planned hand-off lets `shards` go: waits, up to the bound, for
 * the transactions open on them to commit or roll back, and rolls back any
 * still open then. The shards are still served meanwhile, and new begins on
 * them are refused (Transactions), so the wait only shrinks. The decisions
 * (and why we wait rather than hand the locks over) are in
 * machines/handoffTransactions.ts; this carries them out.
 */
export async function awaitTransactions(
  deps: HandoffWaitDeps,
  shards: ReadonlySet<number>,
): Promise<HandoffWaitOutcome> {
  const { clock, log, bound } = deps;
  const since = clock.now();
  const waited = deps.holding(shards).length;
  if (waited > 0)
    log.info({ shards: [...shards], transactions: waited, boundMs: bound }, 'hand-off waits for open transactions');
  for (;;) {
    const sessions = deps.holding(shards);
    const open = sessions.map((s) => s.openTransaction!.txId);
    const step = handoffStep({ open, since, bound, now: clock.now() });
    if (step.do === 'release') {
      if (waited > 0)
        log.info({ shards: [...shards], waitedMs: clock.now() - since }, 'hand-off: open transactions ended');
      return { ended: waited, rolledBack: 0 };
    }
    if (step.do === 'roll-back') {
      log.warn(
        { shards: [...shards], transactions: step.txIds, boundMs: bound },
        'hand-off: transactions still open at the bound rolled back (failover)',
      );
      const done = await Promise.all(sessions.map((s, i) => deps.rollBack(s, open[i]!)));
      // Any left now (none: no begin is taken meanwhile) are dropped with their session as it passivates.
      const rolledBack = done.filter(Boolean).length;
      return { ended: waited - rolledBack, rolledBack };
    }
    await new Promise<void>((resolve) => {
      const timer = clock.setTimeout(resolve, step.until - clock.now());
      void Promise.race(sessions.map((s) => s.whenUnlocked())).then(() => {
        clock.clearTimeout(timer);
        resolve();
      });
    });
  }
}
