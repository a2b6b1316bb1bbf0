import { fileURLToPath } from 'node:url';
import { type Client, connect, MEMBERSHIP_DEFAULTS, shardOf, type View } from '../index.js';
import { requestFailover } from '../internal.js';
import { startLocalCluster, type LocalCluster } from '../cli/localCluster.js';
import { benchPromotion, promotionSummary, type PromotionFigures } from './promotion.js';
import { startRawNats } from './rawNats.js';
import { abba, fmtMs, median, serial, summarize } from './stats.js';

/**
 * Failover as a client sees it, on three worker processes and one embedded
 * nats-server, with the default membership timings: kill -9 of a primary
 * to the first command its successor acknowledges; the longest pause a
 * client sees while a shard is swapped by hand; and `send` at commit level
 * `replicas` against `journal` (raw request/reply beside them). Then, on
 * clusters of its own (bench/promotion.ts), kill -9 of a primary of many
 * sessions with and without promotion from copies.
 *
 * COHORT_BENCH_FAILOVER picks sections, comma-separated: kill, swap, commit,
 * promotion (default all).
 */

const APPS = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './apps.ts' : './apps.js', import.meta.url));
const CLUSTER = 'bench-failover';
const KILLS = 10;
const SWAPS = 10;
const ROUNDS = 4;
const LAT_N = 500;
const ADD = { type: 'ADD', by: 1 } as const;
const PAYLOAD = new Uint8Array(64).fill(7);

const { sessionTimeout, heartbeatInterval } = MEMBERSHIP_DEFAULTS;
const GOAL_FAILOVER_MS = sessionTimeout + 500;
const GOAL_STALL_MS = 100;
const GOAL_REPLICAS_RATIO = 1.5;

function settled(view: View): boolean {
  return (
    !view.transitional &&
    view.shards.every(
      (s) => s.state === 'ACTIVE' && s.replicas.length === Math.min(view.replicas, view.members.length - 1),
    )
  );
}

const SECTIONS = ['kill', 'swap', 'commit', 'promotion'] as const;
type Section = (typeof SECTIONS)[number];

function sections(): Set<Section> | string {
  const given = process.env['COHORT_BENCH_FAILOVER'];
  if (given === undefined || given.trim() === '') return new Set(SECTIONS);
  const names = given.split(',').map((n) => n.trim());
  const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
  if (unknown.length > 0)
    return `COHORT_BENCH_FAILOVER: unknown section ${unknown.join(', ')}; sections: ${SECTIONS.join(', ')}`;
  return new Set(names as Section[]);
}

export async function benchFailover(write: (line: string) => void): Promise<number> {
  const picked = sections();
  if (typeof picked === 'string') {
    write(picked);
    return 2;
  }
  const lines: string[] = [];
  if (picked.has('kill') || picked.has('swap') || picked.has('commit')) {
    const code = await clusterSections(picked, write, lines);
    if (code !== 0) return code;
  }
  if (picked.has('promotion')) lines.push(...promotionLines(await benchPromotion(write)));
  write('');
  write('figure                                         result                     goal');
  for (const line of lines) write(line);
  return 0;
}

function promotionLines(figures: PromotionFigures): string[] {
  const a = promotionSummary(figures, 'adopt');
  const r = promotionSummary(figures, 'reload');
  const n = figures.sessions;
  const line = (what: string, s: typeof a): string =>
    `${what} p50 ${s.first.p50.toFixed(0)} ms, p99 ${s.first.p99.toFixed(0)} ms, all ${n} served ${s.all.toFixed(0)} ms ` +
    `(view ${s.view.toFixed(0)} ms, shards served ${Number.isFinite(s.serving) ? `${s.serving.toFixed(0)} ms` : 'unknown'}; adopted ${s.adopted}, refused ${s.refused} of ${n * s.rounds} over ${s.rounds} rounds)`;
  return [
    line(`kill -9 to first ack, ${n} sessions, promotion from copies `, a),
    line(`kill -9 to first ack, ${n} sessions, reload (no adoption)   `, r),
    `promotion saved ${(r.first.p50 - a.first.p50).toFixed(0)} ms p50 / ${(r.all - a.all).toFixed(0)} ms until all served`,
  ];
}

