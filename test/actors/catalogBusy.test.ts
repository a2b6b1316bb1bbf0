import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createMemoryBus } from '../../bus/memory/mod.js';
import { SimulatedClock } from '../../bus/clock.js';
import { Catalog } from '../../actors/worker/catalog.js';
import { openStores } from '../../actors/worker/stores.js';
import { defineApplication } from '../../index.js';
import { counterMachine } from '../fixtures/counter.js';

const SHARDS = 4;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 1_000 });

describe('the catalog at each heartbeat and sweep', () => {
  it('says when the oldest running mailbox message started, and passivates exactly the idle sessions', async () => {
    const bus = createMemoryBus();
    const clock = new SimulatedClock(1_000);
    const stores = await openStores(bus, 'busy', { replicas: 1, shardCount: SHARDS });
    const c = new Catalog({
      apps: new Map([[app.name, app]]),
      sessions: {
        bus,
        journal: stores.journal,
        store: stores.snapshots,
        clock,
        cluster: 'busy',
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
    const [a, b, quiet] = await Promise.all(['a', 'b', 'q'].map((id) => c.session(app, id, 0)));
    expect(c.busySince()).toBeNull();
    const gates: (() => void)[] = [];
    const hold = () => new Promise<void>((resolve) => gates.push(resolve));
    const first = a!.enqueue(hold);
    await Promise.resolve();
    clock.increment(50);
    const second = b!.enqueue(hold);
    await new Promise((resolve) => setImmediate(resolve));
    // Two running: the older one counts.
    expect(c.busySince()).toBe(1_000);
    gates.shift()!();
    await first;
    expect(c.busySince()).toBe(1_050);
    gates.shift()!();
    await second;
    expect(c.busySince()).toBeNull();

    // The sweep: a session used within its lifetime stays, the others go.
    c.start();
    clock.increment(600);
    await c.session(app, 'a', 0).then((s) => s.read(undefined));
    clock.increment(500);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(c.find(app.name, 'a')).toBe(a);
    expect(c.find(app.name, 'b')).toBeUndefined();
    expect(c.find(app.name, 'q')).toBeUndefined();
    expect(quiet!.evicted).toBe(true);
    c.stop();
    await bus.close();
  });
});
