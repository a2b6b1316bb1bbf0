import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  defineApplication,
  FailoverRefusedError,
  shardOf,
  startWorker,
  type Worker,
  type WorkerOptions,
} from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import type { Bus } from '../../bus/types.js';
import { decode, encode } from '../../bus/codec.js';
import { controlSubject, heartbeatSubject } from '../../bus/subjects.js';
import { bucketName, packView, readView, VIEW_KEY } from '../../internal.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const app = defineApplication({ name: 'counter', machine: counterMachine });
const SHARDS = 64;
/** Short membership timings keep failover tests quick; 500 ms is the smallest session timeout allowed. */
const FAST = { heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS } as const;

interface Fixture {
  bus(): Promise<Bus>;
}

/**
 * On a real nats-server only: the process/NATS boundary. The same membership
 * logic (join, leave, suspicion after the session timeout, failover, pauses
 * short and long, flapping) runs on virtual time in test/harness/membershipSim.test.ts.
 */
const fixtures: Record<'nats', () => { setup(): Promise<void>; teardown(): Promise<void>; fixture: Fixture }> = {
  nats: () => {
    let server: NatsServer;
    return {
      setup: async () => {
        server = await startTestServer();
      },
      teardown: async () => {
        await server[Symbol.asyncDispose]();
      },
      fixture: { bus: () => createNatsBus({ servers: server.url }) },
    };
  },
};

/** Every shard served by exactly one worker. */
function coverage(workers: readonly Worker[]): { served: number; doubled: number } {
  const seen = new Map<number, number>();
  for (const w of workers) for (const s of w.serving) seen.set(s, (seen.get(s) ?? 0) + 1);
  return { served: seen.size, doubled: [...seen.values()].filter((n) => n > 1).length };
}

