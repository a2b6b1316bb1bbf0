import jsonPatch from 'fast-json-patch';
import { encode } from '../../bus/codec.js';
import type { PatchOperation } from '../../protocol/messages.js';

/** The default byte budget, as ZEO's 20 MB client cache. */
export const DEFAULT_CACHE_SIZE = 20 * 1024 * 1024;

export interface CachedDocument {
  readonly seq: number;
  readonly document: unknown;
  /** The machine's state value at `seq`. */
  readonly state: unknown;
}

export interface CachePatch {
  readonly seq: number;
  /** The seq the patch applies on top of. */
  readonly prev: number;
  readonly ops: readonly PatchOperation[];
}

/** What verification walks: which sessions are held, and at which seq. */
export interface CachedSession {
  readonly app: string;
  readonly id: string;
  readonly seq: number;
}

/**
 * - `stored`: kept, now the most recently used entry.
 * - `not-newer`: the cache already holds this seq or a later one; unchanged.
 * - `too-large`: larger than the whole budget; not kept, and any older copy is dropped.
 */
export type SetOutcome = 'stored' | 'not-newer' | 'too-large';

/**
 * - `applied`: the entry moved to the patch's seq (it may then be evicted if it outgrew the budget).
 * - `absent`: nothing held for this session.
 * - `stale`: the entry is already at the patch's seq or later.
 * - `gap`: the entry is not at `prev`; kept unchanged, for verification to heal.
 * - `failed`: the ops do not apply to the entry at `prev`, so the copy was wrong; it is dropped.
 */
export type PatchOutcome = 'applied' | 'absent' | 'stale' | 'gap' | 'failed';

interface Slot {
  readonly app: string;
  readonly id: string;
  readonly value: CachedDocument;
  readonly bytes: number;
}

/**
 * The client's cache of session documents (ZEO's client cache): each kept
 * with the sequence it reflects, so patches can be applied to it and
 * verification after a reconnect can replay the journal from there.
 *
 * An entry's size is the length of its wire encoding, measured when it is
 * stored; least recently used entries go first when the budget is passed,
 * and an entry larger than the whole budget is not kept. A pure data
 * structure: no clock, no bus.
 *
 * Documents are treated as immutable: the cache never changes one it was
 * given or handed out (a patch is applied to a copy), and callers must not
 * change what they store or get either.
 */
export class DocumentCache {
  /** The byte budget. */
  readonly cacheSize: number;
  // Map iteration order is the recency order: least recently used first.
  readonly #slots = new Map<string, Slot>();
  #bytes = 0;

  constructor(options: { cacheSize?: number } = {}) {
    const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (typeof cacheSize !== 'number') throw new TypeError(`cacheSize must be a number, got ${typeof cacheSize}`);
    if (!Number.isSafeInteger(cacheSize) || cacheSize < 0)
      throw new RangeError(`cacheSize must be a non-negative safe integer, got ${cacheSize}`);
    this.cacheSize = cacheSize;
  }

  /** Entries held. */
  get size(): number {
    return this.#slots.size;
  }

  /** Sum of the entries' encoded sizes; never above cacheSize. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The entry, marked most recently used. */
  get(app: string, id: string): CachedDocument | undefined {
    const key = keyOf(app, id);
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    this.#slots.delete(key);
    this.#slots.set(key, slot);
    return slot.value;
  }

  /** The entry, leaving its recency alone. */
  peek(app: string, id: string): CachedDocument | undefined {
    return this.#slots.get(keyOf(app, id))?.value;
  }

  /**
   * Keeps a copy read from the server. An older seq never replaces a newer
   * one, since reads and patches race; `force` does (verification found the
   * cache ahead of the server). Throws EncodeError for a value outside the codec's model.
   */
  set(app: string, id: string, entry: CachedDocument, options: { force?: boolean } = {}): SetOutcome {
    checkSeq('seq', entry.seq);
    const key = keyOf(app, id);
    const held = this.#slots.get(key);
    if (held !== undefined && held.value.seq >= entry.seq && !options.force) return 'not-newer';
    const value: CachedDocument = Object.freeze({ seq: entry.seq, document: entry.document, state: entry.state });
    const bytes = sizeOf(value);
    if (held !== undefined) this.#remove(key, held);
    if (bytes > this.cacheSize) return 'too-large';
    this.#slots.set(key, { app, id, value, bytes });
    this.#bytes += bytes;
    this.#evict();
    return 'stored';
  }

  /** Applies a patch only on top of exactly the seq it was made from. Recency is unchanged: a patch is not a use. */
  applyPatch(app: string, id: string, patch: CachePatch): PatchOutcome {
    checkSeq('seq', patch.seq);
    checkSeq('prev', patch.prev);
    const key = keyOf(app, id);
    const held = this.#slots.get(key);
    if (held === undefined) return 'absent';
    if (held.value.seq >= patch.seq) return 'stale';
    if (held.value.seq !== patch.prev) return 'gap';
    let value: CachedDocument;
    let bytes: number;
    try {
      // Copy on write: the held document may be in a caller's hands. The ops
      // are copied too, so the new document shares nothing with the message.
      const [copy, ops] = structuredClone([held.value.document, patch.ops] as const);
      const document = jsonPatch.applyPatch(copy, ops as jsonPatch.Operation[], true, true).newDocument;
      value = Object.freeze({ seq: patch.seq, document, state: held.value.state });
      bytes = sizeOf(value);
    } catch {
      this.#remove(key, held);
      return 'failed';
    }
    // Map.set on a present key keeps its place in the recency order.
    this.#slots.set(key, { app, id, value, bytes });
    this.#bytes += bytes - held.bytes;
    if (bytes > this.cacheSize) this.#remove(key, this.#slots.get(key)!);
    this.#evict();
    return 'applied';
  }

  /** True when something was held. */
  delete(app: string, id: string): boolean {
    const key = keyOf(app, id);
    const held = this.#slots.get(key);
    if (held === undefined) return false;
    this.#remove(key, held);
    return true;
  }

  /** Least recently used first. */
  entries(): CachedSession[] {
    return [...this.#slots.values()].map(({ app, id, value }) => ({ app, id, seq: value.seq }));
  }

  clear(): void {
    this.#slots.clear();
    this.#bytes = 0;
  }

  #remove(key: string, slot: Slot): void {
    this.#slots.delete(key);
    this.#bytes -= slot.bytes;
  }

  #evict(): void {
    for (const [key, slot] of this.#slots) {
      if (this.#bytes <= this.cacheSize) return;
      this.#remove(key, slot);
    }
  }
}

/** The session key `${app}/${id}`; app names hold no `/`, but a length prefix keeps any pair apart. */
function keyOf(app: string, id: string): string {
  if (typeof app !== 'string' || typeof id !== 'string') throw new TypeError('app and id must be strings');
  return `${app.length}:${app}/${id}`;
}

function sizeOf(value: CachedDocument): number {
  return encode(value, { where: 'cached document' }).byteLength;
}

function checkSeq(what: string, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0)
    throw new RangeError(`${what} must be a non-negative safe integer, got ${seq}`);
}
