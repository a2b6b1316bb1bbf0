/**
 * Multi-session transactions across a kill -9, for real: worker processes
 * on a real nats-server, transactions over three sessions of one shard
 * back to back, the shard's primary killed mid-load. The process boundary
 * is what is tested (an intent journaled and its record not, the next
 * primary deciding it); the logic is on both buses in
 * test/actors/multiSessionTransactions.test.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf } from '../../index.js';
import { readJournals } from '../../harness/checker/index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { DEFAULT_SHARD_COUNT } from '../../protocol/shard.js';
import { startTestServer } from '../nats.js';
import { settled, withTallyCluster } from './tallyCluster.js';

const LANES = 4;

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

/** Three session ids of one shard. */
function threeOnOneShard(): [string, string, string] {
  const byShard = new Map<number, string[]>();
  for (let i = 0; ; i++) {
    const id = `mk${i}`;
    const shard = shardOf('tally', id, DEFAULT_SHARD_COUNT);
    const list = [...(byShard.get(shard) ?? []), id];
    byShard.set(shard, list);
    if (list.length === 3) return list as [string, string, string];
  }
}

describe('multi-session transactions across a kill -9 (worker processes, real nats-server)', () => {
  it(
    'nothing acknowledged lost, no transaction applied in part, every session in the same order',
    { timeout: 120_000 },
    async () => {
      await withTallyCluster(nats.url, 'mtkill', async ({ cluster, bus, client }) => {
        const [x, y, z] = threeOnOneShard();
        const shard = shardOf('tally', x, DEFAULT_SHARD_COUNT);
        const acked: string[] = [];
        const failed: string[] = [];
        let stopping = false;
        const lane = async (n: number): Promise<void> => {
          for (let i = 0; !stopping; i++) {
            const t = `l${n}-${i}`;
            try {
              await client.session('tally', x).transaction(async (tx) => {
                await tx.send({ type: 'ADD', token: t });
                await tx.session('tally', y).send({ type: 'ADD', token: t });
                await tx.session('tally', z).send({ type: 'ADD', token: t });
              });
              acked.push(t);
            } catch (err) {
              // Rolled back by the failover, or its commit unanswered: a new transaction next, never the same.
              failed.push(`${t}: ${(err as Error).name}: ${(err as Error).message}`);
              await sleep(50);
            }
          }
        };
        const lanes = Array.from({ length: LANES }, (_, n) => lane(n));
        const until = async (count: number): Promise<void> => {
          const deadline = Date.now() + 40_000;
          while (acked.length < count && Date.now() < deadline) await sleep(20);
          // Stuck: the last failures say why.
          expect(acked.length, failed.slice(-6).join('\n')).toBeGreaterThanOrEqual(count);
        };

        await until(40);
        const victim = cluster.views.latest!.shards[shard]!.primary!;
        cluster.workers.find((w) => w.id === victim.split('~')[0])!.kill('SIGKILL');
        const before = acked.length;
        await cluster.views.until(
          (v) => settled(v) && !v.members.some((m) => m.id === victim),
          30_000,
          `${victim} gone`,
        );
        await until(before + 40);
        stopping = true;
        await Promise.all(lanes);

        const tokens = async (id: string): Promise<string[]> => {
          const r = await client.session('tally', id).read();
          const list = (r.document as { tokens: string[] }).tokens;
          expect(r.seq).toBe(list.length);
          return list;
        };
        const [tx, ty, tz] = [await tokens(x), await tokens(y), await tokens(z)];
        // All or none: the three sessions hold the same transactions, in the same order, each once.
        expect(ty).toEqual(tx);
        expect(tz).toEqual(tx);
        expect(new Set(tx).size).toBe(tx.length);
        // Nothing acknowledged lost.
        expect(acked.filter((t) => !tx.includes(t))).toEqual([]);
        // The journal as the checker reads it agrees: each part once, at its place, consecutive seqs.
        const journals = await readJournals(bus, cluster.cluster, { snapshots: false });
        for (const id of [x, y, z]) {
          const j = journals.find((s) => s.app === 'tally' && s.session === id)!;
          expect(j.unreadable).toEqual([]);
          expect(j.events.map((e) => e.seq)).toEqual(tx.map((_, i) => i + 1));
          expect(j.events.map((e) => (e.event as unknown as { token: string }).token)).toEqual(tx);
        }
      });
    },
  );
});
