/**
 * Scatter, broadcast and deadlines on a simulated cluster (virtual time):
 * a thousand sessions over three workers, one of them killed or paused while
 * a call is out. Every call settles by its deadline with each id in one of
 * results, errors or missing. (test/scenarios/scatter.test.ts runs the kill on
 * real processes and a real nats-server.)
 */
import { describe, expect, it } from 'vitest';
import { defineApplication, shardOf, TimeoutError, type Gathered } from '../../index.js';
import { decode, encode } from '../../bus/codec.js';
import { scatterSubject } from '../../bus/subjects.js';
import { parseScatterReply } from '../../protocol/scatter.js';
import { counterMachine } from '../fixtures/counter.js';
import { bootSim, type Sim } from './simBoot.js';

const app = defineApplication({
  name: 'counter',
  machine: counterMachine,
  queries: { total: (doc) => doc.n },
});
const SHARDS = 24;
const HEARTBEAT = 100;
const TIMEOUT = 1_000;
const IDS = Array.from({ length: 1_000 }, (_, i) => `acct-${i}`);

async function cluster(): Promise<Sim> {
  const sim = bootSim({ application: app, shardCount: SHARDS, heartbeatInterval: HEARTBEAT, sessionTimeout: TIMEOUT });
  for (let i = 0; i < 3; i++) await sim.spawn(i);
  await sim.until(sim.balanced([0, 1, 2]), 'balanced');
  return sim;
}

function partitioned<T>(g: Gathered<T>, ids: readonly string[]): void {
  expect([...g.results.keys(), ...g.errors.keys(), ...g.missing].sort()).toEqual([...ids].sort());
}

/** The ids whose shard the worker in `slot` is primary of now. */
function served(sim: Sim, slot: number, ids: readonly string[]): Set<string> {
  const shards = new Set(sim.worker(slot).serving);
  return new Set(ids.filter((id) => shards.has(shardOf('counter', id, SHARDS))));
}

