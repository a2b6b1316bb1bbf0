import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { NatsCluster } from '../../harness/natsCluster.js';
import { startTestCluster } from '../nats.js';
import { busContract } from './contract.js';

/**
 * The same contract on a 3-node JetStream cluster (streams and buckets on
 * one replica, placed by the meta leader; tests spread over the nodes):
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
// One node per test, a different one each test: a subscription's interest
// reaches the other nodes a moment after its own (the contract's tests
// publish right after subscribing), while JetStream calls cross the routes
// to the stream's leader wherever the client sits.
let node = 0;
beforeEach(() => {
  node++;
});
busContract('nats cluster', () => ({
  connect: () => createNatsBus({ servers: [cluster.urls[node % cluster.urls.length]!] }),
}));
