/**
 * Deadlines everywhere (issue 17) across the process boundary, on a real
 * nats-server: a `cohort worker` process SIGSTOPped (send, read, a
 * transaction each settle at their deadline, the default one when a call
 * gives none; a counter, which only JetStream serves, is not held up by
 * it), and the nats-server itself SIGSTOPped (a counter and a send still
 * settle at their deadlines). Positive controls before and after. The same
 * logic, placed exactly on virtual time: test/harness/deadlinesSim.test.ts.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Client, connect, TimeoutError } from '../../index.js';
import { startLocalCluster, type LocalCluster } from '../../cli/localCluster.js';
import type { NatsServer } from '../../harness/natsServer.js';
import { startTestServer } from '../nats.js';
import { waitFor } from '../waitFor.js';
import { expectDeadline as expectAt, type Timed } from '../deadline.js';

const TALLY = fileURLToPath(new URL('../fixtures/tally.ts', import.meta.url));
const SCENARIO = { timeout: 90_000 };
/** The connection's deadline for calls that give none, and a call's own. */
const DEFAULT = 1_500;
const OWN = 800;
/** Wall-clock slack on a shared two-core machine: the deadline timer firing late, not the call waiting for more. */
const SLACK = 400;

async function timed(call: () => Promise<unknown>): Promise<{ error: unknown; waited: number }> {
  const started = Date.now();
  const error = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  return { error, waited: Date.now() - started };
}

function expectDeadline(outcome: Timed, deadline: number, ambiguous: boolean): TimeoutError {
  return expectAt(outcome, deadline, ambiguous, { early: 5, slack: SLACK });
}

describe('deadlines under a SIGSTOPped worker process (nats)', () => {
  let nats: NatsServer;
  let cluster: LocalCluster;
  let client: Client;
  beforeAll(async () => {
    nats = await startTestServer();
    cluster = await startLocalCluster({
      workers: 1,
      apps: [TALLY],
      nats: [nats.url],
      cluster: 'deadlines1',
      heartbeatInterval: 200,
      // Long: the paused worker stays the only member, so nothing but the deadline ends a call.
      sessionTimeout: 60_000,
      write: () => {},
    });
    await cluster.views.until((v) => !v.transitional && v.shards.every((s) => s.state === 'ACTIVE'), 30_000, 'placed');
    client = await connect({
      bus: await cluster.openBus('deadlines'),
      cluster: cluster.cluster,
      timeout: DEFAULT,
      attemptTimeout: 300,
    });
  }, 60_000);
  afterAll(async () => {
    cluster?.workers[0]?.resume();
    await client?.close().catch(() => undefined);
    await cluster?.stop(2_000);
    await nats?.[Symbol.asyncDispose]();
  });

  it(
    'send, read, transaction settle at their deadlines; the counter is not held up; all succeed again after SIGCONT',
    SCENARIO,
    async () => {
      const s = client.session('tally', 'p');
      // Control: the same calls with the worker running.
      expect((await s.send({ type: 'ADD', token: 'before' }, { timeout: OWN })).seq).toBe(1);
      expect((await s.read({ timeout: OWN })).seq).toBe(1);
      expect(
        await s.transaction(async (tx) => void (await tx.send({ type: 'ADD', token: 'tx' })), { timeout: OWN }),
      ).toMatchObject({ seq: 2 });
      const ids = client.counter('orders', { consecutive: true, timeout: OWN });
      expect(await ids.next()).toBe(1);

      const worker = cluster.workers[0]!;
      worker.pause();
      try {
        expectDeadline(await timed(() => s.send({ type: 'ADD', token: 'maybe' }, { timeout: OWN })), OWN, true);
        expectDeadline(await timed(() => s.read({ timeout: OWN })), OWN, false);
        // No timeout given: the connection's.
        expectDeadline(await timed(() => s.read()), DEFAULT, false);
        const begin = expectDeadline(
          await timed(() => s.transaction(async () => undefined, { timeout: OWN })),
          OWN,
          false,
        );
        expect(begin.message).toMatch(/\(begin\) on tally\/p/);
        // Ids come from JetStream, not from a worker.
        expect(await ids.next()).toBe(2);
      } finally {
        worker.resume();
      }
      // A transaction whose worker stops between its step and its commit: the commit went out unanswered.
      const commit = await timed(() =>
        s.transaction(
          async (tx) => {
            await tx.send({ type: 'ADD', token: 'in-tx' });
            worker.pause();
          },
          { timeout: 2 * OWN },
        ),
      );
      try {
        const err = expectDeadline(commit, 2 * OWN, true);
        expect(err.message).toMatch(/\(commit\) on tally\/p/);
      } finally {
        worker.resume();
      }
      // Control after: the worker answers again (the connection retries what it had pending).
      const after = await s.read({ timeout: 10_000 });
      const tokens = (after.document as { tokens: string[] }).tokens;
      expect(tokens.slice(0, 2)).toEqual(['before', 'tx']);
      expect(tokens.filter((t) => t === 'maybe').length).toBeLessThanOrEqual(1);
      expect(tokens.filter((t) => t === 'in-tx').length).toBeLessThanOrEqual(1);
    },
  );
});

