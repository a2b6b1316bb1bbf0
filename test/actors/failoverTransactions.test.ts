/**
 * A transaction open on a primary that is lost: its lock and working copy
 * lived in that primary's memory. Every step after its begin names the
 * shard's epoch the begin was answered under, so the new primary answers at
 * once that it was rolled back by a failover, not that it never knew it.
 */
import { describe, expect, it } from 'vitest';
import { connect, NetworkError } from '../../index.js';
import { busTargets } from '../busTargets.js';
import { cleanupAfterEach } from '../cleanup.js';
import { memberPair, PAIR_SHARDS } from '../fixtures/memberPair.js';
import { waitFor } from '../waitFor.js';

const C = 'txfail#00000010';
const targets = busTargets();

describe.each(targets)('a transaction across an unplanned failover ($name)', (target) => {
  const track = cleanupAfterEach();
  const pair = (id: string) => memberPair(target, track, id);

  it("steps of a transaction begun under an older epoch: TransactionRolledBackError 'failover'", async () => {
    const { primary, secondary: other, shard, s, crash } = await pair('tx1');
    const begun = await s.tx(C, 'tx-a', 'begin', { timeout: 30_000 });
    expect(begun).toMatchObject({ ok: true, seq: 0, by: primary.id });
    const epoch = (begun as unknown as { epoch: number }).epoch;
    expect(epoch).toBeGreaterThan(0);
    expect(await s.tx(C, 'tx-a', 'send', { step: 0, event: { type: 'ADD', by: 1 }, epoch })).toMatchObject({
      ok: true,
    });
    await crash();
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
    const { cluster, crash } = await pair('tx3');
    const client = track(
      await connect({ bus: track(await target.bus()), cluster, shardCount: PAIR_SHARDS, attemptTimeout: 300 }),
    );
    const session = client.session('counter', 'tx3');
    let started = 0;
    const outcome = session
      .transaction(
        async (tx) => {
          await tx.send({ type: 'ADD', by: 1 });
          await crash();
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
