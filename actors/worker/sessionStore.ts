import { claimCheckReference, encodeBody, fetchClaimChecked } from '../../bus/claimCheck.js';
import { decode } from '../../bus/codec.js';
import { DecodeError } from '../../bus/errors.js';
import type { BlobStore, KvStore } from '../../bus/types.js';
import type { PersistedSession } from '../../machines/session.js';
import { sessionKey } from '../../protocol/names.js';
import type { RecentCommand } from './recentCommands.js';

/** A snapshot as stored: the session, and the journal's stream sequence it reflects. */
export interface StoredSnapshot {
  readonly session: PersistedSession;
  readonly journalSeq: number;
  /**
   * The command ids committed inside the de-duplication window, with the seq
   * each got and when (`[cmdId, seq, time]`), so a retry after reactivation
   * is still recognised. Read back untrusted (recentCommands.ts parseRecent).
   */
  readonly recent?: readonly RecentCommand[];
}

interface Envelope {
  v: 1;
  snapshot: StoredSnapshot;
}

/** Room left in a KV message for its subject and headers. */
const KV_OVERHEAD = 1024;

export interface SessionStoreOptions {
  /** The snapshots bucket, keyed by `sessionKey`. */
  readonly kv: KvStore;
  /** Where a snapshot too large for a message goes. */
  readonly blobs: BlobStore;
  /** The server's largest message. */
  readonly maxPayload: number;
}

/**
 * Session snapshots in a KV bucket; one too large for a message goes to the
 * blob store by the same claim-check as a large reply, and the KV value is
 * its reference body.
 */
export class SessionStore {
  readonly kv: KvStore;
  readonly blobs: BlobStore;
  readonly maxPayload: number;

  constructor({ kv, blobs, maxPayload }: SessionStoreOptions) {
    this.kv = kv;
    this.blobs = blobs;
    this.maxPayload = maxPayload;
  }

  async load(app: string, id: string): Promise<StoredSnapshot | null> {
    const key = sessionKey(app, id);
    const entry = await this.kv.get(key);
    if (entry === null) return null;
    const where = `snapshot ${key}`;
    let body = decode(entry.value, { where });
    const blob = claimCheckReference(body);
    if (blob !== undefined) body = await fetchClaimChecked(this.blobs, blob, { where });
    const env = body as Partial<Envelope> | null;
    if (env?.v !== 1 || typeof env.snapshot !== 'object' || env.snapshot === null)
      throw new DecodeError(where, 'not a snapshot envelope');
    return env.snapshot;
  }

  /** The blob of a large snapshot is named for the key and the journal sequence, so a rewrite of the same one lands on itself. */
  async save(app: string, id: string, snapshot: StoredSnapshot): Promise<void> {
    const key = sessionKey(app, id);
    const body = await encodeBody({ v: 1, snapshot } satisfies Envelope, {
      maxBytes: this.maxPayload - KV_OVERHEAD,
      blobs: this.blobs,
      allowClaimCheck: true,
      newId: () => `${key}.${snapshot.journalSeq}`,
      where: `snapshot ${key}`,
    });
    await this.kv.put(key, body.data);
  }
}
