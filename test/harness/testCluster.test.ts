/**
 * The test cluster: `cohort worker` processes on a real nats-server, each
 * behind its own TCP proxy. Real processes and wall-clock time, since the
 * process boundary is what is tested; every wait is for a condition (a view,
 * an acknowledgement), with deadlines generous enough for a loaded machine.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Client, type SendResult, shardOf, type View } from '../../index.js';
import {
  hasWorker,
  isSettled,
  shardsOf,
  startTestCluster,
  type TestCluster,
  type TestClusterOptions,
  workerOfMember,
} from '../../harness/testCluster.js';
import { waitFor } from '../waitFor.js';

const TALLY = new URL('../fixtures/tally.ts', import.meta.url);
const TIMING = { heartbeatInterval: 150, sessionTimeout: 1_000 };
const TEST = { timeout: 90_000 };

const clusters: TestCluster[] = [];
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

async function start(options: Partial<TestClusterOptions> = {}): Promise<TestCluster> {
  const cluster = await startTestCluster({ applications: [TALLY], ...TIMING, ...options });
  clusters.push(cluster);
  return cluster;
}

/** Session ids whose shards worker `id` is primary of in `view`, `count` of them. */
function sessionsOn(view: View, id: string, count: number): string[] {
  const shards = new Set(shardsOf(view, id));
  const found: string[] = [];
  for (let i = 0; found.length < count; i++) if (shards.has(shardOf('tally', `s${i}`))) found.push(`s${i}`);
  return found;
}

let tokens = 0;
function add(client: Client, session: string): Promise<SendResult> {
  return client.session('tally', session).send({ type: 'ADD', token: `k${++tokens}` });
}

async function tokensOf(client: Client, session: string): Promise<string[]> {
  return ((await client.session('tally', session).read()).document as { tokens: string[] }).tokens;
}

const without = (id: string) => (v: View) => isSettled(v) && !hasWorker(v, id);

