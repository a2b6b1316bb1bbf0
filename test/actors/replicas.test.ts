import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApplicationOptions,
  connect,
  defineApplication,
  NotEnoughReplicasError,
  shardOf,
  startWorker,
  type Worker,
  type WorkerOptions,
} from '../../index.js';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import {
  journalStreamFilter,
  journalStreamName,
  journalSubject,
  readOnlySubject,
  replicaReportSubject,
} from '../../bus/subjects.js';
import { decode, encode } from '../../bus/codec.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 16;
const FAST = { heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS } as const;

const targets = {
  memory: () => {
    let server: MemoryServer;
    return {
      setup: async () => void (server = createMemoryServer()),
      teardown: async () => {},
      bus: async (): Promise<Bus> => createMemoryBus({ server }),
    };
  },
  nats: () => {
    let server: NatsServer;
    return {
      setup: async () => void (server = await startTestServer()),
      teardown: async () => server?.[Symbol.asyncDispose](),
      bus: (): Promise<Bus> => createNatsBus({ servers: server.url }),
    };
  },
};

describe.each(['memory', 'nats'] as const)('replicas (%s)', (kind) => {
  const target = targets[kind]();
  beforeAll(target.setup);
  afterAll(target.teardown);
  const track = cleanupAfterEach();

  function app(options: Partial<ApplicationOptions> = {}) {
    return defineApplication({ name: 'counter', machine: counterMachine, ...options });
  }

  async function worker(
    cluster: string,
    application: ReturnType<typeof app>,
    options: Partial<WorkerOptions> = {},
  ): Promise<{ worker: Worker; bus: Bus }> {
    const bus = track(await target.bus());
    return {
      worker: track(await startWorker({ bus, cluster, applications: [application], ...FAST, ...options })),
      bus,
    };
  }

  /** Two workers, every shard with a primary on one and a secondary on the other. */
  async function pair(cluster: string, application: ReturnType<typeof app>) {
    const first = await worker(cluster, application);
    const a = first.worker;
    const b = await worker(cluster, application);
    await waitFor(
      () =>
        a.view?.members.length === 2 &&
        b.worker.view?.viewId === a.view.viewId &&
        a.view.shards.every((s) => s.state === 'ACTIVE' && s.replicas.length === 1) &&
        a.serving.length + b.worker.serving.length === SHARDS,
      { what: 'two workers, one secondary per shard', timeoutMs: 10_000 },
    );
    // Synchronized: every primary has heard its secondary within the session timeout.
    await waitFor(
      () =>
        Array.from({ length: SHARDS }, (_, shard) => shard).every((shard) => {
          const primary = a.serving.includes(shard) ? a : b.worker;
          return primary.replicaStatus(shard).secondaries.every((x) => x.state === 'SYNCHRONIZED');
        }),
      { what: 'secondaries synchronized', timeoutMs: 10_000 },
    );
    const client = track(await connect({ bus: await target.bus(), cluster, shardCount: SHARDS, timeout: 5_000 }));
    return { a, aBus: first.bus, b, client };
  }

  it('secondaries follow the journal and answer read-only queries, marked stale, with the seq they reflect', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const { client } = await pair(cluster, app());
    const s = client.session('counter', 'alice');
    for (let i = 1; i <= 5; i++) await s.send({ type: 'ADD', by: i });
    // Read-your-writes on a secondary: it waits until the journal has brought seq 5.
    const ro = await s.read({ readOnly: true, minSeq: 5 });
    expect(ro).toMatchObject({ seq: 5, stale: true, document: { n: 15 } });
    const primary = await s.read();
    expect(primary).toMatchObject({ seq: 5, stale: false, document: { n: 15 } });
    // Later events reach the copy without another load.
    await s.send({ type: 'ADD', by: 100 });
    await waitFor(async () => (await s.read({ readOnly: true })).seq === 6, { what: 'the secondary to apply seq 6' });
    expect((await s.read({ readOnly: true })).document).toMatchObject({ n: 115 });
  });

  it('a hot session journaled in batches: the secondary applies them to the same document, and serves it after a failover', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const { a, aBus, b, client } = await pair(cluster, app());
    const s = client.session('counter', 'hot');
    const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => s.send({ type: 'ADD', by: i + 1 })));
    expect(replies.map((r) => r.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    const raw = track(await target.bus());
    const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const shard = shardOf('counter', 'hot', SHARDS);
    const sizes: number[] = [];
    for await (const e of journal.read(journalSubject(cluster, shard, 'counter', 'hot')))
      sizes.push((decode(e.data) as { events: unknown[] }).events.length);
    expect(sizes.length).toBeLessThan(64);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(64);
    const primary = await s.read();
    const copy = await s.read({ readOnly: true, minSeq: 64 });
    expect(copy).toMatchObject({ seq: 64, stale: true });
    expect(copy.document).toEqual(primary.document);
    // The primary dies; the secondary takes over from its copy and goes on from seq 64.
    const [deadBus, survivor] = a.serving.includes(shard) ? [aBus, b.worker] : [b.bus, a];
    await deadBus.close();
    await waitFor(() => survivor.serving.includes(shard), { what: 'the secondary promoted', timeoutMs: 10_000 });
    expect(await s.read()).toMatchObject({ seq: 64, document: primary.document });
    expect(await s.send({ type: 'ADD', by: 1 })).toMatchObject({ seq: 65 });
  });

  it("a secondary's status says how far it has applied: as far as its primary credits it", async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const { a, b, client } = await pair(cluster, app());
    const s = client.session('counter', 'carol');
    for (let i = 1; i <= 3; i++) await s.send({ type: 'ADD', by: i });
    const shard = shardOf('counter', 'carol', SHARDS);
    const [primary, secondary] = a.serving.includes(shard) ? [a, b.worker] : [b.worker, a];
    let credited = 0;
    await waitFor(() => (credited = primary.replicaStatus(shard).secondaries[0]?.seq ?? 0) > 0, {
      what: 'the primary credits its secondary with an entry',
    });
    expect(secondary.replicaStatus(shard)).toMatchObject({ role: 'secondary' });
    expect(secondary.replicaStatus(shard).applied).toBeGreaterThanOrEqual(credited);
  });

  it('answers garbage read-only queries with typed errors and ignores garbage reports; both keep serving', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const { a, b, client } = await pair(cluster, app({ commit: 'replicas' }));
    const raw = track(await target.bus());
    const shard = shardOf('counter', 'eve', SHARDS);
    const ro = readOnlySubject(cluster, shard, 'counter', 'eve', 'raw');
    const garbage = decode((await raw.request(ro, new Uint8Array([0xc1, 0xff]), { timeout: 2_000 })).data) as {
      ok: boolean;
      error?: { name: string };
    };
    expect(garbage).toMatchObject({ ok: false, error: { name: 'DecodeError' } });
    const unknown = decode(
      (await raw.request(readOnlySubject(cluster, shard, 'nope', 'eve', 'raw'), encode({}), { timeout: 2_000 })).data,
    );
    expect(unknown).toMatchObject({ ok: false, error: { name: 'UnknownApplicationError' } });
    raw.publish(replicaReportSubject(cluster, shard), new Uint8Array([0xc1]));
    raw.publish(replicaReportSubject(cluster, shard), encode({ w: 42, s: 'x', q: null }));
    // In a real secondary's name, for another shard than the subject's, or with progress that is no count: ignored.
    const other = (shard + 1) % SHARDS;
    const secondary = a.view!.shards[other]!.replicas[0]!;
    raw.publish(replicaReportSubject(cluster, shard), encode({ w: secondary, s: other, q: 1e12 }));
    raw.publish(replicaReportSubject(cluster, other), encode({ w: secondary, s: other, q: -5 }));
    raw.publish(replicaReportSubject(cluster, other), encode({ w: secondary, s: other, q: 2.5 }));
    await raw.flush();
    const s = client.session('counter', 'eve');
    expect(await s.send({ type: 'ADD', by: 3 })).toMatchObject({ seq: 1, duplicate: false });
    expect(await s.read({ readOnly: true, minSeq: 1 })).toMatchObject({ seq: 1, stale: true, document: { n: 3 } });
    const primary = a.serving.includes(shard) ? a : b.worker;
    expect(primary.replicaStatus(shard).secondaries.map((x) => x.state)).toEqual(['SYNCHRONIZED']);
    const otherPrimary = a.serving.includes(other) ? a : b.worker;
    const seen = otherPrimary.replicaStatus(other).secondaries;
    expect(seen.map((x) => x.worker)).toEqual([secondary]);
    expect(seen[0]!.seq).toBeLessThan(1e12);
    expect(Number.isSafeInteger(seen[0]!.seq) && seen[0]!.seq >= 0).toBe(true);
    // On its own subject, in the real secondary's name, but claiming more than the shard's journal holds:
    // it keeps the secondary heard from, and is not credited (nothing is journaled on that shard yet).
    raw.publish(replicaReportSubject(cluster, other), encode({ w: secondary, s: other, q: 1e12 }));
    await raw.flush();
    await waitFor(() => otherPrimary.replicaStatus(other).reportsAhead >= 1, { what: 'the claim heard' });
    expect(otherPrimary.replicaStatus(other).secondaries[0]!.seq).toBe(0);
    // Positive control: once an entry is journaled there, its real report counts, up to that entry and no further.
    const id = Array.from({ length: 400 }, (_, i) => `y${i}`).find((x) => shardOf('counter', x, SHARDS) === other)!;
    await client.session('counter', id).send({ type: 'ADD', by: 1 });
    const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const entry = await journal.lastSeq(journalSubject(cluster, other, 'counter', id));
    expect(entry).toBeGreaterThan(0);
    await waitFor(() => otherPrimary.replicaStatus(other).secondaries[0]!.seq === entry, { what: 'the report taken' });
    expect(otherPrimary.replicaStatus(other).secondaries[0]!.seq).toBe(entry);
  });

  it('commit level replicas replies only after a synchronized secondary has applied the command', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const { a, b, client } = await pair(cluster, app({ commit: 'replicas', syncReplicas: 1 }));
    const raw = track(await target.bus());
    const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    for (let i = 0; i < 10; i++) {
      const id = `acct-${i}`;
      const shard = shardOf('counter', id, SHARDS);
      const s = client.session('counter', id);
      const { seq } = await s.send({ type: 'ADD', by: 1 });
      // At the moment of the reply, the primary had heard a synchronized secondary report this entry applied.
      const primary = a.serving.includes(shard) ? a : b.worker;
      const entry = await journal.lastSeq(journalSubject(cluster, shard, 'counter', id));
      const status = primary.replicaStatus(shard);
      expect(status.role).toBe('primary');
      expect(status.secondaries).toEqual([
        { worker: expect.any(String), seq: expect.any(Number), state: 'SYNCHRONIZED' },
      ]);
      expect(status.secondaries[0]!.seq).toBeGreaterThanOrEqual(entry);
      const ro = await s.read({ readOnly: true });
      expect(ro.stale).toBe(true);
      expect(ro.seq).toBeGreaterThanOrEqual(seq);
    }
  });

  it('refuses commands when fewer secondaries are synchronized than required, journaling nothing', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const strict = app({ commit: 'replicas', requiredSynchronizedReplicas: 1 });
    const a = (await worker(cluster, strict)).worker;
    const client = track(await connect({ bus: await target.bus(), cluster, shardCount: SHARDS, timeout: 5_000 }));
    const s = client.session('counter', 'bob');
    const refused = await s.send({ type: 'ADD', by: 1 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NotEnoughReplicasError);
    expect(refused).toMatchObject({ required: 1, synchronized: 0, shard: shardOf('counter', 'bob', SHARDS) });
    expect((await s.read()).seq).toBe(0);
    // A second worker joins; once its reports arrive the shard has a synchronized secondary again.
    await worker(cluster, strict);
    const ok = await waitFor(async () => s.send({ type: 'ADD', by: 1 }).catch(() => false), {
      what: 'a commit with a secondary',
      timeoutMs: 10_000,
    });
    expect(ok).toMatchObject({ seq: 1, duplicate: false });
    expect(a.view!.members).toHaveLength(2);
  });

  it('a dead secondary stops being waited for after the session timeout; commits go on', async () => {
    const cluster = `r${randomUUID().slice(0, 8)}`;
    const sync = app({ commit: 'replicas' });
    const a = (await worker(cluster, sync)).worker;
    const b = await worker(cluster, sync);
    await waitFor(() => a.view?.members.length === 2 && a.view.shards.every((s) => s.replicas.length === 1), {
      what: 'secondaries placed',
      timeoutMs: 10_000,
    });
    const client = track(await connect({ bus: await target.bus(), cluster, shardCount: SHARDS, timeout: 10_000 }));
    const ids = Array.from({ length: 8 }, (_, i) => `k${i}`);
    for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 1 });
    await b.bus.close();
    // Every command still commits (on a's shards at once or after a's failover of b's), none twice.
    for (const id of ids) await client.session('counter', id).send({ type: 'ADD', by: 1 });
    for (const id of ids) expect((await client.session('counter', id).read()).document).toMatchObject({ n: 2 });
  });
});
