/**
 * Epoch markers: the journal is single-writer per epoch. A primary that
 * takes a shard at epoch E first appends a marker to the shard's epoch
 * subject; every reader of the journal (loading, secondaries, cache
 * verification, the history checker) then ignores an entry that an older
 * epoch wrote after it. A deposed primary paused between proving its
 * primacy and appending can still get one entry into the stream, but nobody
 * applies it: it was never acknowledged (the writer proves its primacy again
 * after appending), so ignoring it loses nothing.
 */
import type { Headers } from '../bus/types.js';
import { HEADER } from './headers.js';

/** Earlier markers a marker repeats, so that reading the shard's last marker is enough. */
export const MAX_EARLIER_MARKERS = 32;

export interface EpochMarker {
  readonly v: 1;
  readonly shard: number;
  readonly epoch: number;
  /** The member that took the shard. */
  readonly worker: string;
  /** The shard's markers before this one, oldest first, as [epoch, stream sequence]. */
  readonly earlier: readonly (readonly [epoch: number, seq: number])[];
}

const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * A decoded marker body, or why it is not one of `shard`'s. Read from the
 * journal, so untrusted: a marker naming another shard, or with an epoch
 * below one it lists as earlier, is refused rather than believed.
 */
export function parseEpochMarker(body: unknown, shard: number): EpochMarker | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'not a map';
  const m = body as Record<string, unknown>;
  if (m['v'] !== 1) return `version ${JSON.stringify(m['v'])} is not 1`;
  if (m['shard'] !== shard) return `names shard ${JSON.stringify(m['shard'])}, not ${shard}`;
  if (!count(m['epoch']) || m['epoch'] < 1) return 'has no epoch';
  if (typeof m['worker'] !== 'string' || m['worker'].length === 0) return 'has no worker';
  const earlier = m['earlier'];
  if (!Array.isArray(earlier) || earlier.length > MAX_EARLIER_MARKERS) return 'has no list of earlier markers';
  for (const e of earlier) {
    if (!Array.isArray(e) || e.length !== 2 || !count(e[0]) || !count(e[1])) return 'lists an earlier marker badly';
    if (e[0] >= m['epoch']) return `lists epoch ${e[0]} as earlier than its own ${m['epoch']}`;
  }
  return body as EpochMarker;
}

/** The epoch a journal entry was written under, from its header; 0 (static sharding) when it has none. */
export function entryEpoch(headers: Headers): number {
  const text = headers[HEADER.epoch];
  return text !== undefined && /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : 0;
}

/**
 * Where each of one shard's epochs began in the journal. An entry at stream
 * sequence `seq` written under `epoch` is admitted unless a marker of a
 * newer epoch comes before it: the epoch in force at a place is the highest
 * whose marker precedes it (a deposed primary's own marker may land late,
 * and then changes nothing).
 */
export class EpochFences {
  /** [seq, epoch], by seq. */
  readonly #marks: [number, number][] = [];
  readonly #limit: number;

  /** Keeps the newest `limit` marks: older ones only matter to entries written long ago. */
  constructor(limit = 4 * MAX_EARLIER_MARKERS) {
    this.#limit = limit;
  }

  /** One marker: its own place and every earlier one it lists. */
  addMarker(seq: number, marker: EpochMarker): void {
    for (const [epoch, at] of marker.earlier) this.add(at, epoch);
    this.add(seq, marker.epoch);
  }

  add(seq: number, epoch: number): void {
    const marks = this.#marks;
    let i = marks.length;
    while (i > 0 && marks[i - 1]![0] > seq) i--;
    if (i > 0 && marks[i - 1]![0] === seq) return;
    marks.splice(i, 0, [seq, epoch]);
    if (marks.length > this.#limit) marks.shift();
  }

  /**
   * The highest epoch whose marker lies before `seq`; 0 when none does.
   * Markers above `ceiling` (the newest epoch the reader's view knows for
   * the shard) do not count: a forged marker with a huge epoch would
   * otherwise make every real entry after it ignored.
   */
  inForceAt(seq: number, ceiling = Number.POSITIVE_INFINITY): number {
    let highest = 0;
    for (const [at, epoch] of this.#marks) {
      if (at >= seq) break;
      if (epoch > highest && epoch <= ceiling) highest = epoch;
    }
    return highest;
  }

  admits(seq: number, epoch: number, ceiling?: number): boolean {
    return epoch >= this.inForceAt(seq, ceiling);
  }

  /** The newest epoch with a marker, and where: for inspection and tests. */
  get latest(): { readonly seq: number; readonly epoch: number } | undefined {
    let best: [number, number] | undefined;
    for (const m of this.#marks) if (best === undefined || m[1] > best[1]) best = m;
    return best === undefined ? undefined : { seq: best[0], epoch: best[1] };
  }
}
