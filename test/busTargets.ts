import { afterAll, beforeAll } from 'vitest';
import { SimulatedClock, systemClock, type Clock } from '../bus/clock.js';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../bus/memory/mod.js';
import type { Network } from '../bus/memory/network.js';
import { createNatsBus } from '../bus/nats/mod.js';
import type { Bus } from '../bus/types.js';
import type { NatsServer } from '../harness/natsServer.js';
import { startTestServer } from './nats.js';

export interface BusTarget {
  readonly name: 'memory' | 'nats';
  /** A new connection to this target's server. */
  bus(): Promise<Bus>;
}

/**
 * The two buses a behaviour is checked on, for `describe.each`: one memory
 * server and one real nats-server, started before the file's tests and
 * stopped after them.
 */
export function busTargets(): BusTarget[] {
  let nats: NatsServer | undefined;
  let memory: MemoryServer | undefined;
  beforeAll(async () => {
    nats = await startTestServer();
    memory = createMemoryServer();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });
  return [
    { name: 'memory', bus: async () => createMemoryBus({ server: memory! }) },
    { name: 'nats', bus: () => createNatsBus({ servers: nats!.url }) },
  ];
}

/** A bus to test on, with the clock its workers and clients should use. */
export interface ClockedTarget {
  readonly clock: Clock;
  bus(): Promise<Bus>;
  /** Resolves `p`, moving virtual time on while it waits (NATS: just waits). */
  settle<T>(p: Promise<T>): Promise<T>;
}

/**
 * The two buses for `describe.each`, each test making its own target: a
 * memory server of its own on virtual time (optionally with a network that
 * delays some hops), and the file's real nats-server on the system clock.
 */
export function clockedTargets(
  network?: Network,
): readonly { readonly name: 'memory' | 'nats'; make(): ClockedTarget }[] {
  let nats: NatsServer | undefined;
  beforeAll(async () => {
    nats = await startTestServer();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });
  return [
    {
      name: 'memory',
      make: () => {
        const clock = new SimulatedClock(Date.now());
        const server = createMemoryServer({ environment: { clock }, ...(network && { network }) });
        return {
          clock,
          bus: async () => createMemoryBus({ server }),
          settle: async (p) => {
            let done = false;
            void p.then(
              () => (done = true),
              () => (done = true),
            );
            for (let i = 0; !done && i < 100_000; i++) {
              await new Promise((resolve) => setImmediate(resolve));
              if (!done) clock.increment(1);
            }
            return p;
          },
        };
      },
    },
    {
      name: 'nats',
      make: () => ({ clock: systemClock, bus: () => createNatsBus({ servers: nats!.url }), settle: (p) => p }),
    },
  ];
}
