import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { startWorker } from '../../index.js';
import { batchMsgId, isBatchMsgId } from '../../actors/worker/groupCommit.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import type { Network } from '../../bus/memory/network.js';
import type { JournalRecord } from '../../internal.js';
import { clockedTargets, type ClockedTarget } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { errorOf, rawCohort, type RawSession, type WireReply } from '../fixtures/rawCohort.js';

const CLIENT = 'raw#00000001';

/** A session whose document takes any key a command names: hostile keys reach the document check. */
const bagMachine = setup({
  types: {} as { context: Record<string, unknown>; events: { type: 'PUT'; key: string; value: unknown } },
}).createMachine({
  id: 'bag',
  context: {},
  on: { PUT: { actions: assign(({ context, event }) => ({ ...context, [event.key]: event.value })) } },
});

/** On the memory bus a journal append takes a virtual millisecond, so commands arriving meanwhile wait and batch. */
const slowAppends: Network = {
  reorder: false,
  transit: (hop) => [hop.subject === 'append' ? 1 : 0],
  pick: () => 0,
};

const targets = clockedTargets(slowAppends);
type Target = ClockedTarget;

const add = (by: number, extra: Record<string, unknown> = {}) => ({ type: 'ADD', by, ...extra });

/** Every event the session's journal holds, in order, as (seq, cmdId, by). */
function eventsOf(records: readonly JournalRecord[]): [number, string, unknown][] {
  return records.flatMap((r) =>
    r.events.map((e) => [e.seq, e.event.meta.cmdId, (e.event as { by?: unknown }).by] as [number, string, unknown]),
  );
}

function docOf(reply: WireReply): unknown {
  if (!reply.ok) throw new Error(`refused: ${JSON.stringify(reply.error)}`);
  return reply['document'];
}

function seqOf(reply: WireReply): number {
  if (!reply.ok) throw new Error(`refused: ${JSON.stringify(reply.error)}`);
  return reply['seq'] as number;
}

/**
 * Group commit (README "Performance"): commands waiting for one session
 * while its append is in flight go into the journal as one message, each
 * answered with its own seq, and everything downstream (replay, retries,
 * secondaries, patches) sees what one-by-one execution would have made.
 */
