import { claimCheckOf, claimCheckReference, encodeBody } from '../../bus/claimCheck.js';
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
  /**
   * The stream sequence of the oldest multi-session transaction's record on
   * this session's subject whose other sessions may still need it (their
   * snapshots not yet past their intents): compaction keeps it and what
   * follows (txJournal.ts).
   */
  readonly keep?: number;
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

/** Reads of a snapshot that met its blob deleted by a newer snapshot are tried again this many times in all. */
const ATTEMPTS = 3;
/** Keys whose blob is remembered; past this the memory is cleared (and the store asked again). */
const KNOWN_LIMIT = 8_192;

/**
 * Session snapshots in a KV bucket; one too large for a message goes to the
 * blob store by the same claim-check as a large reply, and the KV value is
 * its reference body. A snapshot that replaces a claim-checked one deletes
 * the old blob once the new value is stored; a reader that finds its blob
 * gone reads the newer snapshot instead.
 */
export class SessionStore {
  readonly kv: KvStore;
  readonly blobs: BlobStore;
  readonly maxPayload: number;
  /**
   * Per key, the blob its stored snapshot is in (null: inline), as this
   * worker last read or wrote it: a worker writes a session's snapshot only
   * while it holds the session, which it loaded. Unknown: asked of the store.
   */
  readonly #blobOf = new Map<string, string | null>();

  constructor({ kv, blobs, maxPayload }: SessionStoreOptions) {
    this.kv = kv;
    this.blobs = blobs;
    this.maxPayload = maxPayload;
  }

  async load(app: string, id: string): Promise<StoredSnapshot | null> {
    const key = sessionKey(app, id);
    const where = `snapshot ${key}`;
    let entry = await this.kv.get(key);
    for (let attempt = 1; ; attempt++) {
      if (entry === null) {
        this.#know(key, null);
        return null;
      }
      let body = decode(entry.value, { where });
      const blob = claimCheckReference(body);
      if (blob !== undefined) {
        const bytes = await this.blobs.get(blob);
        if (bytes === null) {
          // Replaced meanwhile, and the old blob deleted: the newer snapshot is the one to read.
          const newer = await this.kv.get(key);
          if (attempt < ATTEMPTS && newer?.revision !== entry.revision) {
            entry = newer;
            continue;
          }
          throw new DecodeError(
            where,
            `claim-checked blob ${JSON.stringify(blob)} not found in bucket ${this.blobs.bucket}`,
          );
        }
        body = decode(bytes, { where: `${where} (claim-checked blob ${JSON.stringify(blob)})` });
      }
      const env = body as Partial<Envelope> | null;
      if (env?.v !== 1 || typeof env.snapshot !== 'object' || env.snapshot === null)
        throw new DecodeError(where, 'not a snapshot envelope');
      this.#know(key, blob ?? null);
      return env.snapshot;
    }
  }

  /**
   * The blob of a large snapshot is named for the key and the journal
   * sequence, so a rewrite of the same one lands on itself. The blob of the
   * snapshot it replaces is deleted only after the new one is stored.
   */
  async save(app: string, id: string, snapshot: StoredSnapshot): Promise<void> {
    const key = sessionKey(app, id);
    const previous = this.#blobOf.has(key) ? this.#blobOf.get(key)! : await this.#storedBlob(key);
    const body = await encodeBody({ v: 1, snapshot } satisfies Envelope, {
      maxBytes: this.maxPayload - KV_OVERHEAD,
      blobs: this.blobs,
      allowClaimCheck: true,
      newId: () => `${key}.${snapshot.journalSeq}`,
      where: `snapshot ${key}`,
    });
    await this.kv.put(key, body.data);
    const blob = claimCheckOf(body.headers) ?? null;
    this.#know(key, blob);
    // A leftover blob costs only space: a failed delete is not the save's failure.
    if (previous !== null && previous !== blob) await this.blobs.delete(previous).catch(() => false);
  }

  /** The blob the stored snapshot of `key` is in, read from the store; null when none (or unreadable). */
  async #storedBlob(key: string): Promise<string | null> {
    try {
      const entry = await this.kv.get(key);
      return entry === null ? null : (claimCheckReference(decode(entry.value, { where: `snapshot ${key}` })) ?? null);
    } catch {
      return null;
    }
  }

  #know(key: string, blob: string | null): void {
    if (this.#blobOf.size >= KNOWN_LIMIT && !this.#blobOf.has(key)) this.#blobOf.clear();
    this.#blobOf.set(key, blob);
  }
}
