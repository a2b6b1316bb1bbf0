/**
 * Group commit across a kill -9, for real: worker processes on a real
 * nats-server, one hot session with 64 commands in flight (so its commands
 * are journaled in batches), its primary killed mid-load. The process
 * boundary is what is tested; group commit's logic is on both buses in
 * test/actors/groupCommit.test.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf } from '../../index.js';
import { decode, encode } from '../../bus/codec.js';
import { cmdSubject, journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { NatsServer } from '../../harness/natsServer.js';
import type { JournalRecord } from '../../internal.js';
import { DEFAULT_SHARD_COUNT } from '../../protocol/shard.js';
import { startTestServer } from '../nats.js';
import { settled, withTallyCluster } from './tallyCluster.js';

const CLIENT = 'raw#00000001';
const LANES = 64;

type Reply =
  { ok: true; seq: number; duplicate?: boolean } | { ok: false; error: { name: string; retryable: boolean } };

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

describe('group commit across a kill -9 (worker processes, real nats-server)', () => {
  it(
    'nothing acknowledged lost, nothing applied twice, every retry of a batched command answered as a duplicate',
    { timeout: 120_000 },
    async () => {
      await withTallyCluster(nats.url, 'gckill', async ({ cluster, bus, client }) => {
        const shard = shardOf('tally', 'hot', DEFAULT_SHARD_COUNT);
        const subject = cmdSubject(cluster.cluster, shard, 'tally', 'hot', 'raw');
        const send = async (cmdId: string): Promise<Reply> => {
          const body = encode({ kind: 'command', cmdId, client: CLIENT, event: { type: 'ADD', token: cmdId } });
          return decode((await bus.request(subject, body, { timeout: 2_000 })).data) as Reply;
        };

        // Each lane keeps one command in flight, retried with the same id until it is answered.
        const acked = new Map<string, number>();
        let stopping = false;
        const failures: string[] = [];
        const lane = async (n: number): Promise<void> => {
          for (let i = 0; !stopping; i++) {
            const cmdId = `h${n}-${i}`;
            for (let attempt = 0; ; attempt++) {
              let reply: Reply | undefined;
              try {
                reply = await send(cmdId);
              } catch {
                reply = undefined; // timed out or no responder: ambiguous, retried with the same id
              }
              if (reply?.ok) {
                acked.set(cmdId, reply.seq);
                break;
              }
              if (reply !== undefined && !reply.error.retryable) {
                failures.push(`${cmdId}: ${reply.error.name}`);
                break;
              }
              if (attempt > 300) {
                failures.push(`${cmdId}: not answered in 300 attempts`);
                break;
              }
              await sleep(50);
            }
          }
        };
        const lanes = Array.from({ length: LANES }, (_, n) => lane(n));
        const until = async (count: number): Promise<void> => {
          const deadline = Date.now() + 40_000;
          while (acked.size < count && Date.now() < deadline) await sleep(20);
          expect(acked.size).toBeGreaterThanOrEqual(count);
        };

        await until(400);
        const victim = cluster.views.latest!.shards[shard]!.primary!;
        cluster.workers.find((w) => w.id === victim.split('~')[0])!.kill('SIGKILL');
        const before = acked.size;
        await cluster.views.until(
          (v) => settled(v) && !v.members.some((m) => m.id === victim),
          30_000,
          `${victim} gone`,
        );
        await until(before + 400);
        stopping = true;
        await Promise.all(lanes);
        expect(failures).toEqual([]);

        // The journal: batches, every seq once, in order.
        const journal = await bus.journal({
          name: journalStreamName(cluster.cluster),
          subjects: [journalStreamFilter(cluster.cluster)],
        });
        const records: JournalRecord[] = [];
        for await (const e of journal.read(journalSubject(cluster.cluster, shard, 'tally', 'hot')))
          records.push(decode(e.data) as JournalRecord);
        const events = records.flatMap((r) => r.events);
        expect(records.filter((r) => r.events.length > 1).length).toBeGreaterThan(0);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));

        // The document: every acknowledged command exactly once, nothing twice.
        const read = await client.session('tally', 'hot').read();
        const tokens = (read.document as { tokens: string[] }).tokens;
        expect(read.seq).toBe(tokens.length);
        expect(new Set(tokens).size).toBe(tokens.length);
        const lost = [...acked.keys()].filter((id) => !tokens.includes(id));
        expect(lost).toEqual([]);
        for (const [cmdId, seq] of acked) expect(tokens[seq - 1]).toBe(cmdId);

        // Every acknowledged command retried: a duplicate with the seq it got, from the new primary.
        const ids = [...acked.keys()];
        const wrong: string[] = [];
        for (let i = 0; i < ids.length; i += 32) {
          const replies = await Promise.all(ids.slice(i, i + 32).map(send));
          replies.forEach((r, j) => {
            const id = ids[i + j]!;
            if (!r.ok || r.duplicate !== true || r.seq !== acked.get(id)) wrong.push(`${id}: ${JSON.stringify(r)}`);
          });
        }
        expect(wrong).toEqual([]);
        // Nothing more was applied by the retries.
        expect((await client.session('tally', 'hot').read()).seq).toBe(read.seq);
      });
    },
  );
});
