import { subjectMatches } from '../names.js';
import type { Headers } from '../types.js';
import { subjectMatcher } from './matcher.js';

/**
 * A JetStream stream as nats-server 2.9.10 keeps one: stream-wide sequences
 * that are never reused, message-id de-duplication over a window, the
 * expected-last-subject-sequence fence, and an optional per-subject limit
 * (which is all a kv bucket's history is).
 */

export const MSG_ID_HEADER = 'Nats-Msg-Id';
export const EXPECTED_LAST_SUBJECT_SEQ_HEADER = 'Nats-Expected-Last-Subject-Sequence';
export const DEFAULT_DUPLICATE_WINDOW = 120_000;

export interface StreamSettings {
  readonly name: string;
  readonly subjects: readonly string[];
  /** Milliseconds on the server's clock. */
  readonly duplicateWindow: number;
  /** Messages kept per subject; 0 keeps all. */
  readonly maxPerSubject: number;
  /** As asked when the stream was made, for whoever looks (the operator's to change, as on NATS). */
  readonly description?: string;
}

export interface StoredMessage {
  readonly subject: string;
  readonly seq: number;
  /** Owned by the stream: copy before handing out. */
  readonly data: Uint8Array;
  readonly headers: Headers;
  readonly time: number;
}

export type StoreOutcome =
  | { readonly ok: true; readonly seq: number; readonly duplicate: boolean }
  | { readonly ok: false; readonly expected: number; readonly actual: number };

function isConcrete(filter: string): boolean {
  return !filter.split('.').some((t) => t === '*' || t === '>');
}

export class MemoryStream {
  #settings: StreamSettings;
  #captures: Array<(subject: string) => boolean>;
  // Insertion order is sequence order, and deletes are cheap.
  readonly #messages = new Map<number, StoredMessage>();
  readonly #bySubject = new Map<string, number[]>();
  readonly #msgIds = new Map<string, { seq: number; time: number }>();
  readonly #listeners = new Set<(message: StoredMessage) => void>();
  #lastSeq = 0;

  constructor(settings: StreamSettings) {
    this.#settings = settings;
    this.#captures = settings.subjects.map(subjectMatcher);
  }

  get name(): string {
    return this.#settings.name;
  }

  get settings(): StreamSettings {
    return this.#settings;
  }

  /** The highest sequence ever assigned (survives purges, as in NATS). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  configure(settings: StreamSettings): void {
    this.#settings = settings;
    this.#captures = settings.subjects.map(subjectMatcher);
    for (const subject of [...this.#bySubject.keys()]) this.#trim(subject);
  }

  captures(subject: string): boolean {
    return this.#captures.some((matches) => matches(subject));
  }

  /** Called synchronously for every stored message; returns an unsubscribe. */
  listen(listener: (message: StoredMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // The order of checks is nats-server's (processJetStreamMsg): a duplicate
  // message id wins before the expected-sequence fence is looked at.
  store(subject: string, data: Uint8Array, headers: Headers, now: number): StoreOutcome {
    const msgId = headers[MSG_ID_HEADER];
    if (msgId) {
      this.#expireMsgIds(now);
      const seen = this.#msgIds.get(msgId);
      if (seen !== undefined) return { ok: true, seq: seen.seq, duplicate: true };
    }
    const fence = headers[EXPECTED_LAST_SUBJECT_SEQ_HEADER];
    if (fence !== undefined) {
      const expected = /^\d+$/.test(fence) ? Number(fence) : Number.NaN;
      const actual = this.lastSeqOf(subject);
      if (expected !== actual) return { ok: false, expected, actual };
    }
    const seq = ++this.#lastSeq;
    const message: StoredMessage = { subject, seq, data, headers, time: now };
    this.#messages.set(seq, message);
    const seqs = this.#bySubject.get(subject);
    if (seqs === undefined) this.#bySubject.set(subject, [seq]);
    else seqs.push(seq);
    this.#trim(subject);
    if (msgId) this.#msgIds.set(msgId, { seq, time: now });
    for (const listener of [...this.#listeners]) listener(message);
    return { ok: true, seq, duplicate: false };
  }

  /** Entries held per subject matching `filter`. */
  subjectCounts(filter: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const [subject, seqs] of this.#bySubject)
      if (seqs.length > 0 && subjectMatches(filter, subject)) out.set(subject, seqs.length);
    return out;
  }

  lastSeqOf(subject: string): number {
    const seqs = this.#bySubject.get(subject);
    return seqs === undefined ? 0 : seqs[seqs.length - 1]!;
  }

  /** The message at `seq`, if the stream still holds it. */
  at(seq: number): StoredMessage | undefined {
    return this.#messages.get(seq);
  }

  lastOf(subject: string): StoredMessage | undefined {
    return this.#messages.get(this.lastSeqOf(subject));
  }

  /** Messages matching `filter` with fromSeq <= seq <= toSeq, in order; tolerates purges meanwhile. */
  *range(filter: string, fromSeq: number, toSeq: number): Generator<StoredMessage> {
    if (isConcrete(filter)) {
      // One session's journal: walk its own sequence list, not the whole stream.
      for (const seq of [...(this.#bySubject.get(filter) ?? [])]) {
        if (seq > toSeq) return;
        const message = this.#messages.get(seq);
        if (seq >= fromSeq && message !== undefined) yield message;
      }
      return;
    }
    for (const message of this.#messages.values()) {
      if (message.seq > toSeq) return;
      if (message.seq >= fromSeq && subjectMatches(filter, message.subject)) yield message;
    }
  }

  /** The newest message of each subject matching `filter`, in sequence order. */
  lastPerSubject(filter: string): StoredMessage[] {
    const found: StoredMessage[] = [];
    for (const subject of this.#bySubject.keys()) {
      if (!subjectMatches(filter, subject)) continue;
      const message = this.lastOf(subject);
      if (message !== undefined) found.push(message);
    }
    return found.sort((a, b) => a.seq - b.seq);
  }

  /** Removes messages matching `filter` with seq < below; returns how many. */
  purge(filter: string, below: number): number {
    let removed = 0;
    // A concrete subject (the usual compaction) is one lookup, not a scan of every subject.
    const candidates: Iterable<[string, number[]]> = isConcrete(filter)
      ? this.#bySubject.has(filter)
        ? [[filter, this.#bySubject.get(filter)!]]
        : []
      : [...this.#bySubject];
    for (const [subject, seqs] of candidates) {
      if (!subjectMatches(filter, subject)) continue;
      while (seqs.length > 0 && seqs[0]! < below) {
        this.#messages.delete(seqs.shift()!);
        removed++;
      }
      if (seqs.length === 0) this.#bySubject.delete(subject);
    }
    return removed;
  }

  #trim(subject: string): void {
    const max = this.#settings.maxPerSubject;
    const seqs = this.#bySubject.get(subject);
    if (max <= 0 || seqs === undefined) return;
    while (seqs.length > max) this.#messages.delete(seqs.shift()!);
  }

  // Ids are recorded in time order (the clock never goes back), so the oldest come first.
  #expireMsgIds(now: number): void {
    for (const [id, seen] of this.#msgIds) {
      if (now - seen.time < this.#settings.duplicateWindow) return;
      this.#msgIds.delete(id);
    }
  }
}
