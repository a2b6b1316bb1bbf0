/**
 * Transactions over several sessions of one shard (issue 17), on both
 * buses: one journal message on the coordinator's subject with every
 * session's events, an intent on each other's (actors/worker/txJournal.ts).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connect,
  CrossShardTransactionError,
  defineApplication,
  NetworkError,
  shardOf,
  startWorker,
  type Client,
  type Worker,
} from '../../index.js';
import { loadSession, SessionStore, type JournalRecord } from '../../internal.js';
import { decode, encode } from '../../bus/codec.js';
import { journalStreamFilter, journalStreamName, journalSubject, readOnlySubject } from '../../bus/subjects.js';
import type { Bus, JournalEntry } from '../../bus/types.js';
import { WrongLastSequenceError } from '../../bus/errors.js';
import { readJournals } from '../../harness/checker/index.js';
import { counterMachine } from '../fixtures/counter.js';
import { errorOf, RawSession, SHARDS } from '../fixtures/rawCohort.js';
import { busTargets } from '../busTargets.js';
import { waitFor } from '../waitFor.js';

const targets = busTargets();
const counter = defineApplication({ name: 'counter', machine: counterMachine, commit: 'journal' });

const A = 'alice#0000000a';
const B = 'bob#0000000b';

/** `n` session ids sharing one shard, and one on another shard. */
function idsOnOneShard(prefix: string, n: number): { same: string[]; shard: number; elsewhere: string } {
  const byShard = new Map<number, string[]>();
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    const shard = shardOf('counter', id, SHARDS);
    const list = byShard.get(shard) ?? [];
    list.push(id);
    byShard.set(shard, list);
    if (list.length === n) {
      const elsewhere = [...byShard.entries()].find(([s]) => s !== shard)?.[1][0];
      if (elsewhere !== undefined) return { same: list, shard, elsewhere };
    }
  }
}

let stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  stops = [];
});

