/**
 * Planned swaps while transactions are open, on real worker processes and
 * a real nats-server: the operator moves busy shards back and forth (no
 * force) while every lane keeps a transaction of two steps open almost all
 * the time. The old primary lets a shard go only once the transactions on
 * it have committed (within handoffTransactionWait, here the default: the
 * session timeout), and a transaction begun meanwhile begins on the new
 * primary. The history checker (harness/checker) then reads the journal as
 * nats-server stored it: nothing lost, nothing doubled, every transaction
 * committed once or refused with a typed error. The same logic runs on
 * virtual time in test/actors/handoffTransactions.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NetworkError, shardOf, TransactionRolledBackError, type Client } from '../../index.js';
import { requestFailover } from '../../internal.js';
import { checkHistory, readJournals, sendOutcome, type Operation } from '../../harness/checker/index.js';
import { isSettled, startTestCluster, type TestCluster } from '../../harness/testCluster.js';
import { tally } from '../fixtures/tally.js';

const TALLY = new URL('../fixtures/tally.ts', import.meta.url);
const TIMING = { heartbeatInterval: 150, sessionTimeout: 1_000 };
const TEST = { timeout: 120_000 };
/** Swaps, each moving every busy shard to the other worker. */
const SWAPS = 4;
const LANES = 4;
/** Between a transaction's two steps: it is open most of the time, and short of the bound by far. */
const THINK_MS = 20;

const clusters: TestCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.stop();
});

/** One transaction as a lane saw it. */
interface TxRun {
  readonly session: string;
  /** After its begin was answered, and after its commit (or refusal). */
  readonly began: number;
  readonly ended: number;
  /** Who committed it (the member id), or why it was refused. */
  readonly by?: string;
  readonly error?: unknown;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('planned swaps with transactions open, on real processes', () => {
  it(
    'open transactions commit on the old primary; new ones begin on the next; nothing lost or doubled',
    TEST,
    async () => {
      const cluster = await startTestCluster({ applications: [TALLY], workers: 2, ...TIMING });
      clusters.push(cluster);
      const client: Client = await cluster.client({ attemptTimeout: 1_000, timeout: 20_000 });
      // Sessions on distinct shards, so each lane's shard moves in every swap.
      const sessions: string[] = [];
      const shards = new Set<number>();
      for (let i = 0; sessions.length < LANES; i++) {
        const shard = shardOf('tally', `hx${i}`);
        if (shards.has(shard)) continue;
        shards.add(shard);
        sessions.push(`hx${i}`);
      }
      const history: Operation[] = [];
      const runs: TxRun[] = [];
      let stopping = false;
      let tokens = 0;
      const lanes = sessions.map(async (session) => {
        while (!stopping) {
          const events = [0, 1].map(() => ({ type: 'ADD', token: `${session}-${++tokens}` }));
          const invokedAt = performance.now();
          let began = 0;
          let txId = '';
          const seqs: number[] = [];
          /** Each step of the transaction as a send the checker knows, with how step `i` ended. */
          const record = (completedAt: number, ending: (i: number) => Partial<Operation>): void =>
            events.forEach((event, i) =>
              history.push({
                client: client.label,
                app: 'tally',
                session,
                kind: 'send',
                event,
                cmdId: `${txId}:${i}`,
                connection: client.id,
                invokedAt,
                completedAt,
                ...ending(i),
              } as Operation),
            );
          try {
            const result = await client.session('tally', session).transaction(async (tx) => {
              began = performance.now();
              txId = tx.id;
              seqs.push((await tx.send(events[0]!)).seq);
              await sleep(THINK_MS);
              seqs.push((await tx.send(events[1]!)).seq);
            });
            const ended = performance.now();
            runs.push({ session, began, ended, by: result.by });
            record(ended, (i) => ({ outcome: 'ok', seq: seqs[i]!, by: result.by, epoch: result.epoch }));
          } catch (error) {
            const ended = performance.now();
            runs.push({ session, began, ended, error });
            // A step never taken (or a begin never answered) was never sent: nothing to check of it.
            if (txId === '') continue;
            record(ended, () => ({ outcome: sendOutcome(error), error: (error as Error).name }));
          }
        }
      });

      const swaps: { at: number; shard: number; from: string; to: string }[] = [];
      const bus = await cluster.openBus('handoff-operator');
      while (runs.length < 2 * LANES) await sleep(10);
      for (let round = 0; round < SWAPS; round++) {
        const view = cluster.views.latest!;
        const moves = [...shards].map((shard) => {
          const from = view.shards[shard]!.primary!;
          const to = view.members.find((m) => m.id !== from)!.id;
          return { shard, from, to };
        });
        for (const move of moves) {
          swaps.push({ at: performance.now(), ...move });
          await requestFailover(bus, cluster.cluster, { shard: move.shard, to: move.to });
        }
        await cluster.waitForView((v) => isSettled(v) && moves.every((m) => v.shards[m.shard]!.primary === m.to), {
          timeoutMs: 20_000,
          what: `swap ${round + 1} done`,
        });
        const done = runs.length;
        while (runs.length < done + LANES) await sleep(10);
      }
      stopping = true;
      await Promise.all(lanes);

      // Every transaction committed once, or was refused with a typed error; here, with transactions far
      // shorter than the bound, none was refused.
      const refused = runs.filter((r) => r.error !== undefined);
      for (const r of refused) {
        expect(r.error).toBeInstanceOf(NetworkError);
        expect((r.error as NetworkError).cause).toBeInstanceOf(TransactionRolledBackError);
      }
      expect(refused.map((r) => String(r.error))).toEqual([]);
      // Transactions were open when their shard's swap was asked for, and committed on the old primary.
      const rode = swaps.flatMap((swap) =>
        runs.filter(
          (r) =>
            shardOf('tally', r.session) === swap.shard && r.began < swap.at && r.ended > swap.at && r.by === swap.from,
        ),
      );
      expect(rode.length).toBeGreaterThan(0);

      const reader = await cluster.openBus('handoff-reader');
      const violations = checkHistory({
        history,
        journals: await readJournals(reader, cluster.cluster),
        applications: [tally],
      });
      expect(violations).toEqual([]);
      const committed = runs.filter((r) => r.error === undefined).length;
      expect(history.filter((op) => op.outcome === 'ok')).toHaveLength(2 * committed);
      console.log(
        `handoff scenario: ${runs.length} transactions, ${committed} committed, ${refused.length} refused, ` +
          `${swaps.length} shard moves, ${rode.length} open across their shard's move`,
      );
    },
  );
});
