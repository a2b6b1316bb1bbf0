import { InvalidNameError, WrongLastSequenceError } from '../errors.js';
import { validateSubject } from '../names.js';
import type {
  AppendAck,
  Headers,
  AppendOptions,
  FollowOptions,
  Journal,
  JournalEntry,
  JournalFollow,
  ReadOptions,
} from '../types.js';
import { subjectMatcher } from './matcher.js';
import { andThen, type ClientContext } from './context.js';
import { checkPayload, copyBytes, normalizeHeaders } from './payload.js';
import { EXPECTED_LAST_SUBJECT_SEQ_HEADER, MSG_ID_HEADER, type MemoryStream, type StoredMessage } from './stream.js';
import { hasWildcard, subjectWithin } from '../filters.js';

/** One connection's handle on a stream; the stream itself lives in the server. */
export class MemoryJournal implements Journal {
  readonly #context: ClientContext;
  readonly #stream: MemoryStream;

  constructor(context: ClientContext, stream: MemoryStream) {
    this.#context = context;
    this.#stream = stream;
  }

  get name(): string {
    return this.#stream.name;
  }

  async destroy(): Promise<void> {
    this.#context.assertOpen('journal destroy');
    return this.#context.call('stream delete', () => this.#context.server.deleteStream(this.#stream.name));
  }

