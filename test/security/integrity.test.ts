import { describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import {
  connect,
  CorruptClusterSettingError,
  defineApplication,
  EventRejectedError,
  shardOf,
  SimulatedClock,
  startWorker,
} from '../../index.js';
import {
  cmdSubject,
  escapeToken,
  HEADER,
  commandRequest,
  decode,
  encode,
  journalSubject,
  readRequest,
  readSubject,
  SHARD_COUNT_KEY,
  sessionKey,
  timerKey,
} from '../../internal.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { errorOf, rawCohort, SHARDS, type WireReply } from '../fixtures/rawCohort.js';
import { counterMachine } from '../fixtures/counter.js';
import { waitFor } from '../waitFor.js';

const targets = busTargets();

/** A bag of whatever keys clients name: the way a careless application lets a client choose a document's keys. */
const bagMachine = setup({
  types: {} as {
    context: { bag: Record<string, unknown>; odd?: unknown };
    events: { type: 'PUT'; key: string; value: unknown } | { type: 'ODD' };
  },
}).createMachine({
  context: { bag: {} },
  on: {
    PUT: { actions: assign({ bag: ({ context, event }) => ({ ...context.bag, [event.key]: event.value }) }) },
    // A value the codec cannot carry (a Map), made by the machine itself.
    ODD: { actions: assign({ odd: () => new Map([['a', 1]]) }) },
  },
});

/**
 * What a worker refuses whoever sends it (issue 12, section 1), on both
 * buses; each attack beside the same request made properly, which works.
 */
describe.each(targets)('integrity checks in code ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async () => track(await target.bus());

  async function cohort() {
    const c = await rawCohort(bus);
    track(c.worker);
    return c;
  }

  it('a command or read on another shard than its session’s is refused, naming the shard, and nothing is journaled there', async () => {
    const { cluster, raw, session } = await cohort();
    const id = 'mis-sharded';
    const right = shardOf('counter', id, SHARDS);
    const wrong = (right + 1) % SHARDS;
    const ask = async (subject: string, body: unknown) =>
      decode((await raw.request(subject, encode(body), { timeout: 5_000 })).data) as WireReply;
    const add = commandRequest({ type: 'ADD', by: 5 }, 'cmd-wrong-shard', 'raw#1');
    const refused = errorOf(await ask(cmdSubject(cluster, wrong, 'counter', id, 'raw'), add));
    expect(refused).toMatchObject({ name: 'InvalidRequestError', retryable: false });
    expect(String(refused?.details?.['reason'])).toContain(
      `lives on shard ${right} of ${SHARDS}, not on shard ${wrong}`,
    );
    const readRefused = errorOf(await ask(readSubject(cluster, wrong, 'counter', id, 'raw'), readRequest('raw#1')));
    expect(readRefused).toMatchObject({ name: 'InvalidRequestError' });
    // Nothing on the wrong shard's journal subject, nor on the right one's.
    const journal = await raw.journal({ name: `COHORT_${cluster}_JOURNAL`, subjects: [`cohort.${cluster}.jrnl.>`] });
    expect(await journal.lastSeq(journalSubject(cluster, wrong, 'counter', id))).toBe(0);
    expect(await journal.lastSeq(journalSubject(cluster, right, 'counter', id))).toBe(0);
    // Positive control: the same command on its own shard commits, once, and the retry is a duplicate.
    expect(await ask(cmdSubject(cluster, right, 'counter', id, 'raw'), add)).toMatchObject({ ok: true, seq: 1 });
    expect(await ask(cmdSubject(cluster, right, 'counter', id, 'raw'), add)).toMatchObject({
      ok: true,
      seq: 1,
      duplicate: true,
    });
    expect(await session(id).read({ client: 'raw#1' })).toMatchObject({ ok: true, seq: 1, document: { n: 5 } });
  });

  it('a document that would hold __proto__, constructor or prototype, or a value the codec refuses, is an EventRejectedError and nothing is journaled', async () => {
    const cluster = `p${Math.random().toString(36).slice(2, 10)}`;
    const bag = defineApplication({ name: 'bag', machine: bagMachine });
    const worker = track(
      await startWorker({ bus: await bus(), cluster, applications: [bag], shards: [0, 1, 2, 3], shardCount: 4 }),
    );
    const client = track(await connect({ bus: await bus(), cluster, shardCount: 4 }));
    const s = client.session('bag', 'b1');
    expect((await s.send({ type: 'PUT', key: 'ok', value: 1 })).seq).toBe(1);
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const err = await s.send({ type: 'PUT', key, value: { polluted: true } }).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(EventRejectedError);
      expect((err as EventRejectedError).reason, key).toContain(JSON.stringify(key));
    }
    // Nested inside a value, too.
    const nested = await s
      .send({ type: 'PUT', key: 'deep', value: { a: [{ constructor: 1 }] } })
      .catch((e: unknown) => e);
    expect(nested).toBeInstanceOf(EventRejectedError);
    const odd = await s.send({ type: 'ODD' }).catch((e: unknown) => e);
    expect(odd).toBeInstanceOf(EventRejectedError);
    expect((odd as EventRejectedError).reason).toContain('Map');
    // Nothing of it was journaled: the session is at seq 1, reads, snapshots, and takes the next good write.
    expect(await s.read()).toMatchObject({ seq: 1, document: { bag: { ok: 1 } } });
    expect(await worker.passivate()).toBe(1);
    expect((await s.send({ type: 'PUT', key: 'fine', value: 2 })).seq).toBe(2);
    expect(await s.read()).toMatchObject({ seq: 2, document: { bag: { ok: 1, fine: 2 } } });
  });

  it('a transaction holds its session for at most the worker’s maxTransactionTimeout, whatever its client asks', async () => {
    const clock = new SimulatedClock(Date.now());
    const { session } = await rawCohort(bus, { clock, clients: { maxTransactionTimeout: 2_000 } }).then((c) => {
      track(c.worker);
      return c;
    });
    const s = session('tx-capped');
    const [A, B] = ['alice#00000001', 'bob#00000002'];
    // Asks for ten minutes, the most the protocol allows; the worker grants two seconds.
    expect(await s.tx(A, 'tx1', 'begin', { timeout: 600_000 })).toMatchObject({ ok: true });
    clock.increment(1_999);
    expect(errorOf(await s.send(B, 'b1', { type: 'ADD', by: 1 }))).toMatchObject({ name: 'SessionLockedError' });
    clock.increment(1);
    expect(await s.send(B, 'b1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    expect(errorOf(await s.tx(A, 'tx1', 'send', { step: 0, event: { type: 'ADD', by: 1 } }))).toMatchObject({
      name: 'TransactionRolledBackError',
      details: { reason: 'timeout' },
    });
    // Positive control: a transaction that asks for less than the cap keeps what it asked for, and commits.
    expect(await s.tx(A, 'tx2', 'begin', { timeout: 1_000 })).toMatchObject({ ok: true });
    expect(await s.tx(A, 'tx2', 'send', { step: 0, event: { type: 'ADD', by: 2 } })).toMatchObject({
      ok: true,
      seq: 2,
    });
    clock.increment(999);
    expect(await s.tx(A, 'tx2', 'commit', { steps: 1 })).toMatchObject({ ok: true, seq: 2 });
    await expect(rawCohort(bus, { clients: { maxTransactionTimeout: 0 } })).rejects.toThrow(
      /clients.maxTransactionTimeout must be a positive number/,
    );
  });

  it('a session id with CR or LF is written and read like any other; the headers carry it escaped', async () => {
    const cluster = `h${Math.random().toString(36).slice(2, 10)}`;
    const bag = defineApplication({ name: 'bag', machine: bagMachine });
    track(await startWorker({ bus: await bus(), cluster, applications: [bag], shards: [0, 1, 2, 3], shardCount: 4 }));
    const client = track(await connect({ bus: await bus(), cluster, shardCount: 4 }));
    const id = 'line\r\nbreak: x';
    const s = client.session('bag', id);
    expect((await s.send({ type: 'PUT', key: 'k', value: 1 })).seq).toBe(1);
    expect(await s.read()).toMatchObject({ seq: 1, document: { bag: { k: 1 } } });
    const raw = await bus();
    const journal = await raw.journal({ name: `COHORT_${cluster}_JOURNAL`, subjects: [`cohort.${cluster}.jrnl.>`] });
    const entries = [];
    for await (const e of journal.read(journalSubject(cluster, shardOf('bag', id, 4), 'bag', id))) entries.push(e);
    expect(entries).toHaveLength(1);
    expect(entries[0]!.headers[HEADER.session]).toBe(`bag/${escapeToken(id)}`);
    // Positive control: a plain id is carried as it is.
    await client.session('bag', 'plain').send({ type: 'PUT', key: 'k', value: 2 });
    for await (const e of journal.read(journalSubject(cluster, shardOf('bag', 'plain', 4), 'bag', 'plain')))
      expect(e.headers[HEADER.session]).toBe('bag/plain');
  });

  it('a command id or client id with control characters is refused before it reaches a header; the session keeps serving', async () => {
    const { cluster, raw } = await cohort();
    const id = 'ctl';
    const subject = cmdSubject(cluster, shardOf('counter', id, SHARDS), 'counter', id, 'raw');
    const ask = async (body: unknown) =>
      decode((await raw.request(subject, encode(body), { timeout: 5_000 })).data) as WireReply;
    for (const [cmdId, client] of [
      ['c\r\n1', 'raw#1'],
      ['c2', 'raw\n#1'],
      ['c3\u0000', 'raw#1'],
    ]) {
      const refused = errorOf(await ask(commandRequest({ type: 'ADD', by: 1 }, cmdId!, client!)));
      expect(refused, JSON.stringify([cmdId, client])).toMatchObject({ name: 'InvalidRequestError' });
      expect(String(refused?.details?.['reason'])).toContain('control characters');
    }
    expect(await ask(commandRequest({ type: 'ADD', by: 1 }, 'c4', 'raw#1'))).toMatchObject({ ok: true, seq: 1 });
    await expect(connect({ bus: await bus(), cluster, label: 'web\r\n1' })).rejects.toThrow(/control characters/);
  });

  it('a command whose reply subject is the session’s own journal is answered nowhere; the journal holds only records and the session keeps serving', async () => {
    const { cluster, raw, worker, session } = await cohort();
    const id = 'reflect';
    const shard = shardOf('counter', id, SHARDS);
    const journalAt = journalSubject(cluster, shard, 'counter', id);
    raw.publish(
      cmdSubject(cluster, shard, 'counter', id, 'raw'),
      encode(commandRequest({ type: 'ADD', by: 1 }, 'r1', 'raw#1')),
      {
        reply: journalAt,
      },
    );
    await raw.flush();
    const s = session(id);
    // Positive control on the same session: a real request is answered (after the forged one, in order).
    expect(await s.send('raw#1', 'r2', { type: 'ADD', by: 2 })).toMatchObject({ ok: true });
    const records = await s.journal();
    // Both journaled (perhaps as one group-committed record), in order.
    expect(records.flatMap((r) => r.events.map((e) => e.event.meta.cmdId))).toEqual(['r1', 'r2']);
    // Reloaded from the journal, it still serves.
    expect(await worker.passivate()).toBe(1);
    expect(await s.send('raw#1', 'r3', { type: 'ADD', by: 3 })).toMatchObject({ ok: true, seq: 3 });
    expect(await s.read({ client: 'raw#1' })).toMatchObject({ ok: true, seq: 3, document: { n: 6 } });
  });

  it('a journal entry that is not a record refuses that one session with CorruptSessionError naming it; the others serve', async () => {
    const { cluster, raw, worker, session } = await cohort();
    const victim = session('victim');
    const bystander = session('bystander');
    expect(await victim.send('raw#1', 'v1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    expect(await bystander.send('raw#1', 'b1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 1 });
    expect(await worker.passivate()).toBe(2);
    // Published straight into the victim's journal subject by someone who could.
    const journal = await raw.journal({ name: `COHORT_${cluster}_JOURNAL`, subjects: [`cohort.${cluster}.jrnl.>`] });
    const junk = await journal.append(
      journalSubject(cluster, victim.shard, 'counter', 'victim'),
      encode({ v: 1, events: [{ seq: 2 }] }),
    );
    const refused = errorOf(await victim.send('raw#1', 'v2', { type: 'ADD', by: 1 }));
    expect(refused).toMatchObject({
      name: 'CorruptSessionError',
      retryable: false,
      details: { session: 'counter/victim', journalSeq: junk.seq },
    });
    expect(errorOf(await victim.read({ client: 'raw#1' }))).toMatchObject({ name: 'CorruptSessionError' });
    // Positive control: every other session reads and writes on.
    expect(await bystander.send('raw#1', 'b2', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 2 });
    expect(await bystander.read({ client: 'raw#1' })).toMatchObject({ ok: true, seq: 2, document: { n: 2 } });
  });

  it('a snapshot that does not restore refuses that one session with CorruptSessionError; the others serve', async () => {
    const { cluster, raw, worker, session } = await cohort();
    const victim = session('snap-victim');
    expect(await victim.send('raw#1', 'v1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true });
    expect(await worker.passivate()).toBe(1);
    const snapshots = await raw.kv({ bucket: `cohort_${cluster}_snapshots` });
    await snapshots.put(
      sessionKey('counter', 'snap-victim'),
      encode({ v: 1, snapshot: { session: 'nonsense', journalSeq: -4 } }),
    );
    expect(errorOf(await victim.read({ client: 'raw#1' }))).toMatchObject({
      name: 'CorruptSessionError',
      details: { journalSeq: 0 },
    });
    expect(await session('snap-bystander').send('raw#1', 'b1', { type: 'ADD', by: 1 })).toMatchObject({
      ok: true,
      seq: 1,
    });
  });

  it('a timer-index entry that is not a time wakes its session to rewrite it; the worker starts and serves', async () => {
    const { cluster, raw, worker, session } = await cohort();
    expect(await session('sleeper').send('raw#1', 's1', { type: 'ADD', by: 1 })).toMatchObject({ ok: true });
    await worker.stop();
    const timers = await raw.kv({ bucket: `cohort_${cluster}_timers` });
    const key = timerKey(shardOf('counter', 'sleeper', SHARDS), 'counter', 'sleeper');
    await timers.put(key, encode('not a time'));
    await timers.put('junk', new Uint8Array([0xc1]));
    const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
    const again = track(
      await startWorker({
        bus: await bus(),
        cluster,
        applications: [app],
        shards: [...Array(SHARDS).keys()],
        shardCount: SHARDS,
      }),
    );
    expect(again.serving).toHaveLength(SHARDS);
    // The sleeper was woken (it holds no timer), and its entry is gone; the junk key is left alone.
    await waitFor(async () => (await timers.get(key)) === null, { what: 'the entry rewritten' });
    await waitFor(() => again.activeSessions === 1, { what: 'the sleeper woken' });
    expect(await session('sleeper').send('raw#1', 's2', { type: 'ADD', by: 1 })).toMatchObject({ ok: true, seq: 2 });
  });
  it('the shard count is recorded when the cluster is created; a worker or a client configured with another is refused, and so are the commands of a client that connected before it was recorded', async () => {
    const cluster = `s${Math.random().toString(36).slice(2, 10)}`;
    const app = defineApplication({ name: 'counter', machine: counterMachine });
    // Connected before any worker: nothing to check against yet (and the client does not make the bucket).
    const wrong = track(await connect({ bus: await bus(), cluster, shardCount: 2, timeout: 2_000 }));
    track(await startWorker({ bus: await bus(), cluster, applications: [app], shards: [0, 1, 2, 3], shardCount: 4 }));
    const raw = await bus();
    const kv = await raw.kv({ bucket: `cohort_${cluster}_cluster` });
    expect(new TextDecoder().decode((await kv.get(SHARD_COUNT_KEY))!.value)).toBe('4');
    await expect(
      startWorker({ bus: await bus(), cluster, applications: [app], shards: [0, 1], shardCount: 8 }),
    ).rejects.toMatchObject({ name: 'ShardCountMismatchError', configured: 8, recorded: 4 });
    // Connecting with another count, once it is recorded, is refused at once.
    await expect(connect({ bus: track(await bus()), cluster, shardCount: 8 })).rejects.toMatchObject({
      name: 'ShardCountMismatchError',
      configured: 8,
      recorded: 4,
    });
    // The early client reaches a served shard only by chance, and is then told the session's real shard.
    const id = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].find(
      (x) => shardOf('counter', x, 2) !== shardOf('counter', x, 4),
    )!;
    const refused = await wrong
      .session('counter', id)
      .send({ type: 'ADD', by: 1 })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: 'InvalidRequestError', reason: expect.stringContaining(`of 4`) });
    // Positive control: the recorded count is taken, by a second worker and by a client, which commits.
    track(await startWorker({ bus: await bus(), cluster, applications: [app], shards: [0, 1, 2, 3], shardCount: 4 }));
    const client = track(await connect({ bus: await bus(), cluster, shardCount: 4 }));
    expect((await client.session('counter', id).send({ type: 'ADD', by: 1 })).seq).toBe(1);
    // A value there that is not a count refuses a new worker rather than guess.
    await kv.put(SHARD_COUNT_KEY, new TextEncoder().encode('lots'));
    await expect(
      startWorker({ bus: await bus(), cluster, applications: [app], shards: [0, 1, 2, 3], shardCount: 4 }),
    ).rejects.toBeInstanceOf(CorruptClusterSettingError);
  });
});
