/**
 * Control messages: failover requests to the leader on
 * `cohort.<cluster>.ctl.failover`, resets of the failover quota on
 * `cohort.<cluster>.ctl.reset-failover`, rebalances on
 * `cohort.<cluster>.ctl.rebalance`, and notices to one client on
 * `cohort.<cluster>.client.<client>`.
 */
import { decode, encode } from '../bus/codec.js';
import { CohortError } from '../bus/errors.js';
import { controlSubject } from '../bus/subjects.js';
import type { Bus } from '../bus/types.js';

/** The leader would not carry out a failover, and says why (not a member, not promotable, ...). */
export class FailoverRefusedError extends CohortError {
  constructor(
    readonly shard: number,
    readonly to: string,
    readonly reason: string,
  ) {
    super(`failover of shard ${shard} to ${to} refused: ${reason}`);
  }
}

export interface FailoverRequest {
  readonly shard: number;
  readonly to: string;
  /** Promote even a copy that is not synchronized; the view records possible data loss. */
  readonly force?: boolean;
}

/** The leader's answer on `cohort.<cluster>.ctl.failover`. */
export interface FailoverReply {
  readonly ok: boolean;
  readonly reason: string;
  readonly leader: string;
}

/** The leader would not reset the failover quota (not the leader, no view yet, a malformed request), or its answer was unreadable. */
export class ResetFailoverRefusedError extends CohortError {
  constructor(readonly reason: string) {
    super(`failover reset refused: ${reason}`);
  }
}

/** An operator's reset of the failover quota: the only request there is, for now, says what it resets. */
export interface ResetFailoverRequest {
  readonly reset: 'quota';
}

/** The leader's answer on `cohort.<cluster>.ctl.reset-failover`: `changed` is false when there was nothing to reset. */
export interface ResetFailoverReply extends FailoverReply {
  readonly changed: boolean;
}

/** The leader would not rebalance (not the leader, no view yet, a malformed request), or its answer was unreadable. */
export class RebalanceRefusedError extends CohortError {
  constructor(readonly reason: string) {
    super(`rebalance refused: ${reason}`);
  }
}

/** An operator's rebalance on `cohort.<cluster>.ctl.rebalance`: exactly `{ rebalance: 'now' }`. */
export interface RebalanceRequest {
  readonly rebalance: 'now';
}

/** What a worker tells a client on `cohort.<cluster>.client.<client>`: it was disconnected by force (ECP ChangeToNotConnected). */
export interface ClientNotice {
  readonly type: 'disconnected';
  readonly by: string;
  readonly reason: string;
}

export function isFailoverRequest(x: unknown): x is FailoverRequest {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    Number.isInteger(r['shard']) &&
    typeof r['to'] === 'string' &&
    (r['force'] === undefined || typeof r['force'] === 'boolean')
  );
}

/** Exactly `{ reset: 'quota' }`: anything else, extra fields too, is refused as malformed. */
export function isResetFailoverRequest(x: unknown): x is ResetFailoverRequest {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const keys = Object.keys(x);
  return keys.length === 1 && keys[0] === 'reset' && (x as Record<string, unknown>)['reset'] === 'quota';
}

/** Exactly `{ rebalance: 'now' }`: anything else, extra fields too, is refused as malformed. */
export function isRebalanceRequest(x: unknown): x is RebalanceRequest {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const keys = Object.keys(x);
  return keys.length === 1 && keys[0] === 'rebalance' && (x as Record<string, unknown>)['rebalance'] === 'now';
}

/** A notice off the wire, or undefined for anything else (ignored by the client). */
export function parseClientNotice(x: unknown): ClientNotice | undefined {
  if (typeof x !== 'object' || x === null) return undefined;
  const n = x as Record<string, unknown>;
  if (n['type'] !== 'disconnected') return undefined;
  return { type: 'disconnected', by: String(n['by']), reason: String(n['reason']) };
}

/**
 * Asks the leader to fail `shard` over to `to` (planned swap, or forced).
 * Resolves once the leader accepted it (the next view carries it); the
 * shard then hands off like any other move.
 */
export async function requestFailover(
  bus: Bus,
  cluster: string,
  request: FailoverRequest,
  timeout = 5_000,
): Promise<{ leader: string }> {
  const m = await bus.request(
    controlSubject(cluster, 'failover'),
    encode({ shard: request.shard, to: request.to, force: request.force === true }),
    {
      timeout,
    },
  );
  const reply = decode(m.data, { where: 'failover reply' }) as FailoverReply;
  if (!reply.ok) throw new FailoverRefusedError(request.shard, request.to, reply.reason);
  return { leader: reply.leader };
}

/**
 * Asks the leader to reset the failover quota: members dropped for silence
 * are no longer counted, and automatic failover runs again if it was
 * halted. Resolves once the leader accepted it (`changed`: the next view
 * carries it); throws ResetFailoverRefusedError when it refused, or when
 * what answered is not a reply.
 */
export async function requestFailoverReset(
  bus: Bus,
  cluster: string,
  timeout = 5_000,
): Promise<{ leader: string; changed: boolean; reason: string }> {
  const request: ResetFailoverRequest = { reset: 'quota' };
  const m = await bus.request(controlSubject(cluster, 'reset-failover'), encode(request), { timeout });
  let reply: unknown;
  try {
    reply = decode(m.data, { where: 'failover reset reply' });
  } catch {
    throw new ResetFailoverRefusedError('the answer could not be decoded');
  }
  const r = (typeof reply === 'object' && reply !== null ? reply : {}) as Record<string, unknown>;
  if (typeof r['ok'] !== 'boolean' || typeof r['reason'] !== 'string' || typeof r['leader'] !== 'string')
    throw new ResetFailoverRefusedError('the answer is not a reply (needs ok, reason and leader)');
  if (!r['ok']) throw new ResetFailoverRefusedError(r['reason']);
  return { leader: r['leader'], changed: r['changed'] === true, reason: r['reason'] };
}

/**
 * Asks the leader to rebalance now: a membership the safeguards hold as
 * unstable (no moves for balance) is recorded stable, and the leader's
 * placement hands primaries off towards the balance. `changed` is false
 * when the membership was stable already (the leader rebalances by itself).
 */
export async function requestRebalance(
  bus: Bus,
  cluster: string,
  timeout = 5_000,
): Promise<{ leader: string; changed: boolean; reason: string }> {
  const request: RebalanceRequest = { rebalance: 'now' };
  const m = await bus.request(controlSubject(cluster, 'rebalance'), encode(request), { timeout });
  let reply: unknown;
  try {
    reply = decode(m.data, { where: 'rebalance reply' });
  } catch {
    throw new RebalanceRefusedError('the answer could not be decoded');
  }
  const r = (typeof reply === 'object' && reply !== null ? reply : {}) as Record<string, unknown>;
  if (typeof r['ok'] !== 'boolean' || typeof r['reason'] !== 'string' || typeof r['leader'] !== 'string')
    throw new RebalanceRefusedError('the answer is not a reply (needs ok, reason and leader)');
  if (!r['ok']) throw new RebalanceRefusedError(r['reason']);
  return { leader: r['leader'], changed: r['changed'] === true, reason: r['reason'] };
}
