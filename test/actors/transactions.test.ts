import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import jsonPatch from 'fast-json-patch';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import { labelOf, loadSession, SessionStore } from '../../internal.js';
import { SimulatedClock } from '../../bus/clock.js';
import { decode, encode } from '../../bus/codec.js';
import { journalStreamFilter, journalStreamName, readOnlySubject } from '../../bus/subjects.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession, SHARDS, errorOf, rawCohort } from '../fixtures/rawCohort.js';
import { busTargets } from '../busTargets.js';
import { waitFor } from '../waitFor.js';

const targets = busTargets();

const A = 'alice#0000000a';
const B = 'bob#0000000b';

describe.each(targets)('transactions on a worker ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async () => track(await target.bus());

  /** The worker's time is simulated (leases, delayed events); the bus runs on real time. */
  async function cohort() {
    const clock = new SimulatedClock(Date.now());
    const c = await rawCohort(bus, { clock });
    track(c.worker);
    return { ...c, clock };
  }

  it('commits its events as one journal message, one patch, the seq advanced by their number', async () => {
    const { session } = await cohort();
    const s = session('tx-one');
    expect(await s.send(A, 'c1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    const patches = await s.patches();
    expect(await s.tx(A, 'tx1', 'begin', { timeout: 30_000 })).toEqual({
      ok: true,
      seq: 1,
      by: expect.any(String),
      epoch: 0,
    });
    expect(await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 2 } })).toEqual({ ok: true, seq: 2 });
    expect(await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 3 } })).toEqual({ ok: true, seq: 3 });
    // Read your own uncommitted writes through the transaction; others see the committed state.
    expect(await s.tx(A, 'tx1', 'read')).toMatchObject({
      ok: true,
      seq: 3,
      state: 'running',
      document: { n: 6, log: ['+1', '+2', '+3'] },
    });
    expect(await s.read({ client: B })).toMatchObject({ ok: true, seq: 1, document: { n: 1 } });
    expect(await s.tx(A, 'tx1', 'commit', { steps: 2 })).toMatchObject({
      ok: true,
      seq: 3,
      by: expect.any(String),
      epoch: 0,
    });
    expect(await s.read({ client: B })).toMatchObject({ ok: true, seq: 3, document: { n: 6 } });

    const journal = await s.journal();
    expect(journal).toHaveLength(2);
    expect(journal[1]!.events.map((e) => [e.seq, e.event.type, e.event.meta.cmdId, e.event.meta.client])).toEqual([
      [2, 'ADD', 'tx1:0', A],
      [3, 'ADD', 'tx1:1', A],
    ]);
    // One patch for the whole transaction: the next command's patch comes right after it.
    expect(await s.send(B, 'c2', { type: 'ADD', by: 4 })).toMatchObject({ ok: true, seq: 4 });
    await waitFor(() => patches.length >= 2, { what: 'two patches' });
    expect(patches.map((p) => [p.seq, p.prev, p.setter])).toEqual([
      [3, 1, A],
      [4, 3, B],
    ]);
    const doc = jsonPatch.applyPatch(
      { n: 1, log: ['+1'], rang: 0 },
      jsonPatch.deepClone(patches[0]!.ops) as jsonPatch.Operation[],
    ).newDocument;
    expect(doc).toEqual({ n: 6, log: ['+1', '+2', '+3'], rang: 0 });
  });

  it('aborts leaving nothing, and a rejected step keeps the transaction open', async () => {
    const { session } = await cohort();
    const s = session('tx-abort');
    await s.tx(A, 'tx1', 'begin', { timeout: 30_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 5 } });
    expect(await s.tx(A, 'tx1', 'abort')).toEqual({ ok: true, seq: 0 });
    expect(await s.read({ client: A })).toMatchObject({ ok: true, seq: 0, document: { n: 0 } });
    expect(await s.journal()).toEqual([]);
    // Aborting what is gone is fine.
    expect(await s.tx(A, 'tx1', 'abort')).toEqual({ ok: true, seq: 0 });

    await s.tx(A, 'tx2', 'begin', { timeout: 30_000 });
    expect(await s.tx(A, 'tx2', 'send', { step: 0, event: { type: 'ADD', by: 1 } })).toEqual({ ok: true, seq: 1 });
    const refused = await s.tx(A, 'tx2', 'send', { step: 1, event: { type: 'ADD', by: -1 } });
    expect(errorOf(refused)).toMatchObject({
      name: 'EventRejectedError',
      details: { eventType: 'ADD', state: 'running' },
    });
    // The refused step was not taken: the next one takes its number.
    expect(await s.tx(A, 'tx2', 'send', { step: 1, event: { type: 'ADD', by: 2 } })).toEqual({ ok: true, seq: 2 });
    expect(await s.tx(A, 'tx2', 'commit', { steps: 2 })).toMatchObject({ ok: true, seq: 2 });
    expect(await s.read({ client: A })).toMatchObject({ ok: true, seq: 2, document: { n: 3, log: ['+1', '+2'] } });
    // An empty transaction commits nothing.
    await s.tx(A, 'tx3', 'begin', { timeout: 30_000 });
    expect(await s.tx(A, 'tx3', 'commit', { steps: 0 })).toMatchObject({ ok: true, seq: 2 });
    expect(await s.journal()).toHaveLength(1);
  });

  it('locks out other writers until commit; the holder must write through its transaction; reads go on', async () => {
    const { session } = await cohort();
    const s = session('tx-lock');
    await s.tx(A, 'tx1', 'begin', { timeout: 30_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    const locked = await s.send(B, 'b1', { type: 'ADD', by: 10 });
    expect(errorOf(locked)).toMatchObject({
      name: 'SessionLockedError',
      retryable: true,
      details: { holder: 'alice' },
    });
    expect(errorOf(await s.tx(B, 'txB', 'begin', { timeout: 30_000 }))).toMatchObject({
      name: 'SessionLockedError',
      retryable: true,
    });
    expect(errorOf(await s.send(A, 'a1', { type: 'ADD', by: 10 }))).toMatchObject({ name: 'InvalidRequestError' });
    // Someone else's transaction id is not a way in.
    expect(errorOf(await s.tx(B, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 1 } }))).toMatchObject({
      name: 'InvalidRequestError',
    });
    expect(await s.read({ client: B })).toMatchObject({ ok: true, seq: 0 });
    expect(await s.tx(A, 'tx1', 'commit', { steps: 1 })).toMatchObject({ ok: true, seq: 1 });
    // The same command id, retried, now goes through.
    expect(await s.send(B, 'b1', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 2 });
    expect(await s.tx(B, 'txB', 'begin', { timeout: 30_000 })).toEqual({
      ok: true,
      seq: 2,
      by: expect.any(String),
      epoch: 0,
    });
  });

  it('answers retried steps as the first time: begin, send, commit (duplicate), journaled once', async () => {
    const { session, cluster, raw } = await cohort();
    const s = session('tx-retry');
    expect(await s.tx(A, 'tx1', 'begin', { timeout: 30_000 })).toEqual({
      ok: true,
      seq: 0,
      by: expect.any(String),
      epoch: 0,
    });
    expect(await s.tx(A, 'tx1', 'begin', { timeout: 30_000 })).toEqual({
      ok: true,
      seq: 0,
      by: expect.any(String),
      epoch: 0,
    });
    expect(await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } })).toEqual({ ok: true, seq: 1 });
    expect(await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } })).toEqual({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    expect(await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } })).toEqual({ ok: true, seq: 2 });
    expect(errorOf(await s.tx(A, 'tx1', 'send', { step: 5, event: { type: 'ADD', by: 2 } }))).toMatchObject({
      name: 'InvalidRequestError',
    });
    // A commit counting other steps than were taken is refused, and the transaction stays open.
    expect(errorOf(await s.tx(A, 'tx1', 'commit', { steps: 3 }))).toMatchObject({ name: 'InvalidRequestError' });
    const first = await s.tx(A, 'tx1', 'commit', { steps: 2 });
    expect(first).toMatchObject({ ok: true, seq: 2 });
    expect(first).not.toHaveProperty('duplicate');
    expect(await s.tx(A, 'tx1', 'commit', { steps: 2 })).toMatchObject({ ok: true, seq: 2, duplicate: true });
    expect(await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } })).toEqual({
      ok: true,
      seq: 2,
      duplicate: true,
    });
    expect(errorOf(await s.tx(A, 'tx1', 'begin', { timeout: 30_000 }))).toMatchObject({ name: 'InvalidRequestError' });
    expect(await s.journal()).toHaveLength(1);
    // Reloaded from the journal alone (no snapshot yet), the session still knows the transaction by its id.
    const loaded = await loadSession(
      {
        journal: await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] }),
        store: new SessionStore({
          kv: await raw.kv({ bucket: `cohort_${cluster}_snapshots` }),
          blobs: await raw.blobs({ bucket: `cohort_${cluster}_blobs` }),
          maxPayload: raw.server.maxPayload,
        }),
        cluster,
      },
      defineApplication({ name: 'counter', machine: counterMachine }),
      s.id,
      s.shard,
      Date.now(),
    );
    expect(loaded.state.seq).toBe(2);
    // Each with when it was committed: the de-duplication window runs from then.
    expect(loaded.recent).toEqual([
      ['tx1:0', 1, expect.any(Number)],
      ['tx1:1', 2, expect.any(Number)],
      ['tx1', 2, expect.any(Number)],
    ]);
  });

  it('rolls back a transaction whose lease ran out; its later steps learn why, and the lock is free', async () => {
    const { session, clock } = await cohort();
    const s = session('tx-lease');
    await s.tx(A, 'tx1', 'begin', { timeout: 1_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    clock.increment(999);
    expect(errorOf(await s.send(B, 'b1', { type: 'ADD', by: 1 }))).toMatchObject({ name: 'SessionLockedError' });
    clock.increment(1);
    // The rollback is queued in the session's mailbox when the lease ends: the next request comes after it.
    expect(await s.send(B, 'b1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    for (const step of [
      s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 1 } }),
      s.tx(A, 'tx1', 'read'),
      s.tx(A, 'tx1', 'commit', { steps: 1 }),
      s.tx(A, 'tx1', 'begin', { timeout: 1_000 }),
    ]) {
      expect(errorOf(await step)).toMatchObject({
        name: 'TransactionRolledBackError',
        details: { txId: 'tx1', reason: 'timeout' },
      });
    }
    expect(await s.tx(A, 'tx1', 'abort')).toEqual({ ok: true, seq: 1 });
    expect(await s.journal()).toHaveLength(1);
  });

  it("answers steps of a transaction it never had with TransactionRolledBackError 'unknown'", async () => {
    const { session } = await cohort();
    const s = session('tx-unknown');
    for (const step of [
      s.tx(A, 'nope', 'send', { step: 0, event: { type: 'ADD', by: 1 } }),
      s.tx(A, 'nope', 'read'),
      s.tx(A, 'nope', 'commit', { steps: 1 }),
    ]) {
      expect(errorOf(await step)).toMatchObject({
        name: 'TransactionRolledBackError',
        details: { txId: 'nope', reason: 'unknown' },
      });
    }
  });

  it('holds delayed events that fall due while locked, and fires them once the lock is released', async () => {
    const { session, clock } = await cohort();
    const s = session('tx-timer');
    expect(await s.send(A, 'arm', { type: 'ARM' })).toMatchObject({ ok: true, seq: 1 });
    await s.tx(B, 'tx1', 'begin', { timeout: 30_000 });
    clock.increment(1_000);
    // The bell fell due; the session's mailbox has dealt with it before this read.
    expect(await s.tx(B, 'tx1', 'read')).toMatchObject({ ok: true, seq: 1, state: 'armed', document: { rang: 0 } });
    expect(await s.tx(B, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 5 } })).toEqual({ ok: true, seq: 2 });
    expect(await s.tx(B, 'tx1', 'commit', { steps: 1 })).toMatchObject({ ok: true, seq: 2 });
    clock.increment(1);
    const rang = await waitFor(
      async () => {
        const r = await s.read({ client: A });
        return r.ok && (r['document'] as { rang: number }).rang === 1 && r;
      },
      { what: 'the bell after the release' },
    );
    expect(rang).toMatchObject({ seq: 3, state: 'running', document: { n: 5, rang: 1 } });
    const journaled = (await s.journal()).map((r) => r.events.map((e) => e.event.meta.client));
    expect(journaled).toEqual([[A], [B], ['timer']]);
  });

  it('answers malformed transaction bodies with InvalidRequestError and keeps serving', async () => {
    const { session } = await cohort();
    const s = session('tx-bad');
    const bad: unknown[] = [
      { kind: 'tx', op: 'begin', txId: 'x', client: A },
      { kind: 'tx', op: 'begin', txId: 'x', client: A, timeout: 0 },
      { kind: 'tx', op: 'begin', txId: 'x', client: A, timeout: 1e12 },
      { kind: 'tx', op: 'begin', txId: 'x', client: A, timeout: '30s' },
      { kind: 'tx', op: 'begin', txId: '', client: A, timeout: 1_000 },
      { kind: 'tx', op: 'begin', txId: 'x'.repeat(257), client: A, timeout: 1_000 },
      { kind: 'tx', op: 'begin', txId: 'x', timeout: 1_000 },
      { kind: 'tx', op: 'launch', txId: 'x', client: A },
      { kind: 'tx', txId: 'x', client: A },
      { kind: 'tx', op: 'send', txId: 'x', client: A, step: -1, event: { type: 'ADD', by: 1 } },
      { kind: 'tx', op: 'send', txId: 'x', client: A, step: 0.5, event: { type: 'ADD', by: 1 } },
      { kind: 'tx', op: 'send', txId: 'x', client: A, step: 0 },
      { kind: 'tx', op: 'send', txId: 'x', client: A, step: 0, event: { by: 1 } },
      { kind: 'tx', op: 'send', txId: 'x', client: A, step: 0, event: { type: 'xstate.after.bell.counter.armed' } },
      { kind: 'tx', op: 'commit', txId: 'x', client: A },
      { kind: 'tx', op: 'commit', txId: 'x', client: A, steps: -2 },
    ];
    for (const body of bad)
      expect(errorOf(await s.cmd(body)), JSON.stringify(body)).toMatchObject({ name: 'InvalidRequestError' });
    expect(
      errorOf(
        await s.raw('cmd', encode({ kind: 'tx', op: 'begin', txId: 'x', client: A, timeout: 1_000 }).subarray(0, 9)),
      ),
    ).toMatchObject({ name: 'DecodeError' });
    await s.tx(A, 'ok', 'begin', { timeout: 1_000 });
    expect(await s.tx(A, 'ok', 'send', { step: 0, event: { type: 'ADD', by: 1 } })).toEqual({ ok: true, seq: 1 });
    expect(await s.tx(A, 'ok', 'commit', { steps: 1 })).toMatchObject({ ok: true, seq: 1 });
  });

  it('at commit level memory, acknowledges at once and journals the transaction in the background', async () => {
    const clock = new SimulatedClock(Date.now());
    const c = await rawCohort(bus, { clock, app: { commit: 'memory' } });
    track(c.worker);
    const s = c.session('tx-memory');
    await s.tx(A, 'tx1', 'begin', { timeout: 30_000 });
    await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } });
    await s.tx(A, 'tx1', 'send', { step: 1, event: { type: 'ADD', by: 2 } });
    expect(await s.tx(A, 'tx1', 'commit', { steps: 2 })).toMatchObject({ ok: true, seq: 2 });
    const journal = await waitFor(
      async () => {
        const j = await s.journal();
        return j.length > 0 && j;
      },
      { what: 'the background append' },
    );
    expect(journal.flatMap((r) => r.events.map((e) => e.seq))).toEqual([1, 2]);
  });
});

