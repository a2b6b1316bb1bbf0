import { describe, expect, it } from 'vitest';
import { shardOf, type BusStatus, type Client, type View } from '../../index.js';
import { ledger } from '../../examples/ledger.js';
import { checkHistory, HistoryRecorder, readJournals } from '../../harness/checker/index.js';
import {
  RunLoop,
  SimCluster,
  SIMULATION_START,
  SimNetwork,
  SimProcess,
  servingDisagreements,
  Trace,
  VirtualClock,
  type Faults,
  type WorkerSlot,
} from '../../harness/simulate/index.js';
import { connectionOf, createMemoryBus, createMemoryServer, seededEnvironment } from '../../internal.js';

const SHARDS = 8;
const TIMEOUT = 1_000;
const HEARTBEAT = 200;

/** A cluster driven by hand: faults are injected where a test says, not drawn. */
async function boot(
  options: { workers?: number; clients?: number; faults?: Faults; seed?: number; troubledInterval?: number } = {},
) {
  const lines: string[] = [];
  const trace = new Trace(
    () => cluster.clock.now() - SIMULATION_START,
    (line) => lines.push(line),
  );
  const recorder = new HistoryRecorder({ now: () => cluster.clock.now() });
  const cluster: SimCluster = new SimCluster({
    seed: options.seed ?? 1,
    start: SIMULATION_START,
    cluster: 'faults',
    applications: [ledger],
    shardCount: SHARDS,
    worker: { heartbeatInterval: HEARTBEAT, sessionTimeout: TIMEOUT },
    connection: { troubledInterval: options.troubledInterval ?? 5_000, attemptTimeout: 500 },
    faults: options.faults ?? {},
    trace,
    recorder,
  });
  const loop = new RunLoop(cluster.clock, cluster.server);
  const now = (): number => cluster.clock.now();
  const workers = options.workers ?? 3;
  let started = 0;
  for (let i = 0; i < workers; i++) void cluster.spawnWorker(i).then(() => started++);
  await loop.drive(() => started === workers, now() + 20 * TIMEOUT);
  let connected = 0;
  for (let i = 0; i < (options.clients ?? 1); i++) void cluster.connectClient(i).then(() => connected++);
  await loop.drive(() => connected === (options.clients ?? 1), now() + 20 * TIMEOUT);
  const client = (i = 0): Client => cluster.clients[i]!.client!;
  /** Drives until `promise` settles, within `ms` of virtual time. */
  const run = <T>(promise: Promise<T>, ms = 30 * TIMEOUT): Promise<T> => loop.run(promise, now() + ms, 'test step');
  const until = (done: () => boolean, ms = 30 * TIMEOUT): Promise<void> => loop.drive(done, now() + ms);
  /** An account whose session lives on one of `shards`. */
  const accountOn = (shards: readonly number[]): string => {
    for (let k = 0; ; k++) if (shards.includes(shardOf('ledger', `acct-${k}`, SHARDS))) return `acct-${k}`;
  };
  const check = async () => {
    const audit = cluster.auditor();
    return checkHistory({
      history: recorder.operations,
      journals: await run(readJournals(audit.bus, cluster.name)),
      applications: [ledger],
    });
  };
  expect(cluster.workers.every((w) => w.worker !== undefined)).toBe(true);
  cluster.network.disturb();
  return { cluster, loop, trace, lines, recorder, now, client, run, until, accountOn, check };
}

/** The view every live worker holds, when they agree. */
function agreed(workers: readonly WorkerSlot[]): View | undefined {
  const views = workers
    .filter((w) => w.process.state === 'running' && w.worker !== undefined)
    .map((w) => w.worker!.view);
  const first = views[0];
  return first !== null && first !== undefined && views.every((v) => v?.viewId === first.viewId) ? first : undefined;
}

/** Every shard ACTIVE, on a member of the view. */
function settled(view: View | undefined): boolean {
  if (view === undefined || view.transitional) return false;
  const members = new Set(view.members.map((m) => m.id));
  return view.shards.every((s) => s.state === 'ACTIVE' && s.primary !== null && members.has(s.primary));
}

