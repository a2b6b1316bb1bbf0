import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import {
  ConnectionError,
  ConnectionLostError,
  InvalidNameError,
  PayloadTooLargeError,
  TimeoutError,
  WrongLastSequenceError,
} from '../errors.js';
import { subjectMatches, validateName, validateSubject } from '../names.js';
import type {
  AppendAck,
  AppendOptions,
  FollowOptions,
  Journal,
  JournalConfig,
  JournalEntry,
  JournalFollow,
  ReadOptions,
} from '../types.js';
import { fromMsgHdrs, packHeaders } from './headers.js';
import { hasWildcard, subjectWithin } from '../filters.js';
import { releaseConsumer } from './release.js';
import { ApiCodes, apiCode, translate } from './errors.js';
import { checkStream, type StreamNeeds } from '../streamConfig.js';
import { natsStreamFacts } from './streamCheck.js';
import type { Link } from './link.js';
import { sendUntilAnswered, type Sent } from './resend.js';
import type { ReplyMux } from './replies.js';

const DEFAULT_DUPLICATE_WINDOW = 120_000;

interface PubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const utf8 = new TextDecoder();

/** What an append sent: enough to recognise a stored copy of it. */
interface Copy {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly msgId: string | undefined;
  readonly fence: number | undefined;
  /** How many copies went out. */
  readonly copies: number;
}

