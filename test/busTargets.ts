import { afterAll, beforeAll } from 'vitest';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../bus/memory/mod.js';
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
