import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../bus/memory/mod.js';
import { systemClock } from '../../bus/clock.js';
import { Catalog } from '../../actors/worker/catalog.js';
import { openStores } from '../../actors/worker/stores.js';
import { defineApplication, shardOf } from '../../index.js';
import { SessionMovedError } from '../../protocol/errors.js';
import { counterMachine } from '../fixtures/counter.js';

const SHARDS = 4;
const app = defineApplication({ name: 'counter', machine: counterMachine });

async function catalog() {
  const bus = createMemoryBus();
  const stores = await openStores(bus, 'rel', { replicas: 1, shardCount: SHARDS });
  const c = new Catalog({
    apps: new Map([[app.name, app]]),
    sessions: {
      bus,
      journal: stores.journal,
      store: stores.snapshots,
      clock: systemClock,
      cluster: 'rel',
      log: pino({ level: 'silent' }),
      workerId: 'w',
      primacy: undefined,
      replicas: undefined,
      sessionTimeout: 3_000,
    },
    timers: stores.timers,
    maxTransactionTimeout: 60_000,
    handoffTransactionWait: 0,
  });
  return { c, bus };
}

const idOn = (shard: number, prefix: string): string => {
  for (let k = 0; ; k++) if (shardOf(app.name, `${prefix}${k}`, SHARDS) === shard) return `${prefix}${k}`;
};

describe('a shard let go: no session of it is activated here again until it is served here again', () => {
  it('refuses (retryably) to activate a session of a released shard; other shards, and the shard once served again, activate', async () => {
    const { c, bus } = await catalog();
    const id = idOn(1, 'a');
    const s = await c.session(app, id, 1);
    const reply = await s.enqueue(() =>
      s.command({ kind: 'command', cmdId: 'c1', client: 'k', event: { type: 'ADD', by: 2 } }, 0),
    );
    expect(reply).toMatchObject({ ok: true, seq: 1 });
    await c.release(new Set([1]));
    expect(s.evicted).toBe(true);
    // The request that wanted it again (its copy was passivated under it) is told the session moved.
    const again = await c.session(app, id, 1).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(SessionMovedError);
    expect((again as SessionMovedError).retryable).toBe(true);
    await expect(c.session(app, idOn(1, 'b'), 1)).rejects.toBeInstanceOf(SessionMovedError);
    // Control: another shard's session activates meanwhile, and this shard's once it is served here again.
    expect((await c.session(app, idOn(2, 'a'), 2)).seq).toBe(0);
    c.serve([1]);
    expect((await c.session(app, id, 1)).seq).toBe(1);
    c.stop();
    await bus.close();
  });
});
