/**
 * Control messages: failover requests to the leader on
 * `cohort.<cluster>.ctl.failover`, and notices to one client on
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
