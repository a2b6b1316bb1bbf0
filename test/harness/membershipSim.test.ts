/**
 * Membership on virtual time: the logic of joining, leaving, suspecting,
 * failing over and rejoining, with the session timeout in virtual ms and the
 * views looked at the moment they change. (test/actors/membership.test.ts
 * runs the same behaviours on a real nats-server, for the process boundary.)
 */
import { describe, expect, it } from 'vitest';
import { defineApplication } from '../../index.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim, type Sim } from './simBoot.js';

const app = defineApplication({ name: 'counter', machine: counterMachine });
const SHARDS = 32;
const HEARTBEAT = 100;
const TIMEOUT = 500;

async function cluster(workers: number): Promise<Sim> {
  const sim = bootSim({ application: app, shardCount: SHARDS, heartbeatInterval: HEARTBEAT, sessionTimeout: TIMEOUT });
  for (let i = 0; i < workers; i++) await sim.spawn(i);
  await sim.until(sim.balanced(Array.from({ length: workers }, (_, i) => i)), 'balanced');
  return sim;
}

const ids = (sim: Sim, slot: number) => sim.worker(slot).view!.members.map((m) => m.id);

describe('membership on virtual time', () => {
  it('workers that join one after another share the shards evenly and agree on one leader', async () => {
    const sim = bootSim({
      application: app,
      shardCount: SHARDS,
      heartbeatInterval: HEARTBEAT,
      sessionTimeout: TIMEOUT,
    });
    const a = await sim.spawn(0);
    expect(a.serving).toHaveLength(SHARDS);
    expect(a.view).toMatchObject({ leader: a.id, transitional: false, replicas: 1 });
    const b = await sim.spawn(1);
    const c = await sim.spawn(2);
    await sim.until(sim.balanced([0, 1, 2]), 'three workers balanced');
    for (const w of [a, b, c]) {
      expect(w.view!.leader).toBe(a.id);
      expect(w.view!.members.map((m) => m.id)).toEqual([a.id, b.id, c.id]);
    }
    expect(new Set([a, b, c].map((w) => w.view!.viewId)).size).toBe(1);
    expect(a.serving.length + b.serving.length + c.serving.length).toBe(SHARDS);
  });

  it('commands keep committing while workers join and leave; none is lost or doubled', async () => {
    const sim = await cluster(1);
    const client = await sim.connect(0);
    const accounts = Array.from({ length: 20 }, (_, i) => `acct-${i}`);
    let sent = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await Promise.all(
          accounts.map((id) => client.session('counter', id).send({ type: 'ADD', by: 1 }, { timeout: 10_000 })),
        );
        sent++;
        await sim.sleep(10);
      }
    })();
    await sim.spawn(1);
    await sim.until(sim.balanced([0, 1]), 'two workers balanced');
    const joined = sent;
    await sim.run(sim.worker(1).stop());
    await sim.until(() => sim.worker(0).serving.length === SHARDS && ids(sim, 0).length === 1, 'a alone again');
    await sim.until(() => sent > joined + 2, 'commands after the leave');
    stop = true;
    await sim.run(load);
    expect(sent).toBeGreaterThan(joined);
    for (const id of accounts)
      expect((await sim.run(client.session('counter', id).read())).document).toMatchObject({ n: sent });
    expect(await sim.check()).toEqual([]);
  });

  it('a graceful stop hands the shards off well inside a session timeout, with no transitional view', async () => {
    const sim = await cluster(2);
    const a = sim.worker(0);
    const from = sim.seen.length;
    const t0 = sim.now();
    await sim.run(sim.worker(1).stop());
    // A planned hand-off, not a failure: nobody waited for a session timeout.
    expect(sim.now() - t0).toBeLessThan(TIMEOUT);
    await sim.until(() => a.serving.length === SHARDS, 'a serves every shard');
    expect(sim.now() - t0).toBeLessThan(TIMEOUT);
    expect(a.view!.members.map((m) => m.id)).toEqual([a.id]);
    expect(a.view!.transitional).toBe(false);
    expect(sim.seen.slice(from).filter((s) => s.view.transitional)).toEqual([]);
  });

  it('a worker that dies is suspected a session timeout after its last heartbeat; a transitional view, then failover', async () => {
    const sim = await cluster(2);
    const a = sim.worker(0);
    const client = await sim.connect(0);
    const accounts = Array.from({ length: 30 }, (_, i) => `acct-${i}`);
    await sim.run(Promise.all(accounts.map((id) => client.session('counter', id).send({ type: 'ADD', by: 2 }))));
    const viewBefore = a.view!.viewId;
    const written = await sim.watchViews();
    sim.cluster.workers[1]!.process.kill();
    const killed = sim.now();
    await sim.until(() => a.serving.length === SHARDS && !a.view!.transitional, 'failover to a');
    const beat = sim.lastHeartbeat(1);
    expect(beat).toBeLessThanOrEqual(killed);
    expect(killed - beat).toBeLessThanOrEqual(HEARTBEAT);
    // The first view without b: transitional (survivors only, shards not yet moved), written no earlier than a
    // session timeout after b was last heard, and within a few heartbeats of it.
    const [suspected, ...rest] = written;
    expect(suspected).toBeDefined();
    expect(suspected!.view).toMatchObject({ viewId: viewBefore + 1, transitional: true, members: [{ id: a.id }] });
    expect(suspected!.at - beat).toBeGreaterThanOrEqual(TIMEOUT);
    expect(suspected!.at - beat).toBeLessThan(TIMEOUT + 3 * HEARTBEAT);
    // Then a regular one, every shard on a.
    const after = rest.at(-1)!.view;
    expect(after.transitional).toBe(false);
    expect(after.viewId).toBeGreaterThanOrEqual(viewBefore + 2);
    expect(after.members.map((m) => m.id)).toEqual([a.id]);
    expect(after.shards.every((s) => s.primary === a.id && s.state === 'ACTIVE')).toBe(true);
    expect(a.view!.viewId).toBe(after.viewId);
    for (const id of accounts)
      expect((await sim.run(client.session('counter', id).read())).document).toMatchObject({ n: 2 });
    expect(await sim.run(client.session('counter', accounts[0]!).send({ type: 'ADD', by: 1 }))).toMatchObject({
      by: a.id,
    });
    expect(await sim.check()).toEqual([]);
  });

  it('when the leader dies, the next member in join order takes over', async () => {
    const sim = await cluster(3);
    const [a, b, c] = [sim.worker(0), sim.worker(1), sim.worker(2)];
    expect(b.view!.leader).toBe(a.id);
    sim.cluster.workers[0]!.process.kill();
    await sim.until(sim.balanced([1, 2]), 'b and c balanced');
    expect(b.view!.leader).toBe(b.id);
    expect(c.view!.leader).toBe(b.id);
    expect(b.view!.members.map((m) => m.id)).toEqual([b.id, c.id]);
  });

  it('a pause below the session timeout changes no view; one past it drops the worker, which rejoins as w~2', async () => {
    const sim = await cluster(3);
    const b = sim.worker(1);
    const process = sim.cluster.workers[1]!.process;
    const viewBefore = b.view!.viewId;
    const from = sim.seen.length;
    // The "333 ms SIGSTOP": two thirds of the session timeout.
    process.pause();
    await sim.pass(Math.floor((TIMEOUT * 2) / 3));
    process.resume();
    await sim.pass(4 * TIMEOUT);
    expect(sim.seen.slice(from)).toEqual([]);
    for (const slot of [0, 1, 2]) expect(sim.worker(slot).view!.viewId).toBe(viewBefore);

    // Past the session timeout: dropped, no earlier than a timeout after its last heartbeat.
    process.pause();
    const paused = sim.now();
    const a = sim.worker(0);
    await sim.until(() => !ids(sim, 0).includes(b.id), 'b dropped');
    const beat = sim.lastHeartbeat(1);
    expect(beat).toBeLessThanOrEqual(paused);
    expect(sim.now() - beat).toBeGreaterThanOrEqual(TIMEOUT);
    await sim.until(sim.balanced([0, 2]), 'a and c balanced without b');
    expect(b.view!.viewId).toBe(viewBefore); // asleep: it has heard nothing
    process.resume();
    await sim.until(() => sim.balanced([0, 1, 2])() && ids(sim, 0).includes(`${b.id}~2`), `${b.id} back as ${b.id}~2`);
    expect(a.view!.members.map((m) => m.id)).toEqual([a.id, sim.worker(2).id, `${b.id}~2`]);
  });

  it('a flapping worker: a short stall is no failure; long ones drop it, and it rejoins as w~2, then w~3', async () => {
    const sim = await cluster(3);
    const flapper = sim.worker(2);
    const process = sim.cluster.workers[2]!.process;
    const from = sim.seen.length;
    process.pause();
    await sim.pass(Math.floor(TIMEOUT / 3));
    process.resume();
    await sim.pass(2 * TIMEOUT);
    expect(sim.seen.slice(from)).toEqual([]);
    for (const incarnation of [2, 3]) {
      const current = incarnation === 2 ? flapper.id : `${flapper.id}~${incarnation - 1}`;
      process.pause();
      await sim.until(() => !ids(sim, 0).includes(current), `${current} dropped`);
      expect(sim.now() - sim.lastHeartbeat(2)).toBeGreaterThanOrEqual(TIMEOUT);
      process.resume();
      await sim.until(
        () => sim.balanced([0, 1, 2])() && ids(sim, 0).includes(`${flapper.id}~${incarnation}`),
        `back as ~${incarnation}`,
      );
    }
    expect(ids(sim, 0)).toEqual([sim.worker(0).id, sim.worker(1).id, `${flapper.id}~3`]);
  });
});
