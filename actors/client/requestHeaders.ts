import type { Headers } from '../../bus/types.js';
import { HEADER, headerText } from '../../protocol/headers.js';

/**
 * The headers that explain a client's requests to `nats sub` (HEADER), with
 * what stays the same made once per client id: they ride every request, so
 * the hot path pays for building only the command's own parts.
 */
export class RequestHeaders {
  #clientId = '';
  #clientText = '';
  #read: Headers = {};

  /** The client id as a header carries it. */
  client(clientId: string): string {
    this.#refresh(clientId);
    return this.#clientText;
  }

  /** A read's headers: one object per client id, shared by every read. */
  readonly read = (clientId: string): Headers => {
    this.#refresh(clientId);
    return this.#read;
  };

  #refresh(clientId: string): void {
    if (clientId === this.#clientId && this.#clientText !== '') return;
    this.#clientId = clientId;
    this.#clientText = headerText(clientId);
    this.#read = Object.freeze({ [HEADER.event]: 'read', [HEADER.client]: this.#clientText });
  }
}
