/**
 * Coming back from a lost NATS connection, on a real nats-server (the
 * process boundary is what is tested): a worker's connection tries again
 * every 100-250 ms, and a journal append or a KV read out when the
 * connection drops is made again once it is back, instead of waiting out
 * its 5 s API timeout; the append's message id makes the second copy a
 * duplicate of the first, which the bus recognises as the same append,
 * stored: answered with its sequence. A command whose append was stored
 * but answered only after its timeout is, when the client sends it again,
 * found in the journal and taken up by the session as it stands, without
 * reloading it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  createLogger,
  createNatsBus,
  startWorker,
  WORKER_RECONNECT_INTERVAL,
  type Bus,
  type JournalEntry,
} from '../../index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { startProxy, type TcpProxy } from '../../harness/proxy.js';
import { tally } from '../fixtures/tally.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let nats: NatsServer;
const cleanup: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined);
  await nats?.[Symbol.asyncDispose]();
});

async function behindProxy(reconnectInterval: number): Promise<{ bus: Bus; proxy: TcpProxy }> {
  const proxy = await startProxy({ target: nats.url });
  cleanup.push(() => proxy.close());
  const bus = await createNatsBus({ servers: proxy.url, reconnectInterval });
  cleanup.push(() => bus.close());
  return { bus, proxy };
}

async function collect(entries: AsyncIterable<JournalEntry>): Promise<JournalEntry[]> {
  const out: JournalEntry[] = [];
  for await (const e of entries) out.push(e);
  return out;
}

/** Counts reconnect attempts and remembers when the bus was back. */
function watch(bus: Bus): { attempts: number; back: number | undefined } {
  const seen = { attempts: 0, back: undefined as number | undefined };
  bus.onStatus((s) => {
    if (s.type === 'reconnecting') seen.attempts++;
    if (s.type === 'reconnect') seen.back = performance.now();
  });
  return seen;
}

