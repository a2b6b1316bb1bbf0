import { randomUUID } from 'node:crypto';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { bucketName, DecodeError, decode, encode, timerKey } from '../../internal.js';
import { decodeDue, encodeDue } from '../../protocol/timerValue.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('a timer index value', () => {
  it('is an ISO time for a whole millisecond, decimal text for a fraction, and reads back as it was', () => {
    const at = Date.UTC(2026, 11, 4, 3, 40, 17, 123);
    expect(new TextDecoder().decode(encodeDue(at))).toBe('2026-12-04T03:40:17.123Z');
    expect(decodeDue(encodeDue(at), 'x')).toBe(at);
    expect(new TextDecoder().decode(encodeDue(1500.25))).toBe('1500.25');
    expect(decodeDue(encodeDue(1500.25), 'x')).toBe(1500.25);
    expect(decodeDue(encodeDue(0), 'x')).toBe(0);
    expect(decodeDue(text('1764819617123'), 'x')).toBe(1764819617123);
    expect(() => encodeDue(NaN)).toThrow(RangeError);
  });

  it('an older version’s msgpack number still reads', () => {
    for (const due of [1_764_819_617_123, 1500.25, 3, 0]) expect(decodeDue(encode(due), 'x')).toBe(due);
  });

  it('anything else is a DecodeError naming where: junk, a msgpack string, an ISO time that is no date, empty', () => {
    const bad = [
      new Uint8Array([0xc1]),
      new Uint8Array(0),
      encode('not a time'),
      encode({ due: 5 }),
      text('2026-13-45T99:99:99.999Z'),
      text('tomorrow'),
      text('12abc'),
      text('1e999'),
    ];
    for (const value of bad) expect(() => decodeDue(value, 'timer index k'), String(value)).toThrow(DecodeError);
    expect(() => decodeDue(text('tomorrow'), 'timer index k')).toThrow(/timer index k/);
  });
});

describe('the timer index a worker writes (nats-server)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();
  const BELL = 4_000;
  const app = defineApplication({ name: 'counter', machine: counterMachine.provide({ delays: { bell: BELL } }) });

  it('reads as an ISO time with nats kv get; an entry an older version wrote (msgpack) is honoured, not taken for junk', async () => {
    const cluster = `t${randomUUID().slice(0, 8)}`;
    const bus = track(await createNatsBus({ servers: server.url }));
    const first = await startWorker({ bus, cluster, applications: [app], shardCount: 4 });
    const client = track(await connect({ bus, cluster, label: 'arm', shardCount: 4 }));
    const before = Date.now();
    await client.session('counter', 'sleeper').send({ type: 'ARM' });
    await using nc = await connectTest(server);
    const timers = await new Kvm(nc).open(bucketName(cluster, 'timers'));
    const key = timerKey(shardOf('counter', 'sleeper', 4), 'counter', 'sleeper');
    const written = await waitFor(async () => (await timers.get(key))?.string(), { what: 'the timer entry' });
    expect(written).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const due = Date.parse(written);
    expect(due).toBeGreaterThanOrEqual(before + BELL);
    expect(due).toBeLessThanOrEqual(Date.now() + BELL);

    // As a rolling upgrade meets it: the sleeping session's entry in the old form.
    await first.stop();
    await timers.put(key, encode(due));
    const second = track(await startWorker({ bus, cluster, applications: [app], shardCount: 4 }));
    await waitFor(() => second.serving.length === 4, { what: 'the new worker serving', timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Junk would be removed and its session woken at once; a time is left for its bell.
    expect(Date.now(), 'checked well before the bell').toBeLessThan(due - 500);
    expect(second.activeSessions).toBe(0);
    expect(decode((await timers.get(key))!.value)).toBe(due);
    await waitFor(() => second.activeSessions === 1, { what: 'the bell woke the session', timeoutMs: BELL + 5_000 });
    expect(Date.now()).toBeGreaterThanOrEqual(due);
  });
});
