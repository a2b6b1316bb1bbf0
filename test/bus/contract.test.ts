import { afterAll, beforeAll } from 'vitest';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { startTestServer } from '../nats.js';
import { busContract } from './contract.js';

const memory = createMemoryServer();
busContract('memory', () => ({ connect: async () => createMemoryBus({ server: memory }) }));

let server: NatsServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.[Symbol.asyncDispose]();
});
busContract('nats', () => ({ connect: () => createNatsBus({ servers: server.url }) }));
