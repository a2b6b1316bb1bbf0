import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, defineApplication, EventRejectedError, type Patch, shardOf, startWorker } from '../../index.js';
import { createMemoryBus, createMemoryServer } from '../../bus/memory/mod.js';
import { createNatsBus } from '../../bus/nats/mod.js';
import { metaSubject } from '../../bus/subjects.js';
import type { Bus } from '../../bus/types.js';
import { ledger, ledgerMachine, type LedgerContext } from '../../examples/ledger.js';
import { whiteboard, type WhiteboardContext } from '../../examples/whiteboard.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { cleanupAfterEach } from '../cleanup.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';

let nats: NatsServer;
beforeAll(async () => {
  nats = await startTestServer();
});
afterAll(async () => {
  await nats?.[Symbol.asyncDispose]();
});
const memory = createMemoryServer();

describe.each([
  { name: 'memory', bus: async (): Promise<Bus> => createMemoryBus({ server: memory }) },
  { name: 'nats', bus: (): Promise<Bus> => createNatsBus({ servers: nats.url }) },
])('the examples on a worker ($name)', (target) => {
  const track = cleanupAfterEach();
  const bus = async (): Promise<Bus> => track(await target.bus());
  async function setUp(apps = [ledger, whiteboard]) {
    const cluster = `e${randomUUID().slice(0, 8)}`;
    track(await startWorker({ bus: await bus(), cluster, applications: apps }));
    const client = track(await connect({ bus: await bus(), cluster, label: 'teller' }));
    return { cluster, client };
  }

  it('ledger: opens, deposits, refuses an overdraft, and reads the balance back', async () => {
    const { client } = await setUp();
    const acct = client.session('ledger', 'alice');
    await acct.send({ type: 'OPEN', owner: 'Alice' });
    await acct.send({ type: 'DEPOSIT', amount: 500 });
    const overdraft = await acct.send({ type: 'WITHDRAW', amount: 800 }).catch((e: unknown) => e);
    expect(overdraft).toBeInstanceOf(EventRejectedError);
    expect(overdraft).toMatchObject({ eventType: 'WITHDRAW', state: 'open' });
    const { seq } = await acct.send({ type: 'WITHDRAW', amount: 200 });
    expect(seq).toBe(3);
    const { document, state } = await acct.read();
    expect(state).toBe('open');
    expect(document).toMatchObject({ owner: 'Alice', balance: 300 } satisfies Partial<LedgerContext>);
  });

  it('ledger: the README’s scatter and broadcast — total balance, accounts over a limit, a deposit to each', async () => {
    const { client } = await setUp();
    const ids = Array.from({ length: 50 }, (_, i) => `acct-${i}`);
    const opened = await client.broadcast('ledger', ids, { type: 'OPEN', owner: 'Someone' }, { timeout: 10_000 });
    expect(opened.results.size).toBe(50);
    await client.session('ledger', 'acct-7').send({ type: 'DEPOSIT', amount: 200_000 });
    const sent = await client.broadcast('ledger', ids, { type: 'DEPOSIT', amount: 100 }, { timeout: 5_000 });
    expect(sent.results.size).toBe(50);
    expect(sent.results.get('acct-7')?.seq).toBe(3);
    const { results, errors, missing } = await client.scatter<number>(
      'ledger',
      ids,
      { query: 'balance' },
      { timeout: 2_000 },
    );
    expect(errors.size + missing.length).toBe(0);
    expect([...results.values()].reduce((a, b) => a + b, 0)).toBe(50 * 100 + 200_000);
    const over = await client.scatter<boolean>(
      'ledger',
      ids,
      { query: 'overLimit', args: { limit: 100_000 } },
      { readOnly: true },
    );
    expect([...over.results].filter(([, isOver]) => isOver).map(([id]) => id)).toEqual(['acct-7']);
    // One session's query.
    expect(await client.session('ledger', 'acct-7').query<number>('balance')).toBe(200_100);
  });

  it('ledger: the README’s transaction over two accounts of one shard moves the money in one message', async () => {
    const { client } = await setUp();
    expect(shardOf('ledger', 'alice', 256)).toBe(212);
    expect(shardOf('ledger', 'alice-27', 256)).toBe(212);
    await client.session('ledger', 'alice').send({ type: 'OPEN', owner: 'Alice' });
    await client.session('ledger', 'alice').send({ type: 'DEPOSIT', amount: 20 });
    await client.session('ledger', 'alice-27').send({ type: 'OPEN', owner: 'Alice' });
    const { events, value } = await client.session('ledger', 'alice').transaction(async (tx) => {
      await tx.send({ type: 'WITHDRAW', amount: 5 });
      const savings = tx.session('ledger', 'alice-27');
      await savings.send({ type: 'DEPOSIT', amount: 5 });
      return (await savings.read()).document;
    });
    expect(events).toBe(2);
    expect(value).toMatchObject({ balance: 5 });
    expect((await client.session('ledger', 'alice').read()).document).toMatchObject({ balance: 15 });
    expect((await client.session('ledger', 'alice-27').read()).document).toMatchObject({ balance: 5 });
  });

  it('ledger: the statement timer fires on the runtime clock and is journaled', async () => {
    const quick = defineApplication({ name: 'ledger', machine: ledgerMachine.provide({ delays: { statement: 150 } }) });
    const { client } = await setUp([quick]);
    const acct = client.session('ledger', 'bob');
    await acct.send({ type: 'OPEN', owner: 'Bob' });
    await acct.send({ type: 'DEPOSIT', amount: 42 });
    const doc = await waitFor(
      async () => {
        const d = (await acct.read()).document as LedgerContext;
        return d.statements.length >= 2 && d;
      },
      { what: 'two statements' },
    );
    expect(doc.statements[0]).toMatchObject({ balance: 42 });
    expect(doc.statements[1]!.at).toBeGreaterThan(doc.statements[0]!.at);
  });

  it("whiteboard: every client sees the others' edits as patches, never its own", async () => {
    const { cluster, client: alice } = await setUp();
    const bobBus = await bus();
    const bob = track(await connect({ bus: bobBus, cluster, label: 'bob' }));
    const seenByAlice: Patch[] = [];
    const seenByBob: Patch[] = [];
    alice.session('whiteboard', 'board-1').subscribe((p) => seenByAlice.push(p));
    bob.session('whiteboard', 'board-1').subscribe((p) => seenByBob.push(p));
    // Bob's subscription is in place before alice's first patch goes out (he has read nothing: he would not
    // catch up on a patch his watch's answer says came before). Alice's is on the connection she sends on.
    await bobBus.flush();
    await alice.session('whiteboard', 'board-1').send({ type: 'ADD_SHAPE', id: 's1', kind: 'rect', x: 1, y: 2 });
    await bob.session('whiteboard', 'board-1').send({ type: 'MOVE_SHAPE', id: 's1', x: 10, y: 20 });
    await alice.session('whiteboard', 'board-1').send({ type: 'SET_TITLE', title: 'Plan' });
    await waitFor(() => seenByBob.length === 2 && seenByAlice.length === 1, { what: 'patches' });
    expect(seenByBob.map((p) => p.seq)).toEqual([1, 3]);
    expect(seenByBob[0]!.ops).toEqual([
      { op: 'add', path: '/shapes/s1', value: { kind: 'rect', x: 1, y: 2, by: alice.id } },
    ]);
    expect(seenByAlice[0]).toMatchObject({ seq: 2, setter: bob.id });
    expect(seenByAlice[0]!.ops).toEqual(
      expect.arrayContaining([
        { op: 'replace', path: '/shapes/s1/x', value: 10 },
        { op: 'replace', path: '/shapes/s1/y', value: 20 },
      ]),
    );
    const { document } = await bob.session('whiteboard', 'board-1').read();
    expect(document).toMatchObject({
      title: 'Plan',
      shapes: { s1: { kind: 'rect', x: 10, y: 20, by: alice.id } },
    } satisfies Partial<WhiteboardContext>);
  });

  it('serves application metadata as JSON', async () => {
    const { cluster } = await setUp();
    const raw = await bus();
    const reply = await raw.request(metaSubject(cluster, 'ledger'), new Uint8Array(), { timeout: 2_000 });
    expect(reply.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(new TextDecoder().decode(reply.data))).toEqual({
      name: 'ledger',
      commit: 'journal',
      metadata: { title: 'Accounts' },
    });
  });
});
