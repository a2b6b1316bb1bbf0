/**
 * Epoch markers (protocol/epochs.ts): a primary marks the epoch it takes a
 * shard at in the journal before it serves it, and every reader ignores an
 * entry an older epoch wrote after that mark. Entry points that read what
 * others wrote: the marker itself (junk, another shard's, a forged future
 * epoch) and late entries on session subjects.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defineApplication, startWorker, type Worker } from '../../index.js';
import { HEADER, type JournalRecord } from '../../internal.js';
import { decode, encode } from '../../bus/codec.js';
import { epochSubject, journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus, Journal } from '../../bus/types.js';
import { readJournals } from '../../harness/checker/index.js';
import { EpochFences, parseEpochMarker, type EpochMarker } from '../../protocol/epochs.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession, SHARDS } from '../fixtures/rawCohort.js';

const targets = busTargets();
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const C = 'epochs#0000000e';

describe('EpochFences', () => {
  const marker = (epoch: number, earlier: [number, number][] = []): EpochMarker => ({
    v: 1,
    shard: 3,
    epoch,
    worker: 'w',
    earlier,
  });

  it('admits an entry unless a newer epoch marked the shard before it', () => {
    const f = new EpochFences();
    expect(f.admits(5, 0)).toBe(true);
    f.addMarker(10, marker(2));
    expect([f.admits(9, 1), f.admits(11, 1), f.admits(11, 2), f.admits(11, 3)]).toEqual([true, false, true, true]);
    // The earlier markers a marker lists count as if read: epoch 1 began at 4, so epoch 0 after it is late too.
    f.addMarker(20, marker(3, [[1, 4]]));
    expect([f.admits(5, 0), f.admits(3, 0), f.admits(15, 2), f.admits(21, 2)]).toEqual([false, true, true, false]);
  });

  it("a deposed primary's own marker landing late changes nothing: the highest epoch before an entry is in force", () => {
    const f = new EpochFences();
    f.addMarker(10, marker(3));
    f.addMarker(12, marker(2));
    expect(f.inForceAt(13)).toBe(3);
    expect(f.admits(13, 2)).toBe(false);
  });

  it('a marker above the ceiling (an epoch no view has given the shard: forged) does not count', () => {
    const f = new EpochFences();
    f.addMarker(10, marker(2));
    f.addMarker(11, marker(1_000_000));
    expect(f.admits(12, 2, 2)).toBe(true);
    expect(f.admits(12, 1, 2)).toBe(false);
    // Control: without a ceiling the huge epoch would shut out every real entry after it.
    expect(f.admits(12, 2)).toBe(false);
  });

  it.each([
    [null, 'not a map'],
    [{ v: 2, shard: 3, epoch: 1, worker: 'w', earlier: [] }, 'version'],
    [{ v: 1, shard: 4, epoch: 1, worker: 'w', earlier: [] }, 'names shard 4'],
    [{ v: 1, shard: 3, epoch: 0, worker: 'w', earlier: [] }, 'no epoch'],
    [{ v: 1, shard: 3, epoch: 1.5, worker: 'w', earlier: [] }, 'no epoch'],
    [{ v: 1, shard: 3, epoch: 1, worker: '', earlier: [] }, 'no worker'],
    [{ v: 1, shard: 3, epoch: 2, worker: 'w', earlier: 'x' }, 'no list'],
    [{ v: 1, shard: 3, epoch: 2, worker: 'w', earlier: [[1]] }, 'badly'],
    [{ v: 1, shard: 3, epoch: 2, worker: 'w', earlier: [[2, 5]] }, 'as earlier than its own'],
    [{ v: 1, shard: 3, epoch: 40, worker: 'w', earlier: Array.from({ length: 33 }, (_, i) => [i, i]) }, 'no list'],
  ])('parseEpochMarker refuses %j', (body, why) => {
    expect(parseEpochMarker(body, 3)).toContain(why);
  });

  it('parseEpochMarker takes a well-formed marker (control)', () => {
    expect(parseEpochMarker(marker(2, [[1, 4]]), 3)).toEqual(marker(2, [[1, 4]]));
  });
});

describe.each(targets)('epoch markers ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async (): Promise<Bus> => track(await target.bus());

  async function cluster(before?: (j: Journal, name: string) => Promise<void>) {
    const name = `e${randomUUID().slice(0, 8)}`;
    const raw = await bus();
    const j = await raw.journal({ name: journalStreamName(name), subjects: [journalStreamFilter(name)] });
    await before?.(j, name);
    const worker: Worker = track(
      await startWorker({ bus: await bus(), cluster: name, applications: [app], shardCount: SHARDS, replicas: 0 }),
    );
    return { name, raw, j, worker, session: (id: string) => new RawSession(raw, name, id) };
  }

  /** As a client does: a SessionMovedError (the copy was fenced off and dropped) is sent again, once. */
  async function send(s: RawSession, cmdId: string, by: number): Promise<Record<string, unknown>> {
    for (let attempt = 1; ; attempt++) {
      const reply = await s.send(C, cmdId, { type: 'ADD', by });
      if (reply.ok) return reply;
      if (reply.error.name !== 'SessionMovedError' || attempt >= 2) throw new Error(JSON.stringify(reply));
    }
  }

  async function markerOf(j: Journal, name: string, shard: number): Promise<EpochMarker | string | undefined> {
    const last = await j.last(epochSubject(name, shard));
    return last === null ? undefined : parseEpochMarker(decode(last.data), shard);
  }

  it('a primary marks each shard with the epoch and member its view gives it before serving it', async () => {
    const { name, j, worker } = await cluster();
    const view = worker.view!;
    for (let shard = 0; shard < SHARDS; shard++) {
      expect(await markerOf(j, name, shard)).toEqual({
        v: 1,
        shard,
        epoch: view.shards[shard]!.epoch,
        worker: view.shards[shard]!.primary,
        earlier: [],
      });
    }
  });

  /** An entry for session `id` as a deposed primary of an older epoch would write it, after the marker. */
  async function lateEntry(j: Journal, name: string, s: RawSession, epoch: number, cmdId: string): Promise<number> {
    const subject = journalSubject(name, s.shard, 'counter', s.id);
    const record: JournalRecord = {
      v: 1,
      events: [{ seq: 2, event: { type: 'ADD', by: 100, meta: { time: 1, cmdId, client: C } } }],
    };
    const ack = await j.append(subject, encode(record), {
      msgId: cmdId,
      expectedLastSubjectSeq: await j.lastSeq(subject),
      headers: { [HEADER.epoch]: String(epoch), [HEADER.worker]: 'deposed', [HEADER.command]: cmdId },
    });
    return ack.seq;
  }

  it("an older epoch's entry stored after the marker is applied by nobody; the fence moves past it", async () => {
    const { name, raw, j, worker, session } = await cluster();
    const s = session('late');
    expect(await s.send(C, 'c1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    const epoch = worker.view!.shards[s.shard]!.epoch;
    const at = await lateEntry(j, name, s, epoch - 1, 'late-1');
    // The worker's copy is fenced off by the late entry, reloads without it, and commits on top of it.
    expect(await send(s, 'c2', 10)).toMatchObject({ ok: true, seq: 2 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 2, document: { n: 11 } });
    // Passivated and loaded again from the journal: still without it.
    await worker.passivate();
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 2, document: { n: 11 } });
    const journal = (await readJournals(raw, name)).find((x) => x.session === 'late')!;
    expect(journal.events.map((e) => e.event['by'])).toEqual([1, 10]);
    expect(journal.ignored).toMatchObject([{ streamSeq: at, epoch: epoch - 1, inForce: epoch, cmdIds: ['late-1'] }]);
  });

  it("the same under the shard's own epoch is a real entry (control)", async () => {
    const { name, j, worker, session } = await cluster();
    const s = session('real');
    await s.send(C, 'c1', { type: 'ADD', by: 1 });
    await lateEntry(j, name, s, worker.view!.shards[s.shard]!.epoch, 'real-1');
    expect(await send(s, 'c2', 10)).toMatchObject({ ok: true, seq: 3 });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, document: { n: 111 } });
  });

  it('a command retried after its first copy landed late under the old epoch is journaled again and applied once', async () => {
    const { name, raw, j, worker, session } = await cluster();
    const s = session('retried');
    await s.send(C, 'c1', { type: 'ADD', by: 1 });
    const epoch = worker.view!.shards[s.shard]!.epoch;
    await lateEntry(j, name, s, epoch - 1, 'again-1');
    // The client, told SessionMovedError by the deposed primary, sends the same command to the new one.
    expect(await send(s, 'again-1', 100)).toMatchObject({ ok: true, seq: 2 });
    expect(await send(s, 'again-1', 100)).toMatchObject({ ok: true, seq: 2, duplicate: true });
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 2, document: { n: 101 } });
    const journal = (await readJournals(raw, name)).find((x) => x.session === 'retried')!;
    expect(journal.events.map((e) => [e.event.meta.cmdId, e.epoch])).toEqual([
      ['c1', epoch],
      ['again-1', epoch],
    ]);
    expect(journal.ignored?.map((e) => e.cmdIds)).toEqual([['again-1']]);
  });

  it('junk and forged markers on the epoch subjects: the worker marks its epochs after them and serves', async () => {
    const forged: Record<number, unknown> = {
      0: 'not a marker',
      1: { v: 1, shard: 2, epoch: 1, worker: 'x', earlier: [] },
      2: { v: 1, shard: 2, epoch: 1_000_000, worker: 'forger', earlier: [] },
    };
    const { name, j, worker, session } = await cluster(async (j, name) => {
      await j.append(epochSubject(name, 3), new Uint8Array([0xc1, 0xff, 0x00]));
      for (const [shard, body] of Object.entries(forged))
        await j.append(epochSubject(name, Number(shard)), encode(body));
    });
    for (let shard = 0; shard < SHARDS; shard++)
      expect(await markerOf(j, name, shard)).toMatchObject({ epoch: worker.view!.shards[shard]!.epoch, earlier: [] });
    // Sessions on every shard commit, and their journals replay (cache verification reads them from the
    // start), the forged huge epoch notwithstanding.
    const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    expect(new Set(ids.map((id) => session(id).shard)).size).toBe(SHARDS);
    for (const id of ids) {
      const s = session(id);
      expect(await s.send(C, `${id}1`, { type: 'ADD', by: 2 })).toMatchObject({ ok: true, seq: 1 });
      expect(await s.send(C, `${id}2`, { type: 'ADD', by: 3 })).toMatchObject({ ok: true, seq: 2 });
      expect(await s.verify({ client: C, since: 0, max: 100 })).toMatchObject({ ok: true, outcome: 'replayed' });
    }
  });
});