describe.each(['nats'] as const)('membership (%s)', (kind) => {
  const { setup, teardown, fixture } = fixtures[kind]();
  beforeAll(setup);
  afterAll(teardown);
  const track = cleanupAfterEach();

  async function worker(cluster: string, options: Partial<WorkerOptions> = {}): Promise<{ worker: Worker; bus: Bus }> {
    const bus = track(await fixture.bus());
    const w = track(await startWorker({ bus, cluster, applications: [app], ...FAST, ...options }));
    return { worker: w, bus };
  }

  const balanced = (ws: readonly Worker[]) => () => {
    const { served, doubled } = coverage(ws);
    const counts = ws.map((w) => w.serving.length);
    return (
      served === SHARDS &&
      doubled === 0 &&
      Math.max(...counts) - Math.min(...counts) <= 1 &&
      ws.every((w) => w.view?.members.length === ws.length)
    );
  };

  it('workers that join one after another share the shards evenly and agree on one leader', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster, { zone: 'a' })).worker;
    expect(a.serving).toHaveLength(SHARDS);
    expect(a.view).toMatchObject({ leader: a.id, transitional: false, replicas: 1 });
    const b = (await worker(cluster, { zone: 'b' })).worker;
    const c = (await worker(cluster, { zone: 'c' })).worker;
    await waitFor(balanced([a, b, c]), { what: 'three workers balanced', timeoutMs: 10_000 });
    for (const w of [a, b, c]) {
      expect(w.view!.leader).toBe(a.id);
      expect(w.view!.members.map((m) => m.id)).toEqual([a.id, b.id, c.id]);
    }
    // The same view everywhere, once each has installed the last one (a worker whose shards the last view
    // left alone may still hold the one before when the others are balanced).
    await waitFor(() => new Set([a, b, c].map((w) => w.view!.viewId)).size === 1, { what: 'one view everywhere' });
    expect(new Set([a, b, c].map((w) => JSON.stringify(w.view))).size).toBe(1);
  });

  it('commands keep committing while workers join and leave; none is lost or doubled', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const client = track(await connect({ bus: await fixture.bus(), cluster, shardCount: SHARDS }));
    const ids = Array.from({ length: 40 }, (_, i) => `acct-${i}`);
    let sent = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await Promise.all(
          ids.map((id) => client.session('counter', id).send({ type: 'ADD', by: 1 }, { timeout: 10_000 })),
        );
        sent++;
      }
    })();
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a, b]), { what: 'two workers balanced', timeoutMs: 10_000 });
    await b.stop();
    await waitFor(() => a.serving.length === SHARDS && a.view?.members.length === 1, {
      what: 'a alone again',
      timeoutMs: 10_000,
    });
    stop = true;
    await load;
    expect(sent).toBeGreaterThan(0);
    for (const id of ids) {
      const { document } = await client.session('counter', id).read();
      expect(document).toMatchObject({ n: sent });
    }
  });

  it('a graceful stop hands the shards off and leaves the view', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a, b]), { what: 'balanced', timeoutMs: 10_000 });
    const t0 = Date.now();
    await b.stop();
    // A planned hand-off, not a failure: well inside one session timeout per round of moves.
    expect(Date.now() - t0).toBeLessThan(FAST.sessionTimeout * 8);
    await waitFor(() => a.serving.length === SHARDS, { what: 'a serves every shard' });
    expect(a.view!.members.map((m) => m.id)).toEqual([a.id]);
    expect(a.view!.transitional).toBe(false);
  });

  it('a worker that dies is suspected after the session timeout; a transitional view, then its shards fail over', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const b = await worker(cluster);
    await waitFor(balanced([a, b.worker]), { what: 'balanced', timeoutMs: 10_000 });
    const client = track(await connect({ bus: await fixture.bus(), cluster, shardCount: SHARDS }));
    const ids = Array.from({ length: 30 }, (_, i) => `acct-${i}`);
    for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 2 });
    const viewBefore = a.view!.viewId;
    const died = Date.now();
    await b.bus.close(); // b can no longer speak: to the others it is dead
    await waitFor(() => a.serving.length === SHARDS, { what: 'failover to a', timeoutMs: 10_000 });
    expect(Date.now() - died).toBeGreaterThanOrEqual(FAST.sessionTimeout - FAST.heartbeatInterval);
    expect(a.view!.members.map((m) => m.id)).toEqual([a.id]);
    expect(a.view!.viewId).toBeGreaterThanOrEqual(viewBefore + 2); // transitional, then regular
    // Nothing acknowledged is lost: every session reads back from the journal on its new primary.
    for (const id of ids) expect((await client.session('counter', id).read()).document).toMatchObject({ n: 2 });
    await client.session('counter', ids[0]!).send({ type: 'ADD', by: 1 });
    expect((await client.session('counter', ids[0]!).read()).document).toMatchObject({ n: 3 });
  });

  it('when the leader dies, the next member in join order takes over', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = await worker(cluster);
    const b = (await worker(cluster)).worker;
    const c = (await worker(cluster)).worker;
    await waitFor(balanced([a.worker, b, c]), { what: 'balanced', timeoutMs: 10_000 });
    await a.bus.close();
    await waitFor(balanced([b, c]), { what: 'b and c balanced', timeoutMs: 10_000 });
    expect(b.view!.leader).toBe(b.id);
    expect(c.view!.leader).toBe(b.id);
  });

  it('a planned failover swaps a shard to another worker under load: clients see retries, never errors; balance kept', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a, b]), { what: 'balanced', timeoutMs: 10_000 });
    const shard = a.serving[0]!;
    const before = a.view!.shards[shard]!;
    const client = track(await connect({ bus: await fixture.bus(), cluster, shardCount: SHARDS }));
    const ids = Array.from({ length: 400 }, (_, i) => `acct-${i}`).filter(
      (id) => shardOf('counter', id, SHARDS) === shard,
    );
    expect(ids.length).toBeGreaterThan(0);
    let rounds = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        await Promise.all(ids.map((id) => client.session('counter', id).send({ type: 'ADD', by: 1 })));
        rounds++;
      }
    })();
    const view = await a.failover(shard, b.id);
    expect(view.shards[shard]).toMatchObject({ primary: b.id, state: 'ACTIVE', epoch: before.epoch + 1 });
    expect(view.possibleDataLoss).toEqual([]);
    await waitFor(() => b.serving.includes(shard) && !a.serving.includes(shard), { what: 'b serving the shard' });
    await waitFor(balanced([a, b]), { what: 'still balanced', timeoutMs: 10_000 });
    const after = rounds;
    await waitFor(() => rounds > after + 1, { what: 'commands on the new primary' });
    stop = true;
    await load;
    for (const id of ids) expect((await client.session('counter', id).read()).document).toMatchObject({ n: rounds });
    // It stays where the operator put it: placement does not undo a balanced swap.
    expect(b.view!.shards[shard]!.primary).toBe(b.id);
  });

  it('a forced failover promotes at once, bumps the epoch and records possible data loss; bad requests are refused', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a, b]), { what: 'balanced', timeoutMs: 10_000 });
    const shard = b.serving[0]!;
    const epoch = a.view!.shards[shard]!.epoch;
    const view = await b.failover(shard, a.id, { force: true });
    expect(view.shards[shard]).toMatchObject({ primary: a.id, state: 'ACTIVE', epoch: epoch + 1 });
    expect(view.possibleDataLoss).toContain(shard);
    await expect(a.failover(shard, 'nobody')).rejects.toBeInstanceOf(FailoverRefusedError);
    await expect(a.failover(shard, 'nobody')).rejects.toThrow(/nobody is not a live member/);
    await expect(a.failover(SHARDS + 5, b.id)).rejects.toThrow(/no shard/);
    await expect(a.failover(shard, a.id)).rejects.toThrow(/already the primary/);
    const raw = track(await fixture.bus());
    const reply = decode(
      (await raw.request(controlSubject(cluster, 'failover'), encode({ shard: 'x' }), { timeout: 2_000 })).data,
    );
    expect(reply).toMatchObject({ ok: false, reason: expect.stringMatching(/malformed/) });
    // The new primary takes the shard up a moment after the view, and a move that rebalances it may follow:
    // every shard is served exactly once again once that is over, not at any instant before.
    await waitFor(balanced([a, b]), { what: 'balanced after the forced failover', timeoutMs: 10_000 });
    expect(a.serving.length + b.serving.length).toBe(SHARDS);
  });

  it('junk, an older view or a delete at the view key: the leader writes the view back and failover still happens', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster)).worker;
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a, b]), { what: 'two workers balanced', timeoutMs: 10_000 });
    const raw = track(await fixture.bus());
    const kv = await raw.kv({ bucket: bucketName(cluster, 'cluster') });
    const before = (await readView(kv))!.view;
    for (const spoil of [
      () => kv.put(VIEW_KEY, new Uint8Array([0xc1, 0x00])),
      () => kv.put(VIEW_KEY, encode(packView({ ...before, viewId: 1 }))),
      () => kv.delete(VIEW_KEY),
    ]) {
      await spoil();
      // Repaired: the key reads back as the newest view the leader knows.
      await waitFor(async () => ((await readView(kv).catch(() => null))?.view.viewId ?? 0) >= before.viewId, {
        what: 'the view key repaired',
        timeoutMs: 10_000,
      });
    }
    // Positive control, and the point: the views go on. b leaves; a takes every shard.
    await b.stop();
    await waitFor(() => a.serving.length === SHARDS && a.view!.members.length === 1, {
      what: 'b gone, a serving all',
      timeoutMs: 10_000,
    });
    expect((await readView(kv))!.view.viewId).toBeGreaterThan(before.viewId);
  });

  it('a lone fresh worker finding junk at the view key starts above the cluster’s history, not at view 1', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = await worker(cluster);
    const b = (await worker(cluster)).worker;
    await waitFor(balanced([a.worker, b]), { what: 'two workers balanced', timeoutMs: 10_000 });
    await b.stop(); // hand-offs back to a: epochs move on
    await waitFor(() => a.worker.serving.length === SHARDS, { what: 'a serving all', timeoutMs: 10_000 });
    const raw = track(await fixture.bus());
    const kv = await raw.kv({ bucket: bucketName(cluster, 'cluster') });
    const before = (await readView(kv))!.view;
    const highestEpoch = Math.max(...before.shards.map((s) => s.epoch));
    expect(before.viewId).toBeGreaterThan(1);
    // The whole cluster dies, and someone writes junk over its view.
    await a.bus.close();
    const junk = await kv.put(VIEW_KEY, new Uint8Array([0xc1, 0x00]));
    const c = (await worker(cluster)).worker;
    // Its first view is numbered above anything the key held; so is every epoch.
    expect(c.view).toMatchObject({ viewId: junk + 1, leader: c.id, members: [{ id: c.id }] });
    expect(c.view!.viewId).toBeGreaterThan(before.viewId);
    expect(Math.min(...c.view!.shards.map((s) => s.epoch))).toBeGreaterThan(highestEpoch);
    expect((await readView(kv))!.view.viewId).toBe(junk + 1);
    // Positive control: it serves, and acknowledges at its new epoch.
    const client = track(await connect({ bus: await fixture.bus(), cluster, shardCount: SHARDS }));
    const sent = await client.session('counter', 'after-junk').send({ type: 'ADD', by: 1 });
    expect(sent).toMatchObject({ seq: 1, by: c.id });
    expect(sent.epoch).toBeGreaterThan(highestEpoch);
  });

  it('ignores garbage and malformed heartbeats and keeps its view; ids with dots are escaped', async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster, { id: 'host.a' })).worker;
    const rogue = track(await fixture.bus());
    rogue.publish(heartbeatSubject(cluster, 'rogue'), new Uint8Array([0xc1, 0xff, 0x00]));
    rogue.publish(heartbeatSubject(cluster, 'rogue'), encode({ id: 'rogue', status: 'joining' })); // fields missing
    rogue.publish(
      heartbeatSubject(cluster, 'rogue'),
      encode({ id: 'rogue', zone: 'z', promotable: true, status: 'boss', viewId: 1, serving: [], startedAt: 0 }),
    );
    await rogue.flush();
    // A well-formed heartbeat for a member that does not exist, on another member's subject: forged, never admitted.
    const ghost = (id: string) =>
      encode({ id, zone: 'z', promotable: false, status: 'joining', viewId: 0, serving: [], startedAt: 1 });
    const forging = setInterval(() => rogue.publish(heartbeatSubject(cluster, 'rogue'), ghost('ghost')), 20);
    const b = (await worker(cluster, { id: 'host.b' })).worker;
    await waitFor(balanced([a, b]), { what: 'balanced despite the garbage', timeoutMs: 10_000 });
    clearInterval(forging);
    expect(a.view!.members.map((m) => m.id)).toEqual(['host.a', 'host.b']);
    // Forged echoes of a's own heartbeats, with beat numbers that are no number, never sent, or absurd: they prove nothing.
    for (const beat of ['x', '', '-1', '1e309', '99999999', '0x10']) {
      rogue.publish(heartbeatSubject(cluster, 'host.a'), new Uint8Array([0xc1]), { headers: { 'Cohort-Beat': beat } });
    }
    await rogue.flush();
    const client = track(await connect({ bus: await fixture.bus(), cluster, shardCount: SHARDS }));
    const id = Array.from({ length: 64 }, (_, i) => `g${i}`).find((x) =>
      a.serving.includes(shardOf('counter', x, SHARDS)),
    )!;
    expect(await client.session('counter', id).send({ type: 'ADD', by: 1 })).toMatchObject({
      seq: 1,
      by: 'host.a',
      epoch: a.view!.shards[shardOf('counter', id, SHARDS)]!.epoch,
    });
    expect(a.view!.members.map((m) => m.id)).toEqual(['host.a', 'host.b']);
    // Positive control: the same heartbeat on its own subject is taken (so the subject check is what kept the ghost out).
    const honest = setInterval(() => rogue.publish(heartbeatSubject(cluster, 'ghost2'), ghost('ghost2')), 20);
    try {
      await waitFor(() => a.view!.members.some((m) => m.id === 'ghost2'), {
        what: 'ghost2 admitted',
        timeoutMs: 10_000,
      });
    } finally {
      clearInterval(honest);
    }
    expect(a.view!.members.some((m) => m.id === 'ghost')).toBe(false);
  });

  it("a heartbeat's health field: a reason it does not know (or not a string) makes the heartbeat malformed; a known one is taken", async () => {
    const cluster = `m${randomUUID().slice(0, 8)}`;
    const a = (await worker(cluster, { id: 'a' })).worker;
    const rogue = track(await fixture.bus());
    const beat = (id: string, unhealthy: unknown) =>
      encode({ id, zone: 'z', promotable: false, status: 'joining', viewId: 0, serving: [], startedAt: 1, unhealthy });
    const hostile = setInterval(() => {
      for (const [id, u] of [
        ['bad1', 'on fire'],
        ['bad2', 42],
        ['bad3', { reason: 'x' }],
        ['bad4', ''],
      ] as const)
        rogue.publish(heartbeatSubject(cluster, id), beat(id, u));
      rogue.publish(heartbeatSubject(cluster, 'sick'), beat('sick', 'commits-failing'));
    }, 20);
    try {
      await waitFor(() => a.view!.members.some((m) => m.id === 'sick'), {
        what: 'the well-formed one admitted',
        timeoutMs: 10_000,
      });
    } finally {
      clearInterval(hostile);
    }
    expect(a.view!.members.map((m) => m.id).sort()).toEqual(['a', 'sick']);
  });

  it('refuses a session timeout below 500 ms and a heartbeat slower than half of it', async () => {
    const bus = track(await fixture.bus());
    await expect(startWorker({ bus, cluster: 'x', applications: [app], sessionTimeout: 499 })).rejects.toThrow(
      /sessionTimeout must be at least 500/,
    );
    await expect(
      startWorker({ bus, cluster: 'x', applications: [app], sessionTimeout: 1000, heartbeatInterval: 600 }),
    ).rejects.toThrow(/heartbeatInterval/);
    await expect(startWorker({ bus, cluster: 'x', applications: [app], replicas: -1 })).rejects.toThrow(RangeError);
  });
});
