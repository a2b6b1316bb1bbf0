import { KeyExistsError, StaleRevisionError } from '../errors.js';
import { validateKvKey } from '../names.js';
import { subjectMatcher } from './matcher.js';
import type { Headers, KvEntry, KvStore, KvWatch, KvWatchOptions } from '../types.js';
import { andThen, runHandler, type ClientContext } from './context.js';
import { checkPayload, copyBytes, normalizeHeaders } from './payload.js';
import {
  EXPECTED_LAST_SUBJECT_SEQ_HEADER,
  type MemoryStream,
  type StoreOutcome,
  type StoredMessage,
  type StreamSettings,
} from './stream.js';

const OPERATION_HEADER = 'KV-Operation';
const EMPTY = new Uint8Array(0);

/** The stream a bucket lives in, named and shaped as nats.js's kv creates it. */
export function kvStreamSettings(bucket: string, history: number, description?: string): StreamSettings {
  return {
    name: `KV_${bucket}`,
    subjects: [`$KV.${bucket}.>`],
    duplicateWindow: 120_000,
    maxPerSubject: history,
    ...(description !== undefined && { description }),
  };
}

/**
 * A kv bucket over its stream, doing what nats.js's Bucket does: a revision is
 * the stream sequence, compare-and-set is the expected-last-subject-sequence
 * fence, and a delete is a marker message with `KV-Operation: DEL`.
 */
export class MemoryKv implements KvStore {
  readonly bucket: string;
  readonly #context: ClientContext;
  readonly #stream: MemoryStream;
  readonly #prefix: string;

  constructor(context: ClientContext, bucket: string, stream: MemoryStream) {
    this.bucket = bucket;
    this.#context = context;
    this.#stream = stream;
    this.#prefix = `$KV.${bucket}.`;
  }

  async destroy(): Promise<void> {
    this.#context.assertOpen('kv destroy');
    return this.#context.call('kv destroy', () => this.#context.server.deleteStream(this.#stream.name));
  }

