import { claimCheckOf, decodeBody } from '../../bus/claimCheck.js';
import { decode } from '../../bus/codec.js';
import type { BlobStore, Bus, Message } from '../../bus/types.js';
import { ClientDisconnectedError } from '../../protocol/errors.js';
import { bucketName } from '../../protocol/names.js';

/**
 * Reply bodies. Most come inline; a large document comes by claim-check,
 * and the blob is deleted once fetched: the worker wrote it for this one
 * reply, and nobody else will ask for it.
 */
/** Where claim-checked replies are fetched from: the connection's bus of the moment. */
export interface ReplySource {
  /** Undefined while there is no connection. */
  readonly bus: Bus | undefined;
  /** Names the client in the error when there is no bus. */
  readonly clientId: string;
}

export class ReplyDecoder {
  readonly #blobsBucket: string;
  readonly #source: ReplySource;
  /** Opened on the bus of the moment; a new connection opens its own. */
  #blobs: { bus: Bus; store: Promise<BlobStore> } | undefined;

  constructor(options: { readonly cluster: string; readonly source: ReplySource }) {
    this.#blobsBucket = bucketName(options.cluster, 'replies');
    this.#source = options.source;
  }

  async decode(m: Message, what: string): Promise<unknown> {
    const name = claimCheckOf(m.headers);
    if (name === undefined) return decode(m.data, { where: `reply to ${what}` });
    const bus = this.#source.bus;
    if (bus === undefined)
      throw new ClientDisconnectedError(this.#source.clientId, 'no connection to fetch a claim-checked reply');
    if (this.#blobs?.bus !== bus) this.#blobs = { bus, store: bus.blobs({ bucket: this.#blobsBucket }) };
    const blobs = await this.#blobs.store;
    const value = await decodeBody(m.data, m.headers, { blobs, where: `reply to ${what}` });
    void blobs.delete(name).catch(() => undefined);
    return value;
  }
}
