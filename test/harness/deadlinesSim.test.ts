/**
 * Deadlines everywhere (issue 17), on virtual time: with the only worker
 * paused, every client call (send, read, a transaction's begin and its
 * commit, a counter with its client cut off from replies, a verification)
 * settles at its deadline, not a moment later, with an error that says how
 * long it waited and whether the outcome is ambiguous; a call that gives no
 * timeout gets the connection's. The same calls succeed with the worker
 * running. The process boundary (a real SIGSTOP) is
 * test/scenarios/deadlines.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { NetworkError, TimeoutError, TransactionTimeoutError, type Client } from '../../index.js';
import { tally } from '../fixtures/tally.js';
import { bootSim, type Sim } from './simBoot.js';
import { expectDeadline as expectAt, type Timed } from '../deadline.js';

/** Long TROUBLE retries, so a call that waited for the next one would be seen to wait past its deadline. */
const CONNECTION = { troubledInterval: 20_000, attemptTimeout: 300, reconnectInterval: 5_000, timeout: 2_000 };
/** A call's own deadline, shorter than the connection's. */
const DEADLINE = 700;
/** Virtual time is exact; the slack is for the one attempt out when the deadline falls. */
const SLACK = 5;

interface Scene {
  readonly sim: Sim;
  readonly client: Client;
  pause(): void;
  resume(): void;
}

async function scene(onTrace?: (line: string, sim: Sim) => void): Promise<Scene> {
  const sim: Sim = bootSim({
    ...(onTrace && { onTrace: (line: string) => onTrace(line, sim) }),
    application: tally,
    shardCount: 4,
    heartbeatInterval: 200,
    // Long: the paused worker stays the only member, so nothing but the deadline ends a call.
    sessionTimeout: 60_000,
    connection: CONNECTION,
  });
  await sim.spawn(0);
  await sim.until(sim.balanced([0]), 'the first placement done');
  const client = await sim.connect(0);
  await sim.run(client.session('tally', 'p').send({ type: 'ADD', token: 'before' }));
  const worker = sim.cluster.workers[0]!.process;
  return { sim, client, pause: () => worker.pause(), resume: () => worker.resume() };
}

