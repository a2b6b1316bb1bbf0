import { claimCheckOf, decodeBody } from '../../bus/claimCheck.js';
import type { Clock } from '../../bus/clock.js';
import { decode } from '../../bus/codec.js';
import { TimeoutError } from '../../bus/errors.js';
import type { BlobStore, Bus, Message } from '../../bus/types.js';
import { ClientDisconnectedError } from '../../protocol/errors.js';
import { bucketName } from '../../protocol/names.js';
import { withDeadline } from './deadline.js';

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

/** The call a reply answers: what it was, and its deadline (a pending request is one). */
export interface ReplyCall {
  readonly spec: { readonly what: string; readonly timeout?: number | undefined; readonly mutates: boolean };
  /** When the call's timeout began to run. */
  readonly started: number;
}

export class ReplyDecoder {
  readonly #blobsBucket: string;
  readonly #source: ReplySource;
  readonly #clock: Clock;
  /** Opened on the bus of the moment; a new connection opens its own. */
  #blobs: { bus: Bus; store: Promise<BlobStore> } | undefined;

  constructor(options: { readonly cluster: string; readonly source: ReplySource; readonly clock: Clock }) {
    this.#blobsBucket = bucketName(options.cluster, 'replies');
    this.#source = options.source;
    this.#clock = options.clock;
  }

  /**
   * A claim-checked body is fetched within the call's deadline: past it the
   * call fails with TimeoutError, ambiguous for a command (it was answered,
   * so it may well have committed), whatever the blob store does.
   */
  async decode(m: Message, call: ReplyCall): Promise<unknown> {
    const { what, timeout, mutates } = call.spec;
    const name = claimCheckOf(m.headers);
    if (name === undefined) return decode(m.data, { where: `reply to ${what}` });
    if (timeout === undefined) return this.#fetch(m, name, what);
    return withDeadline(
      this.#fetch(m, name, what),
      this.#clock,
      call.started + timeout - this.#clock.now(),
      () => new TimeoutError(`${what} (fetching its reply)`, timeout, { ambiguous: mutates }),
    );
  }

  async #fetch(m: Message, name: string, what: string): Promise<unknown> {
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
