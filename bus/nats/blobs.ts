import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { InvalidNameError } from '../errors.js';
import { validateName } from '../names.js';
import type { BlobConfig, BlobInfo, BlobStore } from '../types.js';
import { translate } from './errors.js';
import { checkNatsStream } from './streamCheck.js';

/**
 * Opens the object store, creating it when absent. One that is there
 * already is checked (streamConfig.ts): an expiry, a per-subject limit or
 * fewer copies than asked is a StreamConfigMismatchError.
 */
export async function openNatsBlobs(js: JetStreamClient, config: BlobConfig): Promise<BlobStore> {
  validateName('bucket', config.bucket);
  const replicas = config.replicas ?? 1;
  const storage = config.storage === 'memory' ? 'memory' : 'file';
  try {
    const os = await new Objm(js).create(config.bucket, { replicas, storage });
    await checkNatsStream(await js.jetstreamManager(false), `OBJ_${config.bucket}`, {
      subjects: { including: [`$O.${config.bucket}.C.>`, `$O.${config.bucket}.M.>`] },
      replicas,
      storage,
      keepForever: true,
    });
    return new NatsBlobs(os, config.bucket);
  } catch (err) {
    throw translate(err, 'open blobs', config.bucket, 5_000);
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name.length === 0) throw new InvalidNameError('blob name', String(name), 'empty');
}

/** Object store chunks bodies larger than a message, so blobs have no size limit of their own. */
class NatsBlobs implements BlobStore {
  constructor(
    readonly os: ObjectStore,
    readonly bucket: string,
  ) {}

  async put(name: string, data: Uint8Array): Promise<BlobInfo> {
    checkName(name);
    try {
      const info = await this.os.putBlob({ name }, data);
      return { name: info.name, size: info.size };
    } catch (err) {
      throw translate(err, 'blob put', `${this.bucket}/${name}`, 5_000);
    }
  }

  async get(name: string): Promise<Uint8Array | null> {
    checkName(name);
    try {
      return await this.os.getBlob(name);
    } catch (err) {
      throw translate(err, 'blob get', `${this.bucket}/${name}`, 5_000);
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
      const info = await this.os.info(name);
      if (info === null || info.deleted) return false;
      await this.os.delete(name);
      return true;
    } catch (err) {
      throw translate(err, 'blob delete', `${this.bucket}/${name}`, 5_000);
    }
  }
}
