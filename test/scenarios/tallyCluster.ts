import { fileURLToPath } from 'node:url';
import { connect, type Bus, type Client } from '../../index.js';
import { startLocalCluster, type LocalCluster } from '../../cli/localCluster.js';
import { isSettled } from '../../harness/testCluster.js';

/** The tally application as a `cohort worker --app` module. */
export const TALLY = fileURLToPath(new URL('../fixtures/tally.ts', import.meta.url));
/** Membership timings short enough for a failover in a test's time. */
export const TIMING = { heartbeatInterval: 200, sessionTimeout: 1_000 };

/** Settled as the harness says it (harness/testCluster.ts). */
export const settled = isSettled;

/**
 * Three `cohort worker` processes serving the tally on the nats-server at
 * `url` (cluster `name`), a client on a connection of its own, the first
 * placement done; `body` runs, and everything is stopped after it.
 */
export async function withTallyCluster<T>(
  url: string,
  name: string,
  body: (c: { cluster: LocalCluster; bus: Bus; client: Client }) => Promise<T>,
): Promise<T> {
  const cluster = await startLocalCluster({
    workers: 3,
    apps: [TALLY],
    nats: [url],
    cluster: name,
    ...TIMING,
    write: () => {},
  });
  const bus = await cluster.openBus(`${name}-scenario`);
  const client = await connect({ bus, cluster: cluster.cluster, timeout: 20_000 });
  try {
    await cluster.views.until(settled, 30_000, 'the first placement done');
    return await body({ cluster, bus, client });
  } finally {
    await client.close();
    await bus.close();
    await cluster.stop(5_000);
  }
}
