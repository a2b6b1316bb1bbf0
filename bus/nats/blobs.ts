import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { InvalidNameError, TimeoutError } from '../errors.js';
import { nanos } from '@nats-io/nats-core';
import { checkMaxAge } from '../streamConfig.js';
import { validateName } from '../names.js';
import type { BlobConfig, BlobInfo, BlobStore } from '../types.js';
import { translate } from './errors.js';
import { createAlongside } from './together.js';
import type { Link } from './link.js';
import { checkNatsStream } from './streamCheck.js';

/**
 * Opens the object store, creating it when absent (with its expiry, if
 * asked). One that is there already is checked (streamConfig.ts): fewer
 * copies than asked, or an expiry where none is wanted (maxAge 0), is a
 * StreamConfigMismatchError.
 */
export async function openNatsBlobs(js: JetStreamClient, config: BlobConfig, link: Link): Promise<BlobStore> {
  validateName('bucket', config.bucket);
  const replicas = config.replicas ?? 1;
  const storage = config.storage === 'memory' ? 'memory' : 'file';
  const maxAge = checkMaxAge(config.maxAge);
  try {
    const os = await createAlongside(() =>
      new Objm(js).create(config.bucket, {
        replicas,
        storage,
        ...(maxAge > 0 && { ttl: nanos(maxAge) }),
        ...(config.description !== undefined && { description: config.description }),
      }),
    );
    await checkNatsStream(await js.jetstreamManager(false), `OBJ_${config.bucket}`, {
      subjects: { including: [`$O.${config.bucket}.C.>`, `$O.${config.bucket}.M.>`] },
      replicas,
      storage,
      keepForever: config.maxAge === 0,
    });
    return new NatsBlobs(os, config.bucket, link);
  } catch (err) {
    throw translate(err, 'open blobs', config.bucket, 5_000);
  }
}

/** How long a blob call may go on being made again across drops, as the API's own timeout. */
const API_TIMEOUT_MS = 5_000;

/** How long a blob's chunks may stop coming before its meta is asked again. */
const CHUNK_WAIT_MS = 2_000;

/** The whole stream, or undefined (the stream cancelled) when no chunk came for `idleMs`. */
async function readStalling(stream: ReadableStream<Uint8Array>, idleMs: number): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), idleMs)));
    const next = await Promise.race([reader.read(), stalled]);
    clearTimeout(timer);
    if (next === 'stalled') {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    if (next.done) break;
    parts.push(next.value);
    size += next.value.length;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidNameError('blob name', String(name), 'empty');
}

/** Object store chunks bodies larger than a message, so blobs have no size limit of their own. */
class NatsBlobs implements BlobStore {
  constructor(
    readonly os: ObjectStore,
    readonly bucket: string,
    readonly link: Link,
  ) {}

  /** Each call below is safe to make again (a put of the same name and bytes, a read, a delete): it is, after a drop. */
  async put(name: string, data: Uint8Array): Promise<BlobInfo> {
    checkName(name);
    try {
      const info = await this.link.repeatable(() => this.os.putBlob({ name }, data), API_TIMEOUT_MS);
      return { name: info.name, size: info.size };
    } catch (err) {
      throw translate(err, 'blob put', `${this.bucket}/${name}`, 5_000);
    }
  }

  /**
   * nats.js waits for ever for chunks that are gone while the object's
   * meta is still there (they expire first, or a delete purges them right
   * after marking the meta): chunks that stop coming for CHUNK_WAIT_MS send
   * it back to the meta. Gone or deleted: null; replaced: read again; still
   * there: TimeoutError, which a caller may retry.
   */
  async get(name: string): Promise<Uint8Array | null> {
    checkName(name);
    try {
      return await this.link.repeatable(() => this.#get(name), API_TIMEOUT_MS);
    } catch (err) {
      throw translate(err, 'blob get', `${this.bucket}/${name}`, 5_000);
    }
  }

  /** One try: the stalling read, the meta asked again. */
  async #get(name: string): Promise<Uint8Array | null> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.os.get(name);
      if (found === null) return null;
      found.error.catch(() => undefined); // read below, or abandoned with its stream
      const bytes = await readStalling(found.data, CHUNK_WAIT_MS);
      if (bytes !== undefined) {
        const err = await found.error;
        if (err) throw err;
        return bytes;
      }
      const now = await this.os.info(name);
      if (now === null || now.deleted) return null;
      if (now.nuid === found.info.nuid || attempt >= 2)
        throw new TimeoutError(`blob get ${this.bucket}/${name}`, CHUNK_WAIT_MS);
    }
  }

  async destroy(): Promise<void> {
    try {
      await this.os.destroy();
    } catch (err) {
      throw translate(err, 'destroy blobs', this.bucket, 5_000);
    }
  }

  async delete(name: string): Promise<boolean> {
    checkName(name);
    try {
      return await this.link.repeatable(async () => {
        const info = await this.os.info(name);
        if (info === null || info.deleted) return false;
        await this.os.delete(name);
        return true;
      }, API_TIMEOUT_MS);
    } catch (err) {
      throw translate(err, 'blob delete', `${this.bucket}/${name}`, 5_000);
    }
  }
}
