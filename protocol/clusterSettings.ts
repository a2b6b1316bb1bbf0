/**
 * Settings fixed for a cluster's life, recorded once in its cluster bucket
 * so that every worker and client agrees on them. The shard count decides
 * where every session lives: a process configured with another one would
 * send commands to shards nobody serves for them, and journal them where a
 * restart never looks.
 */
import { CohortError, KeyExistsError } from '../bus/errors.js';
import type { KvStore } from '../bus/types.js';
import { SHARD_COUNT_KEY } from './names.js';

/** This process is configured with another shard count than the cluster was created with. */
export class ShardCountMismatchError extends CohortError {
  constructor(
    readonly cluster: string,
    readonly configured: number,
    readonly recorded: number,
  ) {
    super(
      `cluster ${cluster} has ${recorded} shards (recorded when it was created); this process is configured with ${configured}: set shardCount to ${recorded}`,
    );
  }
}

/** The recorded value is not a shard count: nothing can be placed until someone who may fixes it. */
export class CorruptClusterSettingError extends CohortError {
  constructor(
    readonly cluster: string,
    readonly key: string,
    readonly text: string,
  ) {
    super(
      `cluster ${cluster}: the value at ${key} in its cluster bucket is not a shard count: ${JSON.stringify(text)}`,
    );
  }
}

/** The shard count the cluster was created with, or undefined before any worker recorded it. */
export async function recordedShardCount(kv: KvStore, cluster: string): Promise<number | undefined> {
  const entry = await kv.get(SHARD_COUNT_KEY);
  if (entry === null || entry.operation !== 'PUT') return undefined;
  const text = new TextDecoder().decode(entry.value);
  const count = /^[1-9][0-9]{0,6}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(count)) throw new CorruptClusterSettingError(cluster, SHARD_COUNT_KEY, text);
  return count;
}

/** Records `configured` as the cluster's shard count the first time; after that, refuses any other. */
export async function agreeShardCount(kv: KvStore, cluster: string, configured: number): Promise<void> {
  for (;;) {
    const recorded = await recordedShardCount(kv, cluster);
    if (recorded !== undefined) {
      if (recorded !== configured) throw new ShardCountMismatchError(cluster, configured, recorded);
      return;
    }
    try {
      await kv.create(SHARD_COUNT_KEY, new TextEncoder().encode(String(configured)));
      return;
    } catch (err) {
      if (!(err instanceof KeyExistsError)) throw err;
      // Another worker recorded it first: read what it wrote.
    }
  }
}
