import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { BucketNotFoundError, KeyExistsError, PayloadTooLargeError, StaleRevisionError } from '../errors.js';
import { validateKvKey, validateName } from '../names.js';
import type { KvConfig, KvEntry, KvStore, KvWatch, KvWatchOptions } from '../types.js';
import { releaseConsumer } from './release.js';
import type { Link } from './link.js';
import { ApiCodes, translate } from './errors.js';
import { createAlongside } from './together.js';
import { checkNatsStream } from './streamCheck.js';

/** A listing that hears nothing this long asks the server whether anything is still pending. */
const KEYS_QUIET_MS = 500;

function isWrongSequence(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === ApiCodes.StreamWrongLastSequence || err.code === ApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/**
 * Opens the bucket, creating it when absent (unless `create: false`). One that is there already is
 * checked (streamConfig.ts): an expiry, a shorter history or fewer copies
 * than asked is a StreamConfigMismatchError.
 */
/** Asked with STREAM.INFO alone: a reader may be allowed that and nothing that creates. */
async function bucketExists(js: JetStreamClient, bucket: string): Promise<boolean> {
  try {
    await (await js.jetstreamManager(false)).streams.info(`KV_${bucket}`);
    return true;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return false;
    throw err;
  }
}

export async function openNatsKv(
  js: JetStreamClient,
  config: KvConfig,
  maxPayload: number,
  link: Link,
): Promise<KvStore> {
  validateName('bucket', config.bucket);
  const history = config.history ?? 1;
  const replicas = config.replicas ?? 1;
  const storage = config.storage === 'memory' ? 'memory' : 'file';
  try {
    if (config.create === false && !(await bucketExists(js, config.bucket)))
      throw new BucketNotFoundError(config.bucket);
    const kv = await createAlongside(() =>
      new Kvm(js).create(config.bucket, {
        history,
        replicas,
        storage,
        ...(config.description !== undefined && { description: config.description }),
      }),
    );
    await checkNatsStream(await js.jetstreamManager(false), `KV_${config.bucket}`, {
      subjects: { including: [`$KV.${config.bucket}.>`] },
      replicas,
      storage,
      perSubject: history,
      keepForever: true,
    });
    return new NatsKv(js, kv, config.bucket, maxPayload, link);
  } catch (err) {
    throw translate(err, 'open kv', config.bucket, 5_000);
  }
}

class NatsKv implements KvStore {
  readonly #prefix: string;
  #jsm: JetStreamManager | undefined;
  readonly #stream: string;

  constructor(
    readonly js: JetStreamClient,
    readonly kv: KV,
    readonly bucket: string,
    readonly maxPayload: number,
    /** Reads are made again across a dropped connection; writes out when it drops fail at once (ConnectionLostError). */
    readonly link: Link,
  ) {
    this.#prefix = `$KV.${bucket}.`;
    this.#stream = `KV_${bucket}`;
  }

  #checkValue(key: string, value: Uint8Array): void {
    if (value.length > this.maxPayload)
      throw new PayloadTooLargeError(value.length, this.maxPayload, `kv ${this.bucket}/${key}`);
  }

  async destroy(): Promise<void> {
    try {
      await this.kv.destroy();
    } catch (err) {
      throw translate(err, 'destroy kv', this.bucket, 5_000);
    }
  }

  async get(key: string): Promise<KvEntry | null> {
    validateKvKey(key, { wildcards: false });
    try {
      const e = await this.link.repeatable(() => this.kv.get(key), 5_000);
      if (e === null || e.operation !== 'PUT') return null;
      return { bucket: this.bucket, key, value: e.value, revision: e.revision, operation: 'PUT' };
    } catch (err) {
      throw translate(err, 'kv get', `${this.bucket}/${key}`, 5_000);
    }
  }

  async create(key: string, value: Uint8Array): Promise<number> {
    validateKvKey(key, { wildcards: false });
    this.#checkValue(key, value);
    try {
      return await this.link.race(this.kv.create(key, value));
    } catch (err) {
      if (isWrongSequence(err)) throw new KeyExistsError(this.bucket, key, { cause: err });
      throw translate(err, 'kv create', `${this.bucket}/${key}`, 5_000);
    }
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<number> {
    validateKvKey(key, { wildcards: false });
    this.#checkValue(key, value);
    if (!(expectedRevision >= 1)) throw new StaleRevisionError(this.bucket, key, expectedRevision);
    try {
      return await this.link.race(this.kv.update(key, value, expectedRevision));
    } catch (err) {
      if (isWrongSequence(err)) throw new StaleRevisionError(this.bucket, key, expectedRevision, { cause: err });
      throw translate(err, 'kv update', `${this.bucket}/${key}`, 5_000);
    }
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    validateKvKey(key, { wildcards: false });
    this.#checkValue(key, value);
    try {
      return await this.link.race(this.kv.put(key, value));
    } catch (err) {
      throw translate(err, 'kv put', `${this.bucket}/${key}`, 5_000);
    }
  }

  async delete(key: string, options?: { expectedRevision?: number }): Promise<void> {
    validateKvKey(key, { wildcards: false });
    const expected = options?.expectedRevision;
    try {
      await this.link.race(this.kv.delete(key, expected === undefined ? undefined : { previousSeq: expected }));
    } catch (err) {
      if (isWrongSequence(err)) throw new StaleRevisionError(this.bucket, key, expected ?? 0, { cause: err });
      throw translate(err, 'kv delete', `${this.bucket}/${key}`, 5_000);
    }
  }

  /**
   * nats.js's keys() waits for a message that says nothing more is pending,
   * which a write racing the listing can put off for ever (or 30 s). Here
   * the stream names the subjects present, atomically; an ordered consumer
   * then says which hold a value, and the listing ends once each has been
   * seen (a key rewritten meanwhile shows up as its new revision).
   */
  async keys(filter = '>'): Promise<string[]> {
    validateKvKey(filter, { wildcards: true });
    const live = new Map<string, boolean>();
    try {
      this.#jsm ??= await this.js.jetstreamManager(false);
      const info = await this.#jsm.streams.info(this.#stream, { subjects_filter: this.#prefix + filter });
      const present = new Set(
        Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(this.#prefix.length)),
      );
      if (present.size === 0) return [];
      const consumer = await this.js.consumers.get(this.#stream, {
        filter_subjects: this.#prefix + filter,
        deliver_policy: DeliverPolicy.LastPerSubject,
        headers_only: true,
      });
      const messages = await consumer.consume({ max_messages: 1_000 });
      const it = messages[Symbol.asyncIterator]();
      try {
        // One read outstanding at a time: a quiet spell must not drop the message it was waiting for.
        let pending = it.next();
        while (present.size > 0) {
          let quiet: ReturnType<typeof setTimeout> | undefined;
          const next = await Promise.race([
            pending,
            new Promise<'quiet'>((resolve) => (quiet = setTimeout(() => resolve('quiet'), KEYS_QUIET_MS))),
          ]);
          clearTimeout(quiet);
          // A subject listed but gone before it was read (purged outright) never arrives.
          if (next === 'quiet') {
            if ((await consumer.info(false)).num_pending === 0) break;
            continue;
          }
          if (next.done === true) break;
          pending = it.next();
          const m = next.value;
          const key = m.subject.slice(this.#prefix.length);
          const op = m.headers?.get('KV-Operation');
          live.set(key, op !== 'DEL' && op !== 'PURGE');
          present.delete(key);
        }
      } finally {
        releaseConsumer(messages, consumer);
      }
    } catch (err) {
      throw translate(err, 'kv keys', `${this.bucket}/${filter}`, 5_000);
    }
    return [...live].filter(([, alive]) => alive).map(([key]) => key);
  }

  /**
   * An ordered consumer rather than nats.js's `watch`, because the caller
   * must know when the initial values are done (the pending count says so).
   */
  async watch(options: KvWatchOptions, handler: (entry: KvEntry) => void): Promise<KvWatch> {
    const key = options.key ?? '>';
    validateKvKey(key, { wildcards: true });
    const include = options.include ?? 'last';
    const deliver_policy =
      include === 'last' ? DeliverPolicy.LastPerSubject : include === 'history' ? DeliverPolicy.All : DeliverPolicy.New;
    const consumer = await this.link.repeatable(
      () => this.js.consumers.get(this.#stream, { filter_subjects: this.#prefix + key, deliver_policy }),
      5_000,
    );
    const initial =
      include === 'updates' ? 0 : (await this.link.repeatable(() => consumer.info(true), 5_000)).num_pending;
    const messages = await consumer.consume();
    let stopped = false;
    let resolveInitial!: () => void;
    const initialDone = new Promise<void>((r) => (resolveInitial = r));
    if (initial === 0) resolveInitial();
    let seen = 0;
    void (async () => {
      for await (const m of messages) {
        if (stopped) break;
        const op = m.headers?.get('KV-Operation');
        handler({
          bucket: this.bucket,
          key: m.subject.slice(this.#prefix.length),
          value: m.data,
          revision: m.seq,
          operation: op === 'DEL' ? 'DEL' : op === 'PURGE' ? 'PURGE' : 'PUT',
        });
        if (++seen === initial || m.info.pending === 0) resolveInitial();
      }
      resolveInitial();
    })();
    await initialDone;
    return {
      stop: () => {
        if (stopped) return;
        stopped = true;
        releaseConsumer(messages, consumer);
      },
    };
  }
}
