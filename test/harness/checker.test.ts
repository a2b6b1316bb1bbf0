import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import {
  ClientDisconnectedError,
  ConflictError,
  connect,
  createMemoryBus,
  createMemoryServer,
  defineApplication,
  EncodeError,
  EventRejectedError,
  NetworkError,
  SessionMovedError,
  SimulatedClock,
  startWorker,
  TimeoutError,
  type Application,
  type Bus,
  type Client,
  type UserEvent,
} from '../../index.js';
import { DecodeError } from '../../bus/errors.js';
import {
  checkHistory,
  HistoryRecorder,
  readJournals,
  replayModel,
  sendOutcome,
  type CheckInput,
  type Invariant,
  type JournalEvent,
  type Operation,
  type SessionJournal,
  type Violation,
} from '../../harness/checker/index.js';
import { ledger, STATEMENT_PERIOD, type LedgerContext } from '../../examples/ledger.js';
import { whiteboard } from '../../examples/whiteboard.js';
import { cleanupAfterEach } from '../cleanup.js';

const SHARDS = 4;

type Track = ReturnType<typeof cleanupAfterEach>;

/** As cleanupAfterEach, for what a beforeAll made. */
function cleanupAfterAll(): Track {
  const things: Parameters<Track>[0][] = [];
  afterAll(async () => {
    for (const t of things.splice(0).reverse()) await ('stop' in t ? t.stop() : t.close());
  });
  return (thing) => {
    things.push(thing);
    return thing;
  };
}
const START = Date.UTC(2025, 0, 1);

/** A cluster of one worker on the memory bus and virtual time, with clients whose operations are recorded. */
async function memoryCluster(applications: Application[], track: Track) {
  const clock = new SimulatedClock(START);
  const server = createMemoryServer({ environment: { clock } });
  const cluster = `k${randomUUID().slice(0, 8)}`;
  const bus = (): Bus => track(createMemoryBus({ server }));
  track(
    await startWorker({
      bus: bus(),
      cluster,
      applications,
      shards: [...Array(SHARDS).keys()],
      shardCount: SHARDS,
      environment: { clock },
    }),
  );
  const recorder = new HistoryRecorder({ now: () => clock.now() });
  /** `tapped`: connected with the recorder's environment, so command ids are recorded. */
  const client = async (label: string, tapped = true): Promise<Client> => {
    const c = await connect({
      bus: bus(),
      cluster,
      label,
      shardCount: SHARDS,
      environment: tapped ? recorder.environment({ clock }) : { clock },
    });
    track(c);
    return recorder.wrap(c);
  };
  /** Moves virtual time on, so operations done one after another are ordered in the history. */
  const tick = (): void => clock.increment(1);
  const journals = (): Promise<SessionJournal[]> => readJournals(bus(), cluster);
  return { clock, recorder, client, tick, journals, bus, cluster };
}

/** Runs `fn`, keeping whatever it throws out of the way: the recorder has it. */
async function settle(fn: () => Promise<unknown>): Promise<void> {
  await fn().catch(() => undefined);
}

function of(violations: readonly Violation[], invariant: Invariant): Violation[] {
  return violations.filter((v) => v.invariant === invariant);
}

function invariants(violations: readonly Violation[]): Invariant[] {
  return [...new Set(violations.map((v) => v.invariant))].sort();
}

