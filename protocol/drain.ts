/**
 * An operator's drain of one worker, on `cohort.<cluster>.ctl.drain.<worker>`:
 * addressed to the worker itself, which leaves the cluster exactly as on
 * SIGTERM (the leader hands every shard it holds to the others, then drops
 * it from the view) and stops. Only that worker subscribes to its subject;
 * the body must name the same worker, so a request sent to the wrong
 * subject, or forged, is refused rather than acted on.
 */
import { decode, encode } from '../bus/codec.js';
import { CohortError } from '../bus/errors.js';
import { controlSubject, escapeToken } from '../bus/subjects.js';
import type { Bus } from '../bus/types.js';

/** `cohort.<cluster>.ctl.drain.<escaped worker>` */
export function drainSubject(cluster: string, worker: string): string {
  return `${controlSubject(cluster, 'drain')}.${escapeToken(worker, 'worker')}`;
}

/** Exactly `{ drain: <worker id> }`. */
export interface DrainRequest {
  readonly drain: string;
}

/** The worker's answer: `ok` with the shards it held as primary when it began to leave, or why not. */
export interface DrainReply {
  readonly ok: boolean;
  readonly reason: string;
  readonly worker: string;
  readonly shards: number;
}

/** The worker would not drain (malformed request, the only member, already leaving), or its answer was unreadable. */
export class DrainRefusedError extends CohortError {
  constructor(
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`drain of ${worker} refused: ${reason}`);
  }
}

/** Why `body`, received by `worker`, is not a drain request for it; undefined when it is one. */
export function drainRequestProblem(body: unknown, worker: string): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array)
    return 'malformed request: needs exactly { drain: "<worker id>" }';
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'drain' || typeof (body as Record<string, unknown>)['drain'] !== 'string')
    return 'malformed request: needs exactly { drain: "<worker id>" }';
  const named = (body as Record<string, unknown>)['drain'] as string;
  if (named !== worker) return `the request names ${JSON.stringify(named)}, this is ${JSON.stringify(worker)}`;
  return undefined;
}

/** Asks `worker` to drain; resolves with how many shards it held as primary, throws DrainRefusedError when it refused. */
export async function requestDrain(
  bus: Bus,
  cluster: string,
  worker: string,
  timeout = 5_000,
): Promise<{ shards: number }> {
  const request: DrainRequest = { drain: worker };
  const m = await bus.request(drainSubject(cluster, worker), encode(request), { timeout });
  let reply: unknown;
  try {
    reply = decode(m.data, { where: 'drain reply' });
  } catch {
    throw new DrainRefusedError(worker, 'the answer could not be decoded');
  }
  const r = (typeof reply === 'object' && reply !== null ? reply : {}) as Record<string, unknown>;
  if (typeof r['ok'] !== 'boolean' || typeof r['reason'] !== 'string')
    throw new DrainRefusedError(worker, 'the answer is not a reply (needs ok and reason)');
  if (!r['ok']) throw new DrainRefusedError(worker, r['reason']);
  return { shards: typeof r['shards'] === 'number' ? r['shards'] : 0 };
}
