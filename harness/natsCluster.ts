import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsClusterStartError, NatsServerStartError } from './errors.js';
import { startNatsServer, type NatsServer } from './natsServer.js';
import { requireNatsServerBinary } from './natsServerBinary.js';

export interface NatsClusterOptions {
  /** Number of nodes (default 3). */
  size?: number;
  /** Cluster name (default a random one, so a stray route from another test's cluster is refused). */
  name?: string;
  /** Enable clustered JetStream (default true). */
  jetstream?: boolean;
  /** Deadline for the whole cluster to become ready, and for each node's restart (default 30 000 ms). */
  startTimeoutMs?: number;
  binary?: string;
  /** Extra command-line arguments for every node, appended last (say `--no_advertise`). */
  args?: string[];
}

/** Local nodes routed to each other on 127.0.0.1; each node's stop/kill/restart keeps its ports and store. */
export interface NatsCluster extends AsyncDisposable {
  readonly name: string;
  readonly nodes: readonly NatsServer[];
  /** Client url of every node, in node order. */
  readonly urls: readonly string[];
  /** The same urls as a mutable array, ready for nats.js `connect({ servers })`. */
  readonly servers: string[];
  /** Stop every node (store dirs kept). */
  stop(): Promise<void>;
  /** Stop every node and remove their temporary dirs. */
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
/** Each attempt gets fresh cluster ports; only a node exiting during start (a port taken meanwhile) is retried. */
const PORT_ATTEMPTS = 3;
const POLL_MS = 100;

/**
 * Cluster ports must all be known before any node starts: clustered JetStream
 * refuses to start without configured routes, so the ports file (written after
 * listening) is too late. Hold `count` listeners on port 0 at once, so the
 * kernel hands out distinct free ports, then release them for nats-server.
 */
async function reservePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve, reject) => {
            s.once('error', reject);
            s.listen(0, '127.0.0.1', () => resolve());
          }),
      ),
    );
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

async function disposeAll(nodes: readonly NatsServer[]): Promise<void> {
  await Promise.all(nodes.map((n) => n[Symbol.asyncDispose]()));
}

/** Start every node at once: with JetStream a node is only ready once a majority has elected a meta leader. */
async function startNodes(
  name: string,
  size: number,
  jetstream: boolean,
  binary: string,
  startTimeoutMs: number,
  extraArgs: readonly string[],
): Promise<NatsServer[]> {
  const clusterPorts = await reservePorts(size);
  const routeUrls = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
  const settled = await Promise.allSettled(
    clusterPorts.map((clusterPort, i) => {
      // A lone node routes to itself: the server ignores the self-route, but needs one configured.
      const routes = size === 1 ? routeUrls : routeUrls.filter((_, j) => j !== i);
      return startNatsServer({
        binary,
        jetstream,
        serverName: `n${i + 1}`,
        startTimeoutMs,
        args: [
          '--cluster_name',
          name,
          '--cluster',
          `nats://127.0.0.1:${clusterPort}`,
          '--routes',
          routes.join(','),
          ...extraArgs,
        ],
      });
    }),
  );
  const nodes = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return nodes;
  await disposeAll(nodes);
  throw failed.reason;
}

/** A message from node 1 reaches a responder on every other node: routes are up and interest has propagated. */
async function probeMesh(urls: readonly string[], subject: string): Promise<void> {
  const settled = await Promise.allSettled(
    urls.map((url) => connect({ servers: url, reconnect: false, timeout: 2_000 })),
  );
  const conns = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  try {
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    conns.forEach((nc, i) => nc.subscribe(`${subject}.${i}`, { callback: (_err, msg) => void msg.respond() }));
    const [first] = conns;
    if (first === undefined) return;
    await Promise.all(conns.map((nc) => nc.flush()));
    for (let i = 1; i < conns.length; i++) await first.request(`${subject}.${i}`, undefined, { timeout: 1_000 });
  } finally {
    await Promise.all(conns.map((nc) => nc.close()));
  }
}

/** An R(size) stream can be created (and is deleted again): every node has joined the JetStream meta group. */
async function probeJetStream(urls: readonly string[], stream: string, replicas: number): Promise<void> {
  const nc = await connect({ servers: [...urls], timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    await jsm.streams.add({ name: stream, subjects: [stream], num_replicas: replicas, storage: StorageType.Memory });
    await jsm.streams.delete(stream);
  } finally {
    await nc.close();
  }
}

/**
 * Until the cluster is usable: 'ready', or 'node-exited' when a node died
 * meanwhile (a node may listen for clients before it fails to bind its route
 * port). Throws NatsClusterStartError at the deadline.
 */
async function waitUsable(
  name: string,
  nodes: readonly NatsServer[],
  jetstream: boolean,
  deadline: number,
): Promise<'ready' | 'node-exited'> {
  const urls = nodes.map((n) => n.url);
  const probe = `cohort_harness_probe_${randomBytes(4).toString('hex')}`;
  let lastError: unknown;
  for (;;) {
    if (nodes.some((n) => !n.running)) return 'node-exited';
    try {
      await (jetstream ? probeJetStream(urls, probe, Math.min(nodes.length, 5)) : probeMesh(urls, probe));
      return 'ready';
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new NatsClusterStartError(
        name,
        nodes.map((n) => [...n.output]),
        { cause: lastError },
      );
    await sleep(POLL_MS);
  }
}

/** Start a local cluster (3 nodes, clustered JetStream) and wait until it is usable from any node. */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  const name = options.name ?? `cohort-${randomBytes(4).toString('hex')}`;
  const jetstream = options.jetstream ?? true;
  const binary = options.binary ?? requireNatsServerBinary();
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const deadline = Date.now() + startTimeoutMs;

  for (let attempt = 1; ; attempt++) {
    const lastAttempt = attempt >= PORT_ATTEMPTS;
    let nodes: NatsServer[];
    try {
      nodes = await startNodes(
        name,
        size,
        jetstream,
        binary,
        Math.max(1_000, deadline - Date.now()),
        options.args ?? [],
      );
    } catch (error) {
      if (error instanceof NatsServerStartError && error.reason === 'exited' && !lastAttempt) continue;
      throw error;
    }
    let outcome: 'ready' | 'node-exited';
    try {
      outcome = await waitUsable(name, nodes, jetstream, deadline);
    } catch (error) {
      await disposeAll(nodes);
      throw error;
    }
    if (outcome === 'ready') return clusterOf(name, nodes);
    const outputs = nodes.map((n) => [...n.output]);
    await disposeAll(nodes);
    if (lastAttempt) throw new NatsClusterStartError(name, outputs);
  }
}

function clusterOf(name: string, nodes: readonly NatsServer[]): NatsCluster {
  const urls = nodes.map((n) => n.url);
  return {
    name,
    nodes,
    urls,
    get servers() {
      return [...urls];
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
    [Symbol.asyncDispose]: () => disposeAll(nodes),
  };
}