describe('faults of a simulated cluster, on virtual time', () => {
  it('a killed worker: its shards fail over within a few session timeouts, and its sessions answer again', async () => {
    const sim = await boot();
    const victim = sim.cluster.workers[0]!;
    const id = victim.worker!.id;
    const shards = [...victim.worker!.serving];
    expect(shards.length).toBeGreaterThan(0);
    const account = sim.client().session('ledger', sim.accountOn(shards));
    await sim.run(account.send({ type: 'OPEN', owner: 'before' }));
    const before = await sim.run(account.send({ type: 'DEPOSIT', amount: 5 }));
    expect(before.by).toBe(id);

    victim.process.kill();
    const killedAt = sim.now();
    await sim.until(() => {
      const view = agreed(sim.cluster.workers);
      return settled(view) && !view!.members.some((m) => m.id === id);
    });
    const took = sim.now() - killedAt;
    expect(took).toBeGreaterThanOrEqual(TIMEOUT);
    expect(took).toBeLessThan(4 * TIMEOUT);
    const after = await sim.run(account.send({ type: 'DEPOSIT', amount: 7 }));
    expect(after.by).not.toBe(id);
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect((await sim.run(account.read())).document).toMatchObject({ balance: 12 });
    expect(await sim.check()).toEqual([]);
  });

  it('a partitioned worker steps down on its own and is dropped from the view; after the heal it rejoins as a new member', async () => {
    const sim = await boot();
    const cut = sim.cluster.workers[1]!;
    const id = cut.worker!.id;
    cut.process.cut(true);
    await sim.until(() => {
      const view = agreed([sim.cluster.workers[0]!, sim.cluster.workers[2]!]);
      return settled(view) && !view!.members.some((m) => m.id === id);
    });
    // Hearing nothing, it stepped down on its own (deafAfter: 900 ms here): it serves nothing and knows no view.
    await sim.until(() => cut.worker!.view === null && cut.worker!.serving.length === 0);
    expect(cut.worker!.view).toBeNull();
    expect(cut.worker!.serving).toEqual([]);
    cut.process.cut(false);
    await sim.until(() => {
      const view = agreed(sim.cluster.workers);
      return settled(view) && view!.members.some((m) => m.id.startsWith(`${id}~`));
    });
    const view = agreed(sim.cluster.workers)!;
    expect(view.members.map((m) => m.id)).not.toContain(id);
    expect(view.shards.some((s) => s.primary?.startsWith(`${id}~`))).toBe(true);
    const account = sim.client().session('ledger', 'acct-0');
    await sim.run(account.send({ type: 'OPEN', owner: 'after the heal' }));
    expect(servingDisagreements(sim.cluster.workers)).toEqual([]);
    expect(await sim.check()).toEqual([]);
  });

  it('a paused primary resumes with stale beliefs and is fenced: its sessions are written by the new primary only', async () => {
    const sim = await boot({ clients: 2 });
    const paused = sim.cluster.workers[0]!;
    const id = paused.worker!.id;
    const shards = [...paused.worker!.serving];
    const name = sim.accountOn(shards);
    const account = sim.client(0).session('ledger', name);
    await sim.run(account.send({ type: 'OPEN', owner: 'fenced' }));
    const viewBefore = paused.worker!.view!.viewId;

    paused.process.pause();
    await sim.until(() => {
      const view = agreed([sim.cluster.workers[1]!, sim.cluster.workers[2]!]);
      return settled(view) && !view!.members.some((m) => m.id === id);
    });
    // Written by the new primary while the old one sleeps.
    const during = await sim.run(sim.client(1).session('ledger', name).send({ type: 'DEPOSIT', amount: 1 }));
    expect(during.by).not.toBe(id);

    paused.process.resume();
    // It wakes up believing what it believed: the view of before, its shards its own.
    expect(paused.worker!.view!.viewId).toBe(viewBefore);
    expect(paused.worker!.serving).toEqual(shards);
    const sends = [1, 2, 3, 4].map((n) =>
      sim
        .client(n % 2)
        .session('ledger', name)
        .send({ type: 'DEPOSIT', amount: 10 * n }),
    );
    const acks = await sim.run(Promise.all(sends));
    for (const ack of acks) expect(ack.by).not.toBe(id);
    expect((await sim.run(account.read())).document).toMatchObject({ balance: 101 });
    await sim.until(() => paused.worker!.view!.viewId > viewBefore);
    expect(await sim.check()).toEqual([]);
  });

  it('a bus restart: every connection hears it, reconnects and serves; streams keep what they had', async () => {
    const sim = await boot({ clients: 2 });
    const account = sim.client().session('ledger', 'acct-1');
    await sim.run(account.send({ type: 'OPEN', owner: 'restart' }));
    await sim.run(account.send({ type: 'DEPOSIT', amount: 3 }));
    const heard: string[] = [];
    const watcher = sim.cluster.auditor().bus;
    watcher.onStatus((s: BusStatus) => heard.push(s.type));
    const viewBefore = agreed(sim.cluster.workers)!.viewId;

    sim.cluster.server.restart(() => 300);
    const pending = sim.client(1).session('ledger', 'acct-1').send({ type: 'DEPOSIT', amount: 4 });
    expect((await sim.run(pending)).seq).toBe(3);
    await sim.until(() => false, 5 * TIMEOUT);
    expect(heard).toEqual(['disconnect', 'reconnecting', 'reconnect']);
    const view = agreed(sim.cluster.workers);
    expect(settled(view)).toBe(true);
    // Nobody was suspected: heartbeats resumed within the session timeout.
    expect(view!.members).toHaveLength(3);
    expect(view!.viewId).toBe(viewBefore);
    expect((await sim.run(account.read())).document).toMatchObject({ balance: 7 });
    expect(await sim.check()).toEqual([]);
  });

  it('lost, late and doubled messages: requests are retried, a doubled command is applied once', async () => {
    const faults: Faults = { drop: 0.05, delay: [0, 30], duplicate: 0.3, reorder: true };
    const sim = await boot({ clients: 2, faults, troubledInterval: 30_000 });
    const names = ['acct-1', 'acct-2', 'acct-3'];
    await sim.run(Promise.all(names.map((n) => sim.client(0).session('ledger', n).send({ type: 'OPEN', owner: n }))));
    const sends = names.flatMap((n) =>
      [1, 2, 3, 4, 5].map((k) =>
        sim
          .client(k % 2)
          .session('ledger', n)
          .send({ type: 'DEPOSIT', amount: k }),
      ),
    );
    const acks = await sim.run(Promise.all(sends), 120 * TIMEOUT);
    expect(acks).toHaveLength(15);
    const { counts } = sim.cluster.network;
    expect(counts.drop).toBeGreaterThan(0);
    expect(counts.duplicate).toBeGreaterThan(0);
    // Commands reached workers more often than they were sent (copies, retries after a loss): each was journaled once.
    const arrived = sim.lines.filter((l) => / deliver message c\d>w\d\S* cohort\.faults\.cmd\./.test(l)).length;
    expect(arrived).toBeGreaterThan(sends.length + names.length);
    for (const n of names)
      expect((await sim.run(sim.client(0).session('ledger', n).read())).document).toMatchObject({ balance: 15 });
    expect(await sim.check()).toEqual([]);
  });
});

