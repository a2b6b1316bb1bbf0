import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import { HEADER, type JournalRecord } from '../../internal.js';
import { decode, encode } from '../../bus/codec.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { startWorkerProcess } from '../fixtures/workerProcess.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

const app = defineApplication({ name: 'counter', machine: counterMachine, commit: 'journal' });
const memoryServer = createMemoryServer();
const targets = [
  { name: 'memory', bus: async (): Promise<Bus> => createMemoryBus({ server: memoryServer }) },
  { name: 'nats', bus: (): Promise<Bus> => createNatsBus({ servers: nats.url }) },
];

async function history(bus: Bus, cluster: string, id: string): Promise<{ seq: number; by: number }[]> {
  const j = await bus.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
  const out: { seq: number; by: number }[] = [];
  for await (const e of j.read(journalSubject(cluster, shardOf('counter', id), 'counter', id))) {
    for (const ev of (decode(e.data) as JournalRecord).events) out.push({ seq: ev.seq, by: ev.event['by'] as number });
  }
  return out;
}

describe.each(targets)('durability ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async (): Promise<Bus> => track(await target.bus());
  const worker = async (cluster: string, commit: 'memory' | 'journal' = 'journal'): Promise<Worker> =>
    track(
      await startWorker({ bus: await bus(), cluster, applications: [commit === 'journal' ? app : { ...app, commit }] }),
    );

  it('two workers that both believe they own a shard: one history survives', async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    await worker(cluster);
    await worker(cluster); // both subscribe to every shard: both get every command
    const client = await connect({ bus: await bus(), cluster, label: 'split' });
    const s = client.session('counter', 'contested');
    const acked: number[] = [];
    for (let i = 1; i <= 20; i++) acked.push((await s.send({ type: 'ADD', by: i })).seq);
    expect(acked).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const h = await history(await bus(), cluster, 'contested');
    expect(h.map((x) => x.seq)).toEqual(acked); // one history: no seq twice, none missing
    expect(h.map((x) => x.by)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const r = await s.read();
    expect(r.document).toMatchObject({ n: 210 });
  });

  it('a stale copy fails its fenced append, steps down, reloads, and never acknowledges an unjournaled write', async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    const w = await worker(cluster);
    const client = await connect({ bus: await bus(), cluster, label: 'fence' });
    const s = client.session('counter', 'fenced');
    await s.send({ type: 'ADD', by: 1 });
    // Another owner (a deposed primary's successor) appends behind this worker's back.
    const raw = await bus();
    const j = await raw.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
    const subject = journalSubject(cluster, shardOf('counter', 'fenced'), 'counter', 'fenced');
    const foreign: JournalRecord = {
      v: 1,
      events: [
        { seq: 2, event: { type: 'ADD', by: 100, meta: { time: 1, cmdId: 'foreign-1', client: 'other-owner' } } },
      ],
    };
    // Written under the shard's epoch, as its primary's would be (an older epoch's entry would be ignored).
    const epoch = String(w.view!.shards[shardOf('counter', 'fenced')]!.epoch);
    await j.append(subject, encode(foreign), {
      msgId: 'foreign-1',
      expectedLastSubjectSeq: await j.lastSeq(subject),
      headers: { [HEADER.epoch]: epoch },
    });
    // This worker's copy is at seq 1: its append is fenced off, it reloads, and the retry commits on top.
    expect((await s.send({ type: 'ADD', by: 10 })).seq).toBe(3);
    expect((await history(raw, cluster, 'fenced')).map((x) => x.by)).toEqual([1, 100, 10]);
    expect((await s.read()).document).toMatchObject({ n: 111 });
  });

  it('commit level memory replies before the journal, which catches up in the background', async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    await worker(cluster, 'memory');
    const client = await connect({ bus: await bus(), cluster, label: 'fast' });
    const s = client.session('counter', 'quick');
    const acks = await Promise.all(Array.from({ length: 30 }, () => s.send({ type: 'ADD', by: 1 })));
    expect(acks.map((a) => a.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const raw = await bus();
    const h = await waitFor(
      async () => {
        const x = await history(raw, cluster, 'quick');
        return x.length === 30 && x;
      },
      { what: 'background journal' },
    );
    expect(h.map((x) => x.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('hosts 10,000 sessions on one worker', { timeout: 120_000 }, async () => {
    const cluster = `f${randomUUID().slice(0, 8)}`;
    const w = await worker(cluster);
    const client = await connect({ bus: await bus(), cluster, label: 'many', timeout: 30_000 });
    const N = 10_000;
    let next = 0;
    const lane = async () => {
      while (next < N) {
        const i = next++;
        await client.session('counter', `s${i}`).send({ type: 'ADD', by: i + 1 });
      }
    };
    await Promise.all(Array.from({ length: 128 }, lane));
    expect(w.activeSessions).toBe(N);
    for (const i of [0, 4_321, N - 1])
      expect((await client.session('counter', `s${i}`).read()).document).toMatchObject({ n: i + 1 });
  });
});

describe('a worker process killed with SIGKILL (nats)', () => {
  it('loses no acknowledged write', async () => {
    const cluster = `k${randomUUID().slice(0, 8)}`;
    const child = await startWorkerProcess(nats.url, cluster);
    const clientBus = await createNatsBus({ servers: nats.url });
    const client = await connect({ bus: clientBus, cluster, label: 'k' });
    const acked = new Map<string, number>();
    await Promise.all(
      Array.from({ length: 10 }, async (_, k) => {
        for (let i = 0; i < 10; i++) {
          const { seq } = await client.session('counter', `acct-${k}`).send({ type: 'ADD', by: 1 });
          acked.set(`acct-${k}`, seq);
        }
      }),
    );
    await child.kill();
    const replacement = await startWorker({ nats: nats.url, cluster, applications: [app] });
    try {
      for (const [id, seq] of acked) {
        const r = await client.session('counter', id).read();
        expect(r.seq).toBe(seq);
        expect(r.document).toMatchObject({ n: seq });
      }
    } finally {
      await replacement.stop();
      await clientBus.close();
    }
  });
});
