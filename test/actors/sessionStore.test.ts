import { describe, expect, it } from 'vitest';
import { createMemoryBus, createMemoryServer, DecodeError } from '../../index.js';
import { decode, encode, SessionStore, sessionKey } from '../../internal.js';

const MAX = 8_192;

async function store() {
  const bus = createMemoryBus({ server: createMemoryServer({ maxPayload: MAX }) });
  const kv = await bus.kv({ bucket: 'cohort_s_snapshots' });
  const blobs = await bus.blobs({ bucket: 'cohort_s_blobs' });
  return { kv, blobs, store: new SessionStore({ kv, blobs, maxPayload: MAX }) };
}

const snapshot = (text: string) => ({
  session: { seq: 3, snapshot: { value: 'running', context: { text } }, timers: [] } as never,
  journalSeq: 17,
  recent: [['c1', 3, 1_000]] as [string, number, number][],
});

describe('session snapshots', () => {
  it('a small snapshot is stored inline, a large one by claim-check with the reference body a reply uses; both read back whole', async () => {
    const { kv, blobs, store: s } = await store();
    await s.save('ledger', 'small', snapshot('x'));
    expect(await s.load('ledger', 'small')).toEqual(snapshot('x'));
    const big = snapshot('y'.repeat(3 * MAX));
    await s.save('ledger', 'big', big);
    const ref = decode((await kv.get(sessionKey('ledger', 'big')))!.value);
    expect(ref).toEqual({ claimCheck: 'ledger.big.17', bucket: 'cohort_s_blobs', size: expect.any(Number) });
    expect(await blobs.get('ledger.big.17')).not.toBeNull();
    expect(await s.load('ledger', 'big')).toEqual(big);
    expect(await s.load('ledger', 'never')).toBeNull();
  });

  it('what is not a snapshot at a snapshot key is a DecodeError, and the other sessions still load', async () => {
    const { kv, store: s } = await store();
    await s.save('ledger', 'good', snapshot('ok'));
    await kv.put(sessionKey('ledger', 'garbage'), new Uint8Array([0xc1, 0x00]));
    await kv.put(sessionKey('ledger', 'stranger'), encode({ v: 2, hello: 'world' }));
    await kv.put(sessionKey('ledger', 'dangling'), encode({ claimCheck: 'gone', bucket: 'cohort_s_blobs', size: 10 }));
    for (const id of ['garbage', 'stranger', 'dangling']) {
      await expect(s.load('ledger', id), id).rejects.toBeInstanceOf(DecodeError);
    }
    expect(await s.load('ledger', 'good')).toEqual(snapshot('ok'));
  });
});
