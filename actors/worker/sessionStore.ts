import { decode, encode } from '../../bus/codec.js';
import { DecodeError } from '../../bus/errors.js';
import type { BlobStore, KvStore } from '../../bus/types.js';
import type { PersistedSession } from '../../machines/session.js';
import { sessionKey } from '../../protocol/names.js';

/** A snapshot as stored: the session, and the journal's stream sequence it reflects. */
export interface StoredSnapshot {
  readonly session: PersistedSession;
  readonly journalSeq: number;
  /** The latest command ids and the seq each got, so a retry after reactivation is still recognised. */
  readonly recent?: readonly (readonly [string, number])[];
}

interface Envelope {
  v: 1;
  snapshot?: StoredSnapshot;
  /** Claim-check: the snapshot is in the blob store under this name. */
  blob?: string;
}

/** Room left in a KV message for its subject and headers. */
const KV_OVERHEAD = 1024;

/**
 * Session snapshots in a KV bucket; one too large for a message goes to the
 * blob store and the KV entry points at it.
 */
export interface SessionStoreOptions {
  /** The snapshots bucket, keyed by `sessionKey`. */
  readonly kv: KvStore;
  /** Where a snapshot too large for a message goes. */
  readonly blobs: BlobStore;
  /** The server's largest message. */
  readonly maxPayload: number;
}

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
    const env = decode(entry.value, { where: `snapshot ${key}` }) as Envelope;
    if (env.snapshot) return env.snapshot;
    if (env.blob) {
      const data = await this.blobs.get(env.blob);
      if (data === null) throw new DecodeError(`snapshot ${key}`, `blob ${env.blob} is missing`);
      return decode(data, { where: `snapshot blob ${env.blob}` }) as StoredSnapshot;
    }
    throw new DecodeError(`snapshot ${key}`, 'neither a snapshot nor a blob reference');
  }

  async save(app: string, id: string, snapshot: StoredSnapshot): Promise<void> {
    const key = sessionKey(app, id);
    const inline = encode({ v: 1, snapshot } satisfies Envelope);
    if (inline.length <= this.maxPayload - KV_OVERHEAD) {
      await this.kv.put(key, inline);
      return;
    }
    const blob = `${key}.${snapshot.journalSeq}`;
    await this.blobs.put(blob, encode(snapshot));
    await this.kv.put(key, encode({ v: 1, blob } satisfies Envelope));
  }
}
