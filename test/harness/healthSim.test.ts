/**
 * Health-based step-down on virtual time: one of three workers keeps
 * heartbeating and hearing, but its journal calls go unanswered (the
 * simulated network drops them, as a broken route to the stream's leader
 * would). At failure condition 3 its appends failing for the health-check
 * timeout make it unhealthy; the others are healthy, so it leaves, its
 * shards hand off, and every session is served by the others; it rejoins
 * once its journal answers again. At level 1 (control) it keeps its shards
 * and their sessions stay unserved. The history is checked either way.
 */
import { describe, expect, it } from 'vitest';
import { defineApplication, type Client, type View } from '../../index.js';
import type { FailureCondition } from '../../machines/health.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim, type Sim } from './simBoot.js';

const app = defineApplication({ name: 'counter', machine: counterMachine, snapshotEvery: 1_000_000 });
const SHARDS = 6;
const SESSIONS = 12;
const HEALTH_CHECK = 3_000;
const JOURNAL_CALLS = new Set(['append', 'last sequence', 'last entry', 'read', 'consumer create', 'purge']);

function newest(sim: Sim): View {
  const views = sim.cluster.workers.filter((w) => w.worker?.view).map((w) => w.worker!.view!);
  return views.reduce((a, b) => (b.viewId > a.viewId ? b : a));
}

async function cluster(failureCondition: FailureCondition) {
  const sim = bootSim({
    application: app,
    shardCount: SHARDS,
    heartbeatInterval: 200,
    sessionTimeout: 1_000,
    worker: { failureCondition, healthCheckTimeout: HEALTH_CHECK },
    connection: { troubledInterval: 60_000, attemptTimeout: 500 },
  });
  for (let i = 0; i < 3; i++) await sim.spawn(i);
  await sim.until(sim.balanced([0, 1, 2]), 'the first placement done');
  const client: Client = await sim.connect(0);
  // The victim: a worker serving shards that does not lead (a leader's view writes are not what is tested).
  const leader = newest(sim).leader;
  const slot = [0, 1, 2].find(
    (i) => sim.worker(i).view!.members.some((m) => m.id === sim.worker(i).id) && sim.worker(i).id !== leader,
  )!;
  const victim = sim.cluster.workers[slot]!;
  const victimId = sim.worker(slot).id;
  const ids = Array.from({ length: SESSIONS }, (_, k) => `acct-${k}`);
  const onVictim = sim.idOn(sim.worker(slot).serving, 'hot');
  for (const id of [...ids, onVictim]) await sim.run(client.session('counter', id).send({ type: 'ADD', by: 1 }));
  let broken = true;
  sim.cluster.network.script = (hop, from) =>
    broken && hop.kind === 'request' && from === victim.process.name && JOURNAL_CALLS.has(hop.subject) ? [] : undefined;
  return { sim, client, victimId, onVictim, ids, heal: () => (broken = false) };
}

describe('a worker whose journal does not answer (virtual time)', () => {
  it(
    'failure condition 3: it steps down, the others serve its sessions, it rejoins once its journal answers; the history checks',
    { timeout: 120_000 },
    async () => {
      const { sim, client, victimId, onVictim, ids, heal } = await cluster(3);
      const broke = sim.now();
      // A send on its shard fails at first (its appends go unanswered); the client keeps trying it.
      const sending = client.session('counter', onVictim).send({ type: 'ADD', by: 10 });
      await sim.until(
        () => !newest(sim).members.some((m) => m.id === victimId),
        'the unhealthy worker out of the view',
        30_000,
      );
      const out = sim.now() - broke;
      // Appends time out after 5 s, one at a time in the session's mailbox: the second failure (10 s) finds the
      // first a health-check timeout old. Its release then waits behind the commands queued in that mailbox,
      // up to the leave bound (10 s), before it goes silent and is let go.
      expect(out).toBeGreaterThanOrEqual(10_000);
      expect(out).toBeLessThan(10_000 + 10_000 + 2_000);
      const view = newest(sim);
      expect(view.shards.every((s) => s.primary !== victimId && s.state === 'ACTIVE')).toBe(true);
      // Every session is served by the others while the victim's journal is still cut off.
      const reply = await sim.run(sending, 20_000);
      expect(reply.seq).toBeGreaterThan(1);
      for (const id of ids) await sim.run(client.session('counter', id).send({ type: 'ADD', by: 1 }), 10_000);
      // Still cut off, it stays out.
      await sim.pass(3 * HEALTH_CHECK);
      expect(newest(sim).members.some((m) => m.id.startsWith(victimId))).toBe(false);
      heal();
      await sim.until(
        () => newest(sim).members.some((m) => m.id.startsWith(`${victimId}~`)),
        'the victim back as a new member',
        30_000,
      );
      await sim.until(sim.balanced([0, 1, 2]), 'balanced again', 30_000);
      for (const id of ids) await sim.run(client.session('counter', id).send({ type: 'ADD', by: 1 }), 10_000);
      expect(await sim.check()).toEqual([]);
    },
  );

  it(
    'control, failure condition 1: it keeps its shards, and its sessions stay unserved while its journal is cut off',
    { timeout: 120_000 },
    async () => {
      const { sim, client, victimId, onVictim, heal } = await cluster(1);
      const outcome = { settled: false };
      const sending = client
        .session('counter', onVictim)
        .send({ type: 'ADD', by: 10 })
        .finally(() => (outcome.settled = true));
      await sim.pass(5_000 + HEALTH_CHECK + 6_000);
      expect(newest(sim).members.some((m) => m.id === victimId)).toBe(true);
      expect(outcome.settled).toBe(false);
      heal();
      const reply = await sim.run(sending, 30_000);
      expect(reply.seq).toBe(2);
      expect(await sim.check()).toEqual([]);
    },
  );
});