describe.each(targets)('multi-session transactions on one shard ($name)', (target) => {
  async function cohort(app = counter) {
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const workerBus = await target.bus();
    stops.push(() => workerBus.close());
    const start = (bus: Bus): Promise<Worker> =>
      startWorker({ bus, cluster, applications: [app], shards: [...Array(SHARDS).keys()], shardCount: SHARDS });
    const worker = await start(workerBus);
    stops.push(() => worker.stop());
    const raw = await target.bus();
    stops.push(() => raw.close());
    const client = async (label: string): Promise<Client> => {
      const bus = await target.bus();
      const c = await connect({ bus, cluster, shardCount: SHARDS, label });
      stops.push(async () => {
        await c.close();
        await bus.close();
      });
      return c;
    };
    const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const entries = async (id: string): Promise<JournalEntry[]> => {
      const out: JournalEntry[] = [];
      for await (const e of journal.read(journalSubject(cluster, shardOf('counter', id, SHARDS), 'counter', id)))
        out.push(e);
      return out;
    };
    /** The session as the journal alone has it (no snapshot): replay, intents resolved. */
    const replayed = async (id: string, store: 'none' | 'stored' = 'none') => {
      const stored = new SessionStore({
        kv: await raw.kv({ bucket: `cohort_${cluster}_snapshots` }),
        blobs: await raw.blobs({ bucket: `cohort_${cluster}_blobs` }),
        maxPayload: raw.server.maxPayload,
      });
      const none = { load: async () => null } as unknown as SessionStore;
      const loaded = await loadSession(
        { journal, store: store === 'none' ? none : stored, cluster },
        app,
        id,
        shardOf('counter', id, SHARDS),
        Date.now(),
      );
      return { seq: loaded.state.seq, document: loaded.state.snapshot.context };
    };
    return { cluster, worker, workerBus, raw, client, journal, entries, replayed, start };
  }

  it('commits three sessions atomically as one journal message; each seq advances by its own events', async () => {
    const { client, entries, replayed } = await cohort();
    const { same } = idsOnOneShard('tri', 3);
    const [x, y, z] = same as [string, string, string];
    const a = await client('a');
    const b = await client('b');
    await b.session('counter', y).send({ type: 'ADD', by: 100 });
    const seen: unknown[] = [];
    const result = await a.session('counter', x).transaction(async (tx) => {
      await tx.send({ type: 'ADD', by: 1 });
      const ty = tx.session('counter', y);
      const tz = tx.session('counter', z);
      expect(await ty.send({ type: 'ADD', by: 2 })).toEqual({ seq: 2 });
      expect(await tz.send({ type: 'ADD', by: 3 })).toEqual({ seq: 1 });
      expect(await tz.send({ type: 'ADD', by: 4 })).toEqual({ seq: 2 });
      // Its own working copies; everyone else still sees the committed state.
      expect(await ty.read()).toMatchObject({ seq: 2, document: { n: 102 } });
      seen.push((await b.session('counter', y).read()).document, (await b.session('counter', z).read()).seq);
      return 'done';
    });
    expect(seen).toEqual([{ n: 100, log: ['+100'], rang: 0 }, 0]);
    expect(result).toMatchObject({ value: 'done', seq: 1, events: 4 });
    expect((await b.session('counter', x).read()).document).toEqual({ n: 1, log: ['+1'], rang: 0 });
    expect((await b.session('counter', y).read()).document).toEqual({ n: 102, log: ['+100', '+2'], rang: 0 });
    expect(await b.session('counter', z).read()).toMatchObject({ seq: 2, document: { n: 7, log: ['+3', '+4'] } });

    // One message with every session's events, on the coordinator's (the home's) subject; intents on the others'.
    const [onX] = await entries(x);
    const record = decode(onX!.data) as JournalRecord;
    expect(record.events.map((e) => e.seq)).toEqual([1]);
    const parts = new Map(record.tx!.parts.map((p) => [p.id, p.events.map((e) => e.seq)]));
    expect(parts).toEqual(
      new Map([
        [y, [2]],
        [z, [1, 2]],
      ]),
    );
    // Written in key order: the order every transaction takes its intents in.
    expect(record.tx!.parts.map((p) => p.id)).toEqual([y, z].sort());
    const txId = onX!.headers['Cohort-Cmd'];
    expect(onX!.headers['Cohort-Type']).toBe('tx');
    const onY = await entries(y);
    const onZ = await entries(z);
    expect(onY).toHaveLength(2);
    expect(decode(onY[1]!.data)).toEqual({ v: 1, intent: { tx: txId, at: { app: 'counter', id: x } } });
    expect(onZ).toHaveLength(1);
    expect(record.tx!.parts.find((p) => p.id === z)!.intent).toBe(onZ[0]!.seq);
    // Replayed from the journal alone, each session finds its part once, in its own order.
    expect(await replayed(x)).toEqual({ seq: 1, document: { n: 1, log: ['+1'], rang: 0 } });
    expect(await replayed(y)).toEqual({ seq: 2, document: { n: 102, log: ['+100', '+2'], rang: 0 } });
    expect(await replayed(z)).toEqual({ seq: 2, document: { n: 7, log: ['+3', '+4'], rang: 0 } });
    // A later plain write on a session that had an intent lands after it, and replays after it.
    await b.session('counter', z).send({ type: 'ADD', by: 5 });
    expect(await replayed(z)).toEqual({ seq: 3, document: { n: 12, log: ['+3', '+4', '+5'], rang: 0 } });
  });

  it('events on one other session only: that session’s own record, as a one-session transaction’s', async () => {
    const { client, entries, replayed } = await cohort();
    const { same } = idsOnOneShard('single', 3);
    const [x, y, z] = same as [string, string, string];
    const a = await client('a');
    const r = await a.session('counter', x).transaction(async (tx) => {
      // z is only read: locked, but nothing of it is journaled.
      expect(await tx.session('counter', z).read()).toMatchObject({ seq: 0 });
      await tx.session('counter', y).send({ type: 'ADD', by: 4 });
      await tx.session('counter', y).send({ type: 'ADD', by: 5 });
    });
    expect(r).toMatchObject({ seq: 0, events: 2 });
    const onY = await entries(y);
    expect(onY).toHaveLength(1);
    expect((decode(onY[0]!.data) as JournalRecord).tx).toBeUndefined();
    expect(await entries(x)).toHaveLength(0);
    expect(await entries(z)).toHaveLength(0);
    expect(await replayed(y)).toEqual({ seq: 2, document: { n: 9, log: ['+4', '+5'], rang: 0 } });
    expect(await a.session('counter', z).send({ type: 'ADD', by: 1 })).toMatchObject({ seq: 1 });
  });

  it('a commit the next primary cannot place: ambiguous when the transaction’s own session sent nothing, not otherwise', async () => {
    const { client, worker, start } = await cohort();
    const { same } = idsOnOneShard('forgot', 3);
    const [x, y, z] = same as [string, string, string];
    const a = await client('a');
    let current = worker;
    /** A transaction whose worker is replaced before its commit: the new one never heard of it. */
    const across = async (home: string, homeSends: boolean) => {
      let replaced = false;
      const err = await a
        .session('counter', home)
        .transaction(async (tx) => {
          if (homeSends) await tx.send({ type: 'ADD', by: 1 });
          await tx.session('counter', home === x ? y : z).send({ type: 'ADD', by: 2 });
          if (!replaced) {
            replaced = true;
            await current.stop();
            const next = await start(await target.bus());
            current = next;
            stops.push(() => next.stop());
          }
        })
        .catch((e: unknown) => e);
      return err as NetworkError;
    };
    const untold = await across(x, false);
    expect(untold).toBeInstanceOf(NetworkError);
    expect(untold.ambiguous).toBe(true);
    expect(untold.message).toMatch(/its own session sent nothing/);
    const told = await across(y, true);
    expect(told).toBeInstanceOf(NetworkError);
    expect(told.ambiguous).toBe(false);
    expect(told.message).toMatch(/rolled back by the server \(unknown\)/);
  });

  it('a throw inside commits nothing on any session, and lets go of every lock', async () => {
    const { client, entries } = await cohort();
    const { same } = idsOnOneShard('throw', 3);
    const [x, y, z] = same as [string, string, string];
    const a = await client('a');
    const b = await client('b');
    await expect(
      a.session('counter', x).transaction(async (tx) => {
        await tx.send({ type: 'ADD', by: 1 });
        await tx.session('counter', y).send({ type: 'ADD', by: 2 });
        await tx.session('counter', z).send({ type: 'ADD', by: 3 });
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    for (const id of same) expect(await b.session('counter', id).read()).toMatchObject({ seq: 0 });
    for (const id of same) expect(await entries(id)).toHaveLength(0);
    // Every lock is free: another client writes each at once.
    for (const id of same)
      expect(await b.session('counter', id).send({ type: 'ADD', by: 9 })).toMatchObject({ seq: 1 });
  });

  it('locks the other sessions: other writers wait and land after the commit', async () => {
    const { client } = await cohort();
    const { same } = idsOnOneShard('lock', 2);
    const [x, y] = same as [string, string];
    const a = await client('a');
    const b = await client('b');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let joined!: () => void;
    const inside = new Promise<void>((r) => (joined = r));
    const tx = a.session('counter', x).transaction(async (t) => {
      await t.session('counter', y).send({ type: 'ADD', by: 2 });
      joined();
      await gate;
    });
    await inside;
    const waiting = b.session('counter', y).send({ type: 'ADD', by: 5 });
    let landed = false;
    void waiting.then(() => (landed = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(landed).toBe(false);
    release();
    expect(await tx).toMatchObject({ events: 1 });
    expect(await waiting).toMatchObject({ seq: 2 });
    expect((await b.session('counter', y).read()).document).toMatchObject({ log: ['+2', '+5'] });
  });

  it('a session of another shard still throws CrossShardTransactionError', async () => {
    const { client } = await cohort();
    const { same, elsewhere } = idsOnOneShard('cross', 1);
    const a = await client('a');
    await expect(
      a.session('counter', same[0]!).transaction(async (tx) => {
        tx.session('counter', elsewhere);
      }),
    ).rejects.toBeInstanceOf(CrossShardTransactionError);
    expect(await a.session('counter', elsewhere).read()).toMatchObject({ seq: 0 });
  });

  it('hostile steps naming other sessions get InvalidRequestError; the sessions keep serving', async () => {
    const { raw, cluster } = await cohort();
    const { same, elsewhere } = idsOnOneShard('hostile', 2);
    const [x, y] = same as [string, string];
    const sx = new RawSession(raw, cluster, x);
    const sy = new RawSession(raw, cluster, y);
    expect(await sx.tx(A, 'h1', 'begin', { timeout: 30_000 })).toMatchObject({ ok: true });
    const send = (on: unknown, step = 0) => sx.tx(A, 'h1', 'send', { step, event: { type: 'ADD', by: 1 }, on });
    const bad: unknown[] = [
      'garbage',
      42,
      [],
      { app: 'counter' },
      { app: 'counter', id: '' },
      { app: 'counter', id: 'x'.repeat(300) },
      { app: 'counter', id: 'a\r\nb' },
      { app: 'nope', id: y },
      { app: 'counter', id: elsewhere },
      { app: 'counter', id: x },
    ];
    for (const on of bad)
      expect(errorOf(await send(on)), JSON.stringify(on)).toMatchObject({ name: 'InvalidRequestError' });
    expect(errorOf(await sx.tx(A, 'h1', 'read', { on: { app: 'counter', id: elsewhere } }))).toMatchObject({
      name: 'InvalidRequestError',
    });
    // Forged: another client's step for this transaction, and the transaction named from another session.
    expect(
      errorOf(await sx.tx(B, 'h1', 'send', { step: 0, event: { type: 'ADD', by: 1 }, on: { app: 'counter', id: y } })),
    ).toMatchObject({
      name: 'InvalidRequestError',
    });
    const { same: third } = idsOnOneShard('hostile', 3);
    const other = new RawSession(
      raw,
      cluster,
      third.find((id) => id !== x && id !== y)!,
    );
    expect(
      errorOf(
        await other.tx(A, 'h1', 'send', { step: 0, event: { type: 'ADD', by: 1 }, on: { app: 'counter', id: y } }),
      ),
    ).toMatchObject({
      name: 'InvalidRequestError',
    });
    // Out of order, and a step retried for another session than it went to.
    expect(errorOf(await send({ app: 'counter', id: y }, 3))).toMatchObject({ name: 'InvalidRequestError' });
    // Positive control: the right step is taken, commits, and both sessions serve.
    expect(await send({ app: 'counter', id: y })).toEqual({ ok: true, seq: 1 });
    expect(errorOf(await sx.tx(A, 'h1', 'send', { step: 0, event: { type: 'ADD', by: 1 } }))).toMatchObject({
      name: 'InvalidRequestError',
    });
    expect(await sx.tx(A, 'h1', 'send', { step: 1, event: { type: 'ADD', by: 2 } })).toEqual({ ok: true, seq: 1 });
    expect(await sx.tx(A, 'h1', 'commit', { steps: 2 })).toMatchObject({ ok: true, seq: 1 });
    expect(await sy.read({ client: B })).toMatchObject({ ok: true, seq: 1, document: { n: 1 } });
    expect(await sx.send(B, 'after', { type: 'ADD', by: 3 })).toMatchObject({ ok: true, seq: 2 });
    expect(await sy.send(B, 'after-y', { type: 'ADD', by: 3 })).toMatchObject({ ok: true, seq: 2 });
  });

  it('an abort a load writes on a coordinator in memory does not fail that coordinator’s next transaction', async () => {
    const { client, journal, cluster, entries, replayed } = await cohort();
    const { same, shard } = idsOnOneShard('cascade', 2);
    const [x, y] = same as [string, string];
    const a = await client('a');
    await a.session('counter', x).send({ type: 'ADD', by: 1 });
    // A worker died between its intent on y and its record on x: y is not in memory, x is.
    await journal.append(
      journalSubject(cluster, shard, 'counter', y),
      encode({ v: 1, intent: { tx: 'ghost', at: { app: 'counter', id: x } } }),
      { expectedLastSubjectSeq: 0, headers: { 'Cohort-Cmd': 'ghost>y', 'Cohort-Epoch': '0' } },
    );
    // Taking y in loads it, and the load aborts the ghost on x's subject: x's copy follows, so its commit holds.
    const r = await a.session('counter', x).transaction(async (tx) => {
      await tx.send({ type: 'ADD', by: 2 });
      await tx.session('counter', y).send({ type: 'ADD', by: 3 });
    });
    expect(r).toMatchObject({ seq: 2, events: 2 });
    const onX = (await entries(x)).map((e) => decode(e.data) as Record<string, unknown>);
    expect(onX.map((b) => ('abort' in b ? 'abort' : 'tx' in b ? 'tx' : 'record'))).toEqual(['record', 'abort', 'tx']);
    expect(await replayed(x)).toEqual({ seq: 2, document: { n: 3, log: ['+1', '+2'], rang: 0 } });
    expect(await replayed(y)).toEqual({ seq: 1, document: { n: 3, log: ['+3'], rang: 0 } });
  });

  it('two transactions reaching for each other’s sessions: the one out of lock order rolls back', async () => {
    const { raw, cluster } = await cohort();
    const { same } = idsOnOneShard('order', 2);
    const [low, high] = [...same].sort() as [string, string];
    const sLow = new RawSession(raw, cluster, low);
    const sHigh = new RawSession(raw, cluster, high);
    await sHigh.tx(A, 't1', 'begin', { timeout: 30_000 });
    await sLow.tx(B, 't2', 'begin', { timeout: 30_000 });
    // t2 holds low and wants high (after it): it may wait.
    expect(
      errorOf(
        await sLow.tx(B, 't2', 'send', { step: 0, event: { type: 'ADD', by: 1 }, on: { app: 'counter', id: high } }),
      ),
    ).toMatchObject({
      name: 'SessionLockedError',
      retryable: true,
    });
    // t1 holds high and wants low (before it): waiting could deadlock, so it rolls back.
    expect(
      errorOf(
        await sHigh.tx(A, 't1', 'send', { step: 0, event: { type: 'ADD', by: 1 }, on: { app: 'counter', id: low } }),
      ),
    ).toMatchObject({
      name: 'TransactionRolledBackError',
      details: { reason: 'lock-order' },
    });
    await waitFor(
      async () =>
        (await sLow.tx(B, 't2', 'send', { step: 0, event: { type: 'ADD', by: 1 }, on: { app: 'counter', id: high } }))
          .ok,
      { what: 't2 takes high' },
    );
    expect(await sLow.tx(B, 't2', 'commit', { steps: 1 })).toMatchObject({ ok: true });
    expect(await sHigh.read({ client: B })).toMatchObject({ seq: 1, document: { n: 1 } });
  });

  it('an intent whose record never landed is decided aborted by the next primary; one whose record landed, committed', async () => {
    const { cluster, client, journal, worker, workerBus, start, replayed, raw } = await cohort();
    const { same } = idsOnOneShard('crash', 3);
    const [x, y, z] = same as [string, string, string];
    const a = await client('a');
    await a.session('counter', x).send({ type: 'ADD', by: 1 });
    await a.session('counter', y).send({ type: 'ADD', by: 2 });
    await a.session('counter', z).send({ type: 'ADD', by: 3 });
    await worker.stop();
    await workerBus.close();
    const shard = shardOf('counter', x, SHARDS);
    const subject = (id: string) => journalSubject(cluster, shard, 'counter', id);
    const event = (seq: number, cmdId: string, by: number) => ({
      seq,
      event: { type: 'ADD', by, meta: { time: Date.now(), cmdId, client: A } },
    });
    const intent = async (id: string, tx: string) =>
      (
        await journal.append(subject(id), encode({ v: 1, intent: { tx, at: { app: 'counter', id: x } } }), {
          msgId: `${tx}>${id}`,
          expectedLastSubjectSeq: await journal.lastSeq(subject(id)),
          headers: { 'Cohort-Type': 'tx-intent', 'Cohort-Cmd': `${tx}>${id}`, 'Cohort-Epoch': '0' },
        })
      ).seq;
    // A worker killed after its record, before anything else: both, and no snapshot beyond them.
    const p = await intent(z, 'landed');
    const record: JournalRecord = {
      v: 1,
      events: [event(2, 'landed:0', 10)],
      tx: { id: 'landed', parts: [{ app: 'counter', id: z, intent: p, events: [event(2, 'landed:1', 20)] }] },
    };
    await journal.append(subject(x), encode(record), {
      msgId: 'landed',
      expectedLastSubjectSeq: await journal.lastSeq(subject(x)),
      headers: { 'Cohort-Type': 'tx', 'Cohort-Cmd': 'landed', 'Cohort-Epoch': '0' },
    });
    // A worker killed between its intent and its record: the intent alone; its record would be fenced on this.
    const ghostFence = await journal.lastSeq(subject(x));
    await intent(y, 'ghost');
    // A reader that may not decide stops before the undecided intent.
    expect(await replayed(y, 'stored')).toMatchObject({ seq: 1 });
    const bus = await (async () => {
      const b = await target.bus();
      stops.push(() => b.close());
      return b;
    })();
    const again = await start(bus);
    stops.push(() => again.stop());
    const b = await client('b');
    // z first: its intent's record is x's next entry, so it is committed.
    expect(await b.session('counter', z).read()).toMatchObject({ seq: 2, document: { n: 23, log: ['+3', '+20'] } });
    // y: nothing after its intent on x, so the new primary writes the abort; the ghost can never land now.
    expect(await b.session('counter', y).read()).toMatchObject({ seq: 1, document: { n: 2 } });
    expect(await b.session('counter', x).read()).toMatchObject({ seq: 2, document: { n: 11 } });
    const last = await journal.last(subject(x));
    expect(decode(last!.data)).toEqual({ v: 1, abort: 'ghost' });
    await expect(
      journal.append(subject(x), encode({ v: 1, events: [] }), { msgId: 'ghost', expectedLastSubjectSeq: ghostFence }),
    ).rejects.toBeInstanceOf(WrongLastSequenceError);
    // Everyone keeps serving, and a replay of each agrees with the live copies.
    expect(await b.session('counter', x).send({ type: 'ADD', by: 5 })).toMatchObject({ seq: 3 });
    expect(await b.session('counter', y).send({ type: 'ADD', by: 5 })).toMatchObject({ seq: 2 });
    expect(await replayed(x)).toMatchObject({ seq: 3, document: { n: 16 } });
    expect(await replayed(y)).toMatchObject({ seq: 2, document: { n: 7 } });
    expect(await replayed(z)).toMatchObject({ seq: 2, document: { n: 23 } });
    // The checker reads it alike: each part once, the intents and the abort as no events.
    const journals = await readJournals(raw, cluster, { snapshots: false });
    const seqs = (id: string) => journals.find((j) => j.session === id)!.events.map((e) => e.seq);
    expect([seqs(x), seqs(y), seqs(z)]).toEqual([
      [1, 2, 3],
      [1, 2],
      [1, 2],
    ]);
    for (const j of journals) expect(j.unreadable).toEqual([]);
  });
});

describe.each(targets)('compaction of a coordinator ($name)', (target) => {
  /** One multi-session transaction, the worker killed after it, the other session's snapshot gone or not. */
  async function afterCrash(otherSnapshot: 'kept' | 'lost') {
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine, commit: 'journal', snapshotEvery: 3 });
    const start = async () => {
      const bus = await target.bus();
      stops.push(() => bus.close());
      const w = await startWorker({
        bus,
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
      });
      stops.push(() => w.stop());
      return { bus, w };
    };
    const first = await start();
    const raw = await target.bus();
    stops.push(() => raw.close());
    const c = await connect({ bus: raw, cluster, shardCount: SHARDS, label: 'a' });
    stops.push(() => c.close());
    const { same, shard } = idsOnOneShard('keep', 2);
    const [x, y] = same as [string, string];
    await c.session('counter', x).transaction(async (tx) => {
      await tx.send({ type: 'ADD', by: 1 });
      await tx.session('counter', y).send({ type: 'ADD', by: 2 });
    });
    // Killed: no passivation. `lost`: as if it died before the other session's snapshot was written.
    await first.bus.close();
    const kv = await raw.kv({ bucket: `cohort_${cluster}_snapshots` });
    if (otherSnapshot === 'lost') await kv.delete(`counter.${y}`);
    await start();
    const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const xSubject = journalSubject(cluster, shard, 'counter', x);
    let record = 0;
    for await (const e of journal.read(xSubject)) record ||= e.seq;
    // Enough on the coordinator to snapshot and compact (every 3 events).
    for (let i = 0; i < 4; i++) await c.session('counter', x).send({ type: 'ADD', by: 10 });
    await waitFor(async () => (await kv.get(`counter.${x}`)) !== null, { what: "the coordinator's snapshot" });
    const oldestNow = async (): Promise<number> => {
      let first = 0;
      for await (const e of journal.read(xSubject)) first ||= e.seq;
      return first;
    };
    await new Promise((r) => setTimeout(r, 100));
    const oldest = await oldestNow();
    return { c, x, y, record, oldest, oldestNow, shard, journal, cluster };
  }

  it('keeps a multi-session record while another session may still need it, and lets it go once not', async () => {
    const lost = await afterCrash('lost');
    expect(lost.oldest).toBe(lost.record);
    // The other session, with no snapshot, still finds its part in the record.
    const none = { load: async () => null } as unknown as SessionStore;
    const loaded = await loadSession(
      { journal: lost.journal, store: none, cluster: lost.cluster },
      counter,
      lost.y,
      lost.shard,
      Date.now(),
    );
    expect(loaded.state.snapshot.context).toEqual({ n: 2, log: ['+2'], rang: 0 });
    expect(await lost.c.session('counter', lost.y).read()).toMatchObject({ seq: 1, document: { n: 2 } });
    // Control: its snapshot is past its intent, so the coordinator compacts the record away.
    const kept = await afterCrash('kept');
    // The purge follows the snapshot's write: waited for, not a fixed time after it.
    await waitFor(async () => (await kept.oldestNow()) > kept.record, { what: 'the compaction past the record' });
    expect(await kept.oldestNow()).toBeGreaterThan(kept.record);
    expect(await kept.c.session('counter', kept.y).read()).toMatchObject({ seq: 1, document: { n: 2 } });
  });
});

describe.each(targets)('intents and records against epochs ($name)', (target) => {
  it("a deposed primary's record after a newer epoch's marker commits nobody's part, its intent's session's included", async () => {
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const bus = await target.bus();
    stops.push(() => bus.close());
    const journal = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const { same, shard } = idsOnOneShard('epoch', 2);
    const [x, y] = same as [string, string];
    const subject = (id: string) => journalSubject(cluster, shard, 'counter', id);
    const event = (cmdId: string, by: number) => ({
      seq: 1,
      event: { type: 'ADD', by, meta: { time: Date.now(), cmdId, client: A } },
    });
    const headers = (cmd: string, epoch: number) => ({ 'Cohort-Cmd': cmd, 'Cohort-Epoch': String(epoch) });
    // Epoch 1's primary writes its intent, then is deposed (epoch 2's marker), then its record lands.
    const p = (
      await journal.append(subject(y), encode({ v: 1, intent: { tx: 'late', at: { app: 'counter', id: x } } }), {
        expectedLastSubjectSeq: 0,
        headers: headers('late>y', 1),
      })
    ).seq;
    const marker = p + 1;
    const record: JournalRecord = {
      v: 1,
      events: [event('late:0', 1)],
      tx: { id: 'late', parts: [{ app: 'counter', id: y, intent: p, events: [event('late:1', 2)] }] },
    };
    const r = (
      await journal.append(subject(x), encode(record), { expectedLastSubjectSeq: 0, headers: headers('late', 1) })
    ).seq;
    expect(r).toBeGreaterThan(p);
    const none = { load: async () => null } as unknown as SessionStore;
    const load = (id: string, epochs?: { admits(shard: number, seq: number, epoch: number): boolean }) =>
      loadSession({ journal, store: none, cluster, ...(epochs && { epochs }) }, counter, id, shard, Date.now());
    // Without epochs every entry counts: both parts.
    expect((await load(x)).state.seq).toBe(1);
    expect((await load(y)).state.seq).toBe(1);
    // Epoch 2's marker at `marker` (between them): the record counts for nobody, the intent's session included.
    const epochs = { admits: (_: number, seq: number, epoch: number) => epoch >= 2 || seq < marker };
    const lx = await load(x, epochs);
    const ly = await load(y, epochs);
    expect([lx.state.seq, lx.journalSeq]).toEqual([0, r]);
    expect([ly.state.seq, ly.journalSeq]).toEqual([0, p]);
  });
});

describe.each(targets)('a multi-session transaction on a shard with a secondary ($name)', (target) => {
  it('reaches the secondary’s copies whole, and the promoted secondary serves them', async () => {
    const cluster = `mt${randomUUID().slice(0, 8)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine, commit: 'replicas' });
    const options = { cluster, applications: [app], heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS };
    const buses: Bus[] = [];
    const bus = async () => {
      const b = await target.bus();
      buses.push(b);
      stops.push(() => b.close());
      return b;
    };
    const a: Worker = await startWorker({ bus: await bus(), ...options });
    stops.push(() => a.stop());
    const bw: Worker = await startWorker({ bus: await bus(), ...options });
    stops.push(() => bw.stop());
    const { same } = idsOnOneShard('repl', 3);
    const [x, y, z] = same as [string, string, string];
    const shard = shardOf('counter', x, SHARDS);
    const primary = await waitFor(
      () => {
        const p = [a, bw].find((w) => w.serving.includes(shard));
        return p !== undefined && p.replicaStatus(shard).secondaries.some((s) => s.state === 'SYNCHRONIZED') && p;
      },
      { what: 'a primary with a synchronized secondary', timeoutMs: 10_000 },
    );
    const raw = await bus();
    const readOnly = async (id: string, minSeq: number) =>
      decode(
        (
          await raw.request(
            readOnlySubject(cluster, shard, 'counter', id, 'bob'),
            encode({ kind: 'read', client: B, minSeq }),
            { timeout: 5_000 },
          )
        ).data,
      ) as { ok: boolean; seq: number; document: unknown };
    const c = await connect({ bus: await bus(), cluster, shardCount: SHARDS, label: 'a' });
    stops.push(() => c.close());
    // Copies on the secondary first, so the transaction reaches them through the tail.
    for (const id of same) await c.session('counter', id).send({ type: 'ADD', by: 1 });
    for (const id of same) expect(await readOnly(id, 1)).toMatchObject({ ok: true, seq: 1 });
    const r = await c.session('counter', y).transaction(async (tx) => {
      await tx.session('counter', x).send({ type: 'ADD', by: 2 });
      await tx.session('counter', z).send({ type: 'ADD', by: 3 });
      await tx.session('counter', z).send({ type: 'ADD', by: 4 });
    });
    expect(r).toMatchObject({ events: 3, seq: 1 });
    const expected = {
      [x]: { n: 3, log: ['+1', '+2'], rang: 0 },
      [y]: { n: 1, log: ['+1'], rang: 0 },
      [z]: { n: 8, log: ['+1', '+3', '+4'], rang: 0 },
    };
    expect(await readOnly(x, 2)).toMatchObject({ ok: true, seq: 2, document: expected[x] });
    expect(await readOnly(z, 3)).toMatchObject({ ok: true, seq: 3, document: expected[z] });
    expect(await readOnly(y, 1)).toMatchObject({ ok: true, seq: 1, document: expected[y] });
    // The primary dies without a word (its connection closed): the secondary takes over with what it followed.
    const dying = primary === a ? 0 : 1;
    await buses[dying]!.close();
    const survivor = primary === a ? bw : a;
    await waitFor(() => survivor.serving.includes(shard), { what: 'the secondary promoted', timeoutMs: 15_000 });
    for (const id of same) expect((await c.session('counter', id).read()).document).toEqual(expected[id]);
  });
});
