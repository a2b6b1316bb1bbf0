import { afterAll, beforeAll } from 'vitest';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { NatsCluster } from '../../harness/natsCluster.js';
import { startTestCluster } from '../nats.js';
import { busContract } from './contract.js';

/**
 * The same contract on a 3-node JetStream cluster (streams and buckets on
 * one replica, placed by the meta leader; clients spread over the nodes):
 * clustered JetStream orders its checks differently from a single server in
 * places, and a worker may sit on any node.
 */
let cluster: NatsCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.[Symbol.asyncDispose]();
});
let next = 0;
busContract('nats cluster', () => ({
  connect: () => createNatsBus({ servers: [cluster.urls[next++ % cluster.urls.length]!] }),
}));
