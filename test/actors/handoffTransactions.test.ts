/**
 * Transactions through a planned move of their shard, on the memory bus and
 * virtual time: the old primary lets the shard go only once the
 * transactions open on it have committed or rolled back, up to
 * handoffTransactionWait; one still open then is rolled back ('failover')
 * and its client hears so on its next step. Meanwhile a new transaction on
 * the shard is refused retryably and begins on the next primary.
 * (test/scenarios/handoffTransactions.test.ts runs a swap under transactions
 * on real processes.)
 */
import { describe, expect, it } from 'vitest';
import { defineApplication, NetworkError, TransactionRolledBackError, type Worker } from '../../index.js';
import { cmdSubject } from '../../bus/subjects.js';
import { decode, encode } from '../../bus/codec.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession, SHARDS, type WireReply } from '../fixtures/rawCohort.js';
import { bootSim, type Sim } from '../harness/simBoot.js';

const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const HEARTBEAT = 100;
const TIMEOUT = 500;
/** Longer than the session timeout, so the tests tell the configured bound from the default. */
const BOUND = 2_000;
const C = 'hand#00000001';
const D = 'hand#00000002';
const MALLORY = 'mall#00000003';

interface Pair {
  readonly sim: Sim;
  readonly primary: Worker;
  readonly secondary: Worker;
  readonly shard: number;
  /** Session `id` in the raw protocol, from a process of its own. */
  readonly s: RawSession;
  /** Another session on the same shard. */
  readonly other: RawSession;
  /** Asks the leader to move the shard to the secondary (no force); resolves once the secondary serves it. */
  move(): Promise<unknown>;
  /** The hand-off has begun: the shard is PENDING in the primary's view (or, without the wait, already moved on). */
  pending(): boolean;
}

/** Two workers, every shard with a secondary on the other; session `id` and its shard's primary. */
async function pair(id: string, bound: number | 'default' = BOUND): Promise<Pair> {
  const sim = bootSim({
    application: app,
    shardCount: SHARDS,
    heartbeatInterval: HEARTBEAT,
    sessionTimeout: TIMEOUT,
    ...(bound !== 'default' && { worker: { handoffTransactionWait: bound } }),
  });
  await sim.spawn(0);
  await sim.spawn(1);
  await sim.until(
    () => sim.balanced([0, 1])() && sim.worker(0).view!.shards.every((s) => s.replicas.length === 1),
    'every shard served, with a secondary',
  );
  const bus = sim.cluster.auditor().bus;
  const s = new RawSession(bus, sim.cluster.name, id);
  const [primary, secondary] = sim.worker(0).serving.includes(s.shard)
    ? [sim.worker(0), sim.worker(1)]
    : [sim.worker(1), sim.worker(0)];
  const other = new RawSession(bus, sim.cluster.name, sim.idOn([s.shard], `${id}-other`));
  return {
    sim,
    primary,
    secondary,
    shard: s.shard,
    s,
    other,
    move: () => primary.failover(s.shard, secondary.id),
    pending: () => {
      const now = primary.view?.shards[s.shard];
      return now?.state === 'PENDING' || now?.primary !== primary.id;
    },
  };
}

/** Client C begins `txId`: the epoch it was answered under, which every later step names. */
async function begin(sim: Sim, s: RawSession, txId: string): Promise<{ epoch: number; by: string }> {
  const r = await ask(sim, s.tx(C, txId, 'begin', { timeout: 30_000 }));
  expect(r).toMatchObject({ ok: true, epoch: expect.any(Number) });
  return r as unknown as { epoch: number; by: string };
}

/** A raw request, driven on virtual time. */
function ask(sim: Sim, request: Promise<WireReply>): Promise<WireReply> {
  return sim.run(request);
}

const rolledBack = (txId: string) => ({
  ok: false,
  error: { name: 'TransactionRolledBackError', retryable: false, details: { txId, reason: 'failover' } },
});

