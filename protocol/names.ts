/**
 * Where cohort keeps things, named once: the buckets and stream of a
 * cluster, and the keys inside them. Each name is what `nats kv ls` and
 * `nats stream ls` show.
 */
import { escapeToken, unescapeToken } from '../bus/subjects.js';

export { journalStreamName } from '../bus/subjects.js';

export type BucketKind = 'cluster' | 'snapshots' | 'blobs' | 'replies' | 'timers' | 'counters';

/**
 * `cohort_<cluster>_<kind>`: cluster (the view), snapshots (sessions at
 * rest), blobs (snapshots too large for a KV value), replies (claim-checked
 * replies, expiring), timers (the wake-up index), counters (high-water marks).
 */
export function bucketName(cluster: string, kind: BucketKind): string {
  return `cohort_${cluster}_${kind}`;
}

const WHAT: Record<BucketKind | 'journal', string> = {
  journal: 'session journal (events of each command, epoch markers)',
  cluster: 'cluster view (JSON) and shard count',
  snapshots: 'session snapshots',
  blobs: 'session snapshots too large for a kv value',
  replies: 'claim-checked replies (expire)',
  timers: 'timer index (when each sleeping session is woken)',
  counters: 'counters (decimal text)',
};

/** What `nats stream info` / `nats kv status` say a store of the cluster is, given where it is made. */
export function storeDescription(cluster: string, kind: BucketKind | 'journal'): string {
  return `cohort ${cluster}: ${WHAT[kind]}`;
}

/**
 * How long a claim-checked reply is kept in the replies bucket. Its client
 * fetches and deletes it at once; one never fetched (the client died, or
 * stopped waiting) expires after this, instead of staying for good.
 */
export const REPLY_BLOB_MAX_AGE_MS = 600_000;

/** The cluster bucket's view: written only by the leader, with compare-and-set on its revision. */
export const VIEW_KEY = 'view';

/** The cluster bucket's shard count (decimal text): recorded by the first worker, fixed for the cluster's life. */
export const SHARD_COUNT_KEY = 'shards';

/** A session's key among a worker's sessions and in the snapshots bucket: `<app>.<escaped id>`. */
export function sessionKey(app: string, id: string): string {
  return `${app}.${escapeToken(id)}`;
}

/** A session's key in the timers bucket: `<shard>.<app>.<escaped id>`, so a worker lists its own shards' wake-ups. */
export function timerKey(shard: number, app: string, id: string): string {
  return `${shard}.${sessionKey(app, id)}`;
}

/** The parts of a timer key, or undefined for a key that is not one (written by someone else). */
export function parseTimerKey(key: string): { shard: number; app: string; id: string } | undefined {
  const [shardText, app, token, extra] = key.split('.');
  const shard = Number(shardText);
  if (!Number.isSafeInteger(shard) || shard < 0 || !app || !token || extra !== undefined) return undefined;
  try {
    return { shard, app, id: unescapeToken(token) };
  } catch {
    return undefined;
  }
}