describe.each(targets)('group commit ($name)', (target) => {
  const track = cleanupAfterEach();

  async function cohort(t: Target, options: Parameters<typeof rawCohort>[1] = {}) {
    const c = await rawCohort(t.bus, { clock: t.clock, ...options });
    track(c.worker);
    track(c.raw);
    return c;
  }

  /** `n` commands on `s` all at once, over one connection in this order; their replies. */
  function burst(t: Target, s: RawSession, commands: readonly [string, Record<string, unknown>][]) {
    return t.settle(Promise.all(commands.map(([cmdId, event]) => s.send(CLIENT, cmdId, event))));
  }

  it('64 commands in flight: fewer journal messages, each its own seq, the same journal and document as one by one; retries are duplicates, before and after a crash', async () => {
    const t = target.make();
    const a = await cohort(t);
    const hot = a.session('hot');
    const commands = Array.from({ length: 64 }, (_, i) => [`c${i}`, add(i + 1)] as [string, Record<string, unknown>]);
    const replies = await burst(t, hot, commands);
    const seqs = replies.map(seqOf);
    expect([...seqs].sort((x, y) => x - y)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    const records = await hot.journal();
    expect(records.length).toBeLessThan(64);
    expect(records.some((r) => r.events.length > 1)).toBe(true);
    const journaled = eventsOf(records);
    expect(journaled.map(([seq]) => seq)).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    // Each command is where its reply said.
    for (const [i, [cmdId]] of commands.entries()) expect(journaled[seqs[i]! - 1]![1]).toBe(cmdId);

    // The reference: the same commands one at a time, in the order the batches gave them, on a worker that never batches.
    const b = await cohort(t, { groupCommit: { maxCommands: 1 } });
    const ref = b.session('hot');
    const inOrder = [...commands.keys()].sort((x, y) => seqs[x]! - seqs[y]!);
    for (const i of inOrder)
      expect(seqOf(await t.settle(ref.send(CLIENT, commands[i]![0], commands[i]![1])))).toBe(seqs[i]);
    const refRecords = await ref.journal();
    expect(refRecords).toHaveLength(64);
    expect(eventsOf(refRecords)).toEqual(journaled);
    const doc = await t.settle(hot.read({ client: CLIENT }));
    const refDoc = await t.settle(ref.read({ client: CLIENT }));
    expect(doc).toMatchObject({ ok: true, seq: 64 });
    expect(docOf(doc)).toEqual(docOf(refDoc));

    // Retried while the copy is in memory: duplicates, with the seq each got.
    const again = await burst(t, hot, commands.slice(0, 16));
    again.forEach((r, i) => expect(r).toMatchObject({ ok: true, seq: seqs[i], duplicate: true }));

    // The worker dies (no passivation, no snapshot); a successor replays the batched journal.
    await a.workerBus.close();
    const successor = await cohort(t, { cluster: a.cluster });
    const after = successor.session('hot');
    expect(await t.settle(after.read({ client: CLIENT }))).toMatchObject({
      ok: true,
      seq: 64,
      document: docOf(doc),
    });
    const retried = await burst(t, after, commands);
    retried.forEach((r, i) => expect(r).toMatchObject({ ok: true, seq: seqs[i], duplicate: true }));
    // Positive control: a new id is a new command.
    expect(await t.settle(after.send(CLIENT, 'fresh', add(1)))).toMatchObject({ ok: true, seq: 65 });
  });

  it('rejected commands inside a batch are answered as rejected and are not journaled; the others commit around them', async () => {
    const t = target.make();
    const c = await cohort(t);
    const s = c.session('mixed');
    // The counter refuses ADD of 0 or less.
    const commands = Array.from(
      { length: 48 },
      (_, i) => [`m${i}`, add(i % 4 === 3 ? 0 : 1)] as [string, Record<string, unknown>],
    );
    const replies = await burst(t, s, commands);
    const rejected = commands.filter((_, i) => i % 4 === 3).map(([id]) => id);
    replies.forEach((r, i) => {
      if (i % 4 === 3) expect(errorOf(r)).toMatchObject({ name: 'EventRejectedError', retryable: false });
      else expect(r).toMatchObject({ ok: true });
    });
    expect(
      replies
        .filter((r) => r.ok)
        .map(seqOf)
        .sort((x, y) => x - y),
    ).toEqual(Array.from({ length: 36 }, (_, i) => i + 1));
    const records = await s.journal();
    expect(records.some((r) => r.events.length > 1)).toBe(true);
    const ids = eventsOf(records).map(([, id]) => id);
    expect(ids).toHaveLength(36);
    for (const id of rejected) expect(ids).not.toContain(id);
    expect(await t.settle(s.read({ client: CLIENT }))).toMatchObject({ ok: true, seq: 36, document: { n: 36 } });
  });

  it('expectSeq inside a batch is checked against the commands before it in the batch', async () => {
    const t = target.make();
    const c = await cohort(t);
    const s = c.session('cas');
    expect(seqOf(await t.settle(s.send(CLIENT, 'base', add(1))))).toBe(1);
    // 16 plain commands keep the session busy; the three behind them wait and go together.
    const plain = Array.from({ length: 16 }, (_, i) => [`p${i}`, add(1)] as [string, Record<string, unknown>]);
    const all = [
      ...plain.map(([cmdId, event]) => s.send(CLIENT, cmdId, event)),
      s.cmd({ kind: 'command', cmdId: 'x', client: CLIENT, event: add(10), expectSeq: 17 }),
      s.cmd({ kind: 'command', cmdId: 'y', client: CLIENT, event: add(100), expectSeq: 17 }),
      s.cmd({ kind: 'command', cmdId: 'z', client: CLIENT, event: add(1000), expectSeq: 18 }),
    ];
    const replies = await t.settle(Promise.all(all));
    const [x, y, z] = replies.slice(16);
    expect(x).toMatchObject({ ok: true, seq: 18 });
    expect(errorOf(y!)).toMatchObject({ name: 'ConflictError', details: { expected: 17, actual: 18 } });
    expect(z).toMatchObject({ ok: true, seq: 19 });
    expect(await t.settle(s.read({ client: CLIENT }))).toMatchObject({ seq: 19, document: { n: 1 + 16 + 10 + 1000 } });
    expect((await s.journal()).some((r) => r.events.length > 1)).toBe(true);
  });

  it('the same command id twice in one batch is applied once; both are answered with its seq', async () => {
    const t = target.make();
    const c = await cohort(t);
    const s = c.session('twins');
    const commands = [
      ...Array.from({ length: 8 }, (_, i) => [`w${i}`, add(1)] as [string, Record<string, unknown>]),
      ['twin', add(5)],
      ['twin', add(5)],
    ] as [string, Record<string, unknown>][];
    const replies = await burst(t, s, commands);
    const [first, second] = replies.slice(8);
    expect(first).toMatchObject({ ok: true });
    expect(second).toMatchObject({ ok: true, seq: seqOf(first!), duplicate: true });
    expect(await t.settle(s.read({ client: CLIENT }))).toMatchObject({ seq: 9, document: { n: 13 } });
    expect((await s.journal()).some((r) => r.events.length > 1)).toBe(true);
  });

  it('hostile commands inside a batch get their typed errors; the good ones around them commit and the session keeps serving', async () => {
    const t = target.make();
    const c = await cohort(t, { app: { machine: bagMachine } });
    const s = c.session('bag');
    const good = (i: number): Promise<WireReply> => s.send(CLIENT, `g${i}`, { type: 'PUT', key: `k${i}`, value: i });
    const all = [
      good(0),
      good(1),
      // A document that would hold a forbidden key: refused with the reason, nothing of it journaled.
      s.send(CLIENT, 'proto', { type: 'PUT', key: 'constructor', value: 1 }),
      good(2),
      // A runtime event no client may send.
      s.send(CLIENT, 'internal', { type: 'xstate.after.1.bag', key: 'x', value: 1 }),
      good(3),
      // Not msgpack at all, and a command without an id.
      s.raw('cmd', new Uint8Array([0xc1, 0xff, 0x00])),
      s.cmd({ kind: 'command', client: CLIENT, event: { type: 'PUT', key: 'noid', value: 1 } }),
      good(4),
      good(5),
    ];
    const replies = await t.settle(Promise.all(all));
    const [g0, g1, proto, g2, internal, g3, garbage, noId, g4, g5] = replies;
    for (const r of [g0, g1, g2, g3, g4, g5]) expect(r).toMatchObject({ ok: true });
    expect(errorOf(proto!)).toMatchObject({ name: 'EventRejectedError' });
    expect(errorOf(internal!)).toMatchObject({ name: 'InvalidRequestError' });
    expect(errorOf(garbage!)).toMatchObject({ name: 'DecodeError' });
    expect(errorOf(noId!)).toMatchObject({ name: 'InvalidRequestError' });
    const records = await s.journal();
    expect(records.some((r) => r.events.length > 1)).toBe(true);
    expect(eventsOf(records).map(([, id]) => id)).toEqual(['g0', 'g1', 'g2', 'g3', 'g4', 'g5']);
    expect(await t.settle(s.read({ client: CLIENT }))).toMatchObject({
      ok: true,
      seq: 6,
      document: { k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5 },
    });
    // Positive control after it all.
    expect(await t.settle(good(6))).toMatchObject({ ok: true, seq: 7 });
  });

  it('a batch stays within its bounds: commands and bytes', async () => {
    const t = target.make();
    const byCount = await cohort(t, { groupCommit: { maxCommands: 8 } });
    const s = byCount.session('bounded');
    await burst(
      t,
      s,
      Array.from({ length: 40 }, (_, i) => [`b${i}`, add(1)]),
    );
    const counted = await s.journal();
    expect(Math.max(...counted.map((r) => r.events.length))).toBeLessThanOrEqual(8);
    expect(counted.some((r) => r.events.length > 1)).toBe(true);

    const bySize = await cohort(t, { groupCommit: { maxBytes: 2_048 } });
    const big = bySize.session('bytes');
    const pad = 'x'.repeat(500);
    await burst(
      t,
      big,
      Array.from({ length: 24 }, (_, i) => [`k${i}`, add(1, { pad })]),
    );
    const sized = await big.journal();
    // About 630 B a command counted: three fit in 2 KiB, four do not.
    expect(Math.max(...sized.map((r) => r.events.length))).toBeLessThanOrEqual(3);
    expect(sized.some((r) => r.events.length > 1)).toBe(true);
    expect(await t.settle(big.read({ client: CLIENT }))).toMatchObject({ seq: 24 });
  });

  it('each command of a batch still gets its own patch, in seq order', async () => {
    const t = target.make();
    const c = await cohort(t);
    const s = c.session('patched');
    const patches = await s.patches();
    await burst(
      t,
      s,
      Array.from({ length: 32 }, (_, i) => [`q${i}`, add(1)]),
    );
    await t.settle(c.raw.flush());
    expect((await s.journal()).some((r) => r.events.length > 1)).toBe(true);
    expect(patches.map((p) => [p.prev, p.seq])).toEqual(Array.from({ length: 32 }, (_, i) => [i, i + 1]));
  });
});

describe('group commit settings', () => {
  it("a batch's id: the same commands in the same order give the same id, any other set another; a lone command keeps its own", () => {
    const id = batchMsgId(['a', 'b', 'c']);
    expect(id).toBe(batchMsgId(['a', 'b', 'c']));
    expect(isBatchMsgId(id)).toBe(true);
    for (const other of [
      ['a', 'c', 'b'],
      ['a', 'b'],
      ['a', 'b', 'c', 'd'],
      ['a\nb', 'c'],
    ])
      expect(batchMsgId(other)).not.toBe(id);
    expect(batchMsgId(['only'])).toBe('only');
    for (const notBatch of ['only', 'batch:', 'batch:3:short', 'tx-1', `batch:x:${'a'.repeat(22)}`])
      expect(isBatchMsgId(notBatch)).toBe(false);
  });

  it('limits that make no sense refuse the worker before it connects', async () => {
    for (const groupCommit of [{ maxCommands: 0 }, { maxCommands: 1.5 }, { maxBytes: -1 }, { maxBytes: Number.NaN }]) {
      await expect(
        startWorker({
          bus: createMemoryBus({ server: createMemoryServer() }),
          cluster: 'gc',
          applications: [],
          shards: [0],
          shardCount: 1,
          groupCommit,
        }),
      ).rejects.toThrow(RangeError);
    }
    // Positive control.
    const worker = await startWorker({
      bus: createMemoryBus({ server: createMemoryServer() }),
      cluster: 'gc',
      applications: [],
      shards: [0],
      shardCount: 1,
      groupCommit: { maxCommands: 1 },
    });
    expect(worker.serving).toEqual([0]);
    await worker.stop();
  });
});
