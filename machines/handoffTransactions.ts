/**
 * Transactions across a planned hand-off of their shard: the decisions the
 * old primary's host carries out while it lets the shard go.
 *
 * An open transaction's lock and working copy live only in its primary's
 * memory. Two ways keep it through a planned move: hand the lock and the
 * working events over with the shard, or let the release of the shard wait
 * (bounded) until the transactions open on it have committed or rolled
 * back. We wait. Handing over would mean a second, unjournaled state
 * travelling beside the journal: the working events would have to reach
 * the new primary intact and exactly once, the lease be re-armed there,
 * and a step in flight during the move be answered by exactly one of the
 * two; and a lock that survives a move would also have to survive a move
 * that is not planned, which it cannot. Waiting needs none of that: a
 * commit during the wait is an ordinary journaled commit, which the next
 * primary's copy follows like any other. Transactions are short (ECP's
 * and ZEO's are), so a wait of about a session timeout lets nearly all of
 * them finish, and one that does not is rolled back with a typed reason
 * its client hears on its next step, as after a crash. Meanwhile only the
 * begin of a new transaction on the shard is refused, retryably (the
 * client tries again and reaches the next primary), so nothing new
 * prolongs the wait; every other request is served as before.
 */

/** The steps of the transaction protocol (protocol/messages.ts TxRequest). */
export type TxOp = 'begin' | 'send' | 'read' | 'commit' | 'abort';

/**
 * Whether a transaction step is taken on a shard being handed off. Only a
 * begin that would open a new transaction is refused (retryable); a begin
 * retried for a transaction already open here is answered as before, and
 * every other step goes on, so open transactions can finish.
 */
export function admittedWhileHandingOff(op: TxOp, opensNew: boolean): boolean {
  return op !== 'begin' || !opensNew;
}

/** What the old primary does next about the transactions open on shards it is letting go. */
export type HandoffStep =
  /** None open: the shards are released now. */
  | { readonly do: 'release' }
  /** Some open and time left: wait until one ends, or until `until` at the latest. */
  | { readonly do: 'wait'; readonly until: number }
  /** The bound is reached: these are rolled back ('failover'), then the shards are released. */
  | { readonly do: 'roll-back'; readonly txIds: readonly string[] };

export interface HandoffFacts {
  /** The ids of the transactions still open on the shards being let go. */
  readonly open: readonly string[];
  /** When the hand-off began waiting. */
  readonly since: number;
  /** How long it may wait in all (handoffTransactionWait). */
  readonly bound: number;
  readonly now: number;
}

/**
 * The wait's one rule: it ends when nothing is open, or at `since + bound`
 * whatever the transactions do (a step taken does not extend it, so a
 * client that keeps its transaction busy cannot hold a shard back).
 */
export function handoffStep({ open, since, bound, now }: HandoffFacts): HandoffStep {
  if (open.length === 0) return { do: 'release' };
  const until = since + bound;
  if (now >= until) return { do: 'roll-back', txIds: [...open] };
  return { do: 'wait', until };
}

/**
 * The default bound: one session timeout. Long enough for a transaction
 * that is under way to commit; no longer than the cluster already accepts
 * a shard going unserved when its primary dies, and well inside the time a
 * leaving worker is given to hand all its shards off.
 */
export function defaultHandoffTransactionWait(sessionTimeout: number): number {
  return sessionTimeout;
}
