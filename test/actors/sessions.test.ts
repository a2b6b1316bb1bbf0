import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConflictError,
  connect,
  defineApplication,
  EventRejectedError,
  InvalidRequestError,
  type Patch,
  shardOf,
  startWorker,
  UnknownApplicationError,
  type Worker,
} from '../../index.js';
import type { CommandReply, JournalRecord } from '../../internal.js';
import { decode, encode } from '../../bus/codec.js';
import { DecodeError, TimeoutError } from '../../bus/errors.js';
import { createMemoryBus, createMemoryServer, type MemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { cmdSubject, journalStreamFilter, journalStreamName, journalSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { counterMachine } from '../fixtures/counter.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

type Target = { name: 'memory' | 'nats'; bus(): Promise<Bus> };

let nats: NatsServer;
let memory: MemoryServer;
beforeAll(async () => {
  nats = await startTestServer();
  memory = createMemoryServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});

const targets: Target[] = [
  { name: 'memory', bus: async () => createMemoryBus({ server: memory }) },
  { name: 'nats', bus: () => createNatsBus({ servers: nats.url }) },
];

describe.each(targets)('sessions on workers ($name)', (target) => {
  describe.each(['live', 'restored'] as const)('%s', (mode) => {
    const opened: { close(): Promise<void> }[] = [];
    const workers: Worker[] = [];
    let cluster: string;

    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()));
      await Promise.all(opened.splice(0).map((b) => b.close()));
    });

    async function bus(): Promise<Bus> {
      const b = await target.bus();
      opened.push(b);
      return b;
    }

    async function cohort(options: { commit?: 'memory' | 'journal'; lifetime?: number } = {}) {
      cluster = `t${randomUUID().slice(0, 8)}`;
      const app = defineApplication({
        name: 'counter',
        machine: counterMachine,
        commit: options.commit ?? 'journal',
        unusedSessionLifetime: options.lifetime ?? 60_000,
        snapshotEvery: mode === 'restored' ? 1 : 100,
      });
      const worker = await startWorker({ bus: await bus(), cluster, applications: [app] });
      workers.push(worker);
      const client = await connect({ bus: await bus(), cluster, label: 'web-1', timeout: 3_000 });
      opened.push(client);
      /** In restored mode every event is followed by passivation: the next one rehydrates from storage. */
      const after = async () => {
        if (mode === 'restored') await worker.passivate();
      };
      return { app, worker, client, after };
    }

    async function journalOf(b: Bus, id: string): Promise<JournalRecord[]> {
      const j = await b.journal({ name: journalStreamName(cluster), subjects: [journalStreamFilter(cluster)] });
      const out: JournalRecord[] = [];
      for await (const e of j.read(journalSubject(cluster, shardOf('counter', id), 'counter', id)))
        out.push(decode(e.data) as JournalRecord);
      return out;
    }

    it('commits events in order and reads the document back', async () => {
      const { client, after } = await cohort();
      const s = client.session('counter', 'alice');
      const seqs = [];
      for (const by of [1, 2, 3]) {
        seqs.push((await s.send({ type: 'ADD', by })).seq);
        await after();
      }
      expect(seqs).toEqual([1, 2, 3]);
      const r = await s.read();
      expect(r).toMatchObject({ seq: 3, state: 'running', document: { n: 6, log: ['+1', '+2', '+3'] } });
      const journaled = (await journalOf(await bus(), 'alice')).flatMap((x) =>
        x.events.map((e) => [e.seq, e.event.type, e.event.meta.client]),
      );
      const all = [
        [1, 'ADD', client.id],
        [2, 'ADD', client.id],
        [3, 'ADD', client.id],
      ];
      // Restored mode snapshots after every event, and a snapshot lets the journal below it go.
      expect(journaled).toEqual(mode === 'live' ? all : all.slice(-1));
    });

    it('rejects an event the machine does not accept, journals nothing, and keeps serving', async () => {
      const { client, after } = await cohort();
      const s = client.session('counter', 'bob');
      await s.send({ type: 'ADD', by: 5 });
      await after();
      const refused = await s.send({ type: 'ADD', by: -1 }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(EventRejectedError);
      expect(refused).toMatchObject({ eventType: 'ADD', state: 'running' });
      const unknown = await s.send({ type: 'NO_SUCH_EVENT' }).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(EventRejectedError);
      expect((await journalOf(await bus(), 'bob')).length).toBe(1);
      expect((await s.send({ type: 'ADD', by: 1 })).seq).toBe(2);
    });

    it('applies a retried command id once', async () => {
      const { after } = await cohort();
      const raw = await bus();
      const subject = cmdSubject(cluster, shardOf('counter', 'carol'), 'counter', 'carol', 'raw');
      const body = encode({ kind: 'command', event: { type: 'ADD', by: 7 }, cmdId: 'cmd-carol-1', client: 'raw#1' });
      const first = decode((await raw.request(subject, body, { timeout: 3_000 })).data) as CommandReply;
      await after();
      const again = decode((await raw.request(subject, body, { timeout: 3_000 })).data) as CommandReply;
      expect(first).toMatchObject({ ok: true, seq: 1 });
      expect(first).not.toHaveProperty('duplicate');
      expect(again).toMatchObject({ ok: true, seq: 1, duplicate: true });
      expect((await journalOf(raw, 'carol')).length).toBe(1);
    });

    it('refuses a stale expectSeq with ConflictError', async () => {
      const { client, after } = await cohort();
      const s = client.session('counter', 'dave');
      await s.send({ type: 'ADD', by: 1 });
      await after();
      expect((await s.send({ type: 'ADD', by: 1 }, { expectSeq: 1 })).seq).toBe(2);
      await after();
      const stale = await s.send({ type: 'ADD', by: 1 }, { expectSeq: 1 }).catch((e: unknown) => e);
      expect(stale).toBeInstanceOf(ConflictError);
      expect(stale).toMatchObject({ expected: 1, actual: 2 });
    });

    it('answers malformed and hostile commands with typed errors, and the session keeps serving', async () => {
      const { client, after } = await cohort();
      const raw = await bus();
      const subject = cmdSubject(cluster, shardOf('counter', 'eve'), 'counter', 'eve', 'raw');
      const ask = async (data: Uint8Array) =>
        decode((await raw.request(subject, data, { timeout: 3_000 })).data) as CommandReply;
      const garbage = await ask(new Uint8Array([0xc1, 0xff, 0x00]));
      expect(garbage).toMatchObject({ ok: false, error: { name: 'DecodeError' } });
      const noType = await ask(encode({ kind: 'command', event: { by: 1 }, cmdId: 'x', client: 'raw' }));
      expect(noType).toMatchObject({ ok: false, error: { name: 'InvalidRequestError' } });
      // Every request says its kind; one that does not, or names a kind that belongs on another subject, is refused.
      const noKind = await ask(encode({ event: { type: 'ADD', by: 1 }, cmdId: 'z1', client: 'raw' }));
      expect(noKind).toMatchObject({
        ok: false,
        error: { name: 'InvalidRequestError', details: { reason: expect.stringContaining("'command' or 'tx'") } },
      });
      const readOnCmd = await ask(encode({ kind: 'read', client: 'raw' }));
      expect(readOnCmd).toMatchObject({ ok: false, error: { name: 'InvalidRequestError' } });
      const timerSpoof = await ask(
        encode({ kind: 'command', event: { type: 'xstate.after.bell.counter.armed' }, cmdId: 'y', client: 'raw' }),
      );
      expect(timerSpoof).toMatchObject({ ok: false, error: { name: 'InvalidRequestError' } });
      const readSubj = cmdSubject(cluster, shardOf('counter', 'eve'), 'counter', 'eve', 'raw').replace(
        '.cmd.',
        '.read.',
      );
      const badRead = decode(
        (await raw.request(readSubj, encode({ kind: 'read', client: 'raw', minSeq: -3 }), { timeout: 3_000 })).data,
      ) as CommandReply;
      expect(badRead).toMatchObject({ ok: false, error: { name: 'InvalidRequestError' } });
      const garbageRead = decode(
        (await raw.request(readSubj, new Uint8Array([0x92]), { timeout: 3_000 })).data,
      ) as CommandReply;
      expect(garbageRead).toMatchObject({ ok: false, error: { name: 'DecodeError' } });
      await after();
      const s = client.session('counter', 'eve');
      expect((await s.send({ type: 'ADD', by: 2 })).seq).toBe(1);
      expect((await s.read()).document).toMatchObject({ n: 2 });
      // The client rebuilds the typed classes.
      await expect(
        connect({ bus: raw, cluster }).then((c) => c.session('other-app', 'x').send({ type: 'A' })),
      ).rejects.toBeInstanceOf(UnknownApplicationError);
      expect(DecodeError).toBeDefined();
      expect(InvalidRequestError).toBeDefined();
    });

    it('survives a worker restart: every acknowledged write is read back', async () => {
      const { app, worker, client, after } = await cohort();
      const s = client.session('counter', 'frank');
      for (let i = 1; i <= 5; i++) {
        await s.send({ type: 'ADD', by: i });
        await after();
      }
      await worker.stop();
      workers.splice(workers.indexOf(worker), 1);
      const replacement = await startWorker({ bus: await bus(), cluster, applications: [app] });
      workers.push(replacement);
      expect(await s.read()).toMatchObject({ seq: 5, document: { n: 15 } });
      expect((await s.send({ type: 'ADD', by: 1 })).seq).toBe(6);
    });

    it('passivates idle sessions and reactivates them on the next message', async () => {
      const { worker, client } = await cohort({ lifetime: 100 });
      const s = client.session('counter', 'gina');
      await s.send({ type: 'ADD', by: 3 });
      expect(worker.activeSessions).toBe(1);
      await waitFor(() => worker.activeSessions === 0, { what: 'passivation' });
      expect(await s.read()).toMatchObject({ seq: 1, document: { n: 3 } });
      expect(worker.activeSessions).toBe(1);
    });

    it('fires a delayed event on time, even across passivation', async () => {
      const { worker, client, after } = await cohort({ lifetime: 50 });
      const s = client.session('counter', 'hal');
      await s.send({ type: 'ARM' });
      await after();
      await waitFor(() => worker.activeSessions === 0, { what: 'passivation' });
      const r = await waitFor(
        async () => {
          const x = await s.read();
          return (x.document as { rang: number }).rang === 1 && x;
        },
        { what: 'the bell' },
      );
      expect(r).toMatchObject({ state: 'running', seq: 2 });
      const journaled = (await journalOf(await bus(), 'hal')).flatMap((x) =>
        x.events.map((e) => [e.seq, e.event.meta.client]),
      );
      expect(journaled.at(-1)).toEqual([2, 'timer']);
      if (mode === 'live')
        expect(journaled).toEqual([
          [1, client.id],
          [2, 'timer'],
        ]);
    });

    it('publishes patches to other clients, never back to their setter', async () => {
      const { client } = await cohort();
      const otherBus = await bus();
      const other = await connect({ bus: otherBus, cluster, label: 'web-2' });
      opened.push(other);
      const mine: Patch[] = [];
      const theirs: Patch[] = [];
      client.session('counter', 'ivy').subscribe((p) => mine.push(p));
      other.session('counter', 'ivy').subscribe((p) => theirs.push(p));
      // Other's subscription is in place before the first patch goes out (it has read nothing: it would not
      // catch up on a patch its watch's answer says came before). The client's is on the connection it sends on.
      await otherBus.flush();
      await client.session('counter', 'ivy').send({ type: 'ADD', by: 4 });
      await other.session('counter', 'ivy').send({ type: 'ADD', by: 1 });
      await waitFor(() => theirs.length === 1 && mine.length === 1, { what: 'patches' });
      expect(theirs[0]).toMatchObject({ seq: 1, setter: client.id });
      expect(theirs[0]!.ops).toEqual(expect.arrayContaining([{ op: 'replace', path: '/n', value: 4 }]));
      expect(mine[0]).toMatchObject({ seq: 2, setter: other.id });
    });

    it('retries while nobody owns the shard, then gives up with TimeoutError', async () => {
      cluster = `t${randomUUID().slice(0, 8)}`;
      const client = await connect({ bus: await bus(), cluster, label: 'lonely' });
      const started = Date.now();
      const err = await client
        .session('counter', 'nobody')
        .send({ type: 'ADD', by: 1 }, { timeout: 400 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TimeoutError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    });
  });
});
