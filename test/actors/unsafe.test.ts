/**
 * The test-only UNSAFE switches do break what they say, so a harness that
 * does not catch them is the harness's fault: with the fence off, a stale
 * copy's append lands beside another writer's.
 */
import { describe, expect, it } from 'vitest';
import { connect, createMemoryBus, createMemoryServer, defineApplication, shardOf, startWorker } from '../../index.js';
import { decode, encode, journalStreamFilter, journalStreamName, journalSubject, UNSAFE } from '../../internal.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';

const counter = defineApplication({ name: 'counter', machine: counterMachine, commit: 'journal' });

describe('UNSAFE switches', () => {
  const track = cleanupAfterEach();

  for (const unfenced of [false, true]) {
    it(`${unfenced ? 'unfenced' : 'fenced (control)'}: an entry another writer appended ${unfenced ? 'is written over' : 'makes the stale copy reload'}`, async () => {
      const server = createMemoryServer();
      const cluster = `u${unfenced ? 1 : 0}`;
      const worker = track(
        await startWorker({
          bus: createMemoryBus({ server }),
          cluster,
          applications: [counter],
          shards: [0, 1, 2, 3],
          shardCount: 4,
          ...(unfenced ? { [UNSAFE]: { unfenced: true } } : {}),
        }),
      );
      const client = track(await connect({ bus: createMemoryBus({ server }), cluster, shardCount: 4 }));
      const s = client.session('counter', 'x');
      expect(await s.send({ type: 'ADD', by: 1 })).toMatchObject({ seq: 1 });
      // Another writer (a primary that took over) appends seq 2 behind this worker's back.
      const raw = track(createMemoryBus({ server }));
      const journal = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
      const subject = journalSubject(cluster, shardOf('counter', 'x', 4), 'counter', 'x');
      let first: { events: unknown[] } | undefined;
      for await (const e of journal.read(subject)) first ??= decode(e.data) as { events: unknown[] };
      const foreign = { ...first!, events: [{ ...(first!.events[0] as object), seq: 2 }] };
      await journal.append(subject, encode(foreign), { msgId: 'foreign-1' });
      await s.send({ type: 'ADD', by: 10 });
      const seqs: number[] = [];
      for await (const e of journal.read(subject))
        for (const ev of (decode(e.data) as { events: { seq: number }[] }).events) seqs.push(ev.seq);
      // Fenced: the stale copy reloads and goes on after the foreign entry. Unfenced: two entries claim seq 2.
      expect(seqs).toEqual(unfenced ? [1, 2, 2] : [1, 2, 3]);
      expect(worker.id).toBeTruthy();
    });
  }
});