/** kill, swap and commit: on one cluster of three `cohort worker` processes. */
async function clusterSections(picked: Set<Section>, write: (line: string) => void, lines: string[]): Promise<number> {
  const cluster = await startLocalCluster({
    workers: 3,
    apps: [APPS],
    nats: undefined,
    cluster: CLUSTER,
    write,
    sessionTimeout,
    heartbeatInterval,
    // Ten kills in a row is the bench's own doing: the default quota (3 in 10 minutes) would halt failover at the 4th.
    failoverQuota: KILLS + 1,
  });
  if (cluster.transport !== 'nats') {
    write('failover needs worker processes on a nats-server: install nats-server');
    await cluster.stop();
    return 1;
  }
  const bus = await cluster.openBus('bench-failover-client');
  // A short attempt so the figure is the cluster's, not a client waiting out a request lost with the dead worker.
  const client = await connect({ bus, cluster: CLUSTER, timeout: 30_000, attemptTimeout: 250 });
  const raw = await startRawNats(cluster.url!, 'BENCH_FAILOVER_RAW');
  try {
    write(
      `failover: 3 worker processes, sessionTimeout ${sessionTimeout} ms, heartbeat ${heartbeatInterval} ms (the defaults)`,
    );
    if (picked.has('kill')) {
      const kills = await killRounds(cluster, client, write);
      const k = summarize(kills);
      lines.push(
        `kill -9 to first command on the new primary    p50 ${fmtMs(k.p50)} (min ${fmtMs(Math.min(...kills))}, max ${fmtMs(Math.max(...kills))}, n ${kills.length})  <= ${GOAL_FAILOVER_MS} ms ${k.p50 <= GOAL_FAILOVER_MS ? 'met' : 'MISSED'}`,
      );
    }
    if (picked.has('swap')) {
      const swaps = await swapRounds(cluster, client, write);
      const worstStall = Math.max(...swaps.map((s) => s.stall));
      const swapErrors = swaps.reduce((a, s) => a + s.errors, 0);
      lines.push(
        `planned swap: longest client-visible stall     p50 ${fmtMs(median(swaps.map((s) => s.stall)))}, max ${fmtMs(worstStall)}, errors ${swapErrors}  < ${GOAL_STALL_MS} ms, 0 errors ${worstStall < GOAL_STALL_MS && swapErrors === 0 ? 'met' : 'MISSED'}`,
      );
    }
    if (picked.has('commit')) {
      const j = client.session('journaled', 'lat');
      const r = client.session('replicated', 'lat');
      // ABBA between the two commit levels (abba names its sides raw and cohort: here journal and replicas).
      const levels = await abba(
        ROUNDS,
        async () => median(await serial(LAT_N, () => j.send(ADD))),
        async () => median(await serial(LAT_N, () => r.send(ADD))),
      );
      const rr = median(await serial(LAT_N, () => raw.request(PAYLOAD)));
      const journal = median(levels.raw);
      const replicas = median(levels.cohort);
      lines.push(
        `send p50, commit journal                       ${fmtMs(journal)} (${(journal / rr).toFixed(2)}x raw request/reply ${fmtMs(rr)})`,
        `send p50, commit replicas                      ${fmtMs(replicas)} = ${(replicas / journal).toFixed(2)}x journal  <= ${GOAL_REPLICAS_RATIO}x ${replicas / journal <= GOAL_REPLICAS_RATIO ? 'met' : 'MISSED'}`,
      );
    }
    return 0;
  } finally {
    await raw.close();
    await client.close();
    await bus.close();
    await cluster.stop(5_000);
  }
}

/** Kill the primary of a probed session's shard; time until a command is acknowledged by someone else. Then replace the worker. */
async function killRounds(cluster: LocalCluster, client: Client, write: (line: string) => void): Promise<number[]> {
  const out: number[] = [];
  for (let k = 0; k < KILLS; k++) {
    const view = await cluster.views.until(settled, 60_000, 'a settled view');
    const id = `kill${k}`;
    const probe = client.session('journaled', id);
    await probe.send(ADD);
    const victim = view.shards[shardOf('journaled', id, view.shardCount)]!.primary!;
    const worker = cluster.workers.find((w) => w.id === victim)!;
    const t0 = performance.now();
    worker.kill('SIGKILL');
    for (;;) {
      const r = await probe.send(ADD).catch(() => null);
      if (r !== null && r.by !== victim) break;
    }
    const ms = performance.now() - t0;
    out.push(ms);
    write(`  kill ${k + 1}/${KILLS}: ${victim} killed, first command on its successor after ${ms.toFixed(0)} ms`);
    await worker.exited;
    await cluster.addWorker();
  }
  return out;
}

/** Swap a probed session's shard to another worker while sends go on; the longest gap between acknowledgements around it. */
async function swapRounds(
  cluster: LocalCluster,
  client: Client,
  write: (line: string) => void,
): Promise<{ stall: number; errors: number }[]> {
  const out: { stall: number; errors: number }[] = [];
  const bus = await cluster.openBus('bench-failover-operator');
  try {
    for (let k = 0; k < SWAPS; k++) {
      const view = await cluster.views.until(settled, 60_000, 'a settled view');
      const id = `swap${k}`;
      const shard = shardOf('journaled', id, view.shardCount);
      const from = view.shards[shard]!.primary!;
      const to = view.members.find((m) => m.id !== from && m.promotable)!.id;
      const probe = client.session('journaled', id);
      await probe.send(ADD);
      let running = true;
      let errors = 0;
      const acks: number[] = [];
      const loop = (async () => {
        while (running) {
          try {
            await probe.send(ADD);
            acks.push(performance.now());
          } catch {
            errors++;
          }
        }
      })();
      const t0 = performance.now();
      await requestFailover(bus, CLUSTER, { shard, to });
      await cluster.views.until(
        (v) => v.shards[shard]!.primary === to && v.shards[shard]!.state === 'ACTIVE',
        30_000,
        `shard ${shard} on ${to}`,
      );
      // Some acknowledgements on the new primary, so the gap around the swap is closed on both sides.
      const after = acks.length + 20;
      while (acks.length < after && errors === 0) await new Promise((r) => setImmediate(r));
      running = false;
      await loop;
      let stall = 0;
      let prev = t0;
      for (const t of acks.filter((x) => x >= t0)) {
        stall = Math.max(stall, t - prev);
        prev = t;
      }
      out.push({ stall, errors });
      write(
        `  swap ${k + 1}/${SWAPS}: shard ${shard} ${from} -> ${to}, longest pause ${stall.toFixed(1)} ms, errors ${errors}`,
      );
    }
  } finally {
    await bus.close();
  }
  return out;
}
