import { connect, createNatsBus, MEMBERSHIP_DEFAULTS, shardOf, type View } from '../index.js';
import { startNatsServer } from '../harness/natsServer.js';
import { Views, watchViews } from '../harness/viewFeed.js';
import {
  forkPromotionWorker,
  PROMOTION_APP,
  PROMOTION_SNAPSHOT_EVERY,
  type PromotionWorker,
} from './promotionChannel.js';
import { cpuTimeMs } from './cpu.js';
import { median, summarize, windowed, type LatencySummary } from './stats.js';

/**
 * kill -9 of a primary holding many sessions, with and without promotion
 * from copies: three worker processes (bench/promotionWorker.ts) on a fresh
 * nats-server each round, SESSIONS sessions on the shards the victim is
 * primary of, each with COMMANDS commands (a snapshot, and entries after
 * it); then SIGKILL, and every session sent one command at once. Per
 * session, the time from the kill to its first acknowledgement by a
 * successor. Rounds alternate (ABBA) between adopting the secondaries'
 * copies and reloading every session (UNSAFE.reloadOnPromotion).
 *
 * COHORT_BENCH_PROMOTION_SESSIONS (default 2 000) and
 * COHORT_BENCH_PROMOTION_ROUNDS (default 2: adopt, then reload; 4 for a
 * whole ABBA) change the size; a round takes 20-60 s on 2 cores.
 */

const CLUSTER = 'bench-promotion';
const WORKERS = 3;
const SESSIONS = Number(process.env['COHORT_BENCH_PROMOTION_SESSIONS'] ?? 2_000);
const COMMANDS = 12;
const ROUNDS = Number(process.env['COHORT_BENCH_PROMOTION_ROUNDS'] ?? 2);
const POPULATE_WINDOW = 256;
const STEADY_MS = 1_500;
const ADD = { type: 'ADD', by: 1 } as const;

export type PromotionMode = 'adopt' | 'reload';

export interface PromotionRound {
  readonly mode: PromotionMode;
  /** Kill to the first view in which every shard of the victim has another ACTIVE primary. */
  readonly viewMs: number;
  /** Kill to the moment the survivors serve (have subscribed) every shard of the victim. */
  readonly servingMs: number;
  /** Per session: kill to its first acknowledged command on a successor. */
  readonly served: number[];
  readonly adopted: number;
  readonly refused: number;
}

export interface PromotionFigures {
  readonly sessions: number;
  readonly rounds: readonly PromotionRound[];
}

function settled(view: View): boolean {
  return (
    !view.transitional &&
    view.members.length === WORKERS &&
    view.shards.every((s) => s.state === 'ACTIVE' && s.replicas.length === 1)
  );
}

/** A settled view no newer view has followed for `forMs`. */
async function steady(views: Views, forMs: number, timeoutMs: number): Promise<View> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const view = views.latest!;
    await new Promise((r) => setTimeout(r, forMs));
    if (views.latest!.viewId === view.viewId && settled(view)) return view;
    if (performance.now() > deadline) throw new Error(`bench promotion: no view lasted ${forMs} ms in ${timeoutMs} ms`);
  }
}

