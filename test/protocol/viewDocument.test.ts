import { randomUUID } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryBus, defineApplication, startWorker, type View } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import {
  bucketName,
  DecodeError,
  decodeView,
  encode,
  encodeView,
  NO_SAFEGUARDS,
  packView,
  VIEW_FORMAT,
  VIEW_KEY,
  watchView,
  type ViewDocument,
} from '../../internal.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const guarded: View = {
  viewId: 7,
  members: [
    { id: 'w1', zone: 'a', promotable: true, joined: 1 },
    { id: 'w2', zone: 'b', promotable: true, joined: 2 },
    { id: 'w3', zone: 'c', promotable: false, joined: 3 },
  ],
  leader: 'w1',
  replicas: 1,
  shardCount: 3,
  shards: [
    { primary: 'w1', replicas: ['w2'], state: 'ACTIVE', next: null, epoch: 4 },
    { primary: 'w2', replicas: ['w3'], state: 'PENDING', next: 'w1', epoch: 2 },
    { primary: null, replicas: [], state: 'DEAD', next: null, epoch: 9 },
  ],
  transitional: false,
  possibleDataLoss: [2],
  safeguards: {
    dropped: [{ member: 'w9', at: 1_700_000_000_000.5 }],
    failoverHalted: null,
    held: [{ member: 'w3', reason: 'quota' }],
    churn: { since: 1_699_999_000_000, last: 1_700_000_001_000 },
    unstable: null,
  },
};

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const json = (doc: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(doc));

