/**
 * A transaction open on a primary that is lost: its lock and working copy
 * lived in that primary's memory. Every step after its begin names the
 * shard's epoch the begin was answered under, so the new primary answers at
 * once that it was rolled back by a failover, not that it never knew it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect, defineApplication, NetworkError, shardOf, startWorker, type Worker } from '../../index.js';
import type { Bus } from '../../bus/types.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { counterMachine } from '../fixtures/counter.js';
import { RawSession } from '../fixtures/rawCohort.js';
import { waitFor } from '../waitFor.js';

const SHARDS = 4;
const FAST = { heartbeatInterval: 100, sessionTimeout: 500, shardCount: SHARDS } as const;
const app = defineApplication({ name: 'counter', machine: counterMachine, unusedSessionLifetime: 600_000 });
const C = 'txfail#00000010';
const targets = busTargets();

describe.each(targets)('a transaction across an unplanned failover ($name)', (target) => {
  const track = cleanupAfterEach();
  const buses = new Map<Worker, Bus>();

  async function worker(cluster: string): Promise<Worker> {
    const bus = track(await target.bus());
    const w = track(await startWorker({ bus, cluster, applications: [app], ...FAST }));
    buses.set(w, bus);
    return w;
  }

  async function pair(id: string) {
    const cluster = `x${randomUUID().slice(0, 8)}`;
    const a = await worker(cluster);
    const b = await worker(cluster);
    await waitFor(
      () =>
        b.view?.viewId === a.view?.viewId &&
        b.view?.shards.every((s) => s.state === 'ACTIVE' && s.replicas.length === 1) === true &&
        a.serving.length + b.serving.length === SHARDS,
      { what: 'every shard served, with a secondary', timeoutMs: 10_000 },
    );
    const shard = shardOf('counter', id, SHARDS);
    const [primary, other] = a.serving.includes(shard) ? [a, b] : [b, a];
    const raw = track(await target.bus());
    return { cluster, primary, other, shard, raw, s: new RawSession(raw, cluster, id) };
  }

  /** Kills the primary (its bus closed under it) and waits for the other to serve the shard. */
  async function crash(primary: Worker, other: Worker, shard: number): Promise<void> {
    await buses.get(primary)!.close();
    await waitFor(() => other.serving.includes(shard), { what: 'the shard failed over', timeoutMs: 10_000 });
  }

  it("steps of a transaction begun under an older epoch: TransactionRolledBackError 'failover'", async () => {
    const { primary, other, shard, s } = await pair('tx1');
    const begun = await s.tx(C, 'tx-a', 'begin', { timeout: 30_000 });
    expect(begun).toMatchObject({ ok: true, seq: 0, by: primary.id });
    const epoch = (begun as unknown as { epoch: number }).epoch;
    expect(epoch).toBeGreaterThan(0);
    expect(await s.tx(C, 'tx-a', 'send', { step: 0, event: { type: 'ADD', by: 1 }, epoch })).toMatchObject({
      ok: true,
    });
    await crash(primary, other, shard);
    const refused = (op: string, extra: Record<string, unknown>) =>
      waitFor(
        async () => {
          const r = await s.tx(C, 'tx-a', op, extra).catch(() => undefined);
          return r !== undefined && !r.ok && r.error.name !== 'SessionMovedError' && r;
        },
        { what: `${op} answered by the new primary` },
      );
    for (const [op, extra] of [
      ['send', { step: 1, event: { type: 'ADD', by: 1 }, epoch }],
      ['read', { epoch }],
      ['commit', { steps: 1, epoch }],
    ] as const) {
      expect(await refused(op, extra)).toMatchObject({
        ok: false,
        error: { name: 'TransactionRolledBackError', details: { txId: 'tx-a', reason: 'failover' } },
      });
    }
    // Control: without the epoch (an older client), or naming the epoch the shard has now, it is 'unknown'.
    const now = other.view!.shards[shard]!.epoch;
    for (const extra of [{}, { epoch: now }])
      expect(await refused('commit', { steps: 1, ...extra })).toMatchObject({
        error: { details: { reason: 'unknown' } },
      });
    // Nothing of it was committed.
    expect(await s.read({ client: C })).toMatchObject({ ok: true, seq: 0 });
  });

  it('refuses an epoch that is not a whole number of at least 0, and keeps serving', async () => {
    const { s } = await pair('tx2');
    for (const epoch of ['1', -1, 1.5, null, 2 ** 60])
      expect(await s.tx(C, 'tx-b', 'commit', { steps: 0, epoch })).toMatchObject({
        ok: false,
        error: { name: 'InvalidRequestError' },
      });
    expect(await s.tx(C, 'tx-b', 'begin', { timeout: 1_000 })).toMatchObject({ ok: true });
    expect(await s.tx(C, 'tx-b', 'commit', { steps: 0 })).toMatchObject({ ok: true });
  });

  it("the client's transaction fails at once with the server's reason, not after its timeout", async () => {
    const { cluster, primary, other, shard } = await pair('tx3');
    const client = track(
      await connect({ bus: track(await target.bus()), cluster, shardCount: SHARDS, attemptTimeout: 300 }),
    );
    const session = client.session('counter', 'tx3');
    let started = 0;
    const outcome = session
      .transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', by: 1 });
          await crash(primary, other, shard);
          started = Date.now();
          await tx.send({ type: 'ADD', by: 1 });
        },
        { timeout: 60_000 },
      )
      .catch((e: unknown) => e);
    const err = await outcome;
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as NetworkError).message).toMatch(/rolled back by the server \(failover\)/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await session.read()).seq).toBe(0);
  });
});