/** Runs `call` on virtual time; its error, and how long (virtual ms) it took to settle. */
async function timed(sim: Sim, call: () => Promise<unknown>): Promise<{ error: unknown; waited: number }> {
  const started = sim.now();
  const error = await sim.run(
    call().then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  return { error, waited: sim.now() - started };
}

function expectDeadline(outcome: Timed, deadline: number, ambiguous: boolean): TimeoutError {
  return expectAt(outcome, deadline, ambiguous, { slack: SLACK });
}

describe('deadlines under a paused worker, on virtual time', () => {
  it('send: TimeoutError at its deadline, ambiguous (sent, never answered); the default deadline when it gives none', async () => {
    const { sim, client, pause } = await scene();
    pause();
    const s = client.session('tally', 'p');
    const own = expectDeadline(
      await timed(sim, () => s.send({ type: 'ADD', token: 'own' }, { timeout: DEADLINE })),
      DEADLINE,
      true,
    );
    expect(own.message).toMatch(/^send ADD to tally\/p timed out/);
    expectDeadline(await timed(sim, () => s.send({ type: 'ADD', token: 'default' })), CONNECTION.timeout, true);
  });

  it('read: TimeoutError at its deadline, never ambiguous; the default deadline when it gives none', async () => {
    const { sim, client, pause } = await scene();
    pause();
    const s = client.session('tally', 'p');
    const own = expectDeadline(await timed(sim, () => s.read({ timeout: DEADLINE })), DEADLINE, false);
    expect(own.message).toMatch(/^read tally\/p timed out/);
    expectDeadline(await timed(sim, () => s.read()), CONNECTION.timeout, false);
  });

  it('verify: TimeoutError at its deadline, never ambiguous; the cached copy is left as it was', async () => {
    const { sim, client, pause } = await scene();
    const s = client.session('tally', 'p');
    await sim.run(s.read());
    pause();
    const own = expectDeadline(await timed(sim, () => client.verify({ timeout: DEADLINE })), DEADLINE, false);
    expect(own.message).toMatch(/^verify timed out after 700 ms/);
    expect(s.cached()).toMatchObject({ seq: 1, document: { tokens: ['before'] } });
    await expect(client.verify({ timeout: -1 })).rejects.toThrow(RangeError);
  });

  it('read with allowStale: at its deadline the cached copy answers, marked stale; never past the deadline', async () => {
    const { sim, client, pause } = await scene();
    const s = client.session('tally', 'p');
    expect((await sim.run(s.read())).seq).toBe(1);
    pause();
    const started = sim.now();
    const read = await sim.run(s.read({ timeout: DEADLINE, allowStale: true }));
    expect(sim.now() - started).toBeGreaterThanOrEqual(DEADLINE);
    expect(sim.now() - started).toBeLessThanOrEqual(DEADLINE + SLACK);
    expect(read).toMatchObject({ seq: 1, stale: true, source: 'cache', document: { tokens: ['before'] } });
  });

  it('a call made while the connection is in TROUBLE does not wait for its next retry', async () => {
    const { sim, client, pause } = await scene();
    pause();
    const s = client.session('tally', 'p');
    // (The recorder's proxy cannot read the client's state getter: its events say it.)
    let state = 'NORMAL';
    client.on('state', (to) => (state = to));
    // The first send's unanswered attempt puts the connection in TROUBLE, retrying every reconnectInterval.
    const first = s.send({ type: 'ADD', token: 'first' }, { timeout: 15_000 }).catch((e: unknown) => e);
    await sim.until(() => state === 'TROUBLE', 'the connection in trouble', 2_000);
    // Past the first quick retries: the next is up to reconnectInterval away.
    await sim.pass(2_000);
    const late = await timed(sim, () => s.read({ timeout: 250 }));
    expectDeadline(late, 250, false);
    expect(state).toBe('TROUBLE');
    expectDeadline({ error: await sim.run(first), waited: 15_000 }, 15_000, true);
  });

  it('transaction: the begin never outwaits the transaction; not ambiguous', async () => {
    const { sim, client, pause } = await scene();
    pause();
    let ran = false;
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').transaction(
        async () => {
          ran = true;
        },
        { timeout: DEADLINE },
      ),
    );
    const err = expectDeadline(outcome, DEADLINE, false);
    expect(err.message).toMatch(/^transaction \S+ \(begin\) on tally\/p timed out/);
    expect(ran).toBe(false);
  });

  it('transaction: a commit sent and unanswered at the deadline is ambiguous; its events there at most once', async () => {
    const { sim, client, pause, resume } = await scene();
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', token: 'in-tx' });
          pause();
        },
        { timeout: DEADLINE },
      ),
    );
    const err = expectDeadline(outcome, DEADLINE, true);
    expect(err.message).toMatch(/^transaction \S+ \(commit\) on tally\/p timed out/);
    resume();
    // Sent with the connection's next retry (it is in TROUBLE, retrying every reconnectInterval).
    const read = client.session('tally', 'p').read({ timeout: 2 * CONNECTION.reconnectInterval });
    const tokens = ((await sim.run(read)).document as { tokens: string[] }).tokens;
    expect(tokens[0]).toBe('before');
    expect(tokens.filter((t) => t === 'in-tx').length).toBeLessThanOrEqual(1);
  });

  it('transaction: a step never outwaits the call deadline (the connection timeout) inside a longer transaction', async () => {
    const { sim, client, pause } = await scene();
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', token: 'one' });
          pause();
          // The step's deadline is the connection's (2 000), inside the transaction's (10 000).
          await tx.send({ type: 'ADD', token: 'two' });
        },
        { timeout: 10_000 },
      ),
    );
    // The step's TimeoutError came at its own deadline; its abort (unanswered) waited no longer than the transaction's.
    expect(outcome.error).toBeInstanceOf(TimeoutError);
    expect((outcome.error as TimeoutError).message).toMatch(/^transaction send on tally\/p timed out after 2000 ms/);
    expect(outcome.waited).toBeGreaterThanOrEqual(2_000);
    expect(outcome.waited).toBeLessThanOrEqual(10_000 + SLACK);
  });

  it('transaction: a callback still running at the deadline with the worker paused: TransactionTimeoutError then, not held by its unanswered abort', async () => {
    const { sim, client, pause } = await scene();
    let never!: () => void;
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', token: 'held' });
          pause();
          await new Promise<void>((r) => (never = r));
        },
        { timeout: DEADLINE },
      ),
    );
    never();
    expect(outcome.error).toBeInstanceOf(TransactionTimeoutError);
    expect((outcome.error as Error).message).toContain(`ran past its ${DEADLINE} ms timeout`);
    expect(outcome.waited).toBeGreaterThanOrEqual(DEADLINE);
    expect(outcome.waited).toBeLessThanOrEqual(DEADLINE + SLACK);
  });

  it('transaction: a callback that throws while the worker is paused is not held past the deadline by its abort', async () => {
    const { sim, client, pause } = await scene();
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', token: 'thrown' });
          pause();
          throw new Error('changed my mind');
        },
        { timeout: DEADLINE },
      ),
    );
    expect((outcome.error as Error).message).toBe('changed my mind');
    expect(outcome.waited).toBeLessThanOrEqual(DEADLINE + SLACK);
  });

  it('counter: its client hears nothing back: TimeoutError at the deadline, not ambiguous, and a consecutive counter skips no id', async () => {
    const { sim, client } = await scene();
    const ids = client.counter('orders', { consecutive: true, timeout: DEADLINE });
    expect(await sim.run(ids.next())).toBe(1);
    const me = sim.cluster.clients[0]!.process;
    me.deafen(true);
    const err = expectDeadline(await timed(sim, () => ids.next()), DEADLINE, false);
    expect(err.message).toMatch(/^counter orders: next timed out/);
    expectDeadline(await timed(sim, () => ids.next({ timeout: 300 })), 300, false);
    me.deafen(false);
    await sim.pass(100);
    // The timed-out calls gave up their places in line: the next id is the next one.
    expect(await sim.run(ids.next())).toBe(2);
  });

  it('read of a claim-checked document: a blob fetch that never answers ends at the deadline, not ambiguous', async () => {
    let armed = false;
    const { sim, client } = await scene((line, sim) => {
      // The reply came; its blob is being fetched: from now on the client hears nothing.
      if (armed && / execute request c1>server blob get$/.test(line)) {
        armed = false;
        sim.cluster.clients[0]!.process.deafen(true);
      }
    });
    const s = client.session('tally', 'p');
    const big = (c: string): string => c.repeat(600_000);
    await sim.run(s.send({ type: 'ADD', token: big('a') }));
    await sim.run(s.send({ type: 'ADD', token: big('b') }));
    // Control: larger than a message, it comes by claim-check, and whole.
    expect(((await sim.run(s.read())).document as { tokens: string[] }).tokens).toHaveLength(3);
    armed = true;
    const err = expectDeadline(await timed(sim, () => s.read({ timeout: DEADLINE })), DEADLINE, false);
    expect(err.message).toMatch(/^read tally\/p \(fetching its reply\) timed out/);
    expect(armed).toBe(false);
    sim.cluster.clients[0]!.process.deafen(false);
    expect(((await sim.run(s.read())).document as { tokens: string[] }).tokens).toHaveLength(3);
  });

  it('control: with the worker running the same calls succeed within the same deadlines', async () => {
    const { sim, client } = await scene();
    const s = client.session('tally', 'p');
    expect((await sim.run(s.send({ type: 'ADD', token: 'ok' }, { timeout: DEADLINE }))).seq).toBe(2);
    expect((await sim.run(s.read({ timeout: DEADLINE }))).document).toEqual({ tokens: ['before', 'ok'] });
    const r = await sim.run(
      s.transaction(async (tx) => void (await tx.send({ type: 'ADD', token: 'tx' })), { timeout: DEADLINE }),
    );
    expect(r).toMatchObject({ seq: 3, events: 1 });
    expect(await sim.run(client.counter('orders', { consecutive: true, timeout: DEADLINE }).next())).toBe(1);
    const [checked] = await sim.run(client.verify({ timeout: DEADLINE }));
    // Its copy was read at 2, before the transaction: the verification replays 3.
    expect(checked).toMatchObject({ app: 'tally', id: 'p', outcome: 'replayed', from: 2, to: 3 });
  });

  it('a paused worker past troubledInterval shorter than the deadline: NetworkError saying how long it tried', async () => {
    const { sim, client, pause } = await scene();
    pause();
    const outcome = await timed(sim, () =>
      client.session('tally', 'p').send({ type: 'ADD', token: 'x' }, { timeout: CONNECTION.troubledInterval + 5_000 }),
    );
    expect(outcome.error).toBeInstanceOf(NetworkError);
    const err = outcome.error as NetworkError;
    expect(err.ambiguous).toBe(true);
    expect(err.triedMs).toBe(outcome.waited);
    expect(outcome.waited).toBeLessThan(CONNECTION.troubledInterval + 5_000);
    expect(err.message).toMatch(/after trying for \d+ ms; it may have committed/);
  });
});
