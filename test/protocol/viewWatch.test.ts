import { describe, expect, it } from 'vitest';
import { createMemoryBus, type View } from '../../index.js';
import {
  bucketName,
  decode,
  encode,
  NO_SAFEGUARDS,
  packView,
  readView,
  unpackView,
  VIEW_KEY,
  waitForView,
  watchView,
} from '../../internal.js';
import { cleanupAfterEach } from '../cleanup.js';
import { waitFor } from '../waitFor.js';

const CLUSTER = 'vw';

function view(viewId: number, primary = 'w1'): View {
  return {
    viewId,
    members: [
      { id: 'w1', zone: 'a', promotable: true, joined: 1 },
      { id: 'w2', zone: 'b', promotable: true, joined: 2 },
    ],
    leader: 'w1',
    replicas: 0,
    shardCount: 2,
    shards: [
      { primary, replicas: [], state: 'ACTIVE', next: null, epoch: viewId },
      { primary: 'w2', replicas: [], state: 'ACTIVE', next: null, epoch: 1 },
    ],
    transitional: false,
    possibleDataLoss: [],
    safeguards: NO_SAFEGUARDS,
  };
}

const packed = (v: View): Uint8Array => encode(packView(v));
/** Not msgpack at all, and msgpack that is not a view: both must be skipped. */
const garbage = new Uint8Array([0xc1, 0xc1, 0xc1]);
const notAView = encode({ hello: 'world' });

describe('the view watch', () => {
  const track = cleanupAfterEach();

  async function kvOf() {
    const bus = track(createMemoryBus());
    return { bus, kv: await bus.kv({ bucket: bucketName(CLUSTER, 'cluster') }) };
  }

  it('hands over the current view, then every view written; reports unreadable values and goes on to the next good one', async () => {
    const { kv } = await kvOf();
    const first = await kv.put(VIEW_KEY, packed(view(1)));
    const seen: [number, number][] = [];
    const unreadable: number[] = [];
    const watch = await watchView(
      kv,
      (v, revision) => seen.push([v.viewId, revision]),
      (err, revision) => {
        expect(err).toBeInstanceOf(Error);
        unreadable.push(revision);
      },
    );
    try {
      // The current view is handed over before the watch resolves.
      expect(seen).toEqual([[1, first]]);
      const bad1 = await kv.put(VIEW_KEY, garbage);
      const bad2 = await kv.put(VIEW_KEY, notAView);
      await kv.delete(VIEW_KEY);
      const good = await kv.put(VIEW_KEY, packed(view(2)));
      // Positive control: the good view after the bad ones arrives.
      await waitFor(() => seen.length === 2, { what: 'view 2' });
      expect(seen).toEqual([
        [1, first],
        [2, good],
      ]);
      // A delete is reported too (ViewDeletedError): gone is as unusable as garbage.
      expect(unreadable).toEqual([bad1, bad2, bad2 + 1]);
    } finally {
      watch.stop();
    }
  });

  it('reads the current view once: null before the first, and throws on an unreadable one', async () => {
    const { kv } = await kvOf();
    expect(await readView(kv)).toBeNull();
    const revision = await kv.put(VIEW_KEY, packed(view(3)));
    expect(await readView(kv)).toEqual({ view: view(3), revision });
    await kv.put(VIEW_KEY, notAView);
    await expect(readView(kv)).rejects.toThrow(RangeError);
  });

  it('waits for a view that passes the test, past an unreadable one', async () => {
    const { bus, kv } = await kvOf();
    await kv.put(VIEW_KEY, packed(view(1)));
    const tested: number[] = [];
    const unreadable: number[] = [];
    const waiter = await waitForView(bus, CLUSTER, (v) => (tested.push(v.viewId), v.shards[0]!.primary === 'w2'), {
      onUnreadable: (_, revision) => unreadable.push(revision),
    });
    try {
      const bad = await kv.put(VIEW_KEY, garbage);
      await kv.put(VIEW_KEY, packed(view(2)));
      await kv.put(VIEW_KEY, packed(view(3, 'w2')));
      const found = await waiter.until(5_000);
      expect(found?.viewId).toBe(3);
      expect(tested).toEqual([1, 2, 3]);
      expect(unreadable).toEqual([bad]);
      // Once found, later calls answer at once.
      expect(await waiter.until(0)).toBe(found);
    } finally {
      waiter.stop();
    }
  });

  it('with include updates skips the current view; resolves null after the timeout and once stopped', async () => {
    const { bus, kv } = await kvOf();
    await kv.put(VIEW_KEY, packed(view(1, 'w2')));
    const tested: number[] = [];
    const waiter = await waitForView(bus, CLUSTER, (v) => (tested.push(v.viewId), v.shards[0]!.primary === 'w2'), {
      onUnreadable: () => {},
      include: 'updates',
    });
    expect(await waiter.until(50)).toBeNull();
    expect(tested).toEqual([]);
    const pending = waiter.until(60_000);
    waiter.stop();
    expect(await pending).toBeNull();
  });
});

