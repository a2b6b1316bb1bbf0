import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/**
 * Which node leads a replicated stream, and moving that leadership, on a
 * local cluster (natsCluster.ts names its nodes n1, n2, n3): a test or a
 * bench that kills the node leading the journal finds it here, and puts a
 * stream of its own under the same leader.
 */

const POLL_MS = 50;

async function withManager<T>(
  servers: readonly string[],
  use: (
    jsm: Awaited<ReturnType<typeof jetstreamManager>>,
    request: (subject: string) => Promise<unknown>,
  ) => Promise<T>,
): Promise<T> {
  const nc = await connect({ servers: [...servers], timeout: 2_000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    return await use(jsm, async (subject) => (await nc.request(subject, undefined, { timeout: 2_000 })).json());
  } finally {
    await nc.close();
  }
}

/** The server name of the node leading `stream`, once it has one (asked again until `timeoutMs`). */
export async function streamLeader(servers: readonly string[], stream: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let error: unknown;
    try {
      const leader = await withManager(servers, async (jsm) => (await jsm.streams.info(stream)).cluster?.leader);
      if (leader) return leader;
    } catch (err) {
      error = err;
    }
    if (Date.now() > deadline) throw new Error(`${stream} has no leader after ${timeoutMs} ms`, { cause: error });
    await sleep(POLL_MS);
  }
}

/** Every replica of `stream` is current and none is offline: a node restarted has caught up. */
export function replicasCurrent(info: StreamInfo, size: number): boolean {
  const peers = info.cluster?.replicas ?? [];
  return (
    info.cluster?.leader !== undefined &&
    info.cluster.leader !== '' &&
    peers.length === size - 1 &&
    peers.every((p) => p.current && p.offline !== true)
  );
}

/**
 * Until each of `streams` has a leader and every other replica current
 * (`size` nodes in all); throws after `timeoutMs`. Asked of whichever node answers.
 */
export async function waitStreamsCurrent(
  servers: readonly string[],
  streams: readonly string[],
  size: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let behind: string[] = [...streams];
  for (;;) {
    try {
      behind = await withManager(servers, async (jsm) => {
        const infos = await Promise.all(streams.map((s) => jsm.streams.info(s)));
        return streams.filter((_, i) => !replicasCurrent(infos[i]!, size));
      });
      if (behind.length === 0) return;
    } catch {
      // A node still starting, or no leader yet: asked again.
    }
    if (Date.now() > deadline)
      throw new Error(`streams not current on all ${size} nodes after ${timeoutMs} ms: ${behind.join(', ')}`);
    await sleep(POLL_MS * 4);
  }
}

/**
 * Asks `stream`'s leader to step down until `node` (a server name) leads it;
 * each step down hands leadership to another current replica, so a few
 * tries reach any node. Throws after `timeoutMs`.
 */
export async function moveStreamLeader(
  servers: readonly string[],
  stream: string,
  node: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await withManager(servers, async (jsm, request) => {
    for (;;) {
      let leader: string | undefined;
      let asked = false;
      try {
        const info = await jsm.streams.info(stream);
        leader = info.cluster?.leader || undefined;
        if (leader === node) return;
        if (leader !== undefined && replicasCurrent(info, (info.cluster?.replicas?.length ?? 0) + 1)) {
          await request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`);
          asked = true;
        }
      } catch {
        // No leader at this moment: asked again.
      }
      if (Date.now() > deadline) throw new Error(`${stream} still led by ${leader ?? 'nobody'}, not ${node}`);
      await sleep(POLL_MS);
      // Until the group has elected again: some leader other than the one asked to step down.
      while (asked && Date.now() < deadline) {
        const now = await jsm.streams.info(stream).then(
          (i) => i.cluster?.leader || undefined,
          () => undefined,
        );
        if (now !== undefined && now !== leader) break;
        await sleep(POLL_MS);
      }
    }
  });
}