describe('the view as stored', () => {
  it('is a JSON document naming members and copies by id, one line per member and per shard, and reads back as it was', () => {
    const stored = encodeView(guarded);
    const doc = JSON.parse(text(stored)) as ViewDocument;
    expect(doc).toMatchObject({ format: VIEW_FORMAT, viewId: 7, leader: 'w1', shardCount: 3 });
    expect(doc.members).toEqual([
      { id: 'w1', zone: 'a', state: 'up', promotable: true, joined: 1 },
      { id: 'w2', zone: 'b', state: 'up', promotable: true, joined: 2 },
      { id: 'w3', zone: 'c', state: 'held', promotable: false, joined: 3 },
    ]);
    expect(doc.shards[0]).toEqual({ shard: 0, state: 'ACTIVE', primary: 'w1', secondaries: ['w2'], epoch: 4 });
    expect(doc.shards[1]).toMatchObject({ state: 'PENDING', primary: 'w2', next: 'w1' });
    expect(text(stored)).toContain('\n  {"shard":2,"state":"DEAD","primary":null,"secondaries":[],"epoch":9}');
    expect(decodeView(stored, 'view')).toEqual(guarded);
  });

  it('a view an older version wrote (msgpack, packed) still reads: a rolling upgrade follows either leader', () => {
    expect(decodeView(encode(packView(guarded)), 'view')).toEqual(guarded);
    const { safeguards: _, ...older } = packView({ ...guarded, safeguards: NO_SAFEGUARDS });
    expect(decodeView(encode(older), 'view').safeguards).toEqual(NO_SAFEGUARDS);
  });

  it('too large for the payload limit as JSON, the view is written packed (msgpack), and reads back the same', () => {
    const json = encodeView(guarded);
    expect(encodeView(guarded, json.byteLength)).toEqual(json);
    const packed = encodeView(guarded, json.byteLength - 1);
    expect(packed).toEqual(encode(packView(guarded)));
    expect(packed.byteLength).toBeLessThan(json.byteLength);
    expect(decodeView(packed, 'view')).toEqual(guarded);
  });

  it('JSON that is not JSON is a DecodeError; JSON that is no coherent view is a RangeError naming what', () => {
    const good = JSON.parse(text(encodeView(guarded))) as ViewDocument;
    for (const broken of ['{', '{"format":', '{\u00ff}', ' {"a":1']) {
      const bytes = broken === '{\u00ff}' ? new Uint8Array([0x7b, 0xff, 0x7d]) : new TextEncoder().encode(broken);
      expect(() => decodeView(bytes, 'view revision 3'), broken).toThrow(DecodeError);
    }
    const members = good.members;
    const spoilt: [string, Record<string, unknown>, RegExp][] = [
      ['other format', { format: 'cohort-view/9' }, /not a cluster view/],
      ['no format', { format: undefined }, /not a cluster view/],
      ['view id 0', { viewId: 0 }, /view id 0/],
      ['no leader', { leader: 5 }, /no leader/],
      [
        'stranger primary',
        { shards: [{ ...good.shards[0], primary: 'mallory' }, ...good.shards.slice(1)] },
        /shard 0 primary "mallory" is not a member/,
      ],
      [
        'stranger secondary',
        { shards: [{ ...good.shards[0], secondaries: ['eve'] }, ...good.shards.slice(1)] },
        /shard 0 secondary "eve"/,
      ],
      [
        'null secondary',
        { shards: [{ ...good.shards[0], secondaries: [null] }, ...good.shards.slice(1)] },
        /missing secondary/,
      ],
      [
        'stranger next',
        { shards: [good.shards[0], { ...good.shards[1], next: 'eve' }, good.shards[2]] },
        /shard 1 next/,
      ],
      ['shards out of order', { shards: [good.shards[1], good.shards[0], good.shards[2]] }, /shard 0 is malformed/],
      [
        'shard state',
        { shards: [{ ...good.shards[0], state: 'HAPPY' }, ...good.shards.slice(1)] },
        /shard 0 has no known state/,
      ],
      ['shard epoch', { shards: [{ ...good.shards[0], epoch: -1 }, ...good.shards.slice(1)] }, /shard 0 is malformed/],
      [
        'no primary key',
        { shards: [{ ...good.shards[0], primary: undefined }, ...good.shards.slice(1)] },
        /shard 0 is malformed/,
      ],
      ['shard count', { shardCount: 4 }, /shardCount/],
      ['twice', { members: [...members, members[0]] }, /member 3 is listed twice/],
      [
        'member join',
        { members: [{ ...members[0], joined: 'first' }, ...members.slice(1)] },
        /member 0 has no join order/,
      ],
      [
        'member state',
        { members: [{ ...members[0], state: 'held' }, ...members.slice(1)] },
        /member 0 state "held" disagrees/,
      ],
      [
        'held stranger',
        { safeguards: { ...good.safeguards, held: [{ member: 'eve', reason: 'quota' }] } },
        /disagrees|not a member/,
      ],
      ['churn as a list', { safeguards: { ...good.safeguards, churn: [1, 2] } }, /churn/],
      ['no safeguards', { safeguards: undefined }, /safeguards is not a map/],
      ['not a map', { members: 'all' }, /not a cluster view/],
    ];
    for (const [what, change, message] of spoilt) {
      expect(() => decodeView(json({ ...good, ...change }), 'view'), what).toThrow(RangeError);
      expect(() => decodeView(json({ ...good, ...change }), 'view'), what).toThrow(message);
    }
    // Only a map starts with `{`: other JSON is read as msgpack, and is none either.
    expect(() => decodeView(json([1, 2]), 'view')).toThrow(DecodeError);
    // Positive control: the untouched document reads.
    expect(decodeView(json(good), 'view')).toEqual(guarded);
  });

  it('a watch skips a forged JSON view and goes on to the next good one (memory bus)', async () => {
    const bus = createMemoryBus();
    try {
      const kv = await bus.kv({ bucket: bucketName('vd', 'cluster') });
      const seen: number[] = [];
      const unreadable: unknown[] = [];
      const watch = await watchView(
        kv,
        (v) => seen.push(v.viewId),
        (err) => unreadable.push(err),
      );
      const forged = JSON.parse(text(encodeView(guarded))) as ViewDocument;
      await kv.put(VIEW_KEY, json({ ...forged, viewId: 99, shards: [{ ...forged.shards[0], primary: 'eve' }] }));
      await kv.put(VIEW_KEY, new TextEncoder().encode('{"format":"cohort-view/2",'));
      await kv.put(VIEW_KEY, encodeView({ ...guarded, viewId: 8 }));
      await waitFor(() => seen.length === 1, { what: 'the good view' });
      expect(seen).toEqual([8]);
      expect(unreadable.map((e) => (e as Error).constructor.name)).toEqual(['RangeError', 'DecodeError']);
      watch.stop();
    } finally {
      await bus.close();
    }
  });
});

describe('the view a worker writes, read as natscli reads it (nats-server)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();

  it('@nats-io/kv get of the view key is JSON an operator reads: leader, members with zone and state, shards', async () => {
    const cluster = `vd${randomUUID().slice(0, 8)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine });
    const bus = track(await createNatsBus({ servers: server.url }));
    const worker = track(await startWorker({ bus, cluster, applications: [app], zone: 'east', shardCount: 8 }));
    await waitFor(() => worker.serving.length === 8, { what: 'the worker serving', timeoutMs: 10_000 });
    await using nc = await connectTest(server);
    const kv = await new Kvm(nc).open(bucketName(cluster, 'cluster'));
    const entry = await kv.get(VIEW_KEY);
    const doc = JSON.parse(entry!.string()) as ViewDocument;
    const self = worker.view!.leader;
    expect(doc.format).toBe(VIEW_FORMAT);
    expect(doc.leader).toBe(self);
    expect(doc.members).toEqual([expect.objectContaining({ id: self, zone: 'east', state: 'up' })]);
    expect(doc.shards).toHaveLength(8);
    expect(doc.shards.every((s, i) => s.shard === i && s.state === 'ACTIVE' && s.primary === self)).toBe(true);
    expect(decodeView(entry!.value, 'view')).toEqual(worker.view);
  });
});