describe('unpacking a view', () => {
  it('a map shaped like a view whose numbers or names are not what a view holds is unreadable, naming what', () => {
    const good = packView(view(3));
    const spoilt: [string, Record<string, unknown>, RegExp][] = [
      ['view id text', { viewId: 'x' }, /view id "x"/],
      ['view id 0', { viewId: 0 }, /view id 0/],
      ['view id fraction', { viewId: 2.5 }, /view id 2.5/],
      ['no leader', { leader: 7 }, /no leader/],
      ['members not lists', { members: [{}] }, /member 0 is malformed/],
      ['join order', { members: [['w1', 'a', true, -1]] }, /member 0 has no join order/],
      ['epoch', { shards: [[0, 0, -1, 'e']] }, /shard 0 is malformed/],
      ['missing secondary', { shards: [[0, 0, -1, 1, -1]] }, /missing secondary/],
      ['data loss', { possibleDataLoss: 'all' }, /possibleDataLoss/],
    ];
    for (const [what, change, message] of spoilt) {
      expect(() => unpackView({ ...good, ...change }), what).toThrow(message);
    }
    // Positive control: the view itself unpacks to what was packed.
    expect(unpackView(good)).toEqual(view(3));
  });

  it('the safeguards read from the store are checked like the rest: junk there spoils the view, naming what', () => {
    const guarded: View = {
      ...view(4),
      safeguards: {
        dropped: [{ member: 'w9', at: 1_700_000_000_000.5 }],
        failoverHalted: 1_700_000_001_000,
        held: [{ member: 'w2', reason: 'quota' }],
        churn: { since: 1_699_999_000_000, last: 1_700_000_001_000 },
        unstable: null,
      },
    };
    const good = packView(guarded);
    // Positive controls: a view with safeguards goes through the store's codec and back as it was, and
    // a view written before safeguards existed (no such field) reads as having none.
    expect(unpackView(decode(encode(good)))).toEqual(guarded);
    const { safeguards: _, ...older } = good;
    expect(unpackView(older).safeguards).toEqual(NO_SAFEGUARDS);
    const g = good.safeguards!;
    const spoilt: [string, unknown, RegExp][] = [
      ['not a map', 'halted', /safeguards is not a map/],
      ['a list', [], /safeguards is not a map/],
      ['null', null, /safeguards is not a map/],
      ['dropped missing', { ...g, dropped: undefined }, /dropped is not a list/],
      ['dropped entry', { ...g, dropped: [['w9']] }, /dropped 0 is malformed/],
      ['dropped nameless', { ...g, dropped: [['', 5]] }, /dropped 0 is malformed/],
      ['dropped time text', { ...g, dropped: [['w9', 'yesterday']] }, /dropped 0 is malformed/],
      ['dropped time negative', { ...g, dropped: [['w9', -1]] }, /dropped 0 is malformed/],
      ['dropped time NaN', { ...g, dropped: [['w9', NaN]] }, /dropped 0 is malformed/],
      ['halted text', { ...g, failoverHalted: 'yes' }, /failoverHalted is not a time or null/],
      ['halted missing', { ...g, failoverHalted: undefined }, /failoverHalted is not a time or null/],
      ['halted infinite', { ...g, failoverHalted: Infinity }, /failoverHalted is not a time or null/],
      ['held not a list', { ...g, held: { w2: 'quota' } }, /held is not a list/],
      ['held stranger', { ...g, held: [['w7', 'quota']] }, /held 0 is not a member of the view/],
      ['held reason', { ...g, held: [['w2', 'boredom']] }, /held 0 has no known reason/],
      ['held proto', { ...g, held: [['w2', '__proto__']] }, /held 0 has no known reason/],
      ['churn shape', { ...g, churn: [5] }, /churn is not \[since, last\]/],
      ['churn backwards', { ...g, churn: [10, 5] }, /churn is not \[since, last\]/],
      ['churn map', { ...g, churn: { since: 1, last: 2 } }, /churn is not \[since, last\]/],
      ['unstable text', { ...g, unstable: 'very' }, /unstable is not a time or null/],
    ];
    for (const [what, safeguards, message] of spoilt) {
      expect(() => unpackView({ ...good, safeguards }), what).toThrow(RangeError);
      expect(() => unpackView({ ...good, safeguards }), what).toThrow(message);
    }
    // Packing refuses a view that holds a member it does not list: the leader never writes one.
    expect(() =>
      packView({ ...guarded, safeguards: { ...guarded.safeguards, held: [{ member: 'w7', reason: 'minimum' }] } }),
    ).toThrow(/w7 is held but not a member/);
  });
});
