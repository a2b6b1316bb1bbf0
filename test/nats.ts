import type { NatsConnection } from '@nats-io/nats-core';
import { connect, type NodeConnectionOptions } from '@nats-io/transport-node';
import { startNatsCluster, type NatsCluster, type NatsClusterOptions } from '../harness/natsCluster.js';
import { startNatsServer, type NatsServer, type NatsServerOptions } from '../harness/natsServer.js';

/**
 * Real servers for tests, disposed with `await using`:
 *
 *   await using server = await startTestServer();
 *   await using nc = await connectTest(server);
 *
 * or started in beforeAll and disposed in afterAll with `server[Symbol.asyncDispose]()`.
 */
export function startTestServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  return startNatsServer(options);
}

/** Three nodes with clustered JetStream; allow the hook or test ~15 s, meta leader election takes a few. */
export function startTestCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  return startNatsCluster(options);
}

export type DisposableConnection = NatsConnection & AsyncDisposable;

/**
 * A connection that closes on dispose. Against a cluster it knows every node,
 * so it fails over when one is killed; it keeps reconnecting (a test's server
 * may be restarting) with a short wait between attempts.
 */
export async function connectTest(
  target: NatsServer | NatsCluster | string | readonly string[],
  options: Partial<NodeConnectionOptions> = {},
): Promise<DisposableConnection> {
  const servers =
    typeof target === 'string'
      ? [target]
      : 'nodes' in target
        ? [...target.urls]
        : 'url' in target
          ? [target.url]
          : [...target];
  const nc = await connect({ reconnectTimeWait: 100, maxReconnectAttempts: -1, ...options, servers });
  return Object.assign(nc, { [Symbol.asyncDispose]: () => nc.close() });
}