/** A clean run of the ledger: three clients, shared accounts, concurrent deposits, refusals and reads. */
async function ledgerRun(track: Track) {
  const c = await memoryCluster([ledger], track);
  const clients = await Promise.all(['ann', 'bob', 'cid'].map((label) => c.client(label)));
  const accounts = ['acct-0', 'acct-1', 'acct-2'];
  await Promise.all(accounts.map((id, i) => clients[i]!.session('ledger', id).send({ type: 'OPEN', owner: id })));
  c.tick();
  for (let round = 1; round <= 3; round++) {
    await Promise.all(
      clients.flatMap((client, i) =>
        accounts.map((id) => client.session('ledger', id).send({ type: 'DEPOSIT', amount: 100 * round + i })),
      ),
    );
    c.tick();
    await Promise.all(clients.map((client, i) => client.session('ledger', accounts[i]!).read()));
    c.tick();
  }
  // Refused, so certainly not committed: an overdraft, and an account opened twice.
  await settle(() => clients[0]!.session('ledger', 'acct-1').send({ type: 'WITHDRAW', amount: 1_000_000 }));
  c.tick();
  await settle(() => clients[2]!.session('ledger', 'acct-0').send({ type: 'OPEN', owner: 'again' }));
  c.tick();
  await clients[1]!.session('ledger', 'acct-2').send({ type: 'WITHDRAW', amount: 50 });
  c.tick();
  // A month on: each account's statement timer fires, journaled by the runtime rather than sent by a client.
  c.clock.increment(STATEMENT_PERIOD);
  for (const id of accounts) {
    const s = clients[1]!.session('ledger', id);
    while (((await s.read()).document as LedgerContext).statements.length === 0) c.tick();
  }
  const finals = await Promise.all(
    accounts.map(async (id) => ({
      app: 'ledger',
      session: id,
      at: c.clock.now(),
      ...(await clients[1]!.session('ledger', id).read()),
    })),
  );
  return { ...c, finals, history: c.recorder.operations, journals: await c.journals() };
}

describe('a clean run has no violations (positive control)', () => {
  const track = cleanupAfterEach();

  it('the ledger: three clients, concurrent deposits, refusals, reads', async () => {
    const run = await ledgerRun(track);
    const sends = run.history.filter((op) => op.kind === 'send');
    expect(sends.length).toBe(3 + 27 + 3);
    expect(sends.filter((op) => op.outcome === 'failed').map((op) => op.error)).toEqual([
      'EventRejectedError',
      'EventRejectedError',
    ]);
    expect(sends.every((op) => op.cmdId !== undefined)).toBe(true);
    const events = run.journals.flatMap((j) => j.events);
    expect(events).toHaveLength(3 + 27 + 1 + 3);
    expect(events.filter((e) => e.event.meta.client === 'timer')).toHaveLength(3);
    expect(run.finals.map((f) => f.seq)).toEqual([11, 11, 12]);
    const violations = checkHistory({
      history: run.history,
      journals: run.journals,
      applications: [ledger],
      finals: run.finals,
    });
    expect(violations).toEqual([]);
  });

  it('a hot account: deposits and overdrafts in flight together, journaled in batches (group commit)', async () => {
    const c = await memoryCluster([ledger], track);
    const client = await c.client('hot');
    const acct = client.session('ledger', 'acct-hot');
    await acct.send({ type: 'OPEN', owner: 'hot' });
    c.tick();
    // Every fourth is an overdraft: refused inside its batch, the others journaled around it.
    await Promise.all(
      Array.from({ length: 48 }, (_, i) =>
        settle(() =>
          acct.send(i % 4 === 3 ? { type: 'WITHDRAW', amount: 1_000_000 } : { type: 'DEPOSIT', amount: i + 1 }),
        ),
      ),
    );
    c.tick();
    const finals = [{ app: 'ledger', session: 'acct-hot', at: c.clock.now(), ...(await acct.read()) }];
    const journals = await c.journals();
    const entries = new Map<number, number>();
    for (const e of journals.flatMap((j) => j.events)) entries.set(e.streamSeq, (entries.get(e.streamSeq) ?? 0) + 1);
    expect([...entries.values()].some((n) => n > 1)).toBe(true);
    const sends = c.recorder.operations.filter((op) => op.kind === 'send');
    expect(sends.filter((op) => op.outcome === 'failed')).toHaveLength(12);
    expect(finals[0]!.seq).toBe(1 + 36);
    expect(checkHistory({ history: c.recorder.operations, journals, applications: [ledger], finals })).toEqual([]);
  });

  it('the whiteboard: shapes added, moved and refused, one client without recorded command ids', async () => {
    const c = await memoryCluster([whiteboard], track);
    const [ann, bob] = await Promise.all([c.client('ann'), c.client('bob')]);
    // Its command ids are unknown to the history: tied by seq when acknowledged, by content when not.
    const cid = await c.client('cid', false);
    const boards = ['board-1', 'board-2'];
    for (const [i, client] of [ann!, bob!, cid].entries()) {
      await Promise.all(
        boards.map((b) =>
          client.session('whiteboard', b).send({ type: 'ADD_SHAPE', id: `s${i}`, kind: 'rect', x: i, y: i }),
        ),
      );
      c.tick();
    }
    await Promise.all([
      ann!.session('whiteboard', 'board-1').send({ type: 'MOVE_SHAPE', id: 's2', x: 10, y: 10 }),
      bob!.session('whiteboard', 'board-2').send({ type: 'SET_TITLE', title: 'plans' }),
      settle(() =>
        cid.session('whiteboard', 'board-1').send({ type: 'ADD_SHAPE', id: 's0', kind: 'text', x: 0, y: 0 }),
      ),
      settle(() => cid.session('whiteboard', 'board-2').send({ type: 'DELETE_SHAPE', id: 'nope' })),
    ]);
    c.tick();
    await Promise.all(boards.map((b) => cid.session('whiteboard', b).read()));
    const history = c.recorder.operations;
    expect(history.filter((op) => op.outcome === 'failed')).toHaveLength(2);
    expect(history.filter((op) => op.kind === 'send' && op.cmdId === undefined)).toHaveLength(4);
    const journals = await c.journals();
    expect(checkHistory({ history, journals, applications: [whiteboard] })).toEqual([]);
    // Tied by seq, its command is still found applied twice.
    const untied = history.find((op) => op.client === 'cid' && op.outcome === 'ok' && op.session === 'board-2')!;
    const doubled = journals.map((j) => {
      if (j.session !== 'board-2') return j;
      const e = j.events.find((x) => x.seq === untied.seq)!;
      const last = j.events[j.events.length - 1]!;
      return { ...j, events: [...j.events, { ...e, seq: last.seq + 1, streamSeq: last.streamSeq + 100 }] };
    });
    const [v] = of(checkHistory({ history, journals: doubled, applications: [whiteboard] }), 'acknowledged-once');
    expect(v).toMatchObject({ session: 'board-2', operations: [untied] });
    expect(v!.message).toContain('journaled 2 times');
  });
});

