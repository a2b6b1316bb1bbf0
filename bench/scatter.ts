import { connect } from '../index.js';
import { startNatsServer } from '../harness/natsServer.js';
import { abba, fmtMs, fmtX, pad, summarize, windowed } from './stats.js';
import { BENCH_APP, BENCH_CLUSTER, startBenchWorker } from './workerChannel.js';

/**
 * `npm run bench -- scatter`: one query over 1,000 sessions with
 * client.scatter (one message per shard, 256 shards), against what a client
 * does without it: 1,000 single reads with 256 in flight. The worker runs in
 * its own process (bench/sessionsWorker.ts) on one embedded nats-server.
 */
const SESSIONS = 1_000;
const WINDOW = 256;
const ROUNDS = 4;
const PER_ROUND = 25;
const WARM = 10;

export async function benchScatter(write: (line: string) => void): Promise<number> {
  await using server = await startNatsServer();
  const worker = await startBenchWorker(server.url);
  const client = await connect({ nats: server.url, cluster: BENCH_CLUSTER, label: 'bench' });
  try {
    const ids = Array.from({ length: SESSIONS }, (_, i) => `sc-${i}`);
    const sessions = ids.map((id) => client.session(BENCH_APP, id));
    const created = await client.broadcast(BENCH_APP, ids, { type: 'ADD', by: 1 }, { timeout: 60_000 });
    if (created.results.size !== SESSIONS)
      throw new Error(`only ${created.results.size} of ${SESSIONS} sessions created`);
    let short = 0;
    const scatterOnce = async (): Promise<void> => {
      const g = await client.scatter<number>(BENCH_APP, ids, { query: 'total' }, { timeout: 30_000 });
      if (g.results.size !== SESSIONS) short++;
    };
    const readsOnce = async (): Promise<void> => {
      await windowed(SESSIONS, WINDOW, (i) => sessions[i]!.read());
    };
    const timed = async (op: () => Promise<void>): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < PER_ROUND; i++) {
        const t0 = performance.now();
        await op();
        out.push(performance.now() - t0);
      }
      return out;
    };
    for (let i = 0; i < WARM; i++) {
      await scatterOnce();
      await readsOnce();
    }
    const { raw, cohort } = await abba(
      ROUNDS,
      () => timed(readsOnce),
      () => timed(scatterOnce),
    );
    const reads = summarize(raw.flat());
    const scatter = summarize(cohort.flat());
    write(`scatter over ${SESSIONS} sessions (256 shards, worker in its own process), ${ROUNDS * PER_ROUND} of each:`);
    write(`  ${pad('', 44)}${pad('p50', 14)}${pad('p99', 14)}`);
    write(
      `  ${pad('client.scatter, one message per shard', 44)}${pad(fmtMs(scatter.p50), 14)}${pad(fmtMs(scatter.p99), 14)}`,
    );
    write(
      `  ${pad(`${SESSIONS} reads, ${WINDOW} in flight`, 44)}${pad(fmtMs(reads.p50), 14)}${pad(fmtMs(reads.p99), 14)}`,
    );
    write(`  scatter / reads: p50 ${fmtX(scatter.p50 / reads.p50)}, p99 ${fmtX(scatter.p99 / reads.p99)}`);
    if (short > 0) write(`  ${short} scatters came back with fewer than ${SESSIONS} answers`);
    return short > 0 ? 1 : 0;
  } finally {
    await client.close();
    await worker.close();
  }
}
