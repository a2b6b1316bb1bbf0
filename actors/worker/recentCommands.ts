/**
 * A session's memory of the command ids it committed, for the de-duplication
 * window (protocol/dedup.ts): each id with the seq it got and when. An id is
 * known until the window has passed since it was committed, then forgotten;
 * at most DEDUP_MAX_IDS are kept, the oldest going first. Snapshots carry
 * it, and activation rebuilds the rest from the journal after the snapshot,
 * so a retry is recognised across passivation and failover alike.
 */
import { DEDUP_MAX_IDS, DEDUP_WINDOW_MS } from '../../protocol/dedup.js';

/** One remembered id as stored in a snapshot: `[cmdId, seq, time]` (time in ms on the runtime's clock). */
export type RecentCommand = readonly [cmdId: string, seq: number, time: number];

/** Up to this many ids are looked up by scanning; past it a Map indexes them (a Map costs an idle session ~200 B). */
const SCAN_LIMIT = 8;

/** Slots per id in the flat list: cmdId, seq, time. */
const STRIDE = 3;

export class RecentCommands {
  /**
   * `[cmdId, seq, time, cmdId, seq, time, ...]` in commit order, oldest
   * first, in one flat list (an idle session with one id holds one small
   * array, not a list of lists); ids before `#head` are gone, and an id
   * taken out of the middle leaves an empty one (never a command's).
   */
  #flat: (string | number)[] = [];
  #head = 0;
  /** Slot of each live id in #flat, made only once a session holds more than SCAN_LIMIT ids. */
  #index: Map<string, number> | undefined;
  #live = 0;

  constructor(entries: Iterable<RecentCommand> = []) {
    for (const [cmdId, seq, time] of entries) this.remember(cmdId, seq, time);
  }

  remember(cmdId: string, seq: number, time: number): void {
    const at = this.#find(cmdId);
    if (at !== undefined) this.#drop(at);
    // The first one in a list of its own size: a session with one command keeps three slots, not a list grown for more.
    if (this.#flat.length === 0) this.#flat = [cmdId, seq, time];
    else this.#flat.push(cmdId, seq, time);
    this.#live++;
    this.#index?.set(cmdId, this.#flat.length - STRIDE);
    if (this.#live > DEDUP_MAX_IDS) this.#dropOldest();
    if (this.#index === undefined && this.#live > SCAN_LIMIT) this.#reindex();
  }

  /** The seq `cmdId` got, while it is inside the window at `now`. */
  seqOf(cmdId: string, now: number): number | undefined {
    this.#expire(now);
    const at = this.#find(cmdId);
    if (at === undefined) return undefined;
    return now - (this.#flat[at + 2] as number) >= DEDUP_WINDOW_MS ? undefined : (this.#flat[at + 1] as number);
  }

  /** What a snapshot taken at `now` carries: every id still inside the window, oldest first. */
  entries(now: number): RecentCommand[] {
    this.#expire(now);
    const out: RecentCommand[] = [];
    for (let i = this.#head; i < this.#flat.length; i += STRIDE) {
      const cmdId = this.#flat[i] as string;
      if (cmdId !== '') out.push([cmdId, this.#flat[i + 1] as number, this.#flat[i + 2] as number]);
    }
    return out;
  }

  get size(): number {
    return this.#live;
  }

  #find(cmdId: string): number | undefined {
    if (this.#index !== undefined) return this.#index.get(cmdId);
    for (let i = this.#flat.length - STRIDE; i >= this.#head; i -= STRIDE) if (this.#flat[i] === cmdId) return i;
    return undefined;
  }

  #drop(at: number): void {
    this.#index?.delete(this.#flat[at] as string);
    this.#flat[at] = '';
    this.#live--;
    this.#skipHoles();
  }

  #dropOldest(): void {
    this.#skipHoles();
    if (this.#head >= this.#flat.length) return;
    this.#index?.delete(this.#flat[this.#head] as string);
    this.#head += STRIDE;
    this.#live--;
    this.#skipHoles();
  }

  #skipHoles(): void {
    while (this.#head < this.#flat.length && this.#flat[this.#head] === '') this.#head += STRIDE;
    // Compacted once the dead front outweighs the live part.
    if (this.#head > 32 * STRIDE && this.#head * 2 > this.#flat.length) {
      const kept: (string | number)[] = [];
      for (let i = this.#head; i < this.#flat.length; i += STRIDE)
        if (this.#flat[i] !== '') kept.push(this.#flat[i]!, this.#flat[i + 1]!, this.#flat[i + 2]!);
      this.#flat = kept;
      this.#head = 0;
      if (this.#index !== undefined) this.#reindex();
    }
  }

  #reindex(): void {
    this.#index = new Map();
    for (let i = this.#head; i < this.#flat.length; i += STRIDE) {
      const id = this.#flat[i] as string;
      if (id !== '') this.#index.set(id, i);
    }
  }

  #expire(now: number): void {
    for (;;) {
      this.#skipHoles();
      if (this.#head >= this.#flat.length || now - (this.#flat[this.#head + 2] as number) < DEDUP_WINDOW_MS) return;
      this.#dropOldest();
    }
  }
}

/**
 * The ids a stored snapshot carries, read as untrusted: entries that are not
 * `[text, whole seq, time]` are skipped (they cost only de-duplication,
 * which the journal still does inside its window). An entry of an older
 * snapshot without a time, or with one after `loadedAt`, is taken as
 * committed at `loadedAt`.
 */
export function parseRecent(stored: unknown, loadedAt: number): RecentCommand[] {
  if (!Array.isArray(stored)) return [];
  const out: RecentCommand[] = [];
  for (const e of stored.slice(-DEDUP_MAX_IDS)) {
    if (!Array.isArray(e)) continue;
    const [cmdId, seq, time] = e as unknown[];
    if (typeof cmdId !== 'string' || cmdId.length === 0) continue;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) continue;
    if (time !== undefined && (typeof time !== 'number' || !Number.isFinite(time))) continue;
    // A time ahead of the clock would keep the id past its window: it counts as committed now.
    out.push([cmdId, seq, Math.min(time ?? loadedAt, loadedAt)]);
  }
  return out;
}
