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
const SCAN_LIMIT = 16;

export class RecentCommands {
  /** Commit order, so the oldest come first; `#head` entries at the front are gone (compacted now and then). */
  #entries: RecentCommand[] = [];
  #head = 0;
  /** Position of each live id in #entries, made only once a session holds more than SCAN_LIMIT ids. */
  #index: Map<string, number> | undefined;

  constructor(entries: Iterable<RecentCommand> = []) {
    for (const [cmdId, seq, time] of entries) this.remember(cmdId, seq, time);
  }

  remember(cmdId: string, seq: number, time: number): void {
    const at = this.#find(cmdId);
    if (at !== undefined) this.#drop(at);
    // The first one in a list of its own size: a session with one command keeps one entry, not a list grown for 17.
    if (this.#entries.length === 0) this.#entries = [[cmdId, seq, time]];
    else this.#entries.push([cmdId, seq, time]);
    this.#index?.set(cmdId, this.#entries.length - 1);
    if (this.size > DEDUP_MAX_IDS) this.#dropOldest();
    if (this.#index === undefined && this.size > SCAN_LIMIT) this.#reindex();
  }

  /** The seq `cmdId` got, while it is inside the window at `now`. */
  seqOf(cmdId: string, now: number): number | undefined {
    this.#expire(now);
    const at = this.#find(cmdId);
    if (at === undefined) return undefined;
    const [, seq, time] = this.#entries[at]!;
    return now - time >= DEDUP_WINDOW_MS ? undefined : seq;
  }

  /** What a snapshot taken at `now` carries: every id still inside the window, oldest first. */
  entries(now: number): RecentCommand[] {
    this.#expire(now);
    return this.#entries.slice(this.#head).filter((e) => e[0] !== '');
  }

  get size(): number {
    return this.#index?.size ?? this.#entries.length - this.#head - this.#holes();
  }

  #holes(): number {
    let n = 0;
    for (let i = this.#head; i < this.#entries.length; i++) if (this.#entries[i]![0] === '') n++;
    return n;
  }

  #find(cmdId: string): number | undefined {
    if (this.#index !== undefined) return this.#index.get(cmdId);
    for (let i = this.#entries.length - 1; i >= this.#head; i--) if (this.#entries[i]![0] === cmdId) return i;
    return undefined;
  }

  /** Leaves a hole (an empty id, never a command's) where an id was taken out of the middle. */
  #drop(at: number): void {
    this.#index?.delete(this.#entries[at]![0]);
    this.#entries[at] = ['', 0, 0];
    this.#skipHoles();
  }

  #dropOldest(): void {
    this.#skipHoles();
    const oldest = this.#entries[this.#head];
    if (oldest === undefined) return;
    this.#index?.delete(oldest[0]);
    this.#head++;
    this.#skipHoles();
  }

  #skipHoles(): void {
    while (this.#head < this.#entries.length && this.#entries[this.#head]![0] === '') this.#head++;
    // Compacted once the dead front outweighs the live part.
    if (this.#head > 32 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head).filter((e) => e[0] !== '');
      this.#head = 0;
      if (this.#index !== undefined) this.#reindex();
    }
  }

  #reindex(): void {
    this.#index = new Map();
    for (let i = this.#head; i < this.#entries.length; i++) {
      const id = this.#entries[i]![0];
      if (id !== '') this.#index.set(id, i);
    }
  }

  #expire(now: number): void {
    for (;;) {
      this.#skipHoles();
      const oldest = this.#entries[this.#head];
      if (oldest === undefined || now - oldest[2] < DEDUP_WINDOW_MS) return;
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