describe.each(targets)('a transaction on a shard with a secondary ($name)', (target) => {
  const track = cleanupAfterEach();

  it('reaches the secondary as one record, applied whole', async () => {
    const cluster = `t${randomUUID().slice(0, 8)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine, commit: 'replicas' });
    const options = { cluster, applications: [app], heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS };
    const a: Worker = track(await startWorker({ bus: track(await target.bus()), ...options }));
    const b: Worker = track(await startWorker({ bus: track(await target.bus()), ...options }));
    const s = new RawSession(track(await target.bus()), cluster, 'tx-replicated');
    const primary = await waitFor(
      () => {
        const p = [a, b].find((w) => w.serving.includes(s.shard));
        return p !== undefined && p.replicaStatus(s.shard).secondaries.some((x) => x.state === 'SYNCHRONIZED') && p;
      },
      { what: 'a primary with a synchronized secondary', timeoutMs: 10_000 },
    );
    expect(primary).toBeDefined();
    const readOnly = async (minSeq: number) =>
      decode(
        (
          await s.bus.request(
            readOnlySubject(cluster, s.shard, 'counter', s.id, labelOf(B)),
            encode({ kind: 'read', client: B, minSeq }),
            { timeout: 5_000 },
          )
        ).data,
      );
    // The secondary makes its copy now, so the transaction reaches it through the journal's tail.
    expect(await s.send(B, 'b1', { type: 'ADD', by: 10 })).toMatchObject({ ok: true, seq: 1 });
    expect(await readOnly(1)).toMatchObject({ ok: true, seq: 1, stale: true });
    await s.tx(A, 'tx1', 'begin', { timeout: 30_000 });
    for (let step = 0; step < 3; step++) await s.tx(A, 'tx1', 'send', { step, event: { type: 'ADD', by: step + 1 } });
    expect(await s.tx(A, 'tx1', 'commit', { steps: 3 })).toMatchObject({ ok: true, seq: 4 });
    expect(await readOnly(4)).toMatchObject({
      ok: true,
      seq: 4,
      stale: true,
      document: { n: 16, log: ['+10', '+1', '+2', '+3'] },
    });
  });
});
