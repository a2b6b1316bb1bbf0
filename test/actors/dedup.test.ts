import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApplication, SimulatedClock, startWorker, type Worker } from '../../index.js';
import { DEDUP_MAX_IDS, DEDUP_WINDOW_MS, decode, encode, sessionKey } from '../../internal.js';
import { systemClock, type Clock } from '../../bus/clock.js';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession, SHARDS } from '../fixtures/rawCohort.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const LIFETIME = 5_000;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: LIFETIME });
const CLIENT = 'raw#00000001';
/** More commands after the first than a snapshot used to carry (64) or a session held (256), past a compaction (100). */
const LATER = 300;

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

/** Memory: a server per test on a virtual clock. NATS: the server's own clock, which no test can move. */
const targets = [
  {
    name: 'memory',
    env: (): { clock: Clock; bus: () => Promise<Bus> } => {
      const clock = new SimulatedClock(Date.now());
      const server: MemoryServer = createMemoryServer({ environment: { clock } });
      return { clock, bus: async () => createMemoryBus({ server }) };
    },
  },
  {
    name: 'nats',
    env: (): { clock: Clock; bus: () => Promise<Bus> } => ({
      clock: systemClock,
      bus: () => createNatsBus({ servers: nats.url }),
    }),
  },
] as const;

/**
 * De-duplication of commands over its whole window (README "Commands are
 * applied once"): a retried command id inside the window is answered
 * `duplicate: true` with the seq it got the first time, and applied once,
 * whatever happened to the session in between.
 */
