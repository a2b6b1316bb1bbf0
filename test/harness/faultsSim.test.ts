/**
 * The fault scenarios of test/scenarios/faults.test.ts on virtual time: a
 * simulated cluster under a steady load of recorded clients, one fault
 * injected by hand, then the history checked against the journals with the
 * machine as the model (harness/checker). The real-process versions stay in
 * test/scenarios/faults.test.ts for the process boundary (signals, sockets).
 */
import { describe, expect, it } from 'vitest';
import { defineApplication, shardOf, type View } from '../../index.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim, type Sim } from './simBoot.js';
import { isSettled } from '../../harness/testCluster.js';

const app = defineApplication({ name: 'counter', machine: counterMachine });
const SHARDS = 12;
const HEARTBEAT = 200;
const TIMEOUT = 1_000;
const SESSIONS = 24;
const CLIENTS = 3;

interface Loaded {
  readonly sim: Sim;
  /** Commands acknowledged and failed so far. */
  readonly count: { ok: number; failed: number };
  /** The newest view of the first running worker. */
  view(): View;
  progress(n: number): Promise<void>;
  finish(): Promise<void>;
}

async function begin(workers: number): Promise<Loaded> {
  const sim = bootSim({ application: app, shardCount: SHARDS, heartbeatInterval: HEARTBEAT, sessionTimeout: TIMEOUT });
  for (let i = 0; i < workers; i++) await sim.spawn(i);
  const view = (): View => {
    const views = sim.cluster.workers
      .filter((w) => w.process.state === 'running' && w.worker?.view)
      .map((w) => w.worker!.view!);
    return views.reduce((a, b) => (b.viewId > a.viewId ? b : a));
  };
  await sim.until(() => isSettled(view()), 'the first placement done');
  const clients = [];
  for (let i = 0; i < CLIENTS; i++) clients.push(await sim.connect(i));
  const count = { ok: 0, failed: 0 };
  let stop = false;
  const lanes = clients.flatMap((client, c) =>
    [0, 1, 2, 3].map(async (lane) => {
      for (let k = 0; !stop; k++) {
        const session = client.session('counter', `t${(c * 4 + lane + k) % SESSIONS}`);
        await session.send({ type: 'ADD', by: 1 }).then(
          () => count.ok++,
          () => count.failed++,
        );
        await sim.sleep(5);
      }
    }),
  );
  const progress = async (n: number): Promise<void> => {
    const target = count.ok + n;
    await sim.until(() => count.ok >= target, `${n} more acknowledged`);
  };
  await progress(100);
  const finish = async (): Promise<void> => {
    stop = true;
    await sim.run(Promise.all(lanes));
    await sim.until(() => isSettled(view()), 'every shard ACTIVE with a secondary');
    expect(await sim.check()).toEqual([]);
    expect(count.ok).toBeGreaterThanOrEqual(300);
  };
  return { sim, count, view, progress, finish };
}

const busyShard = shardOf('counter', 't0', SHARDS);
const slotOf = (sim: Sim, member: string): number =>
  sim.cluster.workers.findIndex((w) => w.worker !== undefined && w.worker.id === member.split('~')[0]);
const gone = (run: Loaded, id: string) => (): boolean =>
  isSettled(run.view()) && !run.view().members.some((m) => m.id === id);

describe('fault scenarios on virtual time, history checked', () => {
  it('kill -9 of the primary of a busy shard: its shards fail over, nothing acknowledged is lost or doubled', async () => {
    const run = await begin(3);
    const victim = run.view().shards[busyShard]!.primary!;
    const epoch = run.view().shards[busyShard]!.epoch;
    run.sim.cluster.workers[slotOf(run.sim, victim)]!.process.kill();
    await run.sim.until(gone(run, victim), `${victim} gone`);
    const after = run.view();
    expect(after.shards[busyShard]!.epoch).toBeGreaterThan(epoch);
    await run.progress(200);
    const ack = run.sim.recorder.operations.filter((op) => op.session === 't0' && op.outcome === 'ok').at(-1);
    expect(ack).toMatchObject({ by: after.shards[busyShard]!.primary, epoch: after.shards[busyShard]!.epoch });
    await run.finish();
    expect(run.count.failed).toBe(0);
  });

  it('a graceful stop hands off: no client sees an error', async () => {
    const run = await begin(3);
    const member = run.view().members.find((m) => m.id !== run.view().leader)!.id;
    await run.sim.run(run.sim.cluster.workers[slotOf(run.sim, member)]!.worker!.stop());
    await run.sim.until(gone(run, member), `${member} gone`);
    await run.progress(200);
    await run.finish();
    expect(run.count.failed).toBe(0);
  });

  it('a worker added under load takes its share of the shards; nothing lost, no errors', async () => {
    const run = await begin(2);
    const added = await run.sim.spawn(2);
    await run.sim.until(
      () =>
        isSettled(run.view()) &&
        run.view().shards.filter((s) => s.primary === added.id).length >= Math.floor(SHARDS / 3),
      `${added.id} primary of a third of the shards`,
    );
    expect(run.view().members.map((m) => m.id)).toContain(added.id);
    await run.progress(200);
    await run.finish();
    expect(run.count.failed).toBe(0);
  });

  it('SIGSTOP of a primary past the session timeout, then SIGCONT: it rejoins as a new member, history clean', async () => {
    const run = await begin(3);
    const victim = run.view().shards[busyShard]!.primary!;
    const slot = slotOf(run.sim, victim);
    const process = run.sim.cluster.workers[slot]!.process;
    process.pause();
    await run.sim.until(gone(run, victim), `${victim} dropped`);
    expect(run.sim.now() - run.sim.lastHeartbeat(slot)).toBeGreaterThanOrEqual(TIMEOUT);
    await run.progress(100);
    process.resume();
    await run.sim.until(
      () => isSettled(run.view()) && run.view().members.some((m) => m.id === `${victim}~2`),
      `${victim} back as ${victim}~2`,
    );
    await run.progress(200);
    await run.finish();
  });

  it('a flapping worker: a short stall is no failure; long ones drop it, and it comes back each time', async () => {
    const run = await begin(3);
    const flapper = run.view().members.find((m) => m.id !== run.view().leader)!.id;
    const process = run.sim.cluster.workers[slotOf(run.sim, flapper)]!.process;
    const viewBefore = run.view().viewId;
    process.pause();
    await run.sim.pass(TIMEOUT / 3);
    process.resume();
    await run.progress(100);
    expect(run.view().viewId).toBe(viewBefore);
    for (const incarnation of [2, 3]) {
      process.pause();
      await run.sim.until(gone(run, incarnation === 2 ? flapper : `${flapper}~${incarnation - 1}`), 'dropped');
      process.resume();
      await run.sim.until(
        () => isSettled(run.view()) && run.view().members.some((m) => m.id === `${flapper}~${incarnation}`),
        `back as ~${incarnation}`,
      );
      await run.progress(100);
    }
    await run.finish();
  });
});