function fenceText(fence: number | undefined): string | undefined {
  return fence === undefined ? undefined : String(fence);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function parseAck(data: Uint8Array): PubAck {
  try {
    const ack = JSON.parse(utf8.decode(data)) as PubAck;
    if (ack.error === undefined && typeof ack.seq !== 'number') throw new TypeError('no seq');
    return ack;
  } catch (err) {
    throw new ConnectionError(`append: unreadable ack from the server (${data.length} bytes)`, { cause: err });
  }
}

/**
 * Opens the stream behind a journal, creating it when absent. One that is
 * there already is checked (streamConfig.ts) and never changed: a setting
 * that would lose entries or de-duplication is a StreamConfigMismatchError.
 */
export async function openNatsJournal(
  js: JetStreamClient,
  jsm: JetStreamManager,
  config: JournalConfig,
  maxPayload: number,
  apiTimeout: number,
  replies: ReplyMux,
  link: Link,
): Promise<Journal> {
  validateName('stream', config.name);
  if (config.subjects.length === 0)
    throw new InvalidNameError('journal subjects', '', 'a journal needs at least one subject');
  for (const s of config.subjects) validateSubject(s, { wildcards: true, kind: 'journal subject' });
  const duplicateWindow = config.duplicateWindow ?? DEFAULT_DUPLICATE_WINDOW;
  const storage = config.storage === 'memory' ? ('memory' as const) : ('file' as const);
  const wanted = {
    name: config.name,
    subjects: config.subjects,
    duplicate_window: nanos(duplicateWindow),
    num_replicas: config.replicas ?? 1,
    storage,
    ...(config.description !== undefined && { description: config.description }),
  };
  const needs: StreamNeeds = {
    subjects: { exactly: config.subjects },
    duplicateWindow,
    replicas: config.replicas ?? 1,
    storage,
    keepForever: true,
    noRollup: true,
  };
  try {
    let info: StreamInfo;
    try {
      info = await jsm.streams.info(config.name);
    } catch (err) {
      if (apiCode(err) !== ApiCodes.StreamNotFound) throw err;
      // Two workers starting together: the second add finds the first one's stream. nats-server 2.9 may
      // call that an overlap of subjects while the first is still being made: it is one only if no stream
      // of this name turns up.
      info = await jsm.streams.add(wanted).catch((added: unknown) => {
        const code = apiCode(added);
        if (code !== ApiCodes.StreamNameInUse && code !== ApiCodes.StreamSubjectOverlap) throw added;
        return jsm.streams.info(config.name).catch((err: unknown) => {
          throw apiCode(err) === ApiCodes.StreamNotFound ? added : err;
        });
      });
    }
    const mismatch = checkStream(natsStreamFacts(info.config), needs);
    if (mismatch !== undefined) throw mismatch;
  } catch (err) {
    if (apiCode(err) === ApiCodes.StreamSubjectOverlap) {
      throw new InvalidNameError('journal subjects', config.subjects.join(','), 'overlap with another stream', {
        cause: err,
      });
    }
    throw translate(err, 'open journal', config.name, apiTimeout);
  }
  return new NatsJournal({
    js,
    jsm,
    replies,
    link,
    name: config.name,
    subjects: config.subjects,
    maxPayload,
    apiTimeout,
  });
}

interface NatsJournalParts {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly replies: ReplyMux;
  readonly link: Link;
  readonly name: string;
  readonly subjects: readonly string[];
  readonly maxPayload: number;
  readonly apiTimeout: number;
}

class NatsJournal implements Journal {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly replies: ReplyMux;
  readonly link: Link;
  readonly name: string;
  readonly subjects: readonly string[];
  readonly maxPayload: number;
  readonly apiTimeout: number;

  constructor(parts: NatsJournalParts) {
    ({
      js: this.js,
      jsm: this.jsm,
      replies: this.replies,
      link: this.link,
      name: this.name,
      subjects: this.subjects,
      maxPayload: this.maxPayload,
      apiTimeout: this.apiTimeout,
    } = parts);
  }

  /** Subjects already known to be captured: appends repeat them. Bounded like the subject cache. */
  readonly #captured = new Set<string>();

  #checkSubject(subject: string, wildcards: boolean): void {
    // A subject captured before was checked then: a session's appends repeat its subject.
    if (!wildcards && this.#captured.has(subject)) return;
    validateSubject(subject, { wildcards, kind: wildcards ? 'journal filter' : 'journal subject' });
    if (wildcards) {
      // As nats-server's validFilteredSubject: inside a stream subject, or a wildcard filter around one.
      const covered = this.subjects.some(
        (s) => subjectWithin(subject, s) || (hasWildcard(subject) && subjectWithin(s, subject)),
      );
      if (!covered)
        throw new InvalidNameError('journal filter', subject, `not within the subjects of journal ${this.name}`);
      return;
    }
    if (!this.subjects.some((f) => subjectMatches(f, subject))) {
      throw new InvalidNameError('journal subject', subject, `not captured by journal ${this.name}`);
    }
    if (this.#captured.size >= 8192) this.#captured.clear();
    this.#captured.add(subject);
  }

  async append(subject: string, data: Uint8Array, options: AppendOptions = {}): Promise<AppendAck> {
    this.#checkSubject(subject, false);
    // As if { ...options.headers, 'Nats-Msg-Id': ..., 'Nats-Expected-Last-Subject-Sequence': ... }, without the copy.
    const { msgId, expectedLastSubjectSeq } = options;
    const jetstream: Record<string, string> | undefined =
      msgId === undefined
        ? expectedLastSubjectSeq === undefined
          ? undefined
          : { 'Nats-Expected-Last-Subject-Sequence': String(expectedLastSubjectSeq) }
        : expectedLastSubjectSeq === undefined
          ? { 'Nats-Msg-Id': msgId }
          : { 'Nats-Msg-Id': msgId, 'Nats-Expected-Last-Subject-Sequence': String(expectedLastSubjectSeq) };
    const block = packHeaders(options.headers, jetstream);
    const size = data.length + (block?.size ?? 0);
    if (size > this.maxPayload) throw new PayloadTooLargeError(size, this.maxPayload, `append ${subject}`);
    const timeout = options.timeout ?? this.apiTimeout;
    const h = block?.headers;
    // A JetStream publish is a request to the stream's subject; the ack is JSON. A copy out when the
    // connection drops, or unanswered (its stream leader died with it), is sent again within the same
    // timeout: the message id and the fence make sure one copy at most is stored.
    let sent: Sent;
    try {
      sent = await sendUntilAnswered(
        (left) => this.replies.request(subject, data, h, left, 'append'),
        this.link,
        timeout,
        `append ${subject}`,
      );
    } catch (err) {
      // Cut off for the whole timeout: as unanswered as any append that timed out (it may be stored).
      const given = err instanceof ConnectionLostError ? new TimeoutError(`append ${subject}`, timeout) : err;
      throw translate(given, 'append', subject, timeout);
    }
    const ack = parseAck(sent.reply.data);
    // Only a refusal or a duplicate looks for a stored copy of this append: described then.
    const { copies } = sent;
    if (ack.error !== undefined) {
      if (ack.error.err_code === ApiCodes.StreamWrongLastSequence) {
        // A replicated stream checks the fence before the message id: a copy of this message id
        // stored already, last on its subject, is refused as out of sequence where a single server
        // answers it as a duplicate. Answered as a single server would.
        const stored = await this.#storedCopy(
          { subject, data, msgId, fence: expectedLastSubjectSeq, copies },
          { last_by_subj: subject },
        );
        if (stored !== undefined) return stored;
        throw new WrongLastSequenceError(subject, options.expectedLastSubjectSeq ?? -1, undefined, {
          cause: ack.error,
        });
      }
      throw new ConnectionError(
        `append ${subject} refused: ${ack.error.description ?? 'no description'} (${ack.error.err_code ?? ack.error.code})`,
        {
          cause: ack.error,
        },
      );
    }
    const seq = ack.seq ?? 0;
    if (ack.duplicate === true && sent.copies > 1) {
      // Sent more than once: the copy stored may be an earlier one of these.
      const stored = await this.#storedCopy({ subject, data, msgId, fence: expectedLastSubjectSeq, copies }, { seq });
      if (stored !== undefined) return stored;
    }
    return { stream: ack.stream ?? this.name, seq, duplicate: ack.duplicate === true };
  }

  /**
   * The entry `query` finds, when it carries this append's message id: a
   * duplicate, or (when this append went out in more than one copy and the
   * entry is one of them: the same body and fence) this append itself,
   * stored. Undefined otherwise, or when it cannot be read now.
   */
  async #storedCopy(copy: Copy, query: { seq: number } | { last_by_subj: string }): Promise<AppendAck | undefined> {
    if (copy.msgId === undefined) return undefined;
    let m;
    try {
      m = await this.jsm.streams.getMessage(this.name, query);
    } catch {
      return undefined;
    }
    if (m === null || m.subject !== copy.subject || m.header?.get('Nats-Msg-Id') !== copy.msgId) return undefined;
    const own =
      copy.copies > 1 &&
      sameBytes(m.data, copy.data) &&
      (m.header.get('Nats-Expected-Last-Subject-Sequence') || undefined) === fenceText(copy.fence);
    return { stream: this.name, seq: m.seq, duplicate: !own };
  }

  async *read(filter: string, options: ReadOptions = {}): AsyncIterable<JournalEntry> {
    this.#checkSubject(filter, true);
    const fromSeq = Math.max(1, options.fromSeq ?? 1);
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0) return;
    // Made again if the connection drops while it is out (an ordered consumer is only a reader).
    const consumer = await this.link
      .repeatable(
        () =>
          this.js.consumers.get(this.name, {
            filter_subjects: filter,
            ...(fromSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq } : {}),
          }),
        this.apiTimeout,
      )
      .catch((err: unknown) => {
        throw translate(err, 'read', filter, this.apiTimeout);
      });
    // num_pending is fixed when the consumer is created: that is "the end as it was".
    const info = await this.link
      .repeatable(() => consumer.info(true), this.apiTimeout)
      .catch((err: unknown) => {
        throw translate(err, 'read', filter, this.apiTimeout);
      });
    if (info.num_pending === 0) return;
    const messages = await consumer.consume({ max_messages: Math.min(limit, 512) });
    let n = 0;
    try {
      for await (const m of messages) {
        yield {
          subject: m.subject,
          seq: m.seq,
          data: m.data,
          headers: fromMsgHdrs(m.headers),
          time: Math.floor(m.info.timestampNanos / 1e6),
        };
        n++;
        if (m.info.pending === 0 || n >= limit) break;
      }
    } finally {
      await messages.close().catch(() => undefined);
      await consumer.delete().catch(() => undefined);
    }
  }

  /** An ordered consumer: JetStream redelivers from the last sequence seen if it is reset. */
  async follow(
    filter: string,
    options: FollowOptions,
    handler: (entry: JournalEntry) => void | Promise<void>,
  ): Promise<JournalFollow> {
    this.#checkSubject(filter, true);
    const from = options.fromSeq;
    const consumer = await this.link
      .repeatable(
        () =>
          this.js.consumers.get(this.name, {
            filter_subjects: filter,
            ...(from === undefined
              ? { deliver_policy: DeliverPolicy.New }
              : from > 1
                ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
                : {}),
          }),
        this.apiTimeout,
      )
      .catch((err: unknown) => {
        throw translate(err, 'follow', filter, this.apiTimeout);
      });
    const messages = await consumer.consume({ max_messages: 512 });
    let stopped = false;
    void (async () => {
      for await (const m of messages) {
        if (stopped) break;
        const entry: JournalEntry = {
          subject: m.subject,
          seq: m.seq,
          data: m.data,
          headers: fromMsgHdrs(m.headers),
          time: Math.floor(m.info.timestampNanos / 1e6),
        };
        try {
          await handler(entry);
        } catch (error) {
          options.onError?.(error, entry);
        }
      }
    })().catch(() => undefined);
    return {
      stop: () => {
        if (stopped) return;
        stopped = true;
        releaseConsumer(messages, consumer);
      },
    };
  }

  async destroy(): Promise<void> {
    try {
      await this.jsm.streams.delete(this.name);
    } catch (err) {
      if (apiCode(err) !== ApiCodes.StreamNotFound) throw translate(err, 'destroy journal', this.name, this.apiTimeout);
    }
  }

  async lastSeq(subject: string): Promise<number> {
    this.#checkSubject(subject, false);
    try {
      const m = await this.link.repeatable(
        () => this.jsm.streams.getMessage(this.name, { last_by_subj: subject }),
        this.apiTimeout,
      );
      return m?.seq ?? 0;
    } catch (err) {
      if (apiCode(err) === ApiCodes.NoMessageFound) return 0;
      throw translate(err, 'last sequence of', subject, this.apiTimeout);
    }
  }

  async subjectCounts(filter: string): Promise<Map<string, number>> {
    this.#checkSubject(filter, true);
    try {
      // The server pages a long list; nats.js asks for every page.
      const info = await this.link.repeatable(
        () => this.jsm.streams.info(this.name, { subjects_filter: filter }),
        this.apiTimeout,
      );
      return new Map(Object.entries(info.state.subjects ?? {}));
    } catch (err) {
      throw translate(err, 'subjects of', filter, this.apiTimeout);
    }
  }

  async last(subject: string): Promise<JournalEntry | null> {
    this.#checkSubject(subject, false);
    try {
      const m = await this.link.repeatable(
        () => this.jsm.streams.getMessage(this.name, { last_by_subj: subject }),
        this.apiTimeout,
      );
      if (m === null) return null;
      return { subject: m.subject, seq: m.seq, data: m.data, headers: fromMsgHdrs(m.header), time: m.time.getTime() };
    } catch (err) {
      if (apiCode(err) === ApiCodes.NoMessageFound) return null;
      throw translate(err, 'last entry of', subject, this.apiTimeout);
    }
  }

  async purge(subject: string, options: { below: number }): Promise<number> {
    this.#checkSubject(subject, false);
    if (options.below <= 1) return 0;
    try {
      // Below a sequence: the same purge twice removes what it removed once.
      const r = await this.link.repeatable(
        () => this.jsm.streams.purge(this.name, { filter: subject, seq: options.below }),
        this.apiTimeout,
      );
      return r.purged;
    } catch (err) {
      throw translate(err, 'purge', subject, this.apiTimeout);
    }
  }
}
