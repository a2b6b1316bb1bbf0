import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect, defineApplication, SimulatedClock, startWorker, type Worker } from '../../index.js';
import { connectionOf, createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import type { Bus } from '../../bus/types.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { testMeter } from '../fixtures/metricReader.js';
import { RawSession, SHARDS } from '../fixtures/rawCohort.js';
import { waitFor } from '../waitFor.js';

const LIFETIME = 5_000;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: LIFETIME });
const CLIENT = 'raw#00000001';

/**
 * What the worker and the client record (metrics/instruments.ts), read from
 * an SDK MeterProvider of the test's own over the memory bus: each count is
 * the number of things the test did, not just "more than zero".
 */
describe('metrics on the memory bus', () => {
  const track = cleanupAfterEach();

  it('counts commands by outcome, their latency, activations, idle passivations, snapshots and active sessions (virtual time)', async () => {
    const clock = new SimulatedClock(Date.now());
    const server = createMemoryServer({ environment: { clock } });
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const meter = testMeter();
    const worker = track(
      await startWorker({
        bus: track(createMemoryBus({ server })),
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
        environment: { clock },
        meterProvider: meter.meterProvider,
      }),
    );
    const raw = track(createMemoryBus({ server }));
    const ids = ['a', 'b', 'c'];
    for (const id of ids) {
      const s = new RawSession(raw, cluster, id);
      for (let i = 0; i < 4; i++)
        expect(await s.send(CLIENT, `${id}-${i}`, { type: 'ADD', by: 1 })).toMatchObject({ ok: true });
    }
    const a = new RawSession(raw, cluster, 'a');
    // A retry of a committed command, an event the machine refuses, and bytes that are no request at all.
    expect(await a.send(CLIENT, 'a-0', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, duplicate: true });
    expect(await a.send(CLIENT, 'a-neg', { type: 'ADD', by: -1 })).toMatchObject({
      ok: false,
      error: { name: 'EventRejectedError' },
    });
    const malformed = await a.raw('cmd', new Uint8Array([0xc1, 0xff, 0x00]));
    expect(malformed.ok).toBe(false);
    const malformedName = (malformed as { error: { name: string } }).error.name;
    // A request for an application nobody hosts: counted under no name the sender chose.
    const stranger = new RawSession(raw, cluster, 'a', 'no-such-app');
    expect(await stranger.send(CLIENT, 'x-1', { type: 'ADD', by: 1 })).toMatchObject({
      ok: false,
      error: { name: 'UnknownApplicationError' },
    });
    // Still serving after all that.
    expect(await a.send(CLIENT, 'a-after', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 5 });
    expect(await a.read({ client: CLIENT })).toMatchObject({ ok: true, seq: 5 });

    let m = await meter.collect();
    const counter = { app: 'counter', kind: 'command' };
    expect(m.sum('cohort.commands', { ...counter, outcome: 'ok' })).toBe(ids.length * 4 + 1);
    expect(m.sum('cohort.commands', { ...counter, outcome: 'duplicate' })).toBe(1);
    expect(m.sum('cohort.commands', { ...counter, outcome: 'rejected' })).toBe(1);
    expect(m.sum('cohort.commands', { app: 'counter', outcome: malformedName })).toBe(1);
    expect(m.sum('cohort.commands', { app: '(unknown)', outcome: 'UnknownApplicationError' })).toBe(1);
    expect(m.sum('cohort.commands', { app: 'no-such-app' })).toBe(0);
    expect(m.count('cohort.command.duration')).toBe(ids.length * 4 + 5);
    expect(m.sum('cohort.reads', { app: 'counter', kind: 'read', outcome: 'ok' })).toBe(1);
    expect(m.count('cohort.read.duration')).toBe(1);
    // One append per command committed (the refused and the duplicate append nothing).
    expect(m.count('cohort.journal.append.duration', { outcome: 'ok' })).toBe(ids.length * 4 + 1);
    expect(m.sum('cohort.session.activations', { app: 'counter', from: 'store' })).toBe(ids.length);
    expect(m.sum('cohort.sessions.active', { app: 'counter' })).toBe(ids.length);
    expect(m.sum('cohort.session.passivations')).toBe(0);

    // Idle past their lifetime on the virtual clock: the sweep passivates all three, snapshots written.
    await waitFor(
      () => {
        clock.increment(LIFETIME / 2);
        return worker.activeSessions === 0;
      },
      { what: 'sessions passivated' },
    );
    m = await meter.collect();
    expect(m.sum('cohort.session.passivations', { app: 'counter', reason: 'idle' })).toBe(ids.length);
    expect(m.sum('cohort.sessions.active', { app: 'counter' })).toBe(0);
    expect(m.sum('cohort.snapshots', { app: 'counter' })).toBe(ids.length);

    // Used again: activated again, from the snapshot.
    expect(await a.send(CLIENT, 'a-back', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 6 });
    m = await meter.collect();
    expect(m.sum('cohort.session.activations', { app: 'counter' })).toBe(ids.length + 1);
    expect(m.sum('cohort.sessions.active')).toBe(1);
  });

  it('counts shard moves and failovers on views applied, replica lag per primary shard, and client retries and connection states', async () => {
    // A network with nothing lost or late, that a connection can be cut off from.
    const server = createMemoryServer({ network: { reorder: false, transit: () => [0], pick: () => 0 } });
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const FAST = { heartbeatInterval: 100, sessionTimeout: 500, shardCount: 16 } as const;
    const start = async (
      id: string,
    ): Promise<{ worker: Worker; bus: Bus; collect: ReturnType<typeof testMeter>['collect'] }> => {
      const meter = testMeter();
      const bus = track(createMemoryBus({ server }));
      const worker = track(
        await startWorker({ bus, cluster, applications: [app], id, ...FAST, meterProvider: meter.meterProvider }),
      );
      return { worker, bus, collect: meter.collect };
    };

    // A client asking before any worker is there retries until one answers.
    const clientMeter = testMeter();
    const client = track(
      await connect({
        bus: createMemoryBus({ server }),
        cluster,
        shardCount: 16,
        meterProvider: clientMeter.meterProvider,
      }),
    );
    const early = client.session('counter', 'early').send({ type: 'ADD', by: 1 }, { timeout: 10_000 });
    await waitFor(async () => (await clientMeter.collect()).sum('cohort.client.retries') > 0, { what: 'a retry' });

    const a = await start('a');
    await expect(early).resolves.toMatchObject({ seq: 1 });
    let am = await a.collect();
    expect(am.sum('cohort.shard.moves', { direction: 'gained' })).toBe(16);
    expect(am.sum('cohort.shard.moves', { direction: 'lost' })).toBe(0);
    const cm = await clientMeter.collect();
    expect(cm.sum('cohort.client.retries', { after: 'no-responders' })).toBeGreaterThan(0);
    expect(cm.sum('cohort.client.connection.states', { state: 'NORMAL' })).toBeGreaterThanOrEqual(1);

    const b = await start('b');
    await waitFor(() => b.worker.serving.length === 8 && a.worker.serving.length === 8, { what: 'balanced' });
    const bShards = b.worker.serving.length;
    am = await a.collect();
    expect(am.sum('cohort.shard.moves', { direction: 'lost' })).toBe(bShards);
    expect((await b.collect()).sum('cohort.shard.moves', { direction: 'gained' })).toBe(bShards);
    expect(am.sum('cohort.failovers')).toBe(0);

    // Replica lag: a point per shard a is primary of (b holds their secondaries), none behind once caught up.
    for (let i = 0; i < 8; i++) await client.session('counter', `s${i}`).send({ type: 'ADD', by: 1 });
    await waitFor(
      async () => {
        const points = (await a.collect()).points('cohort.replica.lag');
        return points.length === a.worker.serving.length && points.every((p) => p.value === 0);
      },
      { what: 'replica lag reported and caught up' },
    );
    const lagShards = (await a.collect()).points('cohort.replica.lag').map((p) => p.attributes['shard']);
    expect(lagShards.sort()).toEqual([...a.worker.serving].sort());

    expect(a.worker.readiness()).toEqual({
      ready: true,
      reason: expect.stringMatching(/^member of view \d+, primary of 8 shards$/),
    });
    expect(b.worker.readiness().ready).toBe(true);

    // b is cut off from the network: its shards fail over to a, and b, hearing nobody, is not ready.
    server.cut(connectionOf(b.bus)!);
    await waitFor(() => a.worker.serving.length === 16, { what: 'a takes every shard', timeoutMs: 10_000 });
    am = await a.collect();
    expect(am.sum('cohort.failovers')).toBe(bShards);
    expect(am.sum('cohort.shard.moves', { direction: 'gained' })).toBe(16 + bShards);
    expect(a.worker.readiness()).toMatchObject({ ready: true, reason: expect.stringMatching(/primary of 16 shards$/) });
    await waitFor(() => !b.worker.readiness().ready, { what: 'b not ready', timeoutMs: 10_000 });
    const cutOff = b.worker.readiness().reason;

    // Back on the network: b rejoins as a new member, takes shards again, and is ready.
    server.cut(connectionOf(b.bus)!, false);
    await waitFor(() => b.worker.readiness().ready && b.worker.serving.length > 0, {
      what: 'b ready again',
      timeoutMs: 15_000,
    });
    expect((await b.collect()).sum('cohort.shard.moves', { direction: 'lost' })).toBeGreaterThanOrEqual(bShards);
    // Dropped from the view while cut off, it let its shards go to come back as a new member.
    expect(cutOff).toMatch(/^(rejoining the cluster|membership \w+|not a member of view \d+)$/);
  });
});