  async append(subject: string, data: Uint8Array, options: AppendOptions = {}): Promise<AppendAck> {
    const { server } = this.#context;
    this.#context.assertOpen('append');
    validateSubject(subject, { wildcards: false, kind: 'journal subject' });
    // On NATS another stream would take it (or nobody would answer); refusing is clearer.
    if (!this.#stream.captures(subject)) {
      throw new InvalidNameError('journal subject', subject, `not captured by journal ${this.name}`);
    }
    // The same headers nats.js's JetStream publish sends; the server keeps them with the entry.
    const raw: Record<string, string> = { ...options.headers };
    if (options.msgId) raw[MSG_ID_HEADER] = options.msgId;
    const expected = options.expectedLastSubjectSeq;
    if (expected !== undefined) {
      if (!Number.isSafeInteger(expected) || expected < 0) {
        throw new RangeError(`expectedLastSubjectSeq must be a non-negative integer, got ${expected}`);
      }
      raw[EXPECTED_LAST_SUBJECT_SEQ_HEADER] = String(expected);
    }
    const headers = normalizeHeaders(raw);
    checkPayload(data, headers, server.maxPayload, `append to ${subject}`);
    const message = { subject, data: copyBytes(data), headers };
    const { client } = this.#context;
    // How many copies reached the server: one out when it restarted is sent again after the reconnect.
    let copies = 0;
    const stored = this.#context.call(
      'append',
      () => {
        copies++;
        return server.append(this.#stream, message, client);
      },
      options.timeout,
    );
    return andThen(stored, (outcome) => {
      if (!outcome.ok) throw new WrongLastSequenceError(subject, outcome.expected, outcome.actual);
      // A duplicate of an earlier copy of this same append (the same body and fence) is this append, stored.
      const own = outcome.duplicate && copies > 1 && sameMessage(this.#stream.at(outcome.seq), message);
      return { stream: this.name, seq: outcome.seq, duplicate: outcome.duplicate && !own };
    });
  }

  read(filter: string, options: ReadOptions = {}): AsyncIterable<JournalEntry> {
    return this.#read(filter, options.fromSeq ?? 1, options.limit ?? Number.POSITIVE_INFINITY);
  }

  async follow(
    filter: string,
    options: FollowOptions,
    handler: (entry: JournalEntry) => void | Promise<void>,
  ): Promise<JournalFollow> {
    this.#context.assertOpen('follow');
    validateSubject(filter, { wildcards: true, kind: 'journal filter' });
    if (!this.#covers(filter)) {
      throw new InvalidNameError('journal filter', filter, `not within the subjects of journal ${this.name}`);
    }
    let active = true;
    let chain: Promise<void> = Promise.resolve();
    const deliver = (message: StoredMessage): void =>
      this.#context.deliver(message.subject, message.data, () => {
        const entry = toEntry(message);
        chain = chain.then(async () => {
          if (!active) return;
          try {
            await handler(entry);
          } catch (error) {
            options.onError?.(error, entry);
          }
        });
      });
    // Backlog and listener in one synchronous step at the server: nothing is missed, nothing is seen twice.
    let unlisten = (): void => undefined;
    const matches = subjectMatcher(filter);
    const started = this.#context.call('consumer create', () => {
      if (options.fromSeq !== undefined)
        for (const m of this.#stream.range(filter, Math.max(1, options.fromSeq), this.#stream.lastSeq)) deliver(m);
      unlisten = this.#stream.listen((message) => {
        if (matches(message.subject)) deliver(message);
      });
    });
    const following = (): JournalFollow => {
      const stop = (): void => {
        active = false;
        unlisten();
        cancelOnClose();
      };
      const cancelOnClose = this.#context.onClose(stop);
      return { stop };
    };
    if (!(started instanceof Promise)) return following();
    // Its answer lost on a simulated network: a consumer the server made is let go of, as nats.js lets go of one.
    return started.then(following, (error: unknown) => {
      active = false;
      unlisten();
      throw error;
    });
  }

  async lastSeq(subject: string): Promise<number> {
    this.#context.assertOpen('lastSeq');
    validateSubject(subject, { wildcards: false, kind: 'journal subject' });
    return this.#context.call('last sequence', () => this.#stream.lastSeqOf(subject));
  }

  async subjectCounts(filter: string): Promise<Map<string, number>> {
    this.#context.assertOpen('subjects');
    validateSubject(filter, { wildcards: true, kind: 'journal filter' });
    if (!this.#covers(filter))
      throw new InvalidNameError('journal filter', filter, `not within the subjects of journal ${this.name}`);
    return this.#context.call('subjects', () => this.#stream.subjectCounts(filter));
  }

  async last(subject: string): Promise<JournalEntry | null> {
    this.#context.assertOpen('last');
    validateSubject(subject, { wildcards: false, kind: 'journal subject' });
    return this.#context.call('last entry', () => {
      const message = this.#stream.lastOf(subject);
      return message === undefined ? null : toEntry(message);
    });
  }

  async purge(subject: string, options: { below: number }): Promise<number> {
    this.#context.assertOpen('purge');
    validateSubject(subject, { wildcards: true, kind: 'journal subject' });
    return this.#context.call('purge', () => this.#stream.purge(subject, options.below));
  }

  // The end is fixed on the first next(), like a consumer created when iteration starts.
  async *#read(filter: string, fromSeq: number, limit: number): AsyncGenerator<JournalEntry> {
    this.#context.assertOpen('read');
    validateSubject(filter, { wildcards: true, kind: 'journal filter' });
    if (!this.#covers(filter)) {
      throw new InvalidNameError('journal filter', filter, `not within the subjects of journal ${this.name}`);
    }
    if (limit <= 0) return;
    let count = 0;
    // On a simulated network the read is one call: what the stream held when it reached the server.
    const messages: Iterable<StoredMessage> = this.#context.server.networked
      ? await this.#context.call('read', () => [
          ...take(this.#stream.range(filter, fromSeq, this.#stream.lastSeq), limit),
        ])
      : this.#stream.range(filter, fromSeq, this.#stream.lastSeq);
    for (const message of messages) {
      this.#context.assertOpen('read');
      yield toEntry(message);
      if (++count >= limit) return;
    }
  }

  // nats-server's validFilteredSubject: inside a stream subject, or a wildcard filter around one.
  #covers(filter: string): boolean {
    return this.#stream.settings.subjects.some(
      (subject) => subjectWithin(filter, subject) || (hasWildcard(filter) && subjectWithin(subject, filter)),
    );
  }
}

function* take<T>(items: Iterable<T>, limit: number): Generator<T> {
  let count = 0;
  for (const item of items) {
    if (count++ >= limit) return;
    yield item;
  }
}

function sameMessage(
  stored: StoredMessage | undefined,
  sent: { subject: string; data: Uint8Array; headers: Headers },
): boolean {
  return (
    stored !== undefined &&
    stored.subject === sent.subject &&
    stored.headers[MSG_ID_HEADER] === sent.headers[MSG_ID_HEADER] &&
    stored.headers[EXPECTED_LAST_SUBJECT_SEQ_HEADER] === sent.headers[EXPECTED_LAST_SUBJECT_SEQ_HEADER] &&
    Buffer.compare(stored.data, sent.data) === 0
  );
}

function toEntry(message: StoredMessage): JournalEntry {
  return {
    subject: message.subject,
    seq: message.seq,
    data: copyBytes(message.data),
    headers: message.headers,
    time: message.time,
  };
}
