import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { counterMachine } from '../fixtures/counter.js';

const app = defineApplication({ name: 'counter', machine: counterMachine });

describe('static sharding', () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  it('hashes sessions stably and evenly over the shards', () => {
    expect(shardOf('counter', 'alice')).toBe(shardOf('counter', 'alice'));
    expect(shardOf('counter', 'alice')).not.toBe(shardOf('other', 'alice'));
    const counts = new Array(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[shardOf('counter', `s${i}`, 16)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it("two workers split the shards; each session is served by its shard's owner", async () => {
    const server = createMemoryServer();
    const cluster = `s${randomUUID().slice(0, 8)}`;
    const even = await startWorker({
      bus: createMemoryBus({ server }),
      cluster,
      applications: [app],
      shards: [0, 2, 4, 6],
      shardCount: 8,
    });
    const odd = await startWorker({
      bus: createMemoryBus({ server }),
      cluster,
      applications: [app],
      shards: [1, 3, 5, 7],
      shardCount: 8,
    });
    workers.push(even, odd);
    const client = await connect({ bus: createMemoryBus({ server }), cluster, shardCount: 8 });
    const ids = Array.from({ length: 40 }, (_, i) => `acct-${i}`);
    for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 1 });
    const onEven = ids.filter((id) => shardOf('counter', id, 8) % 2 === 0).length;
    expect(even.activeSessions).toBe(onEven);
    expect(odd.activeSessions).toBe(ids.length - onEven);
    expect(onEven).toBeGreaterThan(0);
  });

  it('a command for a shard nobody owns is retried with the same id until an owner appears', async () => {
    const server = createMemoryServer();
    const cluster = `s${randomUUID().slice(0, 8)}`;
    const client = await connect({ bus: createMemoryBus({ server }), cluster });
    const pending = client.session('counter', 'early').send({ type: 'ADD', by: 5 }, { timeout: 5_000 });
    // Nobody answers yet: the client is retrying on no-responders.
    await new Promise((r) => setTimeout(r, 100));
    workers.push(await startWorker({ bus: createMemoryBus({ server }), cluster, applications: [app] }));
    expect(await pending).toMatchObject({ seq: 1, duplicate: false });
    expect((await client.session('counter', 'early').read()).document).toMatchObject({ n: 5 });
  });

  it("refuses shards outside the cluster's range", async () => {
    await expect(
      startWorker({ bus: createMemoryBus(), cluster: 'c', applications: [app], shards: [8], shardCount: 8 }),
    ).rejects.toThrow(RangeError);
  });
});