describe('doctored runs: each invariant caught', () => {
  let run: Awaited<ReturnType<typeof ledgerRun>>;
  let clean: CheckInput;

  beforeAll(async () => {
    run = await ledgerRun(cleanupAfterAll());
    clean = { history: run.history, journals: run.journals, applications: [ledger], finals: run.finals };
  });

  const journalOf = (id: string): SessionJournal => clean.journals.find((j) => j.session === id)!;
  const withJournal = (id: string, change: (j: SessionJournal) => SessionJournal): SessionJournal[] =>
    clean.journals.map((j) => (j.session === id ? change(j) : j));
  const lastStreamSeq = (): number => Math.max(...clean.journals.flatMap((j) => j.events.map((e) => e.streamSeq)));
  const acked = (id: string): Operation[] =>
    clean.history.filter((op) => op.kind === 'send' && op.outcome === 'ok' && op.session === id);

  it('the clean input itself passes', () => {
    expect(checkHistory(clean)).toEqual([]);
  });

  it('a command journaled twice (applied again at the next seq)', () => {
    const j = journalOf('acct-1');
    const again = j.events.find((e) => e.event.type === 'DEPOSIT')!;
    const last = j.events[j.events.length - 1]!;
    const doubled: JournalEvent = { ...again, seq: last.seq + 1, streamSeq: lastStreamSeq() + 1 };
    const violations = checkHistory({
      ...clean,
      journals: withJournal('acct-1', (x) => ({ ...x, events: [...x.events, doubled] })),
    });
    const [v, ...more] = of(violations, 'acknowledged-once');
    expect(more).toEqual([]);
    expect(v).toMatchObject({ session: 'acct-1', event: { seq: last.seq + 1, cmdId: again.event.meta.cmdId } });
    expect(v!.operations[0]!.cmdId).toBe(again.event.meta.cmdId);
    expect(v!.message).toContain('journaled 2 times');
    // The final document read before it no longer is the journal's last word either.
    expect(of(violations, 'model')[0]!.message).toContain('journal goes on');
  });

  it('an entry journaled again at the same seq: the replay notes the repeat', () => {
    const j = journalOf('acct-0');
    const copy: JournalEvent = { ...j.events[2]!, streamSeq: lastStreamSeq() + 1 };
    const violations = checkHistory({
      ...clean,
      journals: withJournal('acct-0', (x) => ({ ...x, events: [...x.events, copy] })),
    });
    expect(invariants(violations)).toEqual(['acknowledged-once', 'model']);
    expect(of(violations, 'model')[0]).toMatchObject({ event: { seq: 3 } });
    expect(of(violations, 'model')[0]!.message).toContain('journaled again');
  });

  it('an event no client sent (a phantom)', () => {
    const j = journalOf('acct-2');
    const last = j.events[j.events.length - 1]!;
    const phantom: JournalEvent = {
      ...last,
      seq: last.seq + 1,
      streamSeq: lastStreamSeq() + 1,
      event: { type: 'DEPOSIT', amount: 1, meta: { time: START, cmdId: 'forged', client: 'mallory' } },
    };
    const violations = checkHistory({
      ...clean,
      journals: withJournal('acct-2', (x) => ({ ...x, events: [...x.events, phantom] })),
    });
    const phantoms = of(violations, 'no-phantom');
    expect(phantoms).toHaveLength(1);
    expect(phantoms[0]).toMatchObject({
      session: 'acct-2',
      operations: [],
      event: { cmdId: 'forged', type: 'DEPOSIT' },
    });
    expect(phantoms[0]!.message).toContain('mallory');
  });

  it('a delayed event for a timer the machine never armed', () => {
    const j = journalOf('acct-0');
    const last = j.events[j.events.length - 1]!;
    const timer = j.events.find((e) => e.event.meta.client === 'timer')!;
    const bogus: JournalEvent = {
      ...timer,
      seq: last.seq + 1,
      streamSeq: lastStreamSeq() + 1,
      event: { ...timer.event, meta: { ...timer.event.meta, cmdId: 't:bogus', timer: 'bogus' } },
    };
    const violations = checkHistory({
      ...clean,
      journals: withJournal('acct-0', (x) => ({ ...x, events: [...x.events, bogus] })),
    });
    // The runtime's own event, not a phantom: the model finds it out.
    expect(of(violations, 'no-phantom')).toEqual([]);
    const models = of(violations, 'model');
    expect(models.map((v) => v.message).sort()).toEqual([
      `the final document is at seq ${last.seq}, but the journal goes on to seq ${last.seq + 1}`,
      expect.stringContaining('timer bogus, which was not armed'),
    ]);
    const unarmed = models.find((v) => v.event !== undefined);
    expect(unarmed).toMatchObject({ session: 'acct-0', event: { seq: last.seq + 1, cmdId: 't:bogus' } });
  });

  it('two acknowledgements with the same seq', () => {
    const [first, second] = acked('acct-0').slice(1, 3);
    const history = clean.history.map((op) => (op === second ? { ...op, seq: first!.seq } : op));
    const violations = of(checkHistory({ ...clean, history }), 'seq-distinct');
    expect(violations).toHaveLength(1);
    expect(violations[0]!.operations.map((op) => op.cmdId)).toEqual([first!.cmdId, second!.cmdId]);
    expect(violations[0]!.message).toContain(`seq ${first!.seq}`);
  });

  it('a read that does not match the model names the events since the last read that agreed', () => {
    // Bob reads acct-1 after each round: at seq 4, 7 and 10 (then after its statement).
    const reads = clean.history.filter((op) => op.kind === 'read' && op.session === 'acct-1' && op.client === 'bob');
    expect(reads.slice(0, 3).map((op) => op.seq)).toEqual([4, 7, 10]);
    const read = reads[1]!;
    const doc = read.document as { balance: number };
    const wrong = { ...read, document: { ...doc, balance: doc.balance + 1 } };
    const history = clean.history.map((op) => (op === read ? wrong : op));
    const [v, ...more] = of(checkHistory({ ...clean, history }), 'model');
    expect(more).toEqual([]);
    expect(v!.operations).toEqual([wrong]);
    expect(v!.message).toContain(`/balance: ${doc.balance + 1} ≠ ${doc.balance}`);
    // The read at seq 4 agreed: it parted at one of the events 5 to 7, the first of them named.
    expect(v!.message).toContain('since seq 4');
    expect(v!.event).toMatchObject({ seq: 5, type: 'DEPOSIT' });
  });

  it('real-time order broken: a send acknowledged before another was invoked has the higher seq', () => {
    const ops = acked('acct-0');
    const low = ops.find((op) => op.seq === 2)!;
    const high = ops.find((op) => op.seq === 5)!;
    // The one that got seq 5 now completes before the one that got seq 2 was sent.
    const history = clean.history.map((op) =>
      op === high ? { ...op, invokedAt: low.invokedAt - 10, completedAt: low.invokedAt - 5 } : op,
    );
    const violations = of(checkHistory({ ...clean, history }), 'real-time-order');
    expect(violations.length).toBeGreaterThanOrEqual(1);
    expect(violations.some((v) => v.operations[0]!.seq === 5 && v.operations[1]!.seq === 2)).toBe(true);
  });

  it('two writers in one epoch of a shard, and an acknowledged write journaled under a deposed epoch', () => {
    const shard = journalOf('acct-0').shard;
    const sameShard = new Set(clean.journals.filter((j) => j.shard === shard).map((j) => j.session));
    // Epoch 4 by w1 up to one entry, then w2 writes under epoch 4 as well.
    const cut = journalOf('acct-0').events[5]!.streamSeq;
    const epochs = clean.journals.map((j) => ({
      ...j,
      events: j.events.map((e) => ({
        ...e,
        epoch: 4,
        worker: e.streamSeq >= cut && sameShard.has(j.session) ? 'w2' : 'w1',
      })),
    }));
    const shared = of(checkHistory({ ...clean, journals: epochs }), 'single-writer');
    expect(shared).toHaveLength(1);
    expect(shared[0]!.message).toContain(`shard ${shard} epoch 4 has a second writer: w2`);
    expect(shared[0]!.event!.streamSeq).toBe(cut);

    // Epoch 5 from that entry on, but one later acknowledged write still under epoch 4.
    const later = journalOf('acct-0').events[7]!;
    const deposed = clean.journals.map((j) => ({
      ...j,
      events: j.events.map((e) => ({ ...e, epoch: e.streamSeq >= cut && e !== later ? 5 : 4, worker: 'w1' })),
    }));
    const late = of(checkHistory({ ...clean, journals: deposed }), 'deposed-writer');
    expect(late).toHaveLength(1);
    expect(late[0]).toMatchObject({ session: 'acct-0', event: { seq: later.seq } });
  });

  it('a failed send that is journaled after all', () => {
    const failed = clean.history.find((op) => op.outcome === 'failed' && op.event?.type === 'WITHDRAW')!;
    const j = journalOf('acct-1');
    const last = j.events[j.events.length - 1]!;
    const landed: JournalEvent = {
      ...last,
      seq: last.seq + 1,
      streamSeq: lastStreamSeq() + 1,
      event: { ...failed.event!, meta: { time: START, cmdId: failed.cmdId!, client: failed.connection! } },
    };
    const violations = checkHistory({
      ...clean,
      journals: withJournal('acct-1', (x) => ({ ...x, events: [...x.events, landed] })),
    });
    const [v, ...more] = of(violations, 'failed-absent');
    expect(more).toEqual([]);
    expect(v!.operations).toEqual([failed]);
    expect(v!.message).toContain('EventRejectedError');
    // The machine would not have taken it either: an overdraft.
    expect(of(violations, 'model')[0]!.message).toContain('is not accepted');
  });

  it('an ambiguous send applied twice; applied once is fine', () => {
    const op = acked('acct-2')[3]!;
    const ambiguous = { ...op, outcome: 'ambiguous' as const, seq: undefined, error: 'TimeoutError' };
    const history = clean.history.map((x) => (x === op ? ambiguous : x));
    expect(checkHistory({ ...clean, history })).toEqual([]);
    const j = journalOf('acct-2');
    const e = j.events.find((x) => x.event.meta.cmdId === op.cmdId)!;
    const last = j.events[j.events.length - 1]!;
    const twice = withJournal('acct-2', (x) => ({
      ...x,
      events: [...x.events, { ...e, seq: last.seq + 1, streamSeq: lastStreamSeq() + 1 }],
    }));
    const [v] = of(checkHistory({ ...clean, history, journals: twice }), 'ambiguous-at-most-once');
    expect(v).toMatchObject({ session: 'acct-2', operations: [ambiguous], event: { seq: last.seq + 1 } });
  });

  it('a secondary that differs from its primary at the same seq', () => {
    const final = run.finals[0]!;
    const doc = final.document as { balance: number };
    const secondaries = [
      { worker: 'w2', app: 'ledger', session: final.session, seq: final.seq, document: doc, at: 7 },
      { worker: 'w3', app: 'ledger', session: final.session, seq: final.seq, document: { ...doc, balance: 0 }, at: 8 },
      // At a seq no client read: compared with the journal replayed.
      { worker: 'w3', app: 'ledger', session: final.session, seq: 2, document: { ...doc, balance: -1 }, at: 9 },
    ];
    const violations = of(checkHistory({ ...clean, secondaries }), 'replica-agreement');
    expect(violations.map((v) => v.at)).toEqual([8, 9]);
    // The primary's reads at that seq (the last round's and the final one) and the final document.
    expect(violations[0]!.operations.map((op) => op.seq)).toEqual([final.seq, final.seq]);
    expect(violations[0]!.message).toContain(`secondary w3 at seq ${final.seq} differs from the primary's read`);
    expect(violations[0]!.message).toContain('and 2 more');
    expect(violations[1]!.message).toContain('/balance: -1 ≠');
    expect(violations[1]!.event).toMatchObject({ seq: 2 });
  });

  it('an unreadable journal entry', () => {
    const journals = withJournal('acct-0', (x) => ({
      ...x,
      unreadable: [{ streamSeq: 999, reason: 'no events', time: START }],
    }));
    const [v] = of(checkHistory({ ...clean, journals }), 'journal-readable');
    expect(v!.message).toContain('journal entry 999');
  });

  it('an acknowledged command missing from the journal, and an application not given', () => {
    const j = journalOf('acct-0');
    const lost = j.events[4]!;
    const cut = withJournal('acct-0', (x) => ({ ...x, events: x.events.filter((e) => e !== lost) }));
    const violations = checkHistory({ ...clean, journals: cut });
    expect(of(violations, 'acknowledged-once')[0]!.message).toContain(
      `acknowledged at seq ${lost.seq} is not in the journal`,
    );
    expect(of(violations, 'model')[0]!.message).toContain(`goes on at seq ${lost.seq + 1}`);
    const unknown = checkHistory({ ...clean, applications: [] });
    expect(of(unknown, 'model').map((v) => v.message)).toEqual([
      'no application named ledger was given: its sessions cannot be replayed',
    ]);
  });
});

