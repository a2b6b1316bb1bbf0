import { InvalidNameError } from '../errors.js';
import type { BlobInfo, BlobStore } from '../types.js';
import type { ClientContext } from './context.js';
import { copyBytes } from './payload.js';
import type { BlobBucket } from './server.js';

/**
 * A blob bucket: whole objects by name. An object store chunks, so unlike a
 * message a blob may exceed max payload; bytes are copied in and out. In a
 * bucket made with a maximum age, a blob older than that is gone, as its
 * stream's messages are on NATS (on the server's clock).
 */
export class MemoryBlobStore implements BlobStore {
  readonly bucket: string;
  readonly #context: ClientContext;
  readonly #store: BlobBucket;

  constructor(context: ClientContext, bucket: string, store: BlobBucket) {
    this.bucket = bucket;
    this.#context = context;
    this.#store = store;
  }

  async put(name: string, data: Uint8Array): Promise<BlobInfo> {
    this.#context.assertOpen('blob put');
    validateBlobName(name);
    const copy = copyBytes(data);
    return this.#context.call('blob put', () => {
      this.#expire();
      // Stored last: objects stay in the order they were stored, oldest first.
      this.#store.objects.delete(name);
      this.#store.objects.set(name, { data: copy, time: this.#context.server.clock.now() });
      return { name, size: copy.length };
    });
  }

  async get(name: string): Promise<Uint8Array | null> {
    this.#context.assertOpen('blob get');
    validateBlobName(name);
    return this.#context.call('blob get', () => {
      this.#expire();
      const found = this.#store.objects.get(name);
      return found === undefined ? null : copyBytes(found.data);
    });
  }

  async delete(name: string): Promise<boolean> {
    this.#context.assertOpen('blob delete');
    validateBlobName(name);
    return this.#context.call('blob delete', () => {
      this.#expire();
      return this.#store.objects.delete(name);
    });
  }

  async destroy(): Promise<void> {
    this.#context.assertOpen('blob destroy');
    return this.#context.call('blob destroy', () => {
      this.#store.objects.clear();
      this.#context.server.deleteBlobBucket(this.bucket);
    });
  }

  #expire(): void {
    const { maxAge, objects } = this.#store;
    if (maxAge <= 0) return;
    const now = this.#context.server.clock.now();
    for (const [name, { time }] of objects) {
      if (now - time < maxAge) return;
      objects.delete(name);
    }
  }
}

function validateBlobName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidNameError('blob name', String(name), 'empty');
}
