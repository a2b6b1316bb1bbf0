import { decode, encode } from './codec.js';
import { systemEnvironment } from './environment.js';
import { DecodeError, InvalidNameError, PayloadTooLargeError } from './errors.js';
import type { BlobStore, Headers } from './types.js';

/**
 * Claim-check: a body too large for one message is stored once as a blob
 * and the message carries only its name, so large documents do not clog
 * subjects (and the journal keeps small entries).
 */

/** Names the blob that holds the real body; readable in `nats sub`. */
export const CLAIM_CHECK_HEADER = 'Cohort-Claim-Check';

export interface EncodeBodyOptions {
  /** Largest body sent inline, usually the server's max payload. */
  maxBytes: number;
  blobs?: BlobStore;
  /** Off by default: the caller says whether this body may live outside the message. */
  allowClaimCheck?: boolean;
  /** Blob names (default the system environment's ids): the host passes its environment's. */
  newId?: () => string;
  /** Names the body in errors. */
  where?: string;
}

export interface EncodedBody {
  readonly data: Uint8Array;
  readonly headers: Record<string, string>;
}

export interface DecodeBodyOptions {
  blobs?: BlobStore;
  maxDepth?: number;
  /** Names the body in errors. */
  where?: string;
}

/**
 * Encodes once. Inline when it fits; otherwise stored under a fresh blob
 * name and replaced by a small reference body plus the claim-check header.
 * PayloadTooLargeError when it does not fit and claim-check is not possible.
 */
export async function encodeBody(value: unknown, options: EncodeBodyOptions): Promise<EncodedBody> {
  const where = options.where ?? 'body';
  const bytes = encode(value, { where });
  if (bytes.byteLength <= options.maxBytes) return { data: bytes, headers: {} };
  const blobs = options.blobs;
  if (options.allowClaimCheck !== true || blobs === undefined) {
    throw new PayloadTooLargeError(bytes.byteLength, options.maxBytes, where);
  }
  const name = (options.newId ?? systemEnvironment.newId)();
  if (typeof name !== 'string' || name.length === 0 || /[\r\n]/.test(name)) {
    throw new InvalidNameError(
      'blob name',
      String(name),
      'must be a non-empty single line (it travels as a header value)',
    );
  }
  await blobs.put(name, bytes);
  // The reference body is informational (the header is what decodeBody follows),
  // so a reader without claim-check support still sees what happened.
  const data = encode({ claimCheck: name, bucket: blobs.bucket, size: bytes.byteLength }, { where });
  if (data.byteLength > options.maxBytes) {
    throw new PayloadTooLargeError(data.byteLength, options.maxBytes, `${where} (claim-check reference)`);
  }
  return { data, headers: { [CLAIM_CHECK_HEADER]: name } };
}

/** Decodes a body, following the claim-check header to its blob when present. */
export async function decodeBody(data: Uint8Array, headers: Headers, options?: DecodeBodyOptions): Promise<unknown> {
  const where = options?.where ?? 'body';
  const name = claimCheckOf(headers);
  if (name === undefined) return decode(data, { where, maxDepth: options?.maxDepth });
  if (name.length === 0) throw new DecodeError(where, `empty ${CLAIM_CHECK_HEADER} header`);
  const blobs = options?.blobs;
  if (blobs === undefined) {
    throw new DecodeError(where, `claim-checked as blob ${JSON.stringify(name)}, but no blob store was given`);
  }
  return fetchClaimChecked(blobs, name, { where, maxDepth: options?.maxDepth });
}

/** The body a claim-check names, fetched from `blobs` and decoded. */
export async function fetchClaimChecked(
  blobs: BlobStore,
  name: string,
  options: { where: string; maxDepth?: number | undefined },
): Promise<unknown> {
  const bytes = await blobs.get(name);
  if (bytes === null) {
    throw new DecodeError(
      options.where,
      `claim-checked blob ${JSON.stringify(name)} not found in bucket ${blobs.bucket}`,
    );
  }
  return decode(bytes, {
    where: `${options.where} (claim-checked blob ${JSON.stringify(name)})`,
    maxDepth: options.maxDepth,
  });
}

/**
 * The blob a reference body names, where no header can carry it (a KV
 * value): the same `{ claimCheck, bucket, size }` body encodeBody sends.
 */
export function claimCheckReference(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const name = (body as Record<string, unknown>)['claimCheck'];
  return typeof name === 'string' && name.length > 0 ? name : undefined;
}

/** The claim-check blob name, if the headers carry one; header names match without regard to case. */
export function claimCheckOf(headers: Headers): string | undefined {
  const exact = headers[CLAIM_CHECK_HEADER];
  if (exact !== undefined) return exact;
  const wanted = CLAIM_CHECK_HEADER.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return value;
  }
  return undefined;
}