describe('processes', () => {
  it('a paused process takes its overdue timers first, then its deliveries; a killed one never runs again', async () => {
    const clock = new VirtualClock(0);
    const random = seededEnvironment(1).random;
    const network = new SimNetwork({ faults: {}, random, trace: new Trace(() => clock.now()), nameOf: String });
    const server = createMemoryServer({ environment: { clock }, network });
    const loop = new RunLoop(clock, server);
    const p = new SimProcess({ name: 'p', clock, server });
    const bus = createMemoryBus({ server, environment: { clock: p.clock } });
    p.adopt(connectionOf(bus)!);
    const other = createMemoryBus({ server, environment: { clock } });
    const order: string[] = [];
    bus.subscribe('s', (m) => order.push(`delivered ${new TextDecoder().decode(m.data)}`));
    p.pause();
    p.clock.setTimeout(() => order.push('timer'), 10);
    other.publish('s', new TextEncoder().encode('x'));
    await loop.drive(() => false, 100);
    expect(order).toEqual([]);
    expect(clock.now()).toBe(100);
    p.resume();
    await loop.drive(() => false, 100);
    expect(order).toEqual(['timer', 'delivered x']);

    p.kill();
    p.clock.setTimeout(() => order.push('after death'), 1);
    other.publish('s', new TextEncoder().encode('y'));
    await loop.drive(() => false, 200);
    expect(order).toEqual(['timer', 'delivered x']);
    expect(clock.pending).toBe(0);
  });
});
