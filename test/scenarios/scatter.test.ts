/**
 * Scatter across a kill -9, for real: three worker processes on a real
 * nats-server, a thousand sessions, one worker killed as the scatter goes
 * out. The process boundary is what is tested; the logic is on virtual time
 * in test/harness/scatterSim.test.ts and on both buses in test/actors/scatter.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOf, TimeoutError, type Gathered } from '../../index.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { DEFAULT_SHARD_COUNT } from '../../protocol/shard.js';
import { startTestServer } from '../nats.js';
import { settled, withTallyCluster } from './tallyCluster.js';

/** What a call may run past its deadline on a shared two-core machine (as in deadlines.test.ts). */
const SLACK = 400;
const IDS = Array.from({ length: 1_000 }, (_, i) => `acct-${i}`);

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

function partitioned<T>(g: Gathered<T>): void {
  expect([...g.results.keys(), ...g.errors.keys(), ...g.missing].sort()).toEqual([...IDS].sort());
}

describe('scatter across a kill -9 (worker processes, real nats-server)', () => {
  it(
    'a frozen worker: calls settle at their deadline, its commands ambiguous; killed: live shards answer in time, its sessions missing or answered after failover',
    { timeout: 120_000 },
    async () => {
      await withTallyCluster(nats.url, 'scatterkill', async ({ cluster, client }) => {
        const sent = await client.broadcast('tally', IDS, { type: 'ADD', token: 'one' }, { timeout: 30_000 });
        expect(sent.results.size).toBe(1_000);
        const all = await client.scatter<number>('tally', IDS, { query: 'count' }, { timeout: 10_000 });
        expect(all.results.size).toBe(1_000);

        // A frozen worker (SIGSTOP): both calls end at their deadline, before the session timeout could move its
        // shards; its commands sent and unanswered are ambiguous. Ids of their own, so their fate touches nothing below.
        const frozenIds = Array.from({ length: 100 }, (_, i) => `frozen-${i}`);
        await client.broadcast('tally', frozenIds, { type: 'ADD', token: 'one' }, { timeout: 30_000 });
        const before = cluster.views.latest!;
        const paused = cluster.workers[1]!;
        const pausedMember = before.members.find((m) => m.id.split('~')[0] === paused.id)!.id;
        const frozen = new Set(
          frozenIds.filter((id) => before.shards[shardOf('tally', id, DEFAULT_SHARD_COUNT)]!.primary === pausedMember),
        );
        expect(frozen.size).toBeGreaterThan(0);
        paused.pause();
        try {
          let t0 = Date.now();
          const b = await client.broadcast('tally', frozenIds, { type: 'ADD', token: 'two' }, { timeout: 500 });
          expect(Date.now() - t0).toBeLessThanOrEqual(500 + SLACK);
          expect([...b.results.keys(), ...b.errors.keys(), ...b.missing].sort()).toEqual([...frozenIds].sort());
          for (const id of frozenIds) if (!frozen.has(id)) expect(b.results.has(id), id).toBe(true);
          for (const [id, err] of b.errors) {
            expect(frozen.has(id), id).toBe(true);
            expect(err instanceof TimeoutError && err.ambiguous, id).toBe(true);
          }
          expect(b.errors.size).toBeGreaterThan(0);
          t0 = Date.now();
          const q = await client.scatter('tally', frozenIds, { query: 'count' }, { timeout: 300 });
          expect(Date.now() - t0).toBeLessThanOrEqual(300 + SLACK);
          expect(new Set(q.missing)).toEqual(frozen);
        } finally {
          paused.resume();
        }
        await cluster.views.until(settled, 30_000, 'settled after the pause');

        const view = cluster.views.latest!;
        const victim = cluster.workers[2]!;
        const member = view.members.find((m) => m.id.split('~')[0] === victim.id)!.id;
        const dead = new Set(
          IDS.filter((id) => view.shards[shardOf('tally', id, DEFAULT_SHARD_COUNT)]!.primary === member),
        );
        expect(dead.size).toBeGreaterThan(0);
        const started = Date.now();
        const pending = client.scatter<number>('tally', IDS, { query: 'count' }, { timeout: 3_000 });
        victim.kill('SIGKILL');
        const g = await pending;
        const waited = Date.now() - started;
        expect(waited).toBeLessThanOrEqual(3_000 + SLACK);
        partitioned(g);
        for (const id of IDS) if (!dead.has(id)) expect(g.results.get(id), id).toBe(1);
        for (const id of g.missing) expect(dead.has(id), id).toBe(true);
        expect([...g.results.values()].every((n) => n === 1)).toBe(true);

        // Once the failover is done, every session answers again.
        await cluster.views.until(
          (v) => settled(v) && v.members.every((m) => m.id !== member),
          30_000,
          'the failover done',
        );
        const after = await client.scatter<number>('tally', IDS, { query: 'count' }, { timeout: 10_000 });
        expect(after.results.size).toBe(1_000);
      });
    },
  );
});