describe('transactions through a planned move (memory bus, virtual time)', () => {
  it('a transaction open when the move starts commits on the old primary; its events are on the new one after', async () => {
    const { sim, primary, secondary, shard, s, move, pending } = await pair('ride');
    const { epoch, by } = await begin(sim, s, 'tx-a');
    expect(by).toBe(primary.id);
    expect(await ask(sim, s.tx(C, 'tx-a', 'send', { step: 0, event: { type: 'ADD', by: 2 }, epoch }))).toMatchObject({
      ok: true,
      seq: 1,
    });
    const moved = move();
    await sim.until(pending, 'the hand-off begun');
    // The old primary keeps the shard while the transaction is open; nobody else serves it.
    await sim.pass(BOUND / 2);
    expect(primary.serving).toContain(shard);
    expect(secondary.serving).not.toContain(shard);
    expect(await ask(sim, s.tx(C, 'tx-a', 'send', { step: 1, event: { type: 'ADD', by: 3 }, epoch }))).toMatchObject({
      ok: true,
      seq: 2,
    });
    const committed = await ask(sim, s.tx(C, 'tx-a', 'commit', { steps: 2, epoch }));
    expect(committed).toMatchObject({ ok: true, seq: 2, by: primary.id, epoch });
    const committedAt = sim.now();
    await sim.run(moved);
    // The hand-off went on as soon as the transaction ended, not at the bound.
    expect(sim.now() - committedAt).toBeLessThan(BOUND / 2);
    expect(secondary.serving).toContain(shard);
    expect(primary.serving).not.toContain(shard);
    // The new primary has both events, as one journal record, and serves on from them.
    expect(await ask(sim, s.read({ client: C }))).toMatchObject({ ok: true, seq: 2, document: { n: 5 } });
    expect(await ask(sim, s.send(C, 'after', { type: 'ADD', by: 1 }))).toMatchObject({
      ok: true,
      seq: 3,
      by: secondary.id,
    });
    expect((await sim.run(s.journal())).map((r) => r.events.length)).toEqual([2, 1]);
    // A retried commit is still recognised by the new primary: the same answer, not doubled.
    expect(await ask(sim, s.tx(C, 'tx-a', 'commit', { steps: 2, epoch }))).toMatchObject({
      ok: true,
      seq: 2,
      duplicate: true,
    });
  });

  it("one still open at the bound is rolled back ('failover'); its client's next step fails at once", async () => {
    const { sim, primary, secondary, shard, move, pending } = await pair('stuck');
    const client = await sim.connect(0);
    const session = client.session('counter', 'stuck');
    let movedAt = 0;
    let stepAt = 0;
    const outcome = session
      .transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', by: 1 });
          const started = sim.now();
          void move().then(() => (movedAt = sim.now() - started));
          // Busy elsewhere for longer than the bound.
          await sim.sleep(BOUND + 1_000);
          stepAt = sim.now();
          await tx.send({ type: 'ADD', by: 1 });
        },
        { timeout: 60_000 },
      )
      .catch((e: unknown) => e);
    await sim.until(pending, 'the hand-off begun');
    const err = await sim.run(outcome);
    const failedAt = sim.now();
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).cause).toBeInstanceOf(TransactionRolledBackError);
    expect((err as NetworkError).cause).toMatchObject({ reason: 'failover' });
    // At once: the next primary answers the step, no waiting out the transaction's timeout.
    expect(failedAt - stepAt).toBeLessThan(1_000);
    // The hand-off waited the bound, then went on without the transaction.
    expect(movedAt).toBeGreaterThanOrEqual(BOUND);
    expect(movedAt).toBeLessThan(BOUND + 1_000);
    expect(secondary.serving).toContain(shard);
    expect(primary.serving).not.toContain(shard);
    expect((await sim.run(session.read())).seq).toBe(0);
    expect(await sim.check()).toEqual([]);
  });

  it('a begin on the shard while it is handed off is refused retryably; the client retries and begins on the new primary', async () => {
    const { sim, primary, secondary, s, other, move, pending } = await pair('busy');
    await begin(sim, s, 'tx-h');
    const moved = move();
    await sim.until(pending, 'the hand-off begun');
    await sim.pass(HEARTBEAT);
    // Another session of the same shard, free: a new transaction on it would prolong the wait.
    expect(await ask(sim, other.tx(D, 'tx-new', 'begin', { timeout: 30_000 }))).toMatchObject({
      ok: false,
      error: { name: 'SessionMovedError', retryable: true },
    });
    // Plain commands on the shard are still served by the old primary meanwhile.
    expect(await ask(sim, other.send(D, 'plain', { type: 'ADD', by: 1 }))).toMatchObject({ ok: true, by: primary.id });
    const client = await sim.connect(0);
    let began = 0;
    const later = client.session('counter', other.id).transaction(async (tx) => {
      began = sim.now();
      await tx.send({ type: 'ADD', by: 10 });
    });
    await sim.pass(BOUND / 4);
    expect(began).toBe(0);
    const commitAt = sim.now();
    expect(await ask(sim, s.tx(C, 'tx-h', 'commit', { steps: 0 }))).toMatchObject({ ok: true });
    const result = await sim.run(later);
    await sim.run(moved);
    expect(began).toBeGreaterThan(commitAt);
    expect(result).toMatchObject({ by: secondary.id, seq: 2, events: 1 });
    expect(result.epoch).toBe(secondary.view!.shards[s.shard]!.epoch);
    expect(await ask(sim, other.read({ client: D }))).toMatchObject({ seq: 2, document: { n: 11 } });
  });

  it('hostile steps during the wait neither end nor prolong it; the owner still commits', async () => {
    const { sim, primary, shard, s, other, move, pending } = await pair('hostile');
    const { epoch } = await begin(sim, s, 'tx-m');
    await ask(sim, s.tx(C, 'tx-m', 'send', { step: 0, event: { type: 'ADD', by: 4 }, epoch }));
    const moved = move();
    await sim.until(pending, 'the hand-off begun');
    const forged: [string, Record<string, unknown>][] = [
      ['commit', { steps: 1, epoch }],
      ['abort', { epoch }],
      ['send', { step: 1, event: { type: 'ADD', by: 100 }, epoch }],
      ['begin', { timeout: 30_000 }],
    ];
    for (const [op, extra] of forged)
      expect(await ask(sim, s.tx(MALLORY, 'tx-m', op, extra)), op).toMatchObject({
        ok: false,
        error: { name: 'InvalidRequestError', retryable: false },
      });
    // A step for a session of another shard, sent on the releasing shard's subject: refused where it enters.
    const elsewhere = sim.idOn(
      Array.from({ length: SHARDS }, (_, i) => i).filter((i) => i !== shard),
      'elsewhere',
    );
    const misplaced = decode(
      (
        await sim.run(
          s.bus.request(
            cmdSubject(sim.cluster.name, shard, 'counter', elsewhere, 'mall'),
            encode({ kind: 'tx', op: 'begin', txId: 'tx-x', client: MALLORY, timeout: 30_000 }),
            { timeout: 5_000 },
          ),
        )
      ).data,
    );
    expect(misplaced).toMatchObject({ ok: false, error: { name: 'InvalidRequestError' } });
    // A begin for a fresh session of the shard: refused retryably, never taking a lock.
    expect(await ask(sim, other.tx(MALLORY, 'tx-y', 'begin', { timeout: 30_000 }))).toMatchObject({
      ok: false,
      error: { name: 'SessionMovedError', retryable: true },
    });
    // Nothing of that ended the transaction: the shard is still here, the owner's transaction intact.
    await sim.pass(HEARTBEAT * 3);
    expect(primary.serving).toContain(shard);
    expect(await ask(sim, s.tx(C, 'tx-m', 'read', { epoch }))).toMatchObject({ ok: true, seq: 1, document: { n: 4 } });
    expect(await ask(sim, s.tx(C, 'tx-m', 'commit', { steps: 1, epoch }))).toMatchObject({
      ok: true,
      seq: 1,
      by: primary.id,
    });
    await sim.run(moved);
    expect(await ask(sim, other.read({ client: D }))).toMatchObject({ ok: true, seq: 0 });
    expect(await ask(sim, s.read({ client: C }))).toMatchObject({ ok: true, seq: 1, document: { n: 4 } });
  });

  it('a transaction kept busy with steps does not hold the shard past the bound', async () => {
    const { sim, secondary, shard, s, move, pending } = await pair('chatty');
    const { epoch } = await begin(sim, s, 'tx-c');
    const started = sim.now();
    let movedAt = 0;
    void move().then(() => (movedAt = sim.now() - started));
    await sim.until(pending, 'the hand-off begun');
    let step = 0;
    let last: WireReply;
    for (;;) {
      last = await ask(sim, s.tx(C, 'tx-c', 'send', { step, event: { type: 'ADD', by: 1 }, epoch }));
      if (!last.ok) break;
      step++;
      await sim.pass(100);
    }
    expect(step).toBeGreaterThan(5);
    expect(last).toMatchObject(rolledBack('tx-c'));
    await sim.until(() => secondary.serving.includes(shard), 'the new primary serving');
    expect(movedAt).toBeGreaterThanOrEqual(BOUND);
    expect(movedAt).toBeLessThan(BOUND + 1_000);
    expect(await ask(sim, s.read({ client: C }))).toMatchObject({ ok: true, seq: 0 });
  });

  it('a worker leaving with a transaction open: the leave waits for its commit; the survivor has it', async () => {
    const { sim, primary, secondary, shard, s } = await pair('leave');
    const { epoch } = await begin(sim, s, 'tx-l');
    await ask(sim, s.tx(C, 'tx-l', 'send', { step: 0, event: { type: 'ADD', by: 7 }, epoch }));
    const stopped = primary.stop();
    await sim.until(() => {
      const now = secondary.view?.shards[shard];
      return now?.state === 'PENDING' || now?.primary !== primary.id;
    }, 'the leaver handing off');
    await sim.pass(BOUND / 4);
    expect(await ask(sim, s.tx(C, 'tx-l', 'commit', { steps: 1, epoch }))).toMatchObject({
      ok: true,
      seq: 1,
      by: primary.id,
    });
    await sim.run(stopped);
    expect(secondary.serving).toContain(shard);
    expect(await ask(sim, s.read({ client: C }))).toMatchObject({ ok: true, seq: 1, document: { n: 7 } });
  });

  it('a rebalance when a worker joins: transactions open on the shards it takes commit first, then move with them', async () => {
    const sim = bootSim({
      application: app,
      shardCount: SHARDS,
      heartbeatInterval: HEARTBEAT,
      sessionTimeout: TIMEOUT,
      worker: { handoffTransactionWait: BOUND },
    });
    const first = await sim.spawn(0);
    const bus = sim.cluster.auditor().bus;
    // One session on every shard, each with a transaction open: whichever shards move, some hold one.
    const sessions = Array.from(
      { length: SHARDS },
      (_, shard) => new RawSession(bus, sim.cluster.name, sim.idOn([shard], 'join')),
    );
    const epochs: number[] = [];
    for (const [i, s] of sessions.entries()) {
      const { epoch } = await begin(sim, s, `tx-j${i}`);
      epochs.push(epoch);
      await ask(sim, s.tx(C, `tx-j${i}`, 'send', { step: 0, event: { type: 'ADD', by: i + 1 }, epoch }));
    }
    const joined = await sim.spawn(1);
    // Handing off (or, without the wait, handed off already).
    const moving = () =>
      first.view!.shards.flatMap((sh, i) => (sh.state !== 'ACTIVE' || sh.primary !== first.id ? [i] : []));
    await sim.until(() => moving().length > 0, 'a rebalance begun');
    const moved = moving();
    await sim.pass(BOUND / 4);
    for (const shard of moved) expect(first.serving).toContain(shard);
    for (const [i, s] of sessions.entries())
      expect(await ask(sim, s.tx(C, `tx-j${i}`, 'commit', { steps: 1, epoch: epochs[i] }))).toMatchObject({
        ok: true,
        seq: 1,
        by: first.id,
      });
    await sim.until(sim.balanced([0, 1]), 'balanced');
    expect(joined.serving.length).toBeGreaterThan(0);
    for (const shard of moved) expect(joined.serving).toContain(shard);
    for (const [i, s] of sessions.entries())
      expect(await ask(sim, s.read({ client: C }))).toMatchObject({ ok: true, seq: 1, document: { n: i + 1 } });
  });

  it('the default bound is the session timeout', async () => {
    const { sim, secondary, shard, s, move, pending } = await pair('default', 'default');
    const { epoch } = await begin(sim, s, 'tx-d');
    const started = sim.now();
    const moved = move();
    await sim.until(pending, 'the hand-off begun');
    await sim.run(moved);
    expect(sim.now() - started).toBeGreaterThanOrEqual(TIMEOUT);
    expect(sim.now() - started).toBeLessThan(BOUND);
    expect(secondary.serving).toContain(shard);
    expect(await ask(sim, s.tx(C, 'tx-d', 'commit', { steps: 0, epoch }))).toMatchObject(rolledBack('tx-d'));
  });
});
