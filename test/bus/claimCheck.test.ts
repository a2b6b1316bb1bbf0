import { describe, expect, it } from 'vitest';
import { CLAIM_CHECK_HEADER, decodeBody, encodeBody } from '../../bus/claimCheck.js';
import { decode, encode } from '../../bus/codec.js';
import { DecodeError, EncodeError, InvalidNameError, PayloadTooLargeError } from '../../bus/errors.js';
import type { BlobInfo, BlobStore } from '../../bus/types.js';

/** Our own BlobStore interface over a Map: enough to watch what claim-check stores. */
class MapBlobStore implements BlobStore {
  readonly blobs = new Map<string, Uint8Array>();
  constructor(readonly bucket = 'test-blobs') {}
  async put(name: string, data: Uint8Array): Promise<BlobInfo> {
    this.blobs.set(name, data.slice());
    return { name, size: data.byteLength };
  }
  async get(name: string): Promise<Uint8Array | null> {
    return this.blobs.get(name)?.slice() ?? null;
  }
  async delete(name: string): Promise<boolean> {
    return this.blobs.delete(name);
  }
  async destroy(): Promise<void> {
    this.blobs.clear();
  }
}

function counter(prefix = 'blob'): () => string {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

const small = { text: 'hello' };
const large = { text: 'x'.repeat(5_000), list: [1, 2, 3] };
const LIMIT = 1_000;

describe('bodies that fit travel inline', () => {
  it('returns the encoded body with no headers and stores nothing', async () => {
    const blobs = new MapBlobStore();
    const body = await encodeBody(small, { maxBytes: LIMIT, blobs, allowClaimCheck: true });
    expect(body.headers).toEqual({});
    expect(body.data).toEqual(encode(small));
    expect(blobs.blobs.size).toBe(0);
    expect(await decodeBody(body.data, body.headers)).toEqual(small);
  });

  it('keeps a body of exactly maxBytes inline', async () => {
    const size = encode(large).byteLength;
    const blobs = new MapBlobStore();
    const body = await encodeBody(large, { maxBytes: size, blobs, allowClaimCheck: true });
    expect(body.headers).toEqual({});
    expect(blobs.blobs.size).toBe(0);
  });
});

describe('bodies that do not fit are claim-checked', () => {
  it('stores the encoded body under the generated name and sends a small reference', async () => {
    const blobs = new MapBlobStore();
    const body = await encodeBody(large, { maxBytes: LIMIT, blobs, allowClaimCheck: true, newId: counter() });
    expect(body.headers).toEqual({ [CLAIM_CHECK_HEADER]: 'blob-1' });
    expect(blobs.blobs.get('blob-1')).toEqual(encode(large));
    expect(body.data.byteLength).toBeLessThanOrEqual(LIMIT);
    expect(decode(body.data)).toEqual({ claimCheck: 'blob-1', bucket: 'test-blobs', size: encode(large).byteLength });
    expect(await decodeBody(body.data, body.headers, { blobs })).toEqual(large);
  });

  it('uses a fresh name for each body', async () => {
    const blobs = new MapBlobStore();
    const name = counter();
    const a = await encodeBody(large, { maxBytes: LIMIT, blobs, allowClaimCheck: true, newId: name });
    const b = await encodeBody(
      { ...large, other: true },
      { maxBytes: LIMIT, blobs, allowClaimCheck: true, newId: name },
    );
    expect([a.headers[CLAIM_CHECK_HEADER], b.headers[CLAIM_CHECK_HEADER]]).toEqual(['blob-1', 'blob-2']);
    expect(await decodeBody(b.data, b.headers, { blobs })).toEqual({ ...large, other: true });
  });

  it('names blobs with random UUIDs by default', async () => {
    const blobs = new MapBlobStore();
    const body = await encodeBody(large, { maxBytes: LIMIT, blobs, allowClaimCheck: true });
    expect(body.headers[CLAIM_CHECK_HEADER]).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    expect([...blobs.blobs.keys()]).toEqual([body.headers[CLAIM_CHECK_HEADER]]);
  });

  it('follows the header whatever its case', async () => {
    const blobs = new MapBlobStore();
    const body = await encodeBody(large, { maxBytes: LIMIT, blobs, allowClaimCheck: true, newId: counter() });
    expect(await decodeBody(body.data, { 'cohort-claim-check': 'blob-1' }, { blobs })).toEqual(large);
  });

  it('refuses a generated name that cannot travel as a header value, storing nothing', async () => {
    for (const bad of ['', 'two\nlines', 'cr\rhere']) {
      const blobs = new MapBlobStore();
      const error = await rejection(
        encodeBody(large, { maxBytes: LIMIT, blobs, allowClaimCheck: true, newId: () => bad }),
      );
      expect(error).toBeInstanceOf(InvalidNameError);
      expect(blobs.blobs.size).toBe(0);
    }
  });
});

describe('bodies that do not fit and may not be claim-checked are refused', () => {
  it('without allowClaimCheck', async () => {
    const blobs = new MapBlobStore();
    const error = await rejection(encodeBody(large, { maxBytes: LIMIT, blobs, where: 'command body' }));
    expect(error).toBeInstanceOf(PayloadTooLargeError);
    expect(error).toMatchObject({ size: encode(large).byteLength, limit: LIMIT, where: 'command body' });
    expect(blobs.blobs.size).toBe(0);
  });

  it('without a blob store', async () => {
    const error = await rejection(encodeBody(large, { maxBytes: LIMIT, allowClaimCheck: true }));
    expect(error).toBeInstanceOf(PayloadTooLargeError);
  });

  it('when the value itself cannot be encoded, before touching the store', async () => {
    const blobs = new MapBlobStore();
    const error = await rejection(encodeBody({ m: new Map() }, { maxBytes: 10, blobs, allowClaimCheck: true }));
    expect(error).toBeInstanceOf(EncodeError);
    expect(error).toMatchObject({ path: '$.m' });
    expect(blobs.blobs.size).toBe(0);
  });
});

describe('decoding a claim-checked body that cannot be followed', () => {
  it('fails with DecodeError naming a missing blob', async () => {
    const blobs = new MapBlobStore();
    const error = await rejection(decodeBody(encode({}), { [CLAIM_CHECK_HEADER]: 'gone-42' }, { blobs }));
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).reason).toContain('gone-42');
  });

  it('fails with DecodeError when there is no blob store', async () => {
    const error = await rejection(decodeBody(encode({}), { [CLAIM_CHECK_HEADER]: 'blob-1' }));
    expect(error).toBeInstanceOf(DecodeError);
  });

  it('fails with DecodeError on an empty header', async () => {
    const error = await rejection(decodeBody(encode({}), { [CLAIM_CHECK_HEADER]: '' }, { blobs: new MapBlobStore() }));
    expect(error).toBeInstanceOf(DecodeError);
  });

  it('fails with DecodeError when the blob holds no valid body, saying which blob', async () => {
    const blobs = new MapBlobStore();
    await blobs.put('junk', new Uint8Array([0xc1]));
    const error = await rejection(
      decodeBody(encode({}), { [CLAIM_CHECK_HEADER]: 'junk' }, { blobs, where: 'command' }),
    );
    expect(error).toBeInstanceOf(DecodeError);
    expect((error as DecodeError).where).toContain('junk');
  });

  it('decodes an inline body with DecodeError for garbage', async () => {
    const error = await rejection(decodeBody(new Uint8Array([0xc0, 0xc0]), {}));
    expect(error).toBeInstanceOf(DecodeError);
  });
});
