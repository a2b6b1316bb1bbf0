import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type Client, MEMBERSHIP_DEFAULTS, WORKER_RECONNECT_INTERVAL } from '../index.js';
import { bucketName, journalStreamName } from '../internal.js';
import { isSettled, startTestCluster, type TestCluster } from '../harness/testCluster.js';
import { moveStreamLeader, streamLeader, waitStreamsCurrent } from '../harness/streamLeader.js';
import { median, pad } from './stats.js';

/**
 * A NATS node lost under cohort: a 3-node cluster, two worker processes
 * (storage replicas 3, the default membership timings), one client sending
 * to 20 sessions, each session's next command as soon as the last is
 * answered; the node leading the journal stream is killed (SIGKILL), then
 * restarted and caught up before the next kill. Measured from the kill, in
 * the same run:
 *
 * - the journal's own recovery: its new leader elected, as the server's
 *   advisory announces it (heard on a surviving node);
 * - cohort: each session's first acknowledged command sent after the kill;
 * - raw nats.js on an R3 stream of its own, put under the same leader
 *   node: that stream's election, the first acknowledged publish sent after
 *   the kill by a prober that publishes every PROBE_MS (the stream's floor:
 *   a publish acknowledged as soon as it can be), and a serial publisher as
 *   written by hand (one publish at a time, nats.js's default timeout).
 *
 * Each stream elects on its own (a few seconds on nats-server 2.9.10, not
 * the same for two streams in one kill), so cohort is judged against the
 * journal's election, and the raw stream shows that an elected stream
 * takes publishes at once.
 */

const APPS = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './apps.ts' : './apps.js', import.meta.url));
const CLUSTER = 'bench-nodeloss';
const APP = 'journaled';
const ADD = { type: 'ADD', by: 1 } as const;
const SESSIONS = 20;
const KILLS = 5;
const RAW_STREAM = 'BENCH_NODELOSS_RAW';
const RAW_SUBJECT = 'bench.nodeloss.raw';
/** The raw prober's interval: the resolution of the raw stream's figure. */
const PROBE_MS = 20;
/** A probe's own timeout: longer than any election, so a probe sent into one is answered when it ends. */
const PROBE_TIMEOUT_MS = 2_000;
/** Longest wait for everything to be served again after a kill. */
const RECOVERY_BOUND_MS = 40_000;
/** What the last session may take beyond the journal's own recovery (the goal: about a second). */
export const GOAL_BEYOND_MS = 1_000;

const PAYLOAD = new Uint8Array(16).fill(1);

export interface NodeLossRound {
  /** The server name killed: it led the journal and the raw stream. */
  readonly node: string;
  /** The buckets it also led (`cluster`, `snapshots`, `timers`, `counters`). */
  readonly alsoLed: readonly string[];
  /** Kill to the journal's new leader elected; undefined: not within the bound. */
  readonly journalElected: number | undefined;
  /** Kill to the raw stream's new leader elected. */
  readonly rawElected: number | undefined;
  /** Kill to the first acknowledged raw probe sent after it. */
  readonly raw: number | undefined;
  /** Kill to the serial raw publisher's first acknowledgement after it. */
  readonly rawSerial: number | undefined;
  /** Per session: kill to its first acknowledged command sent after the kill (Infinity: none within the bound). */
  readonly sessions: readonly number[];
  /** Errors the sends ended with meanwhile (the client gave up), by name. */
  readonly errors: ReadonlyMap<string, number>;
}

export interface NodeLoss {
  readonly version: string;
  readonly rounds: readonly NodeLossRound[];
}

/** One session's loop: a command as soon as the last is answered; each acknowledgement with when it was sent. */
interface Lane {
  readonly acks: { sent: number; acked: number }[];
  readonly errors: Map<string, number>;
}

function startLane(client: Client, id: string, running: () => boolean): { lane: Lane; done: Promise<void> } {
  const lane: Lane = { acks: [], errors: new Map() };
  const session = client.session(APP, id);
  const done = (async () => {
    while (running()) {
      const sent = performance.now();
      try {
        await session.send(ADD);
        lane.acks.push({ sent, acked: performance.now() });
        if (lane.acks.length > 8_192) lane.acks.splice(0, 4_096);
      } catch (err) {
        const name = err instanceof Error ? err.name : 'non-error';
        lane.errors.set(name, (lane.errors.get(name) ?? 0) + 1);
      }
    }
  })();
  return { lane, done };
}

/** When the first acknowledgement of something sent at or after `t` came. */
function firstAfter(acks: readonly { sent: number; acked: number }[], t: number): number | undefined {
  return acks.find((a) => a.sent >= t)?.acked;
}

