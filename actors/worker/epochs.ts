import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { epochSubject } from '../../bus/subjects.js';
import type { Journal, JournalEntry } from '../../bus/types.js';
import { EpochFences, MAX_EARLIER_MARKERS, parseEpochMarker, type EpochMarker } from '../../protocol/epochs.js';
import { HEADER } from '../../protocol/headers.js';

export interface EpochMarksOptions {
  readonly journal: Journal;
  readonly cluster: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** The shard's epoch in the newest view this worker has (undefined: none yet): no marker above it counts. */
  readonly viewEpoch: (shard: number) => number | undefined;
}

/** Between tries of a marker the journal did not take. */
const RETRY_MS = 1_000;
/** Markers written beside ours between our read and our append, before we give up for now. */
const ATTEMPTS = 3;

/**
 * One worker's knowledge of its shards' epoch markers (protocol/epochs.ts):
 * it writes the marker of each shard it becomes primary of, learns the
 * markers of the shards it follows as secondary, and tells its journal
 * readers which entries to ignore.
 */
export class EpochMarks {
  readonly #journal: Journal;
  readonly #cluster: string;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #viewEpoch: (shard: number) => number | undefined;
  readonly #fences = new Map<number, EpochFences>();
  /** Per shard, the epoch whose marker this worker owes (primary at it) or has written. */
  readonly #owed = new Map<number, { epoch: number; written: boolean; retry?: TimerHandle }>();
  #self = '';

  constructor({ journal, cluster, clock, log, viewEpoch }: EpochMarksOptions) {
    this.#journal = journal;
    this.#viewEpoch = viewEpoch;
    this.#cluster = cluster;
    this.#clock = clock;
    this.#log = log;
  }

  /** Whether readers apply the entry of `shard` at `seq` written under `epoch`. */
  admits(shard: number, seq: number, epoch: number): boolean {
    return this.#fences.get(shard)?.admits(seq, epoch, this.#viewEpoch(shard)) ?? true;
  }

  /** The newest epoch this worker knows a marker of, and where (inspection, tests). */
  latest(shard: number): { readonly seq: number; readonly epoch: number } | undefined {
    return this.#fences.get(shard)?.latest;
  }

  /**
   * Primary of `shards` (shard → epoch) from now on: writes each marker not
   * written yet, before the shard is served. A marker the journal does not
   * take is tried again in the background: the shard is served meanwhile,
   * since without its marker readers only lose the means to tell a deposed
   * writer's late entry apart, as before markers existed.
   */
  async take(self: string, shards: ReadonlyMap<number, number>): Promise<void> {
    this.#self = self;
    for (const [shard, owed] of this.#owed) {
      if (shards.get(shard) === owed.epoch) continue;
      if (owed.retry !== undefined) this.#clock.clearTimeout(owed.retry);
      this.#owed.delete(shard);
    }
    const writes: Promise<void>[] = [];
    for (const [shard, epoch] of shards) {
      if (epoch < 1 || this.#owed.get(shard)?.epoch === epoch) continue;
      this.#owed.set(shard, { epoch, written: false });
      writes.push(this.#write(shard, epoch));
    }
    await Promise.all(writes);
  }

  async #write(shard: number, epoch: number): Promise<void> {
    const owed = this.#owed.get(shard);
    if (owed === undefined || owed.epoch !== epoch || owed.written) return;
    owed.retry = undefined;
    try {
      await this.#append(shard, epoch);
      owed.written = true;
    } catch (err) {
      if (this.#owed.get(shard) !== owed) return;
      this.#log.warn({ err, shard, epoch }, 'epoch marker not written: trying again');
      owed.retry = this.#clock.setTimeout(() => void this.#write(shard, epoch), RETRY_MS);
    }
  }

  /** Reads the shard's last marker and appends the next, fenced on it so no marker goes unlisted. */
  async #append(shard: number, epoch: number): Promise<void> {
    const subject = epochSubject(this.#cluster, shard);
    for (let attempt = 1; ; attempt++) {
      const last = await this.#journal.last(subject);
      const before = last === null ? undefined : this.#read(shard, last);
      // Ours already: its ack was lost.
      if (before !== undefined && before.epoch === epoch && before.worker === this.#self) return;
      // A newer epoch's marker means this worker is deposed and its view will say so; ours after it changes
      // nothing then. And one that is not (forged) must not stop the shard's real primary marking its epoch.
      if (before !== undefined && before.epoch >= epoch)
        this.#log.warn({ shard, epoch, marker: before.epoch, by: before.worker }, 'the last epoch marker is not older');
      const earlier =
        before === undefined ? [] : [...before.earlier, [before.epoch, last!.seq] as const].filter(([e]) => e < epoch);
      const marker: EpochMarker = {
        v: 1,
        shard,
        epoch,
        worker: this.#self,
        earlier: earlier.slice(-MAX_EARLIER_MARKERS),
      };
      try {
        const ack = await this.#journal.append(subject, encode(marker), {
          msgId: `epoch:${shard}:${epoch}`,
          expectedLastSubjectSeq: last?.seq ?? 0,
          headers: { [HEADER.type]: 'epoch', [HEADER.epoch]: String(epoch), [HEADER.worker]: this.#self },
        });
        // A duplicate is this marker sent before (its ack lost), answered with where it was stored.
        this.#fencesOf(shard).addMarker(ack.seq, marker);
        this.#log.debug({ shard, epoch, seq: ack.seq, duplicate: ack.duplicate }, 'epoch marker written');
        return;
      } catch (err) {
        if (!(err instanceof WrongLastSequenceError) || attempt >= ATTEMPTS) throw err;
      }
    }
  }

  /** Following `shard` as secondary: the markers written so far (those after come with the journal). */
  async learn(shard: number): Promise<void> {
    const last = await this.#journal.last(epochSubject(this.#cluster, shard));
    if (last !== null) this.#read(shard, last);
  }

  /** An entry on a shard's epoch subject, as a follower met it: taken in if it is a marker. */
  observe(shard: number, entry: JournalEntry): void {
    this.#read(shard, entry);
  }

  /** Reads a marker entry into the shard's fences; undefined (and a warning) for one that is not a marker. */
  #read(shard: number, entry: JournalEntry): EpochMarker | undefined {
    let marker: EpochMarker | string;
    try {
      marker = parseEpochMarker(decode(entry.data, { where: `epoch marker ${entry.subject}#${entry.seq}` }), shard);
    } catch (err) {
      marker = err instanceof Error ? err.message : String(err);
    }
    if (typeof marker === 'string') {
      this.#log.warn({ shard, seq: entry.seq, why: marker }, 'not an epoch marker: ignored');
      return undefined;
    }
    this.#fencesOf(shard).addMarker(entry.seq, marker);
    return marker;
  }

  #fencesOf(shard: number): EpochFences {
    let fences = this.#fences.get(shard);
    if (fences === undefined) this.#fences.set(shard, (fences = new EpochFences()));
    return fences;
  }

  stop(): void {
    for (const owed of this.#owed.values()) if (owed.retry !== undefined) this.#clock.clearTimeout(owed.retry);
    this.#owed.clear();
  }
}