async function poll(test: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await test())) {
    if (performance.now() > deadline) throw new Error(`bench promotion: no ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The survivors' adoption counters, summed. */
async function adoptions(workers: readonly PromotionWorker[]): Promise<{ adopted: number; refused: number }> {
  const counts = (await Promise.all(workers.map((w) => w.call('adoptions')))) as { adopted: number; refused: number }[];
  return {
    adopted: counts.reduce((a, c) => a + c.adopted, 0),
    refused: counts.reduce((a, c) => a + c.refused, 0),
  };
}

/** CPU ms used so far by the server, the workers (summed) and the client; undefined without /proc. */
async function cpuOf(pids: { server: number; workers: number[]; client: number }): Promise<{
  server: number | undefined;
  workers: number | undefined;
  client: number | undefined;
}> {
  const workers = await Promise.all(pids.workers.map((p) => cpuTimeMs(p)));
  return {
    server: await cpuTimeMs(pids.server),
    workers: workers.some((w) => w === undefined) ? undefined : workers.reduce((a, b) => a! + b!, 0),
    client: await cpuTimeMs(pids.client),
  };
}

function cpuS(before: number | undefined, after: number | undefined): string {
  return before === undefined || after === undefined ? '?' : `${((after - before) / 1000).toFixed(1)} s`;
}

async function round(mode: PromotionMode, n: number, write: (line: string) => void): Promise<PromotionRound> {
  const server = await startNatsServer();
  const workers: PromotionWorker[] = [];
  const bus = await createNatsBus({ servers: server.url, name: 'bench-promotion-client' });
  const views = new Views();
  let watch: { stop(): void } | undefined;
  try {
    // One first, so the others join its cluster rather than race to write the first view.
    workers.push(
      await forkPromotionWorker({ url: server.url, cluster: CLUSTER, id: 'w1', zone: 'a', reload: mode === 'reload' }),
    );
    workers.push(
      ...(await Promise.all(
        ['w2', 'w3'].map((id, i) =>
          forkPromotionWorker({
            url: server.url,
            cluster: CLUSTER,
            id,
            zone: String.fromCharCode(98 + i),
            reload: mode === 'reload',
          }),
        ),
      )),
    );
    watch = await watchViews(bus, CLUSTER, views);
    await views.until(settled, 60_000, 'a settled view of three workers');
    // Settled is not yet balanced: the leader moves primaries to the newcomers a few at a time. Wait for a view that lasts.
    const view = await steady(views, STEADY_MS, 60_000);
    // Not the leader: the figure is a failover, not a leader election as well.
    const victim = workers.filter((w) => w.id !== view.leader).at(-1)!;
    const shards = view.shards.flatMap((s, shard) => (s.primary === victim.id ? [shard] : []));
    const victimShards = new Set(shards);
    const ids: string[] = [];
    for (let i = 0; ids.length < n; i++) {
      const id = `s${i}`;
      if (victimShards.has(shardOf(PROMOTION_APP, id, view.shardCount))) ids.push(id);
    }
    // Retries every 100 ms while no primary answers (default 250 ms), so the figure is the cluster's to within that;
    // trouble lasts as long as the slowest reload may (default 10 s, then requests fail). The attempt timeout stays
    // at its default (2 s): nothing is sent before the kill, so no request is lost with the victim, and a shorter
    // one would send every waiting command again and again while its session is activated.
    const client = await connect({
      bus,
      cluster: CLUSTER,
      timeout: 60_000,
      reconnectInterval: 100,
      troubledInterval: 60_000,
    });
    try {
      const handles = ids.map((id) => client.session(PROMOTION_APP, id));
      const tp = performance.now();
      await windowed(handles.length, POPULATE_WINDOW, async (i) => {
        for (let c = 0; c < COMMANDS; c++) await handles[i]!.send(ADD);
      });
      const populated = performance.now() - tp;
      // Every copy current before the kill: the secondaries' applied sequences stop moving (nothing else writes).
      const survivors = workers.filter((w) => w !== victim);
      let last = -1;
      let still = 0;
      await poll(
        async () => {
          const applied = (await Promise.all(survivors.map((w) => w.call('applied', shards)))) as number[];
          const sum = applied.reduce((a, b) => a + b, 0);
          still = sum === last ? still + 1 : 0;
          last = sum;
          return still >= 3;
        },
        30_000,
        'secondaries caught up',
      );

      const now = views.latest!;
      if (now.viewId !== view.viewId && shards.some((s) => now.shards[s]!.primary !== victim.id))
        throw new Error(`bench promotion: the view changed under the bench (view ${view.viewId} -> ${now.viewId})`);
      const before = await adoptions(survivors);
      // Where the CPU goes between the kill and the last session served: the server, the survivors, this client.
      const pids = { server: server.pid, workers: survivors.map((w) => w.pid), client: process.pid };
      const cpu0 = await cpuOf(pids);
      let viewAt = Number.NaN;
      const t0 = performance.now();
      const killedAt = Date.now();
      let viewsAfter = 0;
      // Each shard's primary in the failover view; a later view that moves one again leaves its copies behind.
      let successors: (string | null)[] | undefined;
      const movedAgain = new Set<number>();
      const unsubscribe = views.subscribe((v) => {
        viewsAfter++;
        if (
          successors === undefined &&
          shards.every((s) => v.shards[s]!.state === 'ACTIVE' && v.shards[s]!.primary !== victim.id)
        ) {
          viewAt = performance.now() - t0;
          successors = v.shards.map((s) => s.primary);
        } else if (successors !== undefined) {
          for (const s of shards) if (v.shards[s]!.primary !== successors[s]) movedAgain.add(s);
        }
      });
      await victim.kill();
      const served = await Promise.all(
        handles.map(async (h) => {
          for (;;) {
            const r = await h.send(ADD).catch(() => null);
            if (r !== null && r.by !== victim.id) return performance.now() - t0;
          }
        }),
      );
      const cpu1 = await cpuOf(pids);
      unsubscribe();
      // When the survivors served (had subscribed) the last shard of the victim: what is left is activation.
      const since = (await Promise.all(survivors.map((w) => w.call('servingSince', shards)))) as (number | null)[][];
      const starts = shards.map((_, i) => Math.max(...since.flatMap((w) => (w[i] === null ? [] : [w[i]!]))));
      const servingAt = starts.every(Number.isFinite) ? Math.max(...starts) - killedAt : Number.NaN;
      const after = await adoptions(survivors);
      const adopted = after.adopted - before.adopted;
      const refused = after.refused - before.refused;
      const s = summarize(served);
      write(
        `  ${mode}: ${victim.id} (primary of ${shards.length} shards) killed; view without it after ${viewAt.toFixed(0)} ms (${viewsAfter} views till all served, ${movedAgain.size} of its shards moved again), its shards served after ${Number.isFinite(servingAt) ? `${servingAt.toFixed(0)} ms` : 'unknown (a shard moved again before it was asked)'}; ` +
          `first ack p50 ${s.p50.toFixed(0)} ms, p99 ${s.p99.toFixed(0)} ms, all ${n} served ${Math.max(...served).toFixed(0)} ms; ` +
          `adopted ${adopted}, refused ${refused}; CPU meanwhile: nats-server ${cpuS(cpu0.server, cpu1.server)}, ` +
          `survivors ${cpuS(cpu0.workers, cpu1.workers)}, client ${cpuS(cpu0.client, cpu1.client)} (populated in ${(populated / 1000).toFixed(1)} s)`,
      );
      return { mode, viewMs: viewAt, servingMs: servingAt, served, adopted, refused };
    } finally {
      await client.close();
    }
  } finally {
    watch?.stop();
    await bus.close().catch(() => {});
    // The round is over: no clean stop (it would snapshot every session), the server and its store go too.
    await Promise.all(workers.map((w) => w.kill()));
    await server[Symbol.asyncDispose]();
  }
}

/** ABBA rounds of adopt and reload. */
export async function benchPromotion(write: (line: string) => void): Promise<PromotionFigures> {
  const { sessionTimeout, heartbeatInterval } = MEMBERSHIP_DEFAULTS;
  write(
    `promotion: ${WORKERS} worker processes (sessionTimeout ${sessionTimeout} ms, heartbeat ${heartbeatInterval} ms), ` +
      `${SESSIONS} sessions on the killed worker's shards, ${COMMANDS} commands each (a snapshot every ${PROMOTION_SNAPSHOT_EVERY} events), ` +
      `a fresh nats-server and cluster each round, one kill each (the default failover quota does not bite)`,
  );
  const rounds: PromotionRound[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const mode: PromotionMode = r % 4 === 0 || r % 4 === 3 ? 'adopt' : 'reload';
    rounds.push(await round(mode, SESSIONS, write));
  }
  return { sessions: SESSIONS, rounds };
}

/** One mode's figures over its rounds: each figure the median of the rounds'. */
export function promotionSummary(
  figures: PromotionFigures,
  mode: PromotionMode,
): {
  first: LatencySummary;
  all: number;
  view: number;
  serving: number;
  adopted: number;
  refused: number;
  rounds: number;
} {
  const rounds = figures.rounds.filter((r) => r.mode === mode);
  const each = rounds.map((r) => summarize(r.served));
  return {
    first: {
      p50: median(each.map((s) => s.p50)),
      p99: median(each.map((s) => s.p99)),
      mean: median(each.map((s) => s.mean)),
      n: each.reduce((a, s) => a + s.n, 0),
    },
    all: median(rounds.map((r) => Math.max(...r.served))),
    view: median(rounds.map((r) => r.viewMs)),
    serving: median(rounds.map((r) => r.servingMs)),
    adopted: rounds.reduce((a, r) => a + r.adopted, 0),
    refused: rounds.reduce((a, r) => a + r.refused, 0),
    rounds: rounds.length,
  };
}
