import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus, createMemoryServer, DecodeError } from '../../index.js';
import { decode, encode, SessionStore, sessionKey } from '../../internal.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { BlobStore, Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { startTestServer } from '../nats.js';

/** Snapshots over this many bytes go to the blob store, whatever the server's own limit. */
const MAX = 8_192;

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

const memory = createMemoryServer({ maxPayload: MAX });
const targets = [
  { name: 'memory', bus: async (): Promise<Bus> => createMemoryBus({ server: memory }) },
  { name: 'nats', bus: (): Promise<Bus> => createNatsBus({ servers: nats.url }) },
];

const snapshot = (text: string, journalSeq = 17) => ({
  session: { seq: 3, snapshot: { value: 'running', context: { text } }, timers: [] } as never,
  journalSeq,
  recent: [['c1', 3, 1_000]] as [string, number, number][],
});
const big = (journalSeq: number, fill = 'y') => snapshot(fill.repeat(3 * MAX), journalSeq);

let unique = 0;

describe.each(targets)('session snapshots ($name)', (target) => {
  const track = cleanupAfterEach();

  async function store(blobsOf: (blobs: BlobStore) => BlobStore = (b) => b, cluster = `s${process.pid}x${unique++}`) {
    const bus = track(await target.bus());
    const kv = await bus.kv({ bucket: `cohort_${cluster}_snapshots` });
    const blobs = await bus.blobs({ bucket: `cohort_${cluster}_blobs`, maxAge: 0 });
    return { kv, blobs, cluster, store: new SessionStore({ kv, blobs: blobsOf(blobs), maxPayload: MAX }) };
  }

  it('a small snapshot is stored inline, a large one by claim-check with the reference body a reply uses; both read back whole', async () => {
    const { kv, blobs, cluster, store: s } = await store();
    await s.save('ledger', 'small', snapshot('x'));
    expect(await s.load('ledger', 'small')).toEqual(snapshot('x'));
    await s.save('ledger', 'big', big(17));
    const ref = decode((await kv.get(sessionKey('ledger', 'big')))!.value);
    expect(ref).toEqual({ claimCheck: 'ledger.big.17', bucket: `cohort_${cluster}_blobs`, size: expect.any(Number) });
    expect(await blobs.get('ledger.big.17')).not.toBeNull();
    expect(await s.load('ledger', 'big')).toEqual(big(17));
    expect(await s.load('ledger', 'never')).toBeNull();
  });

  it('what is not a snapshot at a snapshot key is a DecodeError, and the other sessions still load', async () => {
    const { kv, cluster, store: s } = await store();
    await s.save('ledger', 'good', snapshot('ok'));
    await kv.put(sessionKey('ledger', 'garbage'), new Uint8Array([0xc1, 0x00]));
    await kv.put(sessionKey('ledger', 'stranger'), encode({ v: 2, hello: 'world' }));
    // A reference to a blob that is not there, and no newer snapshot to read instead.
    const dangling = encode({ claimCheck: 'gone', bucket: `cohort_${cluster}_blobs`, size: 10 });
    await kv.put(sessionKey('ledger', 'dangling'), dangling);
    for (const id of ['garbage', 'stranger', 'dangling']) {
      await expect(s.load('ledger', id), id).rejects.toBeInstanceOf(DecodeError);
    }
    expect(await s.load('ledger', 'good')).toEqual(snapshot('ok'));
  });

  it('a snapshot that replaces a claim-checked one deletes the old blob once it is stored', async () => {
    const { blobs, cluster, store: s } = await store();
    await s.save('ledger', 'a', big(17));
    await s.save('ledger', 'a', big(20));
    expect(await blobs.get('ledger.a.17')).toBeNull();
    expect(await s.load('ledger', 'a')).toEqual(big(20));
    // Rewritten at the same sequence it lands on its own blob, which stays.
    await s.save('ledger', 'a', big(20, 'z'));
    expect(await s.load('ledger', 'a')).toEqual(big(20, 'z'));
    // Another worker that never read it (a failover) finds the old blob from the store, and deletes it too.
    const other = await store((b) => b, cluster);
    await other.store.save('ledger', 'a', big(30));
    expect(await blobs.get('ledger.a.20')).toBeNull();
    // Back on the first worker, which loads it (as an activation does) and replaces it by a small one: that blob goes too.
    expect(await s.load('ledger', 'a')).toEqual(big(30));
    await s.save('ledger', 'a', snapshot('small', 31));
    expect(await blobs.get('ledger.a.30')).toBeNull();
    expect(await s.load('ledger', 'a')).toEqual(snapshot('small', 31));
    // Positive control: another session's blob is left alone.
    await s.save('ledger', 'b', big(5));
    await s.save('ledger', 'a', big(40));
    expect(await blobs.get('ledger.b.5')).not.toBeNull();
  });

  it('a reader whose snapshot is replaced and its blob deleted between reading the key and the blob reads the newer one', async () => {
    const { cluster, store: writer } = await store();
    await writer.save('ledger', 'raced', big(17));
    let raced = false;
    // The reader's blob fetch is where the writer gets in: the new snapshot stored, the old blob deleted.
    const reader = await store(
      (blobs) => ({
        bucket: blobs.bucket,
        put: (n, d) => blobs.put(n, d),
        delete: (n) => blobs.delete(n),
        destroy: () => blobs.destroy(),
        get: async (n) => {
          if (!raced) {
            raced = true;
            await writer.save('ledger', 'raced', big(21));
          }
          return blobs.get(n);
        },
      }),
      cluster,
    );
    expect(await reader.store.load('ledger', 'raced')).toEqual(big(21));
    expect(raced).toBe(true);
  });
});
