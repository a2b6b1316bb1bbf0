import type { Logger } from 'pino';
import { encodeBody } from '../../bus/claimCheck.js';
import { encode } from '../../bus/codec.js';
import type { BlobStore, Bus, Delivery } from '../../bus/types.js';
import { refuse } from '../../protocol/errors.js';

/** Room kept in a reply for its headers and subject. */
export const REPLY_HEADROOM = 1024;

export interface ResponderOptions {
  readonly bus: Bus;
  /** Where a reply too large for a message is claim-checked: the replies bucket, whose blobs expire. */
  readonly blobs: BlobStore;
  readonly newId: () => string;
  readonly log: Logger;
}

/**
 * Sends a msgpack reply: one that fits (nearly all) at once, with no
 * promise made for it; one too large for a message (a big document, a
 * scatter over many sessions) by claim-check, which the client fetches and
 * deletes, or which expires.
 */
export class Responder {
  readonly #bus: Bus;
  readonly #blobs: BlobStore;
  readonly #newId: () => string;
  readonly #log: Logger;

  constructor(options: ResponderOptions) {
    this.#bus = options.bus;
    this.#blobs = options.blobs;
    this.#newId = options.newId;
    this.#log = options.log;
  }

  /** The most a reply may be before it goes by claim-check. */
  get maxBytes(): number {
    return this.#bus.server.maxPayload - REPLY_HEADROOM;
  }

  /** Rejects only when the claim-check fails: the caller answers with that error. */
  respond(m: Delivery, reply: unknown): Promise<void> | undefined {
    const maxBytes = this.maxBytes;
    const data = encode(reply, { where: 'body' });
    if (data.byteLength <= maxBytes) {
      m.respond(data);
      return undefined;
    }
    return this.#large(m, reply, maxBytes);
  }

  /** As respond, answering with the error when even the claim-check fails. */
  async send(m: Delivery, reply: unknown): Promise<void> {
    try {
      await this.respond(m, reply);
    } catch (err) {
      this.#log.warn({ err, subject: m.subject }, 'reply not sent whole');
      m.respond(encode(refuse(err)));
    }
  }

  async #large(m: Delivery, reply: unknown, maxBytes: number): Promise<void> {
    const body = await encodeBody(reply, { maxBytes, blobs: this.#blobs, allowClaimCheck: true, newId: this.#newId });
    m.respond(body.data, { headers: body.headers });
  }
}
