/** Shards per cluster unless configured; fixed for a cluster's life. */
export const DEFAULT_SHARD_COUNT = 256;

/**
 * Which shard a session lives on: FNV-1a (32-bit) of app and id, so every
 * process, in any language, computes the same answer without a lookup.
 */
export function shardOf(app: string, id: string, shardCount = DEFAULT_SHARD_COUNT): number {
  let h = 0x811c9dc5;
  const key = `${app}\u0000${id}`;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shardCount;
}
