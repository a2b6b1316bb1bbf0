/**
 * Patches go out only while some client watches the session: counted on
 * the evt subjects with a raw subscription, while clients send. A
 * subscriber that read seq S still sees every change after S, across a
 * lapsed lease, a reconnect and a failover (the watch's answer says from
 * which seq the worker publishes; a subscriber behind it catches up).
 */
import { randomUUID } from 'node:crypto';
import jsonPatch from 'fast-json-patch';
import { describe, expect, it } from 'vitest';
import {
  connect,
  createNatsBus,
  defineApplication,
  shardOf,
  startWorker,
  type Client,
  type Patch,
  type Worker,
} from '../../index.js';
import { UNSAFE } from '../../actors/worker/unsafe.js';
import { SimulatedClock } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import { eventFilter, readOnlySubject, readSubject, requestFilter } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import { startProxy } from '../../harness/proxy.js';
import { busTargets, type BusTarget } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { memberPair, PAIR_SHARDS } from '../fixtures/memberPair.js';
import { errorOf, rawCohort, SHARDS, type WireReply } from '../fixtures/rawCohort.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
/** Past the grace a worker publishes everything for after it takes up its shards. */
const PAST_GRACE = 30_001;

/** Messages on the cluster's evt subjects (patches) and watches on its read subjects, as a bystander sees them. */
async function onlooker(bus: Bus, cluster: string): Promise<{ patches: number; watches: number }> {
  const seen = { patches: 0, watches: 0 };
  bus.subscribe(eventFilter(cluster), () => seen.patches++);
  bus.subscribe(requestFilter(cluster, 'read'), (m) => {
    const body = decode(m.data) as { kind?: unknown };
    if (body?.kind === 'watch') seen.watches++;
  });
  await bus.flush();
  return seen;
}

/** What a subscriber saw, and whether its patches, applied in order on the copy it read, make the document. */
function follower(start: { seq: number; document: unknown }) {
  const patches: Patch[] = [];
  let doc = structuredClone(start.document);
  let seq = start.seq;
  const broken: string[] = [];
  return {
    patches,
    get seq() {
      return seq;
    },
    get document() {
      return doc;
    },
    broken,
    listener: (p: Patch) => {
      patches.push(p);
      if (!p.resync && p.seq !== seq + 1) broken.push(`seq ${p.seq} after ${seq}`);
      doc = jsonPatch.applyPatch(structuredClone(doc), structuredClone(p.ops) as jsonPatch.Operation[]).newDocument;
      seq = p.seq;
    },
  };
}

const targets = busTargets();