  async get(key: string): Promise<KvEntry | null> {
    this.#context.assertOpen('kv get');
    validateKvKey(key, { wildcards: false });
    return this.#context.call('kv get', () => {
      const last = this.#stream.lastOf(this.#prefix + key);
      return last === undefined || operationOf(last) !== 'PUT' ? null : this.#entry(last);
    });
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    this.#context.assertOpen('kv create');
    validateKvKey(key, { wildcards: false });
    const write = this.#writer(key, value, {});
    return this.#context.call('kv create', () => {
      const first = write(0);
      if (first.ok) return first.seq;
      // nats.js's create: over a delete marker, retry as an update of the marker.
      const last = this.#stream.lastOf(this.#prefix + key);
      if (last !== undefined && operationOf(last) !== 'PUT') {
        const retry = write(last.seq);
        if (retry.ok) return retry.seq;
      }
      throw new KeyExistsError(this.bucket, key);
    });
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<number> {
    this.#context.assertOpen('kv update');
    validateKvKey(key, { wildcards: false });
    // nats.js refuses a revision below 1 before sending anything; no key ever has one.
    if (!(expectedRevision >= 1)) throw new StaleRevisionError(this.bucket, key, expectedRevision);
    const write = this.#writer(key, value, {});
    return andThen(
      this.#context.call('kv update', () => write(expectedRevision)),
      (outcome) => {
        if (!outcome.ok) throw new StaleRevisionError(this.bucket, key, expectedRevision);
        return outcome.seq;
      },
    );
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.#context.assertOpen('kv put');
    validateKvKey(key, { wildcards: false });
    const write = this.#writer(key, value, {});
    return andThen(
      this.#context.call('kv put', () => write(undefined)),
      (outcome) => {
        if (!outcome.ok) throw new StaleRevisionError(this.bucket, key, outcome.expected);
        return outcome.seq;
      },
    );
  }

  async delete(key: string, options: { expectedRevision?: number } = {}): Promise<void> {
    this.#context.assertOpen('kv delete');
    validateKvKey(key, { wildcards: false });
    // nats.js sends the fence only for a truthy revision, so 0 means "unconditional".
    const expected = options.expectedRevision ? options.expectedRevision : undefined;
    const write = this.#writer(key, EMPTY, { [OPERATION_HEADER]: 'DEL' });
    return andThen(
      this.#context.call('kv delete', () => write(expected)),
      (outcome) => {
        if (!outcome.ok) throw new StaleRevisionError(this.bucket, key, outcome.expected);
      },
    );
  }

  async keys(filter = '>'): Promise<string[]> {
    this.#context.assertOpen('kv keys');
    validateKvKey(filter, { wildcards: true });
    return this.#context.call('kv keys', () =>
      this.#stream
        .lastPerSubject(this.#prefix + filter)
        .filter((message) => operationOf(message) === 'PUT')
        .map((message) => message.subject.slice(this.#prefix.length)),
    );
  }

  async watch(options: KvWatchOptions, handler: (entry: KvEntry) => void): Promise<KvWatch> {
    this.#context.assertOpen('kv watch');
    const pattern = options.key ?? '>';
    validateKvKey(pattern, { wildcards: true });
    const filter = this.#prefix + pattern;
    let active = true;
    const deliver = (message: StoredMessage): void =>
      this.#context.deliver(message.subject, message.data, () => {
        if (!active) return;
        runHandler(
          () => handler(this.#entry(message)),
          (error) => this.#context.reportHandlerError(message.subject, error),
        );
      });
    // Snapshot and listen in one synchronous step at the server: nothing is missed, nothing is seen twice.
    const include = options.include ?? 'last';
    let unlisten = (): void => undefined;
    const matches = subjectMatcher(filter);
    const started = this.#context.call('kv watch', () => {
      if (include === 'last') this.#stream.lastPerSubject(filter).forEach(deliver);
      if (include === 'history') for (const m of this.#stream.range(filter, 1, this.#stream.lastSeq)) deliver(m);
      unlisten = this.#stream.listen((message) => {
        if (matches(message.subject)) deliver(message);
      });
    });
    // Its answer lost on a simulated network: a watch the server made is let go of, as nats.js lets go of a consumer.
    if (started instanceof Promise) {
      try {
        await started;
      } catch (error) {
        active = false;
        unlisten();
        throw error;
      }
    }
    const stop = (): void => {
      active = false;
      unlisten();
      cancelOnClose();
    };
    const cancelOnClose = this.#context.onClose(stop);
    await this.#context.flush();
    return { stop };
  }

  /** One write with its fence, as run at the server. */
  #writer(key: string, value: Uint8Array, extra: Headers): (expected: number | undefined) => StoreOutcome {
    const { server, client } = this.#context;
    const subject = this.#prefix + key;
    const data = copyBytes(value);
    return (expected) => {
      const headers = headersFor(extra, expected);
      checkPayload(data, headers, server.maxPayload, `kv write to ${this.bucket}/${key}`);
      return server.append(this.#stream, { subject, data, headers }, client);
    };
  }

  #entry(message: StoredMessage): KvEntry {
    return {
      bucket: this.bucket,
      key: message.subject.slice(this.#prefix.length),
      value: copyBytes(message.data),
      revision: message.seq,
      operation: operationOf(message),
    };
  }
}

function headersFor(extra: Headers, expected: number | undefined): Headers {
  const raw: Record<string, string> = { ...extra };
  if (expected !== undefined) raw[EXPECTED_LAST_SUBJECT_SEQ_HEADER] = String(expected);
  return normalizeHeaders(raw);
}

function operationOf(message: StoredMessage): KvEntry['operation'] {
  const op = message.headers[OPERATION_HEADER];
  return op === 'DEL' || op === 'PURGE' ? op : 'PUT';
}
