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

export class RecentCommands {
  /** Insertion order is commit order, so the oldest come first. */
  readonly #ids = new Map<string, { readonly seq: number; readonly time: number }>();

  constructor(entries: Iterable<RecentCommand> = []) {
    for (const [cmdId, seq, time] of entries) this.remember(cmdId, seq, time);
  }

  remember(cmdId: string, seq: number, time: number): void {
    this.#ids.delete(cmdId);
    this.#ids.set(cmdId, { seq, time });
    if (this.#ids.size > DEDUP_MAX_IDS) this.#ids.delete(this.#ids.keys().next().value!);
  }

  /** The seq `cmdId` got, while it is inside the window at `now`. */
  seqOf(cmdId: string, now: number): number | undefined {
    this.#expire(now);
    const known = this.#ids.get(cmdId);
    return known === undefined || now - known.time >= DEDUP_WINDOW_MS ? undefined : known.seq;
  }

  /** What a snapshot taken at `now` carries: every id still inside the window, oldest first. */
  entries(now: number): RecentCommand[] {
    this.#expire(now);
    return [...this.#ids].map(([cmdId, { seq, time }]) => [cmdId, seq, time]);
  }

  get size(): number {
    return this.#ids.size;
  }

  #expire(now: number): void {
    for (const [cmdId, { time }] of this.#ids) {
      if (now - time < DEDUP_WINDOW_MS) return;
      this.#ids.delete(cmdId);
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