/** Hand-built operations, for the invariants that need no journal. */
function op(fields: Partial<Operation> & Pick<Operation, 'kind' | 'invokedAt' | 'completedAt'>): Operation {
  return { client: 'c', app: 'ledger', session: 's', outcome: 'ok', ...fields };
}

describe('pure: order and liveness', () => {
  it('a read that completed before a send was invoked may not reflect its seq', () => {
    const history = [
      op({ kind: 'read', invokedAt: 0, completedAt: 1, seq: 3, document: {} }),
      op({ kind: 'send', invokedAt: 2, completedAt: 3, seq: 3 }),
      // A stale read is not ordered: a secondary may trail.
      op({ kind: 'read', invokedAt: 4, completedAt: 5, seq: 1, document: {}, stale: true, source: 'secondary' }),
    ];
    const violations = checkHistory({ history, journals: [], applications: [] }).filter(
      (v) => v.invariant === 'real-time-order',
    );
    expect(violations).toHaveLength(1);
    expect(violations[0]!.operations).toEqual([history[0], history[1]]);
    // Overlapping operations may be ordered either way.
    const overlapping = [
      op({ kind: 'send', invokedAt: 0, completedAt: 5, seq: 2 }),
      op({ kind: 'send', invokedAt: 1, completedAt: 3, seq: 1 }),
    ];
    expect(of(checkHistory({ history: overlapping, journals: [], applications: [] }), 'real-time-order')).toEqual([]);
  });

  it('liveness: each session acknowledged a command within the bound after the heal', () => {
    const history = [
      op({ kind: 'send', session: 'a', invokedAt: 90, completedAt: 120, seq: 1 }),
      op({ kind: 'send', session: 'b', invokedAt: 100, completedAt: 400, seq: 1 }),
      op({ kind: 'send', session: 'c', invokedAt: 100, completedAt: 150, outcome: 'ambiguous' }),
    ];
    const violations = of(
      checkHistory({ history, journals: [], applications: [], liveness: { healedAt: 100, bound: 200 } }),
      'liveness',
    );
    expect(violations.map((v) => [v.session, v.at])).toEqual([
      ['b', 300],
      ['c', 300],
    ]);
    expect(violations[1]!.message).toContain('1 ambiguous');
  });
});

