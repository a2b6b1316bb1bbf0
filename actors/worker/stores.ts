/**
 * Where a worker keeps things, opened (created if need be) before it
 * starts: the journal, the snapshots (large ones in the blobs bucket), the
 * replies bucket, the timer index and the counters, all with the cluster's
 * storage replicas; and the cluster's shard count, recorded by the first
 * worker and held to by every later one.
 */
import type { BlobStore, Bus, Journal, KvStore } from '../../bus/types.js';
import { journalStreamFilter } from '../../bus/subjects.js';
import { agreeShardCount } from '../../protocol/clusterSettings.js';
import { DEDUP_WINDOW_MS } from '../../protocol/dedup.js';
import { bucketName, journalStreamName, REPLY_BLOB_MAX_AGE_MS, storeDescription } from '../../protocol/names.js';
import { SessionStore } from './sessionStore.js';

export interface Stores {
  readonly journal: Journal;
  readonly snapshots: SessionStore;
  readonly timers: KvStore;
  /** Claim-checked replies: the client deletes each once fetched, and one never fetched expires. */
  readonly replies: BlobStore;
}

/** Throws ShardCountMismatchError when the cluster was created with another shard count. */
export async function openStores(
  bus: Bus,
  cluster: string,
  { replicas, shardCount }: { replicas: number; shardCount: number },
): Promise<Stores> {
  const [journal, snapshots, blobs, replies, timers] = await Promise.all([
    // Its duplicate window is how long sessions remember command ids too: retries inside it are applied once.
    bus.journal({
      name: journalStreamName(cluster),
      subjects: [journalStreamFilter(cluster)],
      duplicateWindow: DEDUP_WINDOW_MS,
      replicas,
      description: storeDescription(cluster, 'journal'),
    }),
    bus.kv({ bucket: bucketName(cluster, 'snapshots'), replicas, description: storeDescription(cluster, 'snapshots') }),
    // Snapshots live here for good (one that expires refuses to start); replies only for a while.
    bus.blobs({
      bucket: bucketName(cluster, 'blobs'),
      replicas,
      maxAge: 0,
      description: storeDescription(cluster, 'blobs'),
    }),
    bus.blobs({
      bucket: bucketName(cluster, 'replies'),
      replicas,
      maxAge: REPLY_BLOB_MAX_AGE_MS,
      description: storeDescription(cluster, 'replies'),
    }),
    bus.kv({ bucket: bucketName(cluster, 'timers'), replicas, description: storeDescription(cluster, 'timers') }),
    // Clients' counters live here: made by the worker, with the cluster's storage replicas, so
    // clients racing to create it on first use do not meet a stream that is not yet serving gets.
    bus.kv({ bucket: bucketName(cluster, 'counters'), replicas, description: storeDescription(cluster, 'counters') }),
  ]);
  await agreeShardCount(
    await bus.kv({
      bucket: bucketName(cluster, 'cluster'),
      replicas,
      description: storeDescription(cluster, 'cluster'),
    }),
    cluster,
    shardCount,
  );
  return {
    journal,
    snapshots: new SessionStore({ kv: snapshots, blobs, maxPayload: bus.server.maxPayload }),
    timers,
    replies,
  };
}
