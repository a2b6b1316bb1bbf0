import { randomUUID } from 'node:crypto';
import { headers, type Msg } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, shardOf, startWorker, type Worker } from '../../index.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { cmdSubject, journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import { decode, encode, HEADER, type JournalRecord } from '../../internal.js';
import { commandRequest } from '../../protocol/requests.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { cleanupAfterEach } from '../cleanup.js';
import { connectTest, startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 4;
const app = defineApplication({ name: 'counter', machine: counterMachine });

/** Header values of `m` by name, as `nats sub` prints them. */
function headersOf(m: Msg): Record<string, string> {
  const out: Record<string, string> = {};
  if (m.headers) for (const [name, values] of m.headers) out[name] = values.join(',');
  return out;
}

describe('headers that explain each message, as nats sub shows them (nats-server)', () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server[Symbol.asyncDispose]();
  });
  const track = cleanupAfterEach();

  async function cluster(): Promise<{ name: string; workers: Worker[]; seen: Msg[] }> {
    const name = `h${randomUUID().slice(0, 8)}`;
    const nc = await connectTest(server);
    track({ close: () => nc.close() });
    const seen: Msg[] = [];
    nc.subscribe(`cohort.${name}.>`, { callback: (_err, m) => void seen.push(m) });
    await nc.flush();
    const workers: Worker[] = [];
    for (let i = 0; i < 2; i++) {
      const bus = track(await createNatsBus({ servers: server.url }));
      workers.push(
        track(await startWorker({ bus, cluster: name, applications: [app], shardCount: SHARDS, id: `w${i}` })),
      );
    }
    await waitFor(() => workers.every((w) => w.view?.members.length === 2 && w.serving.length === SHARDS / 2), {
      what: 'two workers sharing the shards',
      timeoutMs: 15_000,
    });
    return { name, workers, seen };
  }

  it('a command, a read, the journal entry, a heartbeat and a replica report each say what they are', async () => {
    const { name, seen } = await cluster();
    const bus = track(await createNatsBus({ servers: server.url }));
    const client = track(await connect({ bus, cluster: name, label: 'teller', shardCount: SHARDS }));
    const alice = client.session('counter', 'alice');
    await alice.send({ type: 'ADD', by: 2 });
    await alice.read();
    const shard = shardOf('counter', 'alice', SHARDS);
    const on = (kind: string) => (m: Msg) => m.subject.startsWith(`cohort.${name}.${kind}.`);
    const command = await waitFor(() => seen.find(on('cmd')), { what: 'the command' });
    expect(headersOf(command)).toEqual({
      [HEADER.event]: 'ADD',
      [HEADER.client]: client.id,
      [HEADER.command]: expect.stringMatching(/.+/),
    });
    const read = await waitFor(() => seen.find(on('read')), { what: 'the read' });
    expect(headersOf(read)).toEqual({ [HEADER.event]: 'read', [HEADER.client]: client.id });

    // The journal entry, from the stream as nats stream view reads it: what it had, and the event and client.
    const journal = await bus.journal({ name: journalStreamName(name), subjects: [journalStreamFilter(name)] });
    const entries = [];
    for await (const e of journal.read(journalSubject(name, shard, 'counter', 'alice'))) entries.push(e);
    expect(entries).toHaveLength(1);
    const record = decode(entries[0]!.data) as JournalRecord;
    expect(record.events[0]!.event.meta.cmdId).toBe(headersOf(command)[HEADER.command]);
    expect(entries[0]!.headers).toMatchObject({
      [HEADER.type]: 'event',
      [HEADER.session]: 'counter/alice',
      [HEADER.command]: headersOf(command)[HEADER.command],
      [HEADER.seq]: '1',
      [HEADER.event]: 'ADD',
      [HEADER.client]: client.id,
      [HEADER.worker]: expect.stringMatching(/^w[01]$/),
    });

    const beat = await waitFor(() => seen.find(on('hb')), { what: 'a heartbeat' });
    expect(headersOf(beat)).toEqual({
      [HEADER.worker]: beat.subject.split('.').at(-1),
      [HEADER.beat]: expect.stringMatching(/^\d+$/),
    });
    const report = await waitFor(() => seen.find((m) => m.subject === `cohort.${name}.rep.${shard}`), {
      what: 'a replica report on the shard',
    });
    const reported = decode(report.data) as { w: string; s: number };
    expect(headersOf(report)).toEqual({ [HEADER.worker]: reported.w, [HEADER.shard]: String(shard) });
    expect(reported.s).toBe(shard);
  });

  it('a request whose headers lie is judged by its body: the journal says who and what the body said; text with a line break is escaped', async () => {
    const { name, seen } = await cluster();
    await using nc = await connectTest(server);
    const shard = shardOf('counter', 'bob', SHARDS);
    const body = encode(commandRequest({ type: 'ADD', by: 3 }, 'forged-1', 'honest#1'));
    const lies = headers();
    lies.set(HEADER.event, 'STOP');
    lies.set(HEADER.client, 'mallory#1');
    lies.set(HEADER.command, 'other');
    const reply = await nc.request(cmdSubject(name, shard, 'counter', 'bob', 'honest'), body, {
      headers: lies,
      timeout: 5_000,
    });
    expect(decode(reply.data)).toMatchObject({ ok: true, seq: 1 });
    const bus = track(await createNatsBus({ servers: server.url }));
    const journal = await bus.journal({ name: journalStreamName(name), subjects: [journalStreamFilter(name)] });
    const entries = [];
    for await (const e of journal.read(journalSubject(name, shard, 'counter', 'bob'))) entries.push(e);
    expect(entries.map((e) => e.headers)).toEqual([
      expect.objectContaining({ [HEADER.event]: 'ADD', [HEADER.client]: 'honest#1', [HEADER.command]: 'forged-1' }),
    ]);
    expect((decode(entries[0]!.data) as JournalRecord).events[0]!.event).toMatchObject({ type: 'ADD', by: 3 });

    // An event type with a line break still makes one header line (escaped); the worker refuses the event itself.
    const client = track(await connect({ bus, cluster: name, label: 'odd', shardCount: SHARDS }));
    await client
      .session('counter', 'carol')
      .send({ type: 'A\r\nB' })
      .catch(() => undefined);
    const odd = await waitFor(
      () => seen.find((m) => m.subject.startsWith(`cohort.${name}.cmd.`) && m.subject.includes('.carol.')),
      {
        what: 'the odd command',
      },
    );
    expect(headersOf(odd)[HEADER.event]).toBe('A=0D=0AB');
  });
});