interface Raw {
  readonly probes: { sent: number; acked: number }[];
  readonly serial: { sent: number; acked: number }[];
  /** When each stream's next leader was elected, by the server's advisory. */
  elected(stream: string): number | undefined;
  stop(): Promise<void>;
}

/** Raw nats.js on the surviving nodes: the prober, the serial publisher, and the election advisories. */
async function startRaw(servers: readonly string[], streams: readonly string[]): Promise<Raw> {
  const nc = await connect({ servers: [...servers], noAsyncTraces: true });
  const js = jetstream(nc);
  const elected = new Map<string, number>();
  for (const stream of streams)
    nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${stream}`, {
      callback: () => {
        if (!elected.has(stream)) elected.set(stream, performance.now());
      },
    });
  await nc.flush();
  const raw: Raw = { probes: [], serial: [], elected: (s) => elected.get(s), stop: async () => undefined };
  let running = true;
  let n = 0;
  const ticker = setInterval(() => {
    const sent = performance.now();
    js.publish(RAW_SUBJECT, PAYLOAD, { msgID: `p${++n}`, timeout: PROBE_TIMEOUT_MS }).then(
      () => raw.probes.push({ sent, acked: performance.now() }),
      () => undefined,
    );
  }, PROBE_MS);
  const serialLoop = (async () => {
    while (running) {
      const sent = performance.now();
      try {
        await js.publish(RAW_SUBJECT, PAYLOAD, { msgID: `s${++n}` });
        raw.serial.push({ sent, acked: performance.now() });
      } catch {
        // Tried again after the pause, as the loop does anyway.
      }
      await sleep(PROBE_MS);
    }
  })();
  return {
    ...raw,
    stop: async () => {
      running = false;
      clearInterval(ticker);
      await serialLoop;
      await nc.close();
    },
  };
}

async function until(check: () => boolean, bound: number): Promise<void> {
  const deadline = performance.now() + bound;
  while (!check() && performance.now() < deadline) await sleep(25);
}

export async function measureNodeLoss(
  write: (line: string) => void,
  options: { kills?: number } = {},
): Promise<NodeLoss> {
  const kills = options.kills ?? KILLS;
  const { sessionTimeout, heartbeatInterval } = MEMBERSHIP_DEFAULTS;
  const cluster: TestCluster = await startTestCluster({
    applications: [APPS],
    workers: 2,
    nats: 'cluster3',
    cluster: CLUSTER,
    sessionTimeout,
    heartbeatInterval,
  });
  const nodes = cluster.nats !== undefined && 'nodes' in cluster.nats ? cluster.nats.nodes : [];
  const names = nodes.map((n) => n.serverName ?? '');
  const journal = journalStreamName(CLUSTER);
  const buckets = (['cluster', 'snapshots', 'timers', 'counters'] as const).map(
    (k) => [k, `KV_${bucketName(CLUSTER, k)}`] as const,
  );
  let running = true;
  const lanes: Lane[] = [];
  const loops: Promise<void>[] = [];
  try {
    const setup = await connect({ servers: [...cluster.urls] });
    await (await jetstreamManager(setup)).streams.add({ name: RAW_STREAM, subjects: [RAW_SUBJECT], num_replicas: 3 });
    await setup.close();
    const client = await cluster.client();
    for (let i = 0; i < SESSIONS; i++) {
      const { lane, done } = startLane(client, `s${i}`, () => running);
      lanes.push(lane);
      loops.push(done);
    }
    const rounds: NodeLossRound[] = [];
    for (let k = 0; k < kills; k++) {
      await cluster.waitForView(isSettled, { timeoutMs: 60_000 });
      // Every session served lately, so the kill finds the load running.
      const since = performance.now();
      await until(() => lanes.every((l) => (l.acks.at(-1)?.acked ?? 0) > since), 30_000);
      const node = await streamLeader(cluster.urls, journal);
      const index = names.indexOf(node);
      await moveStreamLeader(cluster.urls, RAW_STREAM, node);
      const alsoLed: string[] = [];
      for (const [kind, stream] of buckets)
        if ((await streamLeader(cluster.urls, stream, 5_000).catch(() => undefined)) === node) alsoLed.push(kind);
      const raw = await startRaw(
        cluster.urls.filter((_, i) => i !== index),
        [journal, RAW_STREAM],
      );
      const warm = performance.now();
      await until(() => firstAfter(raw.probes, warm) !== undefined, 5_000);
      const errorsBefore = countErrors(lanes);

      const t0 = performance.now();
      await cluster.killNatsNode(index);
      await until(
        () =>
          raw.elected(journal) !== undefined &&
          firstAfter(raw.probes, t0) !== undefined &&
          firstAfter(raw.serial, t0) !== undefined &&
          lanes.every((l) => firstAfter(l.acks, t0) !== undefined),
        RECOVERY_BOUND_MS,
      );
      await raw.stop();
      const since0 = (t: number | undefined): number | undefined => (t === undefined ? undefined : t - t0);
      const errors = countErrors(lanes);
      for (const [e, n] of errorsBefore) errors.set(e, errors.get(e)! - n);
      for (const [e, n] of errors) if (n === 0) errors.delete(e);
      const round: NodeLossRound = {
        node,
        alsoLed,
        journalElected: since0(raw.elected(journal)),
        rawElected: since0(raw.elected(RAW_STREAM)),
        raw: since0(firstAfter(raw.probes, t0)),
        rawSerial: since0(firstAfter(raw.serial, t0)),
        sessions: lanes.map((l) => since0(firstAfter(l.acks, t0)) ?? Number.POSITIVE_INFINITY),
        errors,
      };
      rounds.push(round);
      write(`  kill ${k + 1}/${kills}: ${describeRound(round)}`);
      await cluster.restartNatsNode(index);
      await waitStreamsCurrent(cluster.urls, [journal, RAW_STREAM, ...buckets.map(([, s]) => s)], 3, 60_000);
    }
    return { version: nodes[0]?.version ?? '?', rounds };
  } finally {
    running = false;
    await Promise.race([Promise.all(loops), sleep(15_000)]);
    await cluster.stop();
  }
}

function countErrors(lanes: readonly Lane[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of lanes) for (const [e, n] of l.errors) out.set(e, (out.get(e) ?? 0) + n);
  return out;
}

function seconds(ms: number | undefined): string {
  return ms === undefined || !Number.isFinite(ms) ? 'never' : `${(ms / 1000).toFixed(2)} s`;
}

function describeRound(r: NodeLossRound): string {
  return (
    `${r.node} (leading the journal${r.alsoLed.length ? `, ${r.alsoLed.join(', ')}` : ''}): ` +
    `journal elected ${seconds(r.journalElected)}, sessions p50 ${seconds(median([...r.sessions]))}, ` +
    `max ${seconds(Math.max(...r.sessions))}; raw stream elected ${seconds(r.rawElected)}, ` +
    `first ack ${seconds(r.raw)}, serial publisher ${seconds(r.rawSerial)}` +
    (r.errors.size ? `; sends failed: ${[...r.errors].map(([e, n]) => `${n} ${e}`).join(', ')}` : '')
  );
}

/** The section the connections bench prints, its goal judged as the other sections' are. */
export function reportNodeLoss(write: (line: string) => void, loss: NodeLoss): void {
  const { rounds } = loss;
  const col = (f: (r: NodeLossRound) => number | undefined): string => rounds.map((r) => seconds(f(r))).join(', ');
  const worst = (r: NodeLossRound): number => Math.max(...r.sessions);
  const beyond = rounds.map((r) => worst(r) - (r.journalElected ?? Number.NaN));
  const failed = rounds.reduce((n, r) => n + [...r.errors.values()].reduce((a, b) => a + b, 0), 0);
  write(
    `NATS node loss (${rounds.length} kills of the node leading the journal; 3 nodes, nats-server ${loss.version}; ` +
      `2 worker processes, storage replicas 3, sessionTimeout ${MEMBERSHIP_DEFAULTS.sessionTimeout} ms, ` +
      `worker reconnectInterval ${WORKER_RECONNECT_INTERVAL} ms; ${SESSIONS} sessions, each sending as soon as answered):`,
  );
  write(`  ${pad("the journal's own recovery: new leader elected", 58)}${col((r) => r.journalElected)}`);
  write(`  ${pad('cohort: every session acknowledged again, p50', 58)}${col((r) => median([...r.sessions]))}`);
  write(`  ${pad('cohort: every session acknowledged again, max', 58)}${col(worst)}`);
  const goal = rounds.length > 0 && beyond.every((b) => b <= GOAL_BEYOND_MS);
  write(
    `  ${pad('cohort max - journal elected', 58)}${beyond.map((b) => seconds(b)).join(', ')}  ` +
      `(goal <= ${seconds(GOAL_BEYOND_MS)} every kill: ${goal ? 'met' : 'MISSED'})`,
  );
  write(
    `  ${pad('cohort max / journal elected', 58)}${rounds.map((r) => `${(worst(r) / (r.journalElected ?? Number.NaN)).toFixed(2)}x`).join(', ')}`,
  );
  write(`  ${pad('raw R3 stream under the same node: elected', 58)}${col((r) => r.rawElected)}`);
  write(`  ${pad(`  first ack (a publish every ${PROBE_MS} ms)`, 58)}${col((r) => r.raw)}`);
  write(`  ${pad('  serial publisher (nats.js defaults, by hand)', 58)}${col((r) => r.rawSerial)}`);
  write(`  ${pad('cohort sends that failed meanwhile', 58)}${failed}`);
}
