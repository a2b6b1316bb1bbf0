import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import type { ClientNotice } from '../../internal.js';
import { SimulatedClock, type Clock } from '../../bus/clock.js';
import { decode } from '../../bus/codec.js';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { noticeSubject } from '../../protocol/clientId.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { errorOf, rawCohort } from '../fixtures/rawCohort.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let nats: NatsServer;
let memory: MemoryServer;
beforeAll(async () => {
  nats = await startTestServer();
  memory = createMemoryServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

interface Timing {
  readonly clock?: Clock;
  readonly troubledInterval: number;
  readonly recoveryWait: number;
  /** Lets `ms` of the worker's time go by (simulated: at once; real: by waiting), until `done` holds. */
  pass(ms: number, done: () => boolean): Promise<void>;
}

const targets = [
  {
    name: 'memory',
    bus: async (): Promise<Bus> => createMemoryBus({ server: memory }),
    timing: (): Timing => {
      const clock = new SimulatedClock(Date.now());
      return {
        clock,
        troubledInterval: 1_000,
        recoveryWait: 2_000,
        pass: async (ms, done) => {
          clock.increment(ms);
          await waitFor(done, { what: 'the worker to notice' });
        },
      };
    },
  },
  {
    name: 'nats',
    bus: (): Promise<Bus> => createNatsBus({ servers: nats.url }),
    timing: (): Timing => ({
      troubledInterval: 200,
      recoveryWait: 1_000,
      pass: async (ms, done) => void (await waitFor(done, { what: 'the worker to notice', timeoutMs: ms + 5_000 })),
    }),
  },
] as const;

const A = 'alice#0000000a';
const B = 'bob#0000000b';

describe.each(targets)('client records on a worker ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async () => track(await target.bus());

  async function cohort(app: { commit?: 'memory' | 'journal' } = {}) {
    const timing = target.timing();
    const c = await rawCohort(bus, {
      ...(timing.clock && { clock: timing.clock }),
      clients: { troubledInterval: timing.troubledInterval, recoveryWait: timing.recoveryWait },
      app,
    });
    track(c.worker);
    return { ...c, timing };
  }

  const record = (worker: Worker, id: string) => worker.clients().find((r) => r.id === id);

  it('a client silent past troubledInterval is non-responsive; back within recoveryWait it keeps its transaction and commits', async () => {
    const { worker, session, timing } = await cohort();
    const s = session('r-back');
    await s.tx(A, 'tx1', 'begin', { timeout: 60_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    expect(record(worker, A)).toMatchObject({ id: A, label: 'alice', state: 'active', transactions: 1 });
    await timing.pass(timing.troubledInterval, () => record(worker, A)?.state === 'non-responsive');
    expect(record(worker, A)).toMatchObject({ state: 'non-responsive', transactions: 1 });
    // Its lock still holds meanwhile.
    expect(errorOf(await s.send(B, 'b1', { type: 'ADD', by: 10 }))).toMatchObject({
      name: 'SessionLockedError',
      details: { holder: 'alice' },
    });
    expect(record(worker, B)).toMatchObject({ state: 'active', transactions: 0 });
    expect(await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } })).toEqual({ ok: true, seq: 2 });
    expect(record(worker, A)).toMatchObject({ state: 'active', transactions: 1 });
    expect(await s.tx(A, 'tx1', 'commit', { steps: 2 })).toMatchObject({ ok: true, seq: 2 });
    expect(record(worker, A)).toMatchObject({ transactions: 0 });
    expect(await s.send(B, 'b1', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 3 });
  });

  it("silent beyond recoveryWait: its transaction is rolled back ('recovery-wait') and the lock is free for others", async () => {
    const { worker, session, timing } = await cohort();
    const s = session('r-gone');
    await s.tx(A, 'tx1', 'begin', { timeout: 60_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    await timing.pass(timing.troubledInterval + timing.recoveryWait, () => record(worker, A) === undefined);
    expect(await s.send(B, 'b1', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 1 });
    expect(errorOf(await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } }))).toMatchObject({
      name: 'TransactionRolledBackError',
      details: { txId: 'tx1', reason: 'recovery-wait' },
    });
    expect(errorOf(await s.tx(A, 'tx1', 'commit', { steps: 1 }))).toMatchObject({
      name: 'TransactionRolledBackError',
      details: { reason: 'recovery-wait' },
    });
    // The client itself is welcome back: only its transaction went.
    expect(record(worker, A)).toMatchObject({ state: 'active', transactions: 0 });
    expect(await s.send(A, 'a1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 2 });
    expect(await s.journal()).toHaveLength(2);
  });

  it('forceDisconnect rolls back, frees the lock, tells the client, and refuses it for recoveryWait', async () => {
    const { worker, session, timing, raw, cluster } = await cohort();
    const s = session('r-forced');
    await s.tx(A, 'tx1', 'begin', { timeout: 60_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    await s.read({ client: 'alice#000000ff' });
    expect(await s.send(B, 'b0', { type: 'ADD', by: 1 })).toMatchObject({ ok: false });
    const notices: ClientNotice[] = [];
    raw.subscribe(noticeSubject(cluster, A), (m) => notices.push(decode(m.data) as ClientNotice));
    await raw.flush();
    // By label: every alice this worker knows.
    expect(await worker.forceDisconnect('alice')).toEqual({ transactions: 1 });
    await waitFor(() => notices.length === 1, { what: 'the notice' });
    expect(notices[0]).toEqual({ type: 'disconnected', by: worker.id, reason: expect.stringContaining(worker.id) });
    expect(worker.clients().map((r) => r.id)).toEqual([B]);
    expect(await s.send(B, 'b1', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 1 });
    for (const refused of [
      s.send(A, 'a1', { type: 'ADD', by: 1 }),
      s.read({ client: A }),
      s.verify({ client: 'alice#000000ff', since: 0, max: 10 }),
      s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } }),
      s.tx(A, 'tx2', 'begin', { timeout: 1_000 }),
    ]) {
      expect(errorOf(await refused)).toMatchObject({
        name: 'ClientDisconnectedError',
        details: { client: expect.stringMatching(/^alice#/) },
      });
    }
    expect(await s.journal()).toHaveLength(1);
    expect(await worker.forceDisconnect('nobody')).toEqual({ transactions: 0 });
    // After recoveryWait it may come back (with a new transaction; the old one stays rolled back).
    await timing.pass(timing.recoveryWait, () => true);
    await waitFor(async () => (await s.read({ client: A })).ok, {
      what: 'the refusal to lapse',
      timeoutMs: timing.recoveryWait + 5_000,
    });
    expect(errorOf(await s.tx(A, 'tx1', 'commit', { steps: 1 }))).toMatchObject({
      name: 'TransactionRolledBackError',
      details: { reason: 'forced' },
    });
  });

  it('forceDisconnect by exact id flushes what was acknowledged at commit level memory first', async () => {
    const { worker, session } = await cohort({ commit: 'memory' });
    const s = session('r-flush');
    const sends = await Promise.all([1, 2, 3].map((by) => s.send(A, `a${by}`, { type: 'ADD', by })));
    expect(sends.every((r) => r.ok)).toBe(true);
    expect(await worker.forceDisconnect(A)).toEqual({ transactions: 0 });
    expect((await s.journal()).flatMap((r) => r.events.map((e) => e.seq))).toEqual([1, 2, 3]);
    expect(errorOf(await s.send(A, 'a4', { type: 'ADD', by: 4 }))).toMatchObject({ name: 'ClientDisconnectedError' });
  });
});

describe('client record options', () => {
  const app = defineApplication({ name: 'counter', machine: counterMachine });
  it.each([
    [{ troubledInterval: 0 }, /clients\.troubledInterval/],
    [{ troubledInterval: Number.NaN }, /clients\.troubledInterval/],
    [{ recoveryWait: -1 }, /clients\.recoveryWait/],
    [{ recoveryWait: Number.POSITIVE_INFINITY }, /clients\.recoveryWait/],
    [{ recoveryWait: '60s' as unknown as number }, /clients\.recoveryWait/],
  ])('refuses %o with a RangeError naming the option', async (clients, name) => {
    const bus = createMemoryBus();
    try {
      const started = startWorker({ bus, cluster: 'opts', applications: [app], shards: [0], clients });
      await expect(started).rejects.toThrow(RangeError);
      await expect(started).rejects.toThrow(name);
    } finally {
      await bus.close();
    }
  });
});