describe.each(targets)('patches only while watched ($name)', (target: BusTarget) => {
  const track = cleanupAfterEach();
  const workers = new Map<string, Worker>();
  const bus = async () => track(await target.bus());

  /** One statically sharded worker on virtual time, already past its start's grace. */
  async function cohort(options: { patches?: 'always' | 'watched' } = {}) {
    const clock = new SimulatedClock(Date.now());
    const cluster = `w${randomUUID().slice(0, 8)}`;
    const worker = track(
      await startWorker({
        bus: await bus(),
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
        environment: { clock },
        ...options,
      }),
    );
    workers.set(cluster, worker);
    clock.increment(PAST_GRACE);
    const raw = await bus();
    const client = async (label: string, extra: { clock?: SimulatedClock; watchLease?: number } = {}) =>
      track(
        await connect({
          bus: await bus(),
          cluster,
          shardCount: SHARDS,
          label,
          ...(extra.clock && { environment: { clock: extra.clock } }),
          ...(extra.watchLease !== undefined && { watchLease: extra.watchLease }),
        }),
      );
    return { clock, cluster, raw, client, seen: await onlooker(raw, cluster) };
  }

  async function sendAll(c: Client, id: string, from: number, count: number): Promise<void> {
    for (let i = from; i < from + count; i++) await c.session('counter', id).send({ type: 'ADD', by: i });
  }

  it('nobody subscribed: no patch goes out; a subscriber who read seq S then gets every change after S', async () => {
    const { raw, client, seen } = await cohort();
    const writer = await client('writer');
    await sendAll(writer, 'doc', 1, 20);
    await raw.flush();
    expect(seen.patches).toBe(0);

    const reader = await client('reader');
    const r = reader.session('counter', 'doc');
    const read = await r.read();
    expect(read.seq).toBe(20);
    // Changes after the read, before it subscribes: still unwatched, not published.
    await sendAll(writer, 'doc', 21, 5);
    await raw.flush();
    expect(seen.patches).toBe(0);

    const f = follower(read);
    const unsubscribe = r.subscribe(f.listener);
    // The watch says the worker publishes after seq 25: the reader, at 20, catches up from the journal.
    await waitFor(() => f.seq === 25, { what: 'the reader caught up to 25' });
    await sendAll(writer, 'doc', 26, 10);
    await waitFor(() => f.seq === 35, { what: 'every later patch' });
    expect(f.broken).toEqual([]);
    expect(f.patches.map((p) => p.seq)).toEqual([...Array(15).keys()].map((i) => 21 + i));
    expect(f.patches.some((p) => p.resync)).toBe(false);
    expect(f.document).toEqual((await r.read()).document);
    // Only the ten sends made while it subscribed were published.
    await raw.flush();
    expect(seen.patches).toBe(10);

    unsubscribe();
    await waitFor(async () => {
      const before = seen.patches;
      await sendAll(writer, 'doc', 100, 1);
      await raw.flush();
      return seen.patches === before;
    });
    const after = seen.patches;
    await sendAll(writer, 'doc', 101, 5);
    await raw.flush();
    expect(seen.patches).toBe(after);
    // 40+ sends, 10 patches published: what the publish-always worker would have sent 40+ times.
  });

  it('a lease not renewed lapses and publishing stops; the renewal resumes it and the gap is caught up', async () => {
    const { clock, raw, client, seen } = await cohort();
    const writer = await client('writer');
    // The reader's own time: its renewals fire only when this moves.
    const readerClock = new SimulatedClock(Date.now());
    const reader = await client('reader', { clock: readerClock, watchLease: 3_000 });
    const r = reader.session('counter', 'lease');
    const f = follower(await r.read());
    r.subscribe(f.listener);
    await waitFor(() => seen.watches === 1, { what: 'the watch' });
    await sendAll(writer, 'lease', 1, 1);
    await waitFor(() => f.seq === 1, { what: 'the first patch' });
    // The reader's connection may see the patch before the onlooker's: flush the onlooker's.
    await raw.flush();
    expect(seen.patches).toBe(1);

    clock.increment(3_001); // the worker's time: the lease has lapsed, no renewal came
    await sendAll(writer, 'lease', 2, 3);
    await raw.flush();
    expect(seen.patches).toBe(1);
    expect(f.seq).toBe(1);

    readerClock.increment(1_000); // a third of the lease: the renewal goes out
    await waitFor(() => f.seq === 4, { what: 'the missed patches caught up' });
    await sendAll(writer, 'lease', 5, 1);
    await waitFor(() => f.seq === 5, { what: 'published again' });
    await raw.flush();
    expect(seen.patches).toBe(2);

    // Renewed every third of the lease, it holds well past the lease itself.
    for (let i = 0; i < 6; i++) {
      const watches = seen.watches;
      readerClock.increment(1_000);
      await waitFor(() => seen.watches > watches, { what: 'a renewal' });
      await reader.session('counter', 'other').read(); // the renewal's answer is in before the clock moves
      clock.increment(1_000);
    }
    await sendAll(writer, 'lease', 6, 1);
    await waitFor(() => f.seq === 6, { what: 'a patch after six renewals' });
    await raw.flush();
    expect(seen.patches).toBe(3);
    expect(f.broken).toEqual([]);
    expect(f.document).toEqual((await r.read()).document);
  });

  it('a watch outlives the passivation of its session; a watch typed by hand in JSON is answered in JSON', async () => {
    const { raw, client, seen, cluster } = await cohort();
    const writer = await client('writer');
    const reader = await client('reader');
    const r = reader.session('counter', 'pass');
    const f = follower(await r.read());
    r.subscribe(f.listener);
    await waitFor(() => seen.watches === 1, { what: 'the watch' });
    await sendAll(writer, 'pass', 1, 1);
    await waitFor(() => f.seq === 1, { what: 'the first patch' });
    expect(await workers.get(cluster)!.passivate()).toBeGreaterThan(0);
    await sendAll(writer, 'pass', 2, 2);
    await waitFor(() => f.seq === 3, { what: 'patches after the passivation' });
    await raw.flush();
    expect(seen.patches).toBe(3);

    const subject = readSubject(cluster, shardOf('counter', 'pass', SHARDS), 'counter', 'pass', 'me');
    const answer = await raw.request(subject, new TextEncoder().encode('{"kind":"watch","client":"me"}'), {
      timeout: 5_000,
      headers: { 'Content-Type': 'application/json' },
    });
    expect(answer.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(new TextDecoder().decode(answer.data))).toEqual({ ok: true, seq: 3, lease: 30_000 });
  });

  it("patches: 'always' publishes every patch without a watch (for a bare nats sub)", async () => {
    const { raw, client, seen } = await cohort({ patches: 'always' });
    const writer = await client('writer');
    await sendAll(writer, 'always', 1, 4);
    await raw.flush();
    expect(seen.patches).toBe(4);
    await expect(
      startWorker({ bus: await bus(), cluster: 'x', applications: [app], patches: 'never' as 'always' }),
    ).rejects.toThrow(RangeError);
  });

  it('hostile watches are refused, typed, and the worker keeps serving; a well-formed one is recorded', async () => {
    const clock = new SimulatedClock(Date.now());
    const c = await rawCohort(bus, { clock });
    track(c.worker);
    clock.increment(PAST_GRACE);
    const s = c.session('hostile');
    const seen = await onlooker(c.raw, c.cluster);
    const invalid = (reply: WireReply) => expect(errorOf(reply)?.name).toBe('InvalidRequestError');
    for (const body of [
      { client: 'h#1', lease: -5 },
      { client: 'h#1', lease: 0 },
      { client: 'h#1', lease: Number.NaN },
      { client: 'h#1', lease: Number.POSITIVE_INFINITY },
      { client: 'h#1', lease: '30000' },
      { client: 'h#1', lease: null },
      { client: 'h#1', lease: [1] },
      { client: 'h#1', kind: 'unwatched' },
      { client: 'a'.repeat(300) },
    ])
      invalid(await s.watch(body));
    invalid(await s.raw('read', encode({ kind: 'watch' })));
    invalid(await s.raw('read', encode({ kind: 'unwatch', client: 7 })));
    invalid(await s.raw('read', encode({ kind: 'watch', client: 'x\u0000#1' })));
    invalid(await s.raw('read', encode('watch')));
    // Another client's subject, the cmd subject, the read-only subject: refused.
    invalid(await s.raw('read', encode({ kind: 'watch', client: 'alice#1' }), 'bob'));
    invalid(await s.raw('cmd', encode({ kind: 'watch', client: 'raw#1' })));
    const ro = decode(
      (
        await c.raw.request(
          readOnlySubject(c.cluster, s.shard, 'counter', 'hostile', 'raw'),
          encode({ kind: 'watch', client: 'raw#1' }),
          { timeout: 5_000 },
        )
      ).data,
    ) as WireReply;
    expect(errorOf(ro)).toMatchObject({ name: 'InvalidRequestError', retryable: false });
    // None of them was recorded: a command publishes nothing.
    expect(await s.send('w#1', 'c1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    await c.raw.flush();
    expect(seen.patches).toBe(0);

    // Positive control: an absurd lease is held to the bounds, and the watch is recorded.
    expect(await s.watch({ client: 'raw#ok', lease: 1e12 })).toEqual({ ok: true, seq: 1, lease: 60_000 });
    expect(await s.watch({ client: 'raw#short', lease: 1 })).toEqual({ ok: true, seq: 1, lease: 1_000 });
    expect(await s.send('w#1', 'c2', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 2 });
    await waitFor(() => seen.patches === 1, { what: 'the watched patch' });
    // Both unwatch: nothing published again.
    for (const client of ['raw#ok', 'raw#short'])
      expect(await s.raw('read', encode({ kind: 'unwatch', client }))).toEqual({ ok: true, seq: 0, lease: 0 });
    expect(await s.send('w#1', 'c3', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 3 });
    await c.raw.flush();
    expect(seen.patches).toBe(1);
  });

  it('a subscriber keeps every patch across a failover, even with no grace at the new primary', async () => {
    const { cluster, crash, raw } = await memberPair(target, track, 'fo', { [UNSAFE]: { takeoverGrace: 0 } });
    const seen = await onlooker(raw, cluster);
    const opts = { bus: undefined as unknown as Bus, cluster, shardCount: PAIR_SHARDS, attemptTimeout: 300 };
    const writer = track(await connect({ ...opts, bus: await bus(), label: 'writer' }));
    const reader = track(await connect({ ...opts, bus: await bus(), label: 'reader', watchLease: 1_000 }));
    const r = reader.session('counter', 'fo');
    const f = follower(await r.read());
    r.subscribe(f.listener);
    await waitFor(() => seen.watches >= 1, { what: 'the watch' });
    await sendAll(writer, 'fo', 1, 3);
    await waitFor(() => f.seq === 3, { what: 'patches before the failover' });
    await crash();
    await sendAll(writer, 'fo', 4, 5);
    await waitFor(() => f.seq === 8, { what: 'patches after the failover', timeoutMs: 10_000 });
    await sendAll(writer, 'fo', 9, 2);
    await waitFor(() => f.seq === 10, { what: 'later patches' });
    expect(f.broken).toEqual([]);
    expect(f.document).toEqual((await r.read()).document);
  });
});

describe('patches only while watched, across a reconnect (nats)', () => {
  const track = cleanupAfterEach();

  it('a subscriber whose connection is cut while patches go out misses none of them', { timeout: 30_000 }, async () => {
    const nats = await startTestServer();
    track({ close: () => nats[Symbol.asyncDispose]() });
    const proxy = track(await startProxy({ target: nats.url }));
    const clock = new SimulatedClock(Date.now());
    const cluster = `r${randomUUID().slice(0, 8)}`;
    track(
      await startWorker({
        bus: track(await createNatsBus({ servers: nats.url })),
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
        environment: { clock },
      }),
    );
    clock.increment(PAST_GRACE);
    const raw = track(await createNatsBus({ servers: nats.url }));
    const seen = await onlooker(raw, cluster);
    const writer = track(
      await connect({
        bus: track(await createNatsBus({ servers: nats.url })),
        cluster,
        shardCount: SHARDS,
        label: 'w',
      }),
    );
    const readerBus = track(await createNatsBus({ servers: proxy.url, reconnectInterval: 50 }));
    const reader = track(await connect({ bus: readerBus, cluster, shardCount: SHARDS, label: 'r' }));
    const r = reader.session('counter', 'cut');
    const f = follower(await r.read());
    r.subscribe(f.listener);
    await waitFor(() => seen.watches === 1, { what: 'the watch' });
    const send = (by: number) => writer.session('counter', 'cut').send({ type: 'ADD', by });
    await send(1);
    await waitFor(() => f.seq === 1, { what: 'the first patch' });

    // The reader's connection stalls, patches go out meanwhile, then it is cut: they never reach it.
    proxy.partition('both');
    for (let i = 2; i <= 6; i++) await send(i);
    proxy.cut();
    proxy.heal();
    await waitFor(() => f.seq === 6, { what: 'the patches sent while cut off', timeoutMs: 15_000 });
    for (let i = 7; i <= 9; i++) await send(i);
    await waitFor(() => f.seq === 9, { what: 'patches after the reconnect' });
    expect(f.broken).toEqual([]);
    expect(f.document).toEqual((await r.read()).document);
    await raw.flush();
    expect(seen.patches).toBe(9);
    // After the reconnect the watch went out again at once.
    expect(seen.watches).toBeGreaterThanOrEqual(2);
  });
});