describe('scatter on a simulated cluster', () => {
  it('a thousand sessions over three workers: every answer, in one message per shard', async () => {
    const sim = await cluster();
    const client = await sim.connect(0);
    const sent = await sim.run(client.broadcast('counter', IDS, { type: 'ADD', by: 2 }, { timeout: 30_000 }));
    expect(sent.results.size).toBe(1_000);
    const g = await sim.run(client.scatter<number>('counter', IDS, { query: 'total' }, { timeout: 5_000 }));
    partitioned(g, IDS);
    expect(g.results.size).toBe(1_000);
    expect([...g.results.values()].every((n) => n === 2)).toBe(true);
    // One message from the client to a worker per shard (every shard holds some of the thousand).
    const requests = sim.lines.filter((l) =>
      / deliver message c1>w\d cohort\.sim\.read\.\d+\.counter\.~shard\./.test(l),
    );
    expect(requests).toHaveLength(SHARDS);
  });

  it('read-only: the secondaries answer from their copies; hostile messages to them are refused, typed', async () => {
    const sim = await cluster();
    const client = await sim.connect(0);
    await sim.run(client.broadcast('counter', IDS, { type: 'ADD', by: 3 }, { timeout: 30_000 }));
    const ro = await sim.run(
      client.scatter<number>('counter', IDS, { query: 'total' }, { timeout: 5_000, readOnly: true }),
    );
    partitioned(ro, IDS);
    // Copies may trail the primaries by a moment; every one answers, none with more than was committed.
    expect(ro.results.size).toBe(1_000);
    expect([...ro.results.values()].every((n) => n === 0 || n === 3)).toBe(true);
    // The ro subject goes to the shard's secondary (a queue group of the copies): raw messages to it.
    const bus = sim.cluster.auditor().bus;
    const shard = shardOf('counter', 'acct-1', SHARDS);
    const subject = scatterSubject('ro', 'sim', shard, 'counter', 'raw');
    const ask = async (body: unknown, data?: Uint8Array) =>
      decode((await sim.run(bus.request(subject, data ?? encode(body), { timeout: 2_000 }))).data) as {
        ok: boolean;
        error?: { name: string };
      };
    const good = { kind: 'scatter', client: 'raw#1', query: 'total', ids: ['acct-1'], within: 1_000 };
    for (const [what, body, data] of [
      ['garbage', undefined, new Uint8Array([0xc1, 0x00])],
      ['no ids', { ...good, ids: [] }],
      ['an id twice', { ...good, ids: ['acct-1', 'acct-1'] }],
      ['another client', { ...good, client: 'mallory#1' }],
      ['no query', { ...good, query: 7 }],
    ] as [string, unknown, Uint8Array?][]) {
      const reply = await ask(body, data);
      expect(reply.ok, what).toBe(false);
      expect(reply.error?.name, what).toMatch(/InvalidRequestError|DecodeError/);
    }
    const fine = parseScatterReply(await ask(good), new Set(['acct-1']));
    expect(fine).toMatchObject({ ok: true, errors: [], late: [] });
    expect((fine as unknown as { values: unknown[][] }).values[0]![0]).toBe('acct-1');
  });

  it('a worker killed while the scatter is out: its sessions answered after failover or missing, never late', async () => {
    const sim = await cluster();
    const client = await sim.connect(0);
    await sim.run(client.broadcast('counter', IDS, { type: 'ADD', by: 1 }, { timeout: 30_000 }));
    const victim = served(sim, 2, IDS);
    const live = IDS.filter((id) => !victim.has(id));
    // Short deadline: shorter than a failover takes. The dead worker's sessions are missing.
    sim.cluster.workers[2]!.process.kill();
    let started = sim.now();
    const quick = await sim.run(client.scatter<number>('counter', IDS, { query: 'total' }, { timeout: 400 }));
    expect(sim.now() - started).toBeLessThanOrEqual(400);
    partitioned(quick, IDS);
    for (const id of live) expect(quick.results.get(id), id).toBe(1);
    expect(quick.missing.length).toBeGreaterThan(0);
    for (const id of quick.missing) expect(victim.has(id), id).toBe(true);
    // A deadline past the failover: every session answers, the dead worker's from their new primaries.
    started = sim.now();
    const patient = await sim.run(client.scatter<number>('counter', IDS, { query: 'total' }, { timeout: 8_000 }));
    expect(sim.now() - started).toBeLessThanOrEqual(8_000);
    partitioned(patient, IDS);
    expect(patient.results.size).toBe(1_000);
    expect([...patient.results.values()].every((n) => n === 1)).toBe(true);
  });

  it('a paused worker: scatter and broadcast settle at their deadline; its commands are ambiguous', async () => {
    const sim = await cluster();
    const client = await sim.connect(0);
    const some = IDS.slice(0, 200);
    await sim.run(client.broadcast('counter', some, { type: 'ADD', by: 1 }, { timeout: 30_000 }));
    const frozen = served(sim, 1, some);
    sim.cluster.workers[1]!.process.pause();
    // Both calls end before the failover (the session timeout, 1 s) could bring the paused worker's shards back.
    let started = sim.now();
    const b = await sim.run(client.broadcast('counter', some, { type: 'ADD', by: 1 }, { timeout: 500 }));
    expect(sim.now() - started).toBeLessThanOrEqual(500);
    partitioned(b, some);
    for (const id of some) {
      if (!frozen.has(id)) expect(b.results.get(id)?.seq, id).toBe(2);
      else {
        // Sent and never answered: it may have committed. Or not sent in time: missing.
        const err = b.errors.get(id);
        if (err !== undefined) expect(err instanceof TimeoutError && err.ambiguous, id).toBe(true);
        else expect(b.missing, id).toContain(id);
      }
    }
    expect(b.errors.size).toBeGreaterThan(0);
    started = sim.now();
    const g = await sim.run(client.scatter<number>('counter', some, { query: 'total' }, { timeout: 300 }));
    expect(sim.now() - started).toBeLessThanOrEqual(300);
    partitioned(g, some);
    expect(new Set(g.missing)).toEqual(frozen);
    sim.cluster.workers[1]!.process.resume();
  });
});