describe('reconnecting to NATS (nats)', () => {
  it(
    'reconnectInterval sets how often a lost connection is tried again: 100 ms (100-250 with jitter) against 1 s',
    { timeout: 30_000 },
    async () => {
      const fast = await createNatsBus({ servers: nats.url, reconnectInterval: WORKER_RECONNECT_INTERVAL });
      const slow = await createNatsBus({ servers: nats.url, reconnectInterval: 1_000 });
      cleanup.push(
        () => fast.close(),
        () => slow.close(),
      );
      const f = watch(fast);
      const s = watch(slow);
      await nats.stop();
      await new Promise((r) => setTimeout(r, 2_000));
      await nats.restart();
      const ready = performance.now();
      await waitFor(() => f.back !== undefined && s.back !== undefined, { timeoutMs: 10_000, what: 'both back' });
      // 2 s down: about 8-20 attempts at 100-250 ms, at most 2-3 at 1-2.5 s.
      expect(f.attempts).toBeGreaterThanOrEqual(5);
      expect(s.attempts).toBeLessThanOrEqual(3);
      expect(f.back! - ready).toBeLessThan(1_000);
      await expect(createNatsBus({ servers: nats.url, reconnectInterval: 0 })).rejects.toThrow(RangeError);
    },
  );

  it(
    'an append out when the connection drops is sent again once it is back: stored once, answered long before its timeout',
    { timeout: 30_000 },
    async () => {
      const { bus, proxy } = await behindProxy(50);
      const journal = await bus.journal({ name: 'RECONNECT_APPEND', subjects: ['ra.>'] });
      expect(
        await journal.append('ra.s', new Uint8Array([1]), { msgId: 'first', expectedLastSubjectSeq: 0 }),
      ).toMatchObject({ seq: 1, duplicate: false });
      // The append reaches the server and is stored; its acknowledgement is held, then lost with the connection.
      proxy.oneWay('client-to-server');
      const started = performance.now();
      const pending = journal.append('ra.s', new Uint8Array([2]), { msgId: 'second', expectedLastSubjectSeq: 1 });
      const observer = await createNatsBus({ servers: nats.url });
      cleanup.push(() => observer.close());
      const seen = await observer.journal({ name: 'RECONNECT_APPEND', subjects: ['ra.>'] });
      await waitFor(async () => (await seen.lastSeq('ra.s')) === 2, { timeoutMs: 5_000, what: 'the append stored' });
      proxy.cut();
      proxy.heal();
      const ack = await pending;
      const took = performance.now() - started;
      // The copy sent again is recognised as this append's own first copy: stored, not a duplicate of another.
      expect(ack).toMatchObject({ seq: 2, duplicate: false });
      expect(took).toBeLessThan(3_000); // the API timeout is 5 s
      const entries: number[] = [];
      for await (const e of seen.read('ra.s')) entries.push(e.data[0]!);
      expect(entries).toEqual([1, 2]);
    },
  );

  it(
    'control: an append whose connection never comes back fails with TimeoutError at its timeout, not before',
    { timeout: 30_000 },
    async () => {
      const { bus, proxy } = await behindProxy(50);
      const journal = await bus.journal({ name: 'RECONNECT_GONE', subjects: ['rg.>'] });
      proxy.partition('both');
      const started = performance.now();
      const pending = journal.append('rg.s', new Uint8Array([1]), { msgId: 'x', timeout: 1_500 });
      await new Promise((r) => setTimeout(r, 200));
      await proxy.close();
      const err = await pending.catch((e: unknown) => e);
      expect((err as Error).name).toBe('TimeoutError');
      expect(performance.now() - started).toBeGreaterThanOrEqual(1_400);
    },
  );

  it('a KV read out when the connection drops is made again once it is back', { timeout: 30_000 }, async () => {
    const { bus, proxy } = await behindProxy(50);
    const kv = await bus.kv({ bucket: 'reconnect_kv' });
    await kv.put('k', new Uint8Array([7]));
    proxy.oneWay('client-to-server');
    const started = performance.now();
    const pending = kv.get('k');
    await new Promise((r) => setTimeout(r, 200));
    proxy.cut();
    proxy.heal();
    const entry = await pending;
    expect([...(entry?.value ?? [])]).toEqual([7]);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it(
    'a journal read, a purge, a blob read and a KV watch out when the connection drops are made again once it is back',
    { timeout: 60_000 },
    async () => {
      const { bus, proxy } = await behindProxy(50);
      const journal = await bus.journal({ name: 'RECONNECT_CALLS', subjects: ['rc.>'] });
      for (const b of [1, 2, 3]) await journal.append('rc.s', new Uint8Array([b]));
      const blobs = await bus.blobs({ bucket: 'reconnect_blobs' });
      await blobs.put('b', new Uint8Array([9, 9]));
      const kv = await bus.kv({ bucket: 'reconnect_watch' });
      await kv.put('w', new Uint8Array([5]));
      /** Sends `call`, holds its answer, then cuts the connection: answered after the reconnect, not at 5 s. */
      const held = async <T>(call: () => Promise<T>): Promise<T> => {
        proxy.oneWay('client-to-server');
        const started = performance.now();
        const pending = call();
        await new Promise((r) => setTimeout(r, 200));
        proxy.cut();
        proxy.heal();
        const out = await pending;
        expect(performance.now() - started).toBeLessThan(3_000);
        return out;
      };
      const read = await held(async () => {
        const out: number[] = [];
        for await (const e of journal.read('rc.s')) out.push(e.data[0]!);
        return out;
      });
      expect(read).toEqual([1, 2, 3]);
      // Its first try ran at the server: the one made again finds nothing more to remove.
      expect(await held(() => journal.purge('rc.s', { below: 2 }))).toBeLessThanOrEqual(1);
      const left: number[] = [];
      for await (const e of journal.read('rc.s')) left.push(e.data[0]!);
      expect(left).toEqual([2, 3]);
      expect([...((await held(() => blobs.get('b'))) ?? [])]).toEqual([9, 9]);
      const seen: number[] = [];
      const watching = await held(() => kv.watch({ key: 'w' }, (e) => seen.push(e.value[0]!)));
      await waitFor(() => seen.includes(5), { what: 'the watch saw the value' });
      watching.stop();
    },
  );

  it(
    "a client's command out when its connection drops is sent again once it is back, not after attemptTimeout: applied once",
    { timeout: 30_000 },
    async () => {
      const cluster = 'reconnectc';
      const worker = await startWorker({ nats: [nats.url], cluster, applications: [tally], shardCount: 4 });
      cleanup.push(() => worker.stop());
      const proxy = await startProxy({ target: nats.url });
      cleanup.push(() => proxy.close());
      const client = await connect({
        nats: proxy.url,
        cluster,
        shardCount: 4,
        label: 'rcc',
        reconnectInterval: 50,
        attemptTimeout: 10_000,
      });
      cleanup.push(() => client.close());
      const observer = await connect({ nats: nats.url, cluster, shardCount: 4, label: 'rco' });
      cleanup.push(() => observer.close());
      await client.session('tally', 'c').send({ type: 'ADD', token: 'before' });
      // The command reaches the worker and is journaled; its answer is held, then lost with the connection.
      proxy.oneWay('client-to-server');
      const pending = client.session('tally', 'c').send({ type: 'ADD', token: 'once' });
      await waitFor(
        async () =>
          ((await observer.session('tally', 'c').read()).document as { tokens: string[] }).tokens.includes('once'),
        { timeoutMs: 5_000, what: 'the command journaled' },
      );
      const cut = performance.now();
      proxy.cut();
      proxy.heal();
      const ack = await pending;
      // attemptTimeout is 10 s: the connection actor sent it again at the reconnect, and the worker knew the command.
      expect(performance.now() - cut).toBeLessThan(3_000);
      expect(ack).toMatchObject({ seq: 2, duplicate: true });
      expect(((await observer.session('tally', 'c').read()).document as { tokens: string[] }).tokens).toEqual([
        'before',
        'once',
      ]);
    },
  );

  it(
    "an append stored but answered only after its timeout: the command's retry finds it journaled and the session takes it up, without a reload",
    { timeout: 30_000 },
    async () => {
      const cluster = 'reconnectt';
      const proxy = await startProxy({ target: nats.url });
      cleanup.push(() => proxy.close());
      const bus = await createNatsBus({ servers: proxy.url, apiTimeout: 1_000, reconnectInterval: 50 });
      cleanup.push(() => bus.close());
      const logged: { msg?: string; why?: string }[] = [];
      const logger = createLogger({
        level: 'info',
        destination: { write: (line: string) => void logged.push(JSON.parse(line) as { msg?: string }) },
      });
      const worker = await startWorker({
        bus,
        cluster,
        applications: [tally],
        shardCount: 4,
        shards: [0, 1, 2, 3],
        logger,
      });
      cleanup.push(() => worker.stop());
      const client = await connect({ nats: nats.url, cluster, shardCount: 4, label: 'rct', attemptTimeout: 10_000 });
      cleanup.push(() => client.close());
      const observer = await createNatsBus({ servers: nats.url });
      cleanup.push(() => observer.close());
      const journal = await observer.journal({
        name: `COHORT_${cluster}_JOURNAL`,
        subjects: [`cohort.${cluster}.jrnl.>`],
      });
      const session = client.session('tally', 't');
      await session.send({ type: 'ADD', token: 'before' });
      const subject = (await collect(journal.read(`cohort.${cluster}.jrnl.>`)))[0]!.subject;

      // What reaches the worker takes 2.5 s: the command, then its append's answers, long after the 1 s timeout.
      proxy.delay(2_500, 'server-to-client');
      const pending = session.send({ type: 'ADD', token: 'once' });
      await waitFor(async () => (await journal.lastSeq(subject)) === 2, {
        timeoutMs: 10_000,
        what: 'the append stored',
      });
      // The worker answered TimeoutError (retryable); the client's retry reaches it once the delayed bytes are through.
      proxy.delay(0, 'server-to-client');
      const ack = await pending;
      expect(ack).toMatchObject({ seq: 2, duplicate: true });
      expect(((await session.read()).document as { tokens: string[] }).tokens).toEqual(['before', 'once']);
      await session.send({ type: 'ADD', token: 'after' });
      // Taken up where it was: the copy in memory was not dropped and read again from the journal.
      expect(logged.some((l) => l.msg === 'worker started')).toBe(true);
      expect(logged.filter((l) => l.msg === 'session evicted')).toEqual([]);
      expect(((await session.read()).document as { tokens: string[] }).tokens).toEqual(['before', 'once', 'after']);
    },
  );

  it(
    'a worker is back within a second of a restarted nats-server being ready, on its own default',
    { timeout: 60_000 },
    async () => {
      const cluster = 'reconnectw';
      const worker = await startWorker({
        nats: [nats.url],
        cluster,
        applications: [tally],
        shardCount: 4,
        logger: undefined,
      });
      cleanup.push(() => worker.stop());
      const client = await connect({ nats: nats.url, cluster, shardCount: 4, label: 'rc', reconnectInterval: 100 });
      cleanup.push(() => client.close());
      await client.session('tally', 'a').send({ type: 'ADD', token: 'before' });
      await nats.stop();
      await new Promise((r) => setTimeout(r, 2_500));
      await nats.restart();
      const ready = performance.now();
      await client.session('tally', 'a').send({ type: 'ADD', token: 'after' });
      // nats.js's default wait between attempts is 2 s: with it, the first ack came 1.5-2 s after ready.
      expect(performance.now() - ready).toBeLessThan(1_000);
      expect(((await client.session('tally', 'a').read()).document as { tokens: string[] }).tokens).toEqual([
        'before',
        'after',
      ]);
    },
  );
});