describe.each(targets)('de-duplication window ($name)', (target) => {
  const track = cleanupAfterEach();

  async function setup() {
    const { clock, bus } = target.env();
    const cluster = `d${randomUUID().slice(0, 8)}`;
    const start = async (): Promise<{ worker: Worker; bus: Bus }> => {
      const b = await bus();
      const worker = await startWorker({
        bus: b,
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
        environment: { clock },
      });
      return { worker, bus: b };
    };
    const raw = track(await bus());
    const s = new RawSession(raw, cluster, 'acct');
    /** The first command, then LATER others; returns when the first was sent on the clock. */
    const busy = async (): Promise<number> => {
      const sentAt = clock.now();
      expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
      for (let i = 1; i <= LATER; i++) await s.send(CLIENT, `later-${i}`, { type: 'ADD', by: 1 });
      return sentAt;
    };
    return { clock, start, s, busy, raw, cluster };
  }

  it('inside the window, after the session was passivated: answered as a duplicate with its first seq, applied once', async () => {
    const { start, s, busy } = await setup();
    const { worker } = await start();
    track(worker);
    await busy();
    expect(await worker.passivate()).toBe(1);
    expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    expect(await s.read({ client: CLIENT })).toMatchObject({ ok: true, seq: LATER + 1, document: { n: LATER + 1 } });
    // Positive control: a new id is a new command.
    expect(await s.send(CLIENT, 'fresh', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: LATER + 2 });
  });

  it('inside the window, after the worker died and another took its shards over: the same', async () => {
    const { start, s, busy } = await setup();
    const first = await start();
    await busy();
    // Killed: no passivation, no snapshot beyond the last compaction; its connection is gone.
    await first.bus.close();
    const successor = await start();
    track(successor.worker);
    expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    expect(await s.send(CLIENT, `later-${LATER}`, { type: 'ADD', by: 1 })).toMatchObject({
      seq: LATER + 1,
      duplicate: true,
    });
    expect(await s.read({ client: CLIENT })).toMatchObject({ ok: true, seq: LATER + 1, document: { n: LATER + 1 } });
    await first.worker.stop().catch(() => undefined);
  });

  it('the ids a stored snapshot carries are read as untrusted: malformed ones are skipped, the session loads and serves', async () => {
    const { start, s, raw, cluster } = await setup();
    const { worker } = await start();
    track(worker);
    expect(await s.send(CLIENT, 'kept', { type: 'ADD', by: 1 })).toMatchObject({ seq: 1 });
    expect(await worker.passivate()).toBe(1);
    const kv = await raw.kv({ bucket: `cohort_${cluster}_snapshots` });
    const key = sessionKey('counter', s.id);
    const stored = decode((await kv.get(key))!.value) as { v: 1; snapshot: { recent: unknown[] } };
    const [kept] = stored.snapshot.recent;
    stored.snapshot.recent = [kept, 'junk', [42, 1, 0], ['neg', -1, 0], ['half', 1.5, 0], ['late', 1, 'x'], null];
    await kv.put(key, encode(stored));
    expect(await s.send(CLIENT, 'kept', { type: 'ADD', by: 1 })).toMatchObject({ seq: 1, duplicate: true });
    expect(await s.send(CLIENT, 'half', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 2 });
    // Not a list at all: nothing is taken from it, and the journal's own window still knows the id.
    expect(await worker.passivate()).toBe(1);
    const again = decode((await kv.get(key))!.value) as { v: 1; snapshot: { recent: unknown } };
    again.snapshot.recent = { kept: 1 };
    await kv.put(key, encode(again));
    expect(await s.send(CLIENT, 'half', { type: 'ADD', by: 1 })).toMatchObject({ seq: 2, duplicate: true });
    expect(await s.read({ client: CLIENT })).toMatchObject({ ok: true, seq: 2, document: { n: 2 } });
  });

  if (target.name === 'memory') {
    it('more commands inside the window than a session keeps ids of: an older retry is still a duplicate, applied once, through the journal', async () => {
      const { start, s } = await setup();
      const { worker } = await start();
      track(worker);
      expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({ seq: 1 });
      const more = DEDUP_MAX_IDS + 10;
      for (let i = 1; i <= more; i++) await s.send(CLIENT, `m-${i}`, { type: 'ADD', by: 1 });
      // The session no longer holds the id; the journal's window still does. Its entry was compacted away
      // (a snapshot every 100 events), so the answer carries the session's current seq, and nothing is applied.
      expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({
        ok: true,
        seq: more + 1,
        duplicate: true,
      });
      expect(worker.activeSessions).toBe(1); // the copy was not taken for stale
      expect(await s.read({ client: CLIENT })).toMatchObject({ seq: more + 1, document: { n: more + 1 } });
      // Positive control: the newest ids are answered by the session itself, with their own seq.
      expect(await s.send(CLIENT, `m-${more}`, { type: 'ADD', by: 1 })).toMatchObject({
        seq: more + 1,
        duplicate: true,
      });
      expect(await s.send(CLIENT, `m-${more - DEDUP_MAX_IDS + 2}`, { type: 'ADD', by: 1 })).toMatchObject({
        seq: more - DEDUP_MAX_IDS + 3,
        duplicate: true,
      });
    });

    it('on virtual time: collected when idle, then retried just inside the window: a duplicate; just after it: a new command', async () => {
      const { clock, start, s, busy } = await setup();
      const { worker } = await start();
      track(worker);
      const sentAt = await busy();
      const virtual = clock as SimulatedClock;
      // The idle sweep runs on the clock: moved a second at a time until it has collected the session.
      await waitFor(
        () => {
          virtual.increment(1_000);
          return worker.activeSessions === 0;
        },
        { what: 'the session collected when idle' },
      );
      expect(clock.now() - sentAt).toBeLessThan(DEDUP_WINDOW_MS / 2);
      virtual.increment(sentAt + DEDUP_WINDOW_MS - 1 - clock.now());
      expect(await s.send(CLIENT, 'first', { type: 'ADD', by: 1 })).toMatchObject({ seq: 1, duplicate: true });
      expect(await s.read({ client: CLIENT })).toMatchObject({ seq: LATER + 1 });
      // One millisecond later the window has passed: the id is forgotten by the session and by the journal alike,
      // and the retry is a new command, applied again with a new seq.
      virtual.increment(1);
      const again = await s.send(CLIENT, 'first', { type: 'ADD', by: 1 });
      expect(again).toMatchObject({ ok: true, seq: LATER + 2 });
      expect((again as Record<string, unknown>)['duplicate']).toBeUndefined();
      expect(await s.read({ client: CLIENT })).toMatchObject({ seq: LATER + 2, document: { n: LATER + 2 } });
      // And so is it while the session is active: the window is the same for a session that never left memory.
      virtual.increment(DEDUP_WINDOW_MS);
      const active = await s.send(CLIENT, 'first', { type: 'ADD', by: 1 });
      expect(active).toMatchObject({ ok: true, seq: LATER + 3 });
      expect((active as Record<string, unknown>)['duplicate']).toBeUndefined();
    });
  }
});