describe('a test cluster on an embedded nats-server', () => {
  it('starts settled; kill: the others take the shards over; stop: a clean exit; addWorker joins', TEST, async () => {
    const cluster = await start({ workers: 3 });
    expect(cluster.workers.map((w) => [w.id, w.zone, w.state])).toEqual([
      ['w1', 'a', 'running'],
      ['w2', 'b', 'running'],
      ['w3', 'c', 'running'],
    ]);
    const first = cluster.views.latest!;
    expect(isSettled(first)).toBe(true);
    expect(first.members.map((m) => m.id).sort()).toEqual(['w1', 'w2', 'w3']);
    expect(cluster.workers.every((w) => w.proxies.length === 1 && w.proxies[0]!.stats().open >= 1)).toBe(true);

    const client = await cluster.client();
    const victim = 'w2';
    const sessions = sessionsOn(first, victim, 4);
    for (const s of sessions) expect((await add(client, s)).by).toBe(victim);

    expect(await cluster.kill(victim)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(cluster.worker(victim).state).toBe('exited');
    const after = await cluster.waitForView(without(victim), { what: `${victim} gone` });
    expect(shardsOf(after, victim)).toEqual([]);
    for (const s of sessions) {
      const ack = await add(client, s);
      expect(workerOfMember(ack.by)).not.toBe(victim);
      expect(await tokensOf(client, s)).toHaveLength(2);
    }

    const leaver = cluster.memberOf('w3')!;
    expect(await cluster.stop('w3')).toEqual({ code: 0, signal: null });
    await cluster.waitForView(without('w3'), { what: `${leaver} gone` });

    const added = await cluster.addWorker();
    expect([added.id, added.zone]).toEqual(['w4', 'd']);
    const joined = await cluster.waitForView(
      (v) => isSettled(v) && hasWorker(v, 'w4') && shardsOf(v, 'w4').length > 0,
      {
        what: 'w4 primary of some shards',
      },
    );
    expect(joined.members.map((m) => workerOfMember(m.id)).sort()).toEqual(['w1', 'w4']);
    for (const s of sessions) await add(client, s);
  });

  it(
    'partition: dropped after the session timeout, its shards served by the others; heal: it rejoins',
    TEST,
    async () => {
      const cluster = await start({ workers: 2 });
      const client = await cluster.client();
      const victim = 'w1';
      const sessions = sessionsOn(cluster.views.latest!, victim, 3);
      for (const s of sessions) expect((await add(client, s)).by).toBe(victim);

      const cutOff = performance.now();
      cluster.partition(victim);
      expect(cluster.worker(victim).proxies[0]!.partitioned).toEqual(['client-to-server', 'server-to-client']);
      const dropped = await cluster.waitForView(without(victim), { what: `${victim} dropped` });
      // Dropped for its silence, not at the cut: a session timeout counted from the last heartbeat heard,
      // which went through shortly before the cut (a heartbeat interval, or more on a worker slowed down).
      expect(performance.now() - cutOff).toBeGreaterThanOrEqual(TIMING.sessionTimeout / 2);
      expect(shardsOf(dropped, victim)).toEqual([]);
      expect(cluster.worker(victim).state).toBe('running');
      for (const s of sessions) expect(workerOfMember((await add(client, s)).by)).toBe('w2');

      cluster.heal(victim);
      const back = await cluster.waitForView((v) => isSettled(v) && v.members.some((m) => m.id === `${victim}~2`), {
        what: `${victim} back as ${victim}~2`,
      });
      expect(cluster.memberOf(victim)).toBe(`${victim}~2`);
      expect(back.members).toHaveLength(2);
      for (const s of sessions) {
        await add(client, s);
        // The partitioned worker acknowledged nothing it could not keep: each token is there once.
        expect(await tokensOf(client, s)).toHaveLength(3);
      }
    },
  );

  it(
    'pause past the session timeout: dropped, and back once resumed; pause(id, ms) resumes by itself',
    TEST,
    async () => {
      const cluster = await start({ workers: 2 });
      const client = await cluster.client();
      const victim = 'w2';
      const sessions = sessionsOn(cluster.views.latest!, victim, 2);
      for (const s of sessions) await add(client, s);

      const paused = cluster.pause(victim);
      expect(cluster.worker(victim).state).toBe('paused');
      await cluster.waitForView(without(victim), { what: `${victim} dropped while frozen` });
      for (const s of sessions) expect(workerOfMember((await add(client, s)).by)).toBe('w1');
      cluster.resume(victim);
      await paused;
      expect(cluster.worker(victim).state).toBe('running');
      await cluster.waitForView((v) => isSettled(v) && cluster.memberOf(victim) === `${victim}~2`, {
        what: `${victim} back as ${victim}~2`,
      });

      // A short stall, well inside the session timeout: frozen, then running again on its own, still w1
      // (a worker dropped and back would be w1~2).
      const stall = cluster.pause('w1', 100);
      expect(cluster.worker('w1').state).toBe('paused');
      await stall;
      expect(cluster.worker('w1').state).toBe('running');
      for (const s of sessions) await add(client, s);
      expect(cluster.memberOf('w1')).toBe('w1');
      for (const s of sessions) expect(await tokensOf(client, s)).toHaveLength(3);
    },
  );

  it('restartNats: the workers reconnect through their proxies and service resumes', TEST, async () => {
    const cluster = await start({ workers: 2 });
    const client = await cluster.client();
    const sessions = ['r1', 'r2', 'r3', 'r4'];
    for (const s of sessions) await add(client, s);
    const accepted = cluster.workers.map((w) => w.proxies[0]!.stats().accepted);

    await cluster.restartNats();
    for (const s of sessions) await add(client, s);
    for (const s of sessions) expect(await tokensOf(client, s)).toHaveLength(2);
    // Each worker came back on a new connection, through its proxy.
    cluster.workers.forEach((w, i) => expect(w.proxies[0]!.stats().accepted).toBeGreaterThan(accepted[i]!));
    // Both serve again (as themselves, or rejoined as w1~2 if the restart outlasted a session timeout).
    await cluster.waitForView((v) => isSettled(v) && hasWorker(v, 'w1') && hasWorker(v, 'w2'), {
      what: 'both workers in a settled view',
    });
  });

  it('network faults reach only the named worker: delay, one way, cut', TEST, async () => {
    const cluster = await start({ workers: 2 });
    const client = await cluster.client();
    const view = cluster.views.latest!;
    const [slow] = sessionsOn(view, 'w1', 1);
    const [fast] = sessionsOn(view, 'w2', 1);
    await add(client, slow!);

    cluster.delay('w1', 100);
    const started = performance.now();
    await add(client, slow!);
    // A send crosses w1's proxy at least twice (request in, reply out; the journal append both ways as well).
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    expect(cluster.worker('w2').proxies[0]!.delays).toEqual({ 'client-to-server': 0, 'server-to-client': 0 });
    cluster.heal('w1');

    // What a cluster does with a half-deaf worker is issue 14's; here only that it reaches w1's proxy alone.
    cluster.oneWay('w1', 'client-to-server');
    expect(cluster.worker('w1').proxies[0]!.partitioned).toEqual(['server-to-client']);
    expect(cluster.worker('w2').proxies[0]!.partitioned).toEqual([]);
    cluster.heal('w1');
    expect(cluster.worker('w1').proxies[0]!.partitioned).toEqual([]);

    const accepted = cluster.worker('w2').proxies[0]!.stats().accepted;
    expect(cluster.cut('w2')).toBeGreaterThanOrEqual(1);
    await waitFor(() => cluster.worker('w2').proxies[0]!.stats().accepted > accepted, {
      timeoutMs: 10_000,
      what: 'w2 reconnected',
    });
    expect((await add(client, fast!)).by).toBe('w2');
    expect(await tokensOf(client, slow!)).toHaveLength(2);
  });

  it('takes applications by relative module path, and refuses what it cannot run', TEST, async () => {
    const cluster = await start({ workers: 1, applications: ['./examples/ledger.ts'] });
    const client = await cluster.client();
    const account = client.session('ledger', 'acct-1');
    await account.send({ type: 'OPEN', owner: 'ada' });
    await account.send({ type: 'DEPOSIT', amount: 1250 });
    expect((await account.read()).document).toMatchObject({ balance: 1250 });
    expect(() => cluster.worker('w9')).toThrow(RangeError);
    await expect(cluster.restartNatsNode(0)).rejects.toThrow(TypeError);
    await expect(startTestCluster({ applications: ['./no/such/module.ts'], workers: 1 })).rejects.toThrow(
      /w1 exited before serving/,
    );
  });
});

describe('a test cluster on a 3-node NATS cluster', () => {
  it('killNatsNode: a worker on that node reconnects through another proxy, and service goes on', TEST, async () => {
    const cluster = await start({ workers: 2, nats: 'cluster3' });
    expect(cluster.urls).toHaveLength(3);
    expect(cluster.workers.every((w) => w.proxies.length === 3)).toBe(true);
    const client = await cluster.client();
    const sessions = ['n1', 'n2', 'n3', 'n4'];
    for (const s of sessions) await add(client, s);

    // The node w1 is connected to (through its proxy for that node).
    const proxies = cluster.worker('w1').proxies;
    const node = proxies.findIndex((p) => p.stats().open > 0);
    expect(node).toBeGreaterThanOrEqual(0);
    await cluster.killNatsNode(node);
    // It does not go around its proxies to a node's own address (--no_advertise): it takes another proxy.
    await waitFor(() => proxies.some((p, i) => i !== node && p.stats().open > 0), {
      timeoutMs: 20_000,
      what: 'w1 on another node',
    });
    for (const s of sessions) await add(client, s);
    await cluster.restartNatsNode(node);
    for (const s of sessions) expect(await tokensOf(client, s)).toHaveLength(2);
    await cluster.waitForView((v) => isSettled(v) && hasWorker(v, 'w1') && hasWorker(v, 'w2'), {
      what: 'both workers in a settled view',
    });
  });
});