describe('deadlines under a SIGSTOPped nats-server', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startTestServer();
  });
  afterAll(async () => {
    if (nats?.running) process.kill(nats.pid, 'SIGCONT');
    await nats?.[Symbol.asyncDispose]();
  });

  it(
    'a counter and a send settle at their deadlines; the counter skips no id once the server runs again',
    SCENARIO,
    async () => {
      const client = await connect({ nats: nats.url, cluster: 'deadlines2', timeout: DEFAULT, attemptTimeout: 300 });
      try {
        const ids = client.counter('orders', { consecutive: true });
        expect(await ids.next()).toBe(1);
        process.kill(nats.pid, 'SIGSTOP');
        try {
          const err = expectDeadline(await timed(() => ids.next()), DEFAULT, false);
          expect(err.message).toMatch(/^counter orders: next timed out/);
          expectDeadline(await timed(() => ids.next({ timeout: OWN })), OWN, false);
          // No worker either way; the command went out and nothing answered: it may have committed, for all the client knows.
          expectDeadline(
            await timed(() => client.session('tally', 'q').send({ type: 'ADD', token: 'x' }, { timeout: OWN })),
            OWN,
            true,
          );
        } finally {
          process.kill(nats.pid, 'SIGCONT');
        }
        expect(await ids.next({ timeout: 10_000 })).toBe(2);
      } finally {
        await client.close();
      }
    },
  );
});

describe('deadlines while the client connects anew (nats)', () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await startTestServer();
  });
  afterAll(async () => {
    await nats?.[Symbol.asyncDispose]();
  });

  it(
    'a call made while CONNECTING settles at its deadline, not at the next attempt to connect nor at waitTimeout',
    SCENARIO,
    async () => {
      const client = await connect({
        nats: nats.url,
        cluster: 'deadlines3',
        timeout: DEFAULT,
        attemptTimeout: 300,
        troubledInterval: 500,
        // Long: a call that waited for the next try to connect would be seen to wait past its deadline.
        reconnectInterval: 3_000,
        waitTimeout: 20_000,
      });
      try {
        await nats.stop();
        await waitFor(() => client.state === 'DISABLED' || client.state === 'NOT_CONNECTED', {
          timeoutMs: 10_000,
          what: 'the connection given up',
        });
        // This one starts the new connection, which cannot be made while the server is down.
        const first = timed(() => client.counter('orders').next({ timeout: 6_000 }));
        await waitFor(() => client.state === 'CONNECTING', { what: 'connecting' });
        const second = await timed(() => client.counter('orders').next({ timeout: OWN }));
        expectDeadline(second, OWN, false);
        expect(client.state).toBe('CONNECTING');
        const read = await timed(() => client.session('tally', 'q').read({ timeout: OWN }));
        expectDeadline(read, OWN, false);
        expect((await first).error).toBeInstanceOf(TimeoutError);
        // Control: with the server back the next call connects and succeeds.
        await nats.restart();
        expect(await client.counter('orders').next({ timeout: 15_000 })).toBe(1);
      } finally {
        await client.close();
      }
    },
  );
});
