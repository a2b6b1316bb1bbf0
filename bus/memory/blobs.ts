import { InvalidNameError } from '../errors.js';
import type { BlobInfo, BlobStore } from '../types.js';
import type { ClientContext } from './context.js';
import { copyBytes } from './payload.js';

/**
 * A blob bucket: whole objects by name. An object store chunks, so unlike a
 * message a blob may exceed max payload; bytes are copied in and out.
 */
export class MemoryBlobStore implements BlobStore {
  readonly bucket: string;
  readonly #context: ClientContext;
  readonly #objects: Map<string, Uint8Array>;

  constructor(context: ClientContext, bucket: string, objects: Map<string, Uint8Array>) {
    this.bucket = bucket;
    this.#context = context;
    this.#objects = objects;
  }

  async put(name: string, data: Uint8Array): Promise<BlobInfo> {
    this.#context.assertOpen('blob put');
    validateBlobName(name);
    this.#objects.set(name, copyBytes(data));
    return { name, size: data.length };
  }

  async get(name: string): Promise<Uint8Array | null> {
    this.#context.assertOpen('blob get');
    validateBlobName(name);
    const data = this.#objects.get(name);
    return data === undefined ? null : copyBytes(data);
  }

  async delete(name: string): Promise<boolean> {
    this.#context.assertOpen('blob delete');
    validateBlobName(name);
    return this.#objects.delete(name);
  }

  async destroy(): Promise<void> {
    this.#context.assertOpen('blob destroy');
    this.#objects.clear();
    this.#context.server.deleteBlobBucket(this.bucket);
  }
}

function validateBlobName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidNameError('blob name', String(name), 'empty');
}
