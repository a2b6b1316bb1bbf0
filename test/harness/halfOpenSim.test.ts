/**
 * Half-open partitions on virtual time: a worker keeps running and what it
 * sends keeps arriving, but nothing reaches it (SimProcess.deafen holds the
 * server's deliveries to it, as bytes a TCP peer cannot deliver wait). A
 * cluster of three under a steady load has one worker after another made
 * deaf, for 0.2 to 2.7 s at a time: a deafness longer than deafAfter makes
 * the member step down, and it rejoins once it hears again. The history is
 * checked against the journals with the machine as the model: nothing lost,
 * doubled or read out of order, whatever the timing.
 */
import { describe, expect, it } from 'vitest';
import { defineApplication, type View } from '../../index.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim } from './simBoot.js';
import { isSettled } from '../../harness/testCluster.js';

const app = defineApplication({ name: 'counter', machine: counterMachine, snapshotEvery: 1_000_000 });
const SHARDS = 12;
const SESSIONS = 24;
const CUTS = 8;

describe('workers cut off one way, one after another, under load (virtual time)', () => {
  for (const seed of [1, 2]) {
    it(`seed ${seed}: members step down and rejoin; the history checks`, { timeout: 180_000 }, async () => {
      // Eight cuts drop members more often than the default failover quota allows: that safeguard is not tested here.
      const sim = bootSim({
        application: app,
        shardCount: SHARDS,
        heartbeatInterval: 200,
        sessionTimeout: 1_000,
        seed,
        worker: { failoverQuota: Number.POSITIVE_INFINITY },
      });
      for (let i = 0; i < 3; i++) await sim.spawn(i);
      const view = (): View => {
        const views = sim.cluster.workers
          .filter((w) => w.process.state === 'running' && w.worker?.view)
          .map((w) => w.worker!.view!);
        return views.reduce((a, b) => (b.viewId > a.viewId ? b : a));
      };
      await sim.until(() => isSettled(view()), 'the first placement done');
      const clients = [];
      for (let i = 0; i < 3; i++) clients.push(await sim.connect(i));
      const count = { ok: 0, failed: 0 };
      let stop = false;
      const lanes = clients.flatMap((client, c) =>
        [0, 1, 2, 3].map(async (lane) => {
          for (let k = 0; !stop; k++) {
            await client
              .session('counter', `t${(c * 4 + lane + k) % SESSIONS}`)
              .send({ type: 'ADD', by: 1 })
              .then(
                () => count.ok++,
                () => count.failed++,
              );
            await sim.sleep(5);
          }
        }),
      );
      // The cuts' places, lengths and victims from the seed, apart from the simulation's own draws.
      let r = seed * 7_919;
      const draw = (): number => (r = (r * 48_271) % 2_147_483_647) / 2_147_483_647;
      const members = new Set<string>();
      for (let cut = 0; cut < CUTS; cut++) {
        await sim.pass(300 + Math.floor(draw() * 2_000));
        const victim = sim.cluster.workers[Math.floor(draw() * 3)]!.process;
        victim.deafen(true);
        await sim.pass(200 + Math.floor(draw() * 2_500));
        victim.deafen(false);
        for (const m of view().members) members.add(m.id);
      }
      await sim.until(() => isSettled(view()) && view().members.length === 3, 'every worker back', 60_000);
      for (const m of view().members) members.add(m.id);
      const target = count.ok + 100;
      await sim.until(() => count.ok >= target, '100 more acknowledged');
      stop = true;
      await sim.run(Promise.all(lanes));
      // Some cuts outlasted deafAfter: those members stepped down and came back as new ones.
      expect([...members].some((id) => id.includes('~'))).toBe(true);
      expect(await sim.check()).toEqual([]);
    });
  }
});