describe('HistoryRecorder', () => {
  const track = cleanupAfterEach();

  it('records a send nobody answered as failed (it went nowhere), with its command id and times', async () => {
    const c = await memoryCluster([ledger], track);
    // A second cluster name: no worker serves it, so every attempt finds no responders.
    const client = c.recorder.wrap(
      track(
        await connect({
          bus: c.bus(),
          cluster: `${c.cluster}x`,
          label: 'lost',
          shardCount: SHARDS,
          environment: c.recorder.environment({ clock: c.clock }),
        }),
      ),
    );
    const sent = client.session('ledger', 'acct').send({ type: 'OPEN', owner: 'Ann' }, { timeout: 500 });
    const outcome = sent.then(
      () => 'ok',
      (err: unknown) => err,
    );
    let settled: unknown;
    void outcome.then((x) => (settled = x));
    for (let i = 0; i < 200 && settled === undefined; i++) {
      c.clock.increment(10);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(settled).toBeInstanceOf(TimeoutError);
    const [op] = c.recorder.operations;
    expect(op).toMatchObject({
      client: 'lost',
      kind: 'send',
      outcome: 'failed',
      error: 'TimeoutError',
      invokedAt: START,
      event: { type: 'OPEN', owner: 'Ann' },
    });
    expect(op!.cmdId).toMatch(/^[0-9a-f-]{36}$/);
    expect(op!.completedAt).toBeGreaterThanOrEqual(START + 500);
  });

  it("the wrapped client is the client: its getters and methods read the real one's state", async () => {
    const c = await memoryCluster([ledger], track);
    const inner = track(
      await connect({
        bus: c.bus(),
        cluster: c.cluster,
        label: 'plain',
        shardCount: SHARDS,
        environment: { clock: c.clock },
      }),
    );
    const client = c.recorder.wrap(inner);
    expect(client.id).toBe(inner.id);
    expect(client.state).toBe(inner.state);
    expect(client.readOnly).toBe(false);
    expect(client.label).toBe('plain');
    await client.session('ledger', 'getters').send({ type: 'OPEN', owner: 'Ann' });
    expect(c.recorder.operations.at(-1)).toMatchObject({ client: 'plain', kind: 'send', outcome: 'ok' });
  });
});

describe('sendOutcome: certainly not committed, or perhaps', () => {
  it.each([
    [new EventRejectedError('X', 'open'), 'failed'],
    [new ConflictError(1, 2), 'failed'],
    [new SessionMovedError('a', 'b'), 'failed'],
    [new ClientDisconnectedError('c', 'closed'), 'failed'],
    [new EncodeError('body', 'a function'), 'failed'],
    [new RangeError('timeout over the window'), 'failed'],
    [new TimeoutError('send', 10), 'failed'],
    [new TimeoutError('send', 10, { ambiguous: true }), 'ambiguous'],
    [new NetworkError('send', { session: 'a/b', triedMs: 1, ambiguous: false, reason: 'r' }), 'failed'],
    [new NetworkError('send', { session: 'a/b', triedMs: 1, ambiguous: true, reason: 'r' }), 'ambiguous'],
    [new DecodeError('reply', 'garbled'), 'ambiguous'],
    [new Error('anything else'), 'ambiguous'],
  ] as const)('%s', (error, outcome) => {
    expect(sendOutcome(error)).toBe(outcome);
  });
});

/** A machine that is not deterministic: STIR writes the wall clock or randomness into the document. */
function noisy(source: 'random' | 'clock'): Application {
  const machine = setup({
    types: {} as { context: { n: number; noise: number }; events: { type: 'ADD' } | { type: 'STIR' } },
  }).createMachine({
    id: 'noisy',
    context: { n: 0, noise: 0 },
    on: {
      ADD: { actions: assign({ n: ({ context }) => context.n + 1 }) },
      STIR: { actions: assign({ noise: () => (source === 'random' ? Math.random() : Date.now()) }) },
    },
  });
  return defineApplication({ name: 'noisy', machine });
}

describe('a machine that is not deterministic', () => {
  const track = cleanupAfterEach();

  it.each(['random', 'clock'] as const)('reads %s in an action: the violation names the event', async (source) => {
    const app = noisy(source);
    const c = await memoryCluster([app], track);
    const client = await c.client('ann');
    const s = client.session('noisy', 'n-1');
    const events: UserEvent[] = [{ type: 'ADD' }, { type: 'ADD' }, { type: 'STIR' }, { type: 'ADD' }];
    for (const event of events) {
      await s.send(event);
      c.tick();
      await s.read();
      c.tick();
    }
    const stir = c.recorder.operations.find((op) => op.event?.type === 'STIR')!;
    const violations = checkHistory({
      history: c.recorder.operations,
      journals: await c.journals(),
      applications: [app],
    });
    const [d, ...more] = of(violations, 'deterministic');
    expect(more).toEqual([]);
    expect(d).toMatchObject({ session: 'n-1', operations: [stir], event: { seq: 3, type: 'STIR', cmdId: stir.cmdId } });
    expect(d!.message).toContain('/noise');
    if (source === 'random') {
      // The worker's randomness is not the replay's: the reads from seq 3 on disagree, naming STIR.
      const reads = of(violations, 'model');
      expect(reads.map((v) => v.operations[0]!.seq)).toEqual([3, 4]);
      expect(reads.every((v) => v.event?.type === 'STIR')).toBe(true);
    }
    // Positive control: the same run with a deterministic machine's journal replays clean.
    expect(invariants(violations).every((i) => i === 'deterministic' || i === 'model')).toBe(true);
  });
});

describe('a compacted journal', () => {
  const track = cleanupAfterEach();

  it('is replayed from the snapshot, and said to be incomplete unless allowed', async () => {
    const app = defineApplication({ name: 'ledger', machine: ledger.machine, snapshotEvery: 3 });
    const c = await memoryCluster([app], track);
    const client = await c.client('ann');
    const s = client.session('ledger', 'acct');
    await s.send({ type: 'OPEN', owner: 'Ann' });
    for (let i = 1; i <= 7; i++) {
      c.tick();
      await s.send({ type: 'DEPOSIT', amount: i });
    }
    c.tick();
    const final = await s.read();
    // The purge runs after the reply: wait for it.
    let journals = await c.journals();
    for (let i = 0; i < 50 && journals[0]!.events[0]!.seq === 1; i++) journals = await c.journals();
    const [j] = journals;
    expect(j!.events[0]!.seq).toBeGreaterThan(1);
    expect(j!.base!.seq).toBeGreaterThanOrEqual(j!.events[0]!.seq - 1);
    expect(replayModel(app, j!).at(final.seq)!.document).toEqual(final.document);
    const input = {
      history: c.recorder.operations,
      journals,
      applications: [app],
      finals: [{ app: 'ledger', session: 'acct', ...final }],
    };
    const violations = checkHistory(input);
    expect(invariants(violations)).toEqual(['journal-complete']);
    expect(violations[0]!.message).toContain(`the journal starts at seq ${j!.events[0]!.seq}`);
    expect(checkHistory({ ...input, requireFullJournal: false })).toEqual([]);
    // What follows the snapshot is still checked.
    const wrong = { ...input, requireFullJournal: false, finals: [{ ...input.finals[0]!, document: {} }] };
    expect(invariants(checkHistory(wrong))).toEqual(['model']);
  });
});
