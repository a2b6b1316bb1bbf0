/**
 * The client side of issue 5 through the public API, on both buses:
 * transactions and locks, server-side client records seen from the client,
 * cache verification, stale reads from the cache, and counters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  type Client,
  connect,
  CrossShardTransactionError,
  defineApplication,
  EventRejectedError,
  NetworkError,
  type Patch,
  startWorker,
  TransactionTimeoutError,
  type Verification,
} from '../../index.js';
import type { ConnectionState } from '../../machines/connection.js';
import { counterMachine } from '../fixtures/counter.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { busTargets } from '../busTargets.js';
import { DEFAULT_CALL_TIMEOUT } from '../../actors/client/connectOptions.js';
import { DEDUP_WINDOW_MS } from '../../protocol/dedup.js';
import { waitFor } from '../waitFor.js';

const targets = busTargets();

let clusters = 0;
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

const counter = defineApplication({ name: 'counter', machine: counterMachine, commit: 'journal' });

describe.each(targets)('client connections ($name)', (target) => {
  async function cohort(
    options: { clients?: { troubledInterval?: number; recoveryWait?: number }; app?: typeof counter } = {},
  ) {
    const cluster = `cc${++clusters}`;
    const worker = await startWorker({
      bus: await target.bus(),
      cluster,
      applications: [options.app ?? counter],
      shards: [0, 1, 2, 3],
      shardCount: 4,
      ...(options.clients ? { clients: options.clients } : {}),
    });
    stops.push(() => worker.stop());
    const client = async (
      label: string,
      extra: Parameters<typeof connect>[0] extends infer O ? Partial<O> : never = {},
    ): Promise<Client> => {
      const bus = await target.bus();
      const c = await connect({ bus, cluster, shardCount: 4, label, ...extra });
      stops.push(async () => {
        await c.close();
        await bus.close();
      });
      return c;
    };
    return { cluster, worker, client };
  }

  it('a transaction commits its events together; a throw commits nothing', async () => {
    const { client } = await cohort();
    const a = await client('a');
    const s = a.session('counter', 'tx1');
    await s.send({ type: 'ADD', by: 1 });
    const r = await s.transaction(async (tx) => {
      expect((await tx.send({ type: 'ADD', by: 10 })).seq).toBe(2);
      expect((await tx.send({ type: 'ADD', by: 100 })).seq).toBe(3);
      const working = await tx.read();
      expect(working.document).toMatchObject({ n: 111 });
      // Others see only what is committed meanwhile.
      expect((await s.read()).document).toMatchObject({ n: 1 });
      return 'done';
    });
    expect(r).toMatchObject({ value: 'done', seq: 3, events: 2, duplicate: false });
    expect(await s.read()).toMatchObject({ seq: 3, document: { n: 111 } });

    await expect(
      s.transaction(async (tx) => {
        await tx.send({ type: 'ADD', by: 5 });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await s.read()).toMatchObject({ seq: 3, document: { n: 111 } });
  });

  it('a refused event inside a transaction shows at once and the transaction carries on', async () => {
    const { client } = await cohort();
    const s = (await client('a')).session('counter', 'tx2');
    const r = await s.transaction(async (tx) => {
      await expect(tx.send({ type: 'NOPE' })).rejects.toBeInstanceOf(EventRejectedError);
      await tx.send({ type: 'ADD', by: 2 });
    });
    expect(r).toMatchObject({ seq: 1, events: 1 });
  });

  it('a session of another shard in a transaction is refused, naming both sessions and shards', async () => {
    const { client } = await cohort();
    const s = (await client('a')).session('counter', 'tx3');
    await expect(
      s.transaction(async (tx) => {
        tx.session('counter', 'elsewhere');
      }),
    ).rejects.toBeInstanceOf(CrossShardTransactionError);
    await expect(s.transaction(async (tx) => tx.session('counter', 'elsewhere'))).rejects.toThrow(
      /counter\/tx3.*counter\/elsewhere/,
    );
  });

  it('the lock: another client’s write waits for the transaction and lands after it', async () => {
    const { client } = await cohort();
    const a = await client('a');
    const b = await client('b');
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    let inside!: () => void;
    const entered = new Promise<void>((r) => (inside = r));
    const tx = a.session('counter', 'locked').transaction(async (t) => {
      await t.send({ type: 'ADD', by: 1 });
      inside();
      await hold;
      await t.send({ type: 'ADD', by: 1 });
    });
    await entered;
    let landed = false;
    const write = b
      .session('counter', 'locked')
      .send({ type: 'ADD', by: 1000 })
      .then((r) => ((landed = true), r));
    // It is waiting on the lock, not failing: the session still has nothing committed.
    expect((await b.session('counter', 'locked').read()).seq).toBe(0);
    expect(landed).toBe(false);
    release();
    expect(await tx).toMatchObject({ seq: 2 });
    expect((await write).seq).toBe(3);
  });

  it('transactionTimeout: the transaction is aborted, the connection closed, the lock freed', async () => {
    const { client } = await cohort();
    const a = await client('a');
    const seen: ConnectionState[] = [];
    a.on('state', (s) => seen.push(s));
    let never!: () => void;
    const err = await a
      .session('counter', 'hung')
      .transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', by: 1 });
          await new Promise<void>((r) => (never = r));
        },
        { timeout: 300 },
      )
      .catch((e: unknown) => e);
    never();
    expect(err).toBeInstanceOf(TransactionTimeoutError);
    expect(seen).toContain('DISABLED');
    const b = await client('b');
    expect((await b.session('counter', 'hung').send({ type: 'ADD', by: 7 })).seq).toBe(1);
    // The next request of the timed-out client opens a new connection.
    expect((await a.session('counter', 'hung').read()).document).toMatchObject({ n: 7 });
    expect(a.state).toBe('NORMAL');
  });

  it('a client silent mid-transaction that returns within recoveryWait keeps its transaction', async () => {
    const { client, worker } = await cohort({ clients: { troubledInterval: 150, recoveryWait: 5_000 } });
    const a = await client('quiet');
    const r = await a.session('counter', 'rw1').transaction(async (tx) => {
      await tx.send({ type: 'ADD', by: 1 });
      await waitFor(() => worker.clients().find((c) => c.label === 'quiet' && c.state === 'non-responsive'), {
        what: 'marked non-responsive',
      });
      await tx.send({ type: 'ADD', by: 2 });
    });
    expect(r).toMatchObject({ seq: 2, events: 2 });
    expect(worker.clients().find((c) => c.label === 'quiet')?.state).toBe('active');
  });

  it('beyond recoveryWait the transaction is rolled back: NetworkError to the client, the lock free for others', async () => {
    const { client, worker } = await cohort({ clients: { troubledInterval: 100, recoveryWait: 200 } });
    const a = await client('gone');
    const b = await client('other');
    const err = await a
      .session('counter', 'rw2')
      .transaction(async (tx) => {
        await tx.send({ type: 'ADD', by: 1 });
        // Silent beyond recoveryWait: its record goes, its transaction rolled back with it.
        await waitFor(() => !worker.clients().some((c) => c.label === 'gone'), { what: 'its transaction rolled back' });
        expect((await b.session('counter', 'rw2').send({ type: 'ADD', by: 50 })).seq).toBe(1);
        await tx.send({ type: 'ADD', by: 2 });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).ambiguous).toBe(false);
    expect((err as NetworkError).message).toMatch(/rolled back by the server \(recovery-wait\)/);
    expect(await b.session('counter', 'rw2').read()).toMatchObject({ seq: 1, document: { n: 50 } });
  });

  it('forceDisconnect: the client hears at once, its transaction fails, and its next request connects anew', async () => {
    const { client, worker } = await cohort();
    const a = await client('victim');
    const firstId = a.id;
    const disabled = new Promise<string>((r) => a.once('disabled', (_f, reason) => r(reason)));
    const err = await a
      .session('counter', 'fd')
      .transaction(async (tx) => {
        await tx.send({ type: 'ADD', by: 1 });
        expect(await worker.forceDisconnect('victim')).toEqual({ transactions: 1 });
        await disabled;
        await tx.send({ type: 'ADD', by: 2 });
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect(await disabled).toMatch(/disconnected by worker/);
    expect((await a.session('counter', 'fd').send({ type: 'ADD', by: 3 })).seq).toBe(1);
    expect(a.id).not.toBe(firstId);
  });

  it('verification: up-to-date, replayed (subscribers get what they missed), cleared past the invalidation queue', async () => {
    const { client } = await cohort();
    const a = await client('a', { invalidationQueueSize: 3 });
    const b = await client('b');
    for (let i = 0; i < 2; i++) await b.session('counter', 'v1').send({ type: 'ADD', by: 1 });
    await b.session('counter', 'v2').send({ type: 'ADD', by: 1 });
    await a.session('counter', 'v1').read();
    await a.session('counter', 'v2').read();
    const outcomes = (vs: Verification[]) =>
      Object.fromEntries(vs.map((v) => [v.id, `${v.outcome} ${v.from}->${v.to}`]));
    expect(outcomes(await a.verify())).toEqual({ v1: 'up-to-date 2->2', v2: 'up-to-date 1->1' });

    for (let i = 0; i < 2; i++) await b.session('counter', 'v1').send({ type: 'ADD', by: 10 });
    for (let i = 0; i < 5; i++) await b.session('counter', 'v2').send({ type: 'ADD', by: 100 });
    expect(outcomes(await a.verify())).toEqual({ v1: 'replayed 2->4', v2: 'cleared 1->6' });
    expect(a.session('counter', 'v1').cached()).toMatchObject({ seq: 4, document: { n: 22 }, source: 'cache' });
    expect(a.session('counter', 'v2').cached()).toMatchObject({ seq: 6, document: { n: 501 } });

    // A subscribed document's cached copy follows its patches, so the next verification finds it current.
    const got: number[] = [];
    a.session('counter', 'v1').subscribe((p: Patch) => got.push(p.seq));
    for (let i = 0; i < 2; i++) await b.session('counter', 'v1').send({ type: 'ADD', by: 1 });
    await waitFor(() => got.length === 2, { what: 'both patches' });
    expect(got).toEqual([5, 6]);
    expect(outcomes(await a.verify())).toMatchObject({ v1: 'up-to-date 6->6' });
    expect(a.session('counter', 'v1').cached()).toMatchObject({ seq: 6, document: { n: 24 } });
    expect(got).toEqual([5, 6]);
  });

  it('while the connection is in trouble, reads may come from the cache, marked stale', async () => {
    const { client, worker } = await cohort();
    const a = await client('offline', { troubledInterval: 400 });
    await a.session('counter', 'c1').send({ type: 'ADD', by: 4 });
    await a.session('counter', 'c1').read();
    await worker.stop();
    const r = await a.session('counter', 'c1').read({ allowStale: true });
    expect(r).toMatchObject({ stale: true, source: 'cache', seq: 1, document: { n: 4 } });
    // Without allowing it, the read fails rather than answer stale.
    await expect(a.session('counter', 'c1').read()).rejects.toBeInstanceOf(NetworkError);
  });

  it('counters: four clients, no id twice, each client’s ids increasing', async () => {
    const { client } = await cohort();
    const clients = await Promise.all(['c0', 'c1', 'c2', 'c3'].map((l) => client(l)));
    const ids = await Promise.all(
      clients.map(async (c) => {
        const n = c.counter('orders', { block: 25 });
        const mine: number[] = [];
        for (let i = 0; i < 120; i++) mine.push(await n.next());
        return mine;
      }),
    );
    for (const mine of ids) expect(mine.every((v, i) => i === 0 || v > mine[i - 1]!)).toBe(true);
    const all = ids.flat();
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBe(480);
  });
});

describe('connect refuses bad connection options', () => {
  it('names the option and the value', async () => {
    const server = createMemoryServer();
    for (const [key, value] of [
      ['troubledInterval', 0],
      ['reconnectInterval', -1],
      ['waitTimeout', Number.NaN],
      ['transactionTimeout', Infinity],
      ['invalidationQueueSize', 2.5],
      ['cacheSize', -1],
    ] as const) {
      await expect(connect({ bus: createMemoryBus({ server }), cluster: 'bad', [key]: value })).rejects.toThrow(
        new RegExp(`${key} must be`),
      );
    }
    await expect(connect({ bus: createMemoryBus({ server }), cluster: 'bad', label: 'a#b' })).rejects.toThrow(
      /label must be/,
    );
  });

  it('a call deadline that is no deadline (0, negative, NaN, a string) is refused, naming the call; the default one is inside the de-duplication window', async () => {
    expect(DEFAULT_CALL_TIMEOUT).toBe(30_000);
    expect(DEFAULT_CALL_TIMEOUT).toBeLessThanOrEqual(DEDUP_WINDOW_MS);
    const server = createMemoryServer();
    const c = await connect({ bus: createMemoryBus({ server }), cluster: 'd' });
    stops.push(() => c.close());
    const s = c.session('counter', 'x');
    for (const bad of [0, -1, Number.NaN, '500']) {
      await expect(s.send({ type: 'ADD', by: 1 }, { timeout: bad as number })).rejects.toThrow(
        /send: timeout must be a positive number of ms/,
      );
      await expect(s.read({ timeout: bad as number })).rejects.toThrow(/read: timeout must be a positive number of ms/);
      expect(() => c.counter('n', { timeout: bad as number })).toThrow(/counter option timeout must be a positive/);
      await expect(c.counter('n').next({ timeout: bad as number })).rejects.toThrow(/counter next: timeout must be/);
    }
    // Positive control (no worker here; counters are served by the bucket): good deadlines work.
    expect(await c.counter('n', { timeout: 1_000 }).next({ timeout: 500 })).toBe(1);
  });

  it('a deadline past the de-duplication window is refused: a retry after it would apply the command again', async () => {
    const server = createMemoryServer();
    const bus = () => createMemoryBus({ server });
    await expect(connect({ bus: bus(), cluster: 'w', timeout: 120_001 })).rejects.toThrow(
      /connect: timeout must be at most 120000 ms .* apply it again/,
    );
    await expect(connect({ bus: bus(), cluster: 'w', troubledInterval: 60_001 })).rejects.toThrow(
      /connect: troubledInterval must be at most 60000 ms/,
    );
    // Positive control: the window itself is allowed, and a send with a longer deadline is refused before it goes out.
    const c = await connect({ bus: bus(), cluster: 'w', timeout: 120_000, troubledInterval: 60_000 });
    stops.push(() => c.close());
    await expect(c.session('counter', 'x').send({ type: 'ADD', by: 1 }, { timeout: 300_000 })).rejects.toThrow(
      /send: timeout must be at most 120000 ms/,
    );
  });
});
